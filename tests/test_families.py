"""Model-family detection from metadata, tensor names and file names."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from atelier.nodes.core.quality.families import detect_family, detect_file, read_safetensors_header


def write_safetensors(path: Path, tensors: list[str], metadata: dict[str, str] | None = None) -> Path:
    """A real safetensors file: 8-byte header length, JSON header, one float per tensor."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    for i, name in enumerate(tensors):
        header[name] = {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 4 * len(tensors))
    return path


@pytest.mark.parametrize(("name", "family"), [
    ("v1-5-pruned-emaonly.safetensors", "sd15"),
    ("sd_xl_base_1.0.safetensors", "sdxl"),
    ("sdxl_lightning_4step.safetensors", "sdxl_lightning"),
    ("sd_xl_turbo_1.0_fp16.safetensors", "sdxl_turbo"),
    ("flux1-dev-fp8.safetensors", "flux_dev"),
    ("flux1-schnell.safetensors", "flux_schnell"),
    ("sd3.5_large.safetensors", "sd3"),
    ("ponyDiffusionV6XL.safetensors", "sdxl"),
    ("dreamshaper_8_lcm.safetensors", "lcm"),
    ("Hyper-SDXL-8steps.safetensors", "hyper"),
    ("hyperrealism_v3.safetensors", "sd15"),  # "hyper" alone is not Hyper-SD
    ("my_custom_mix.safetensors", "sd15"),
])
def test_family_from_checkpoint_name(name: str, family: str) -> None:
    assert detect_family(name).family == family


def test_metadata_architecture_beats_the_file_name(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "v1-5-looks-like-sd15.safetensors", ["a"],
                             {"modelspec.architecture": "stable-diffusion-xl-v1-base"})
    detection = detect_file(path)
    assert (detection.family, detection.source) == ("sdxl", "metadata")


def test_tensor_names_identify_unnamed_checkpoints(tmp_path: Path) -> None:
    sdxl = write_safetensors(tmp_path / "model_a.safetensors", ["conditioner.embedders.1.model.x", "model.x"])
    flux = write_safetensors(tmp_path / "model_b.safetensors", ["double_blocks.0.img_attn.qkv.weight"])
    sd15 = write_safetensors(tmp_path / "model_c.safetensors", ["cond_stage_model.transformer.text_model.x"])
    assert detect_file(sdxl).family == "sdxl" and detect_file(sdxl).source == "tensors"
    assert detect_file(flux).family == "flux_dev"
    assert detect_file(sd15).family == "sd15"


def test_distilled_variant_refined_by_name_when_tensors_say_base(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "juggernaut_lightning.safetensors", ["conditioner.embedders.1.x"])
    assert detect_file(path).family == "sdxl_lightning"


def test_not_a_safetensors_file_falls_back_to_the_name(tmp_path: Path) -> None:
    path = tmp_path / "sd_xl_thing.ckpt"
    path.write_bytes(b"\xff" * 64)
    assert read_safetensors_header(path) is None
    assert detect_file(path).family == "sdxl"
    assert detect_family(None).source == "default"
