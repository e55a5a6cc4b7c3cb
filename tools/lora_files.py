"""LoRA files built at test time: real key names and shapes of kohya SD1.5/SD2/SDXL, diffusers/PEFT SDXL and
Flux layouts, kohya and modelspec metadata, and sidecars. Used by the tests, the ComfyUI suite and
``bench/bench_loras.py``; nothing here is committed as a binary.

``sparse=True`` writes the header and leaves the tensor data as a hole of the right size (the header is
exactly a real file's; the bytes are zeros and take no disk), so a bench can build 1,000 files quickly.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DTYPE_BYTES = {"F16": 2, "F32": 4, "BF16": 2}


def write_safetensors(path: Path, tensors: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None,
                      dtype: str = "F16", sparse: bool = False, values: dict[str, bytes] | None = None) -> Path:
    """A .safetensors file with these tensor shapes (zeros, or ``values``' raw bytes) and metadata."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        size = DTYPE_BYTES[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)))
        handle.write(raw)
        if sparse and not values:
            handle.truncate(8 + len(raw) + offset)
        else:
            for name, entry in header.items():
                if name == "__metadata__":
                    continue
                begin, end = entry["data_offsets"]
                data = (values or {}).get(name) or bytes(end - begin)
                handle.write(data[: end - begin].ljust(end - begin, b"\0"))
    return path


def _kohya(module: str, fan_in: int, fan_out: int, rank: int) -> dict[str, tuple[int, ...]]:
    return {f"{module}.lora_down.weight": (rank, fan_in), f"{module}.lora_up.weight": (fan_out, rank),
            f"{module}.alpha": ()}


def _peft(module: str, fan_in: int, fan_out: int, rank: int) -> dict[str, tuple[int, ...]]:
    return {f"{module}.lora_A.weight": (rank, fan_in), f"{module}.lora_B.weight": (fan_out, rank)}


def _text_encoder(prefix: str, width: int, layers: int, rank: int, peft: bool = False) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    make = _peft if peft else _kohya
    sep = "." if peft else "_"
    for layer in range(layers):
        base = f"{prefix}{sep}text_model{sep}encoder{sep}layers{sep}{layer}{sep}" if not peft else \
            f"{prefix}.text_model.encoder.layers.{layer}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out.update(make(f"{base}self_attn{sep}{proj}", width, width, rank))
        out.update(make(f"{base}mlp{sep}fc1", width, width * 4, rank))
        out.update(make(f"{base}mlp{sep}fc2", width * 4, width, rank))
    return out


def _attention(prefix: str, channels: int, context: int, rank: int, sep: str = "_",
               make: Any = _kohya) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for attn, width in (("attn1", channels), ("attn2", context)):
        out.update(make(f"{prefix}{sep}{attn}{sep}to_q", channels, channels, rank))
        out.update(make(f"{prefix}{sep}{attn}{sep}to_k", width, channels, rank))
        out.update(make(f"{prefix}{sep}{attn}{sep}to_v", width, channels, rank))
        out.update(make(f"{prefix}{sep}{attn}{sep}to_out{sep}0", channels, channels, rank))
    out.update(make(f"{prefix}{sep}ff{sep}net{sep}0{sep}proj", channels, channels * 8, rank))
    out.update(make(f"{prefix}{sep}ff{sep}net{sep}2", channels * 4, channels, rank))
    return out


def kohya_sd1(context: int = 768, rank: int = 4, text_encoder: bool = True) -> dict[str, tuple[int, ...]]:
    """kohya sd-scripts' SD1.x/SD2.x keys (diffusers block names, '_'-joined); context 1024 for SD2."""
    out: dict[str, tuple[int, ...]] = {}
    for block, channels in ((0, 320), (1, 640), (2, 1280)):
        for a in (0, 1):
            out.update(_attention(f"lora_unet_down_blocks_{block}_attentions_{a}_transformer_blocks_0", channels,
                                  context, rank))
    out.update(_attention("lora_unet_mid_block_attentions_0_transformer_blocks_0", 1280, context, rank))
    for block, channels in ((1, 1280), (2, 640), (3, 320)):
        for a in (0, 1, 2):
            out.update(_attention(f"lora_unet_up_blocks_{block}_attentions_{a}_transformer_blocks_0", channels,
                                  context, rank))
    if text_encoder:
        out.update(_text_encoder("lora_te", context if context == 768 else 1024, 12, rank))
    return out


def kohya_sdxl(rank: int = 4, depth: int = 2) -> dict[str, tuple[int, ...]]:
    """kohya's SDXL keys: LDM block names (input_blocks/output_blocks), 2..10 transformer blocks, two TEs."""
    out: dict[str, tuple[int, ...]] = {}
    for block, channels, blocks in ((4, 640, 2), (5, 640, 2), (7, 1280, depth), (8, 1280, depth)):
        for t in range(blocks):
            out.update(_attention(f"lora_unet_input_blocks_{block}_1_transformer_blocks_{t}", channels, 2048, rank))
    for block, channels, blocks in ((0, 1280, depth), (1, 1280, depth), (3, 640, 2), (4, 640, 2)):
        for t in range(blocks):
            out.update(_attention(f"lora_unet_output_blocks_{block}_1_transformer_blocks_{t}", channels, 2048, rank))
    out.update(_text_encoder("lora_te1", 768, 12, rank))
    out.update(_text_encoder("lora_te2", 1280, 4, rank))
    return out


def peft_sdxl(rank: int = 4) -> dict[str, tuple[int, ...]]:
    """diffusers/PEFT SDXL keys (``unet.down_blocks.2.attentions.0.transformer_blocks.1.attn2.to_k.lora_A``)."""
    out: dict[str, tuple[int, ...]] = {}
    for block, channels in ((1, 640), (2, 1280)):
        for a in (0, 1):
            for t in range(2):
                out.update(_attention(f"unet.down_blocks.{block}.attentions.{a}.transformer_blocks.{t}", channels,
                                      2048, rank, ".", _peft))
    out.update(_text_encoder("text_encoder", 768, 2, rank, peft=True))
    out.update(_text_encoder("text_encoder_2", 1280, 2, rank, peft=True))
    return out


def kohya_flux(rank: int = 4, double: int = 19, single: int = 38) -> dict[str, tuple[int, ...]]:
    """kohya's Flux.1 keys (``lora_unet_double_blocks_0_img_attn_qkv``, ``lora_unet_single_blocks_0_linear1``)."""
    out: dict[str, tuple[int, ...]] = {}
    for i in range(double):
        for part, fan_in, fan_out in (("img_attn_qkv", 3072, 9216), ("img_attn_proj", 3072, 3072),
                                      ("img_mlp_0", 3072, 12288), ("img_mlp_2", 12288, 3072),
                                      ("txt_attn_qkv", 3072, 9216), ("txt_attn_proj", 3072, 3072)):
            out.update(_kohya(f"lora_unet_double_blocks_{i}_{part}", fan_in, fan_out, rank))
    for i in range(single):
        out.update(_kohya(f"lora_unet_single_blocks_{i}_linear1", 3072, 21504, rank))
        out.update(_kohya(f"lora_unet_single_blocks_{i}_linear2", 15360, 3072, rank))
    return out


def peft_flux(rank: int = 4, blocks: int = 4) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for i in range(blocks):
        for proj in ("to_q", "to_k", "to_v"):
            out.update(_peft(f"transformer.single_transformer_blocks.{i}.attn.{proj}", 3072, 3072, rank))
        out.update(_peft(f"transformer.single_transformer_blocks.{i}.proj_out", 15360, 3072, rank))
    return out


def kohya_metadata(base_version: str | None, output_name: str, tags: dict[str, int] | None = None,
                   extra: dict[str, str] | None = None) -> dict[str, str]:
    meta = {"ss_output_name": output_name, "ss_network_module": "networks.lora", "ss_network_dim": "4",
            "ss_resolution": "(512, 512)", "ss_training_started_at": "1700000000"}
    if base_version:
        meta["ss_base_model_version"] = base_version
    if tags:
        meta["ss_tag_frequency"] = json.dumps({"10_" + output_name: tags})
    meta.update(extra or {})
    return meta


def write_sidecars(path: Path, a1111: dict[str, Any] | None = None, manager: dict[str, Any] | None = None,
                   civitai: dict[str, Any] | None | str = None) -> None:
    stem = path.with_suffix("")
    if a1111 is not None:
        stem.with_name(stem.name + ".json").write_text(json.dumps(a1111))
    if manager is not None:
        stem.with_name(stem.name + ".metadata.json").write_text(json.dumps(manager))
    if civitai is not None:
        stem.with_name(stem.name + ".civitai.info").write_text(civitai if isinstance(civitai, str)
                                                              else json.dumps(civitai))


THEMES = ["watercolor", "cyberpunk", "pixel art", "ukiyo-e", "noir", "steampunk", "origami", "neon", "charcoal",
          "vaporwave", "art deco", "gothic", "pastel", "low poly", "claymation", "stained glass", "impressionist",
          "comic", "chibi", "fantasy armor", "knight", "dragon", "castle", "forest spirit", "robot", "samurai",
          "mermaid", "astronaut", "cat ears", "witch hat"]


def library(folder: Path, count: int, sparse: bool = True, sidecars: bool = True) -> list[Path]:
    """``count`` LoRA files across SD1.5 / SDXL / Flux layouts with kohya metadata and sidecars."""
    layouts = (("sd_v1", kohya_sd1), ("sdxl_base_v1-0", kohya_sdxl), ("flux1", kohya_flux))
    shapes_of = {name: make() for name, make in layouts}
    paths: list[Path] = []
    for i in range(count):
        version, _ = layouts[i % 3]
        theme = THEMES[i % len(THEMES)]
        word = theme.replace(" ", "")
        name = f"{['sd15', 'sdxl', 'flux'][i % 3]}/{word}_{i:04d}.safetensors"
        tags = {theme: 40 + i % 7, "1girl": 30, "solo": 25, f"{word} style": 12, "outdoors": 5 + i % 3}
        meta = kohya_metadata(version if i % 5 else None, f"{word}_{i:04d}", tags,
                              {"modelspec.trigger_phrase": f"{word}{i % 97}"} if i % 2 else None)
        path = write_safetensors(folder / name, shapes_of[version], meta, sparse=sparse)
        if sidecars and i % 4 == 0:
            write_sidecars(path, a1111={"activation text": f"{word} style", "preferred weight": 0.6,
                                        "description": f"A {theme} LoRA.", "sd version": "Unknown"})
        if sidecars and i % 4 == 1:
            write_sidecars(path, civitai={"baseModel": ["SD 1.5", "SDXL 1.0", "Flux.1 D"][i % 3],
                                          "trainedWords": [f"{word}"], "model": {"name": f"{theme.title()} {i}",
                                                                                 "tags": ["style", theme]}})
        paths.append(path)
    return paths


def files_of(paths: Iterable[Path]) -> int:
    return sum(os.stat(p).st_blocks for p in paths)
