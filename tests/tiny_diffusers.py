"""A tiny random Stable Diffusion pipeline for diffusers, built at test time (nothing downloaded): a two-block
UNet2DConditionModel (native size 64 px: sample size 8 × the VAE's factor 8), a two-layer CLIPTextModel with CLIP's real BPE vocabulary (offline, from open_clip's
bundled file), an AutoencoderKL and an Euler scheduler, saved with ``save_pretrained``; and LoRAs for it in the
diffusers/PEFT layout and in kohya's, with kohya metadata naming SD1.x."""

from __future__ import annotations

import json
from pathlib import Path

import torch

RANK = 4


def tiny_pipeline(path: Path, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tiny_models import clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(4, 4, 8, 8), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        latent_channels=4, norm_num_groups=4, sample_size=64, layers_per_block=1)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=16,
                                        intermediate_size=32, layer_norm_eps=1e-5, num_attention_heads=2,
                                        num_hidden_layers=2, vocab_size=49408, projection_dim=16,
                                        max_position_embeddings=77))
    clip_tokenizer(path / "_tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(path / "_tokenizer"), model_max_length=77)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(path))
    return path


def _attention_modules(unet_config: dict) -> list[tuple[str, int, int]]:
    """(diffusers module name, in features, out features) of every attention projection of the tiny UNet."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(unet_config)
    out = []
    for name, module in unet.named_modules():
        if name.endswith((".to_q", ".to_k", ".to_v", ".to_out.0")) and isinstance(module, torch.nn.Linear):
            out.append((name, module.in_features, module.out_features))
    return out


def tiny_lora(pipeline: Path, path: Path, tags: dict[str, int], layout: str = "peft", seed: int = 1,
              base_version: str = "sd_v1") -> int:
    """A LoRA for the tiny pipeline's UNet attention in the diffusers/PEFT layout (``peft``) or kohya's
    (``kohya``), with kohya metadata (base model version, output name, tag frequency); returns its module count."""
    from safetensors.torch import save_file

    config = json.loads((pipeline / "unet" / "config.json").read_text())
    modules = _attention_modules(config)
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, fan_in, fan_out in modules:
        down = torch.randn(RANK, fan_in, generator=generator) * 0.1
        up = torch.randn(fan_out, RANK, generator=generator) * 0.1
        if layout == "peft":
            state[f"unet.{name}.lora_A.weight"] = down
            state[f"unet.{name}.lora_B.weight"] = up
        else:
            key = "lora_unet_" + name.replace(".", "_")
            state[f"{key}.lora_down.weight"] = down
            state[f"{key}.lora_up.weight"] = up
            state[f"{key}.alpha"] = torch.tensor(float(RANK))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), {"ss_base_model_version": base_version, "ss_network_dim": str(RANK),
                                 "ss_output_name": path.stem.replace("_", " "),
                                 "ss_tag_frequency": json.dumps({"1_x": tags})})
    return len(modules)


# ---- the same pipeline as one original-layout (LDM) checkpoint file --------------------------------------------
_UNET_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_FIXED = {"conv_norm_out": "norm_out"}
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _rename(rest: str, table: tuple[tuple[str, str], ...]) -> str:
    head, _, leaf = rest.rpartition(".")
    for new, old in table:
        if head == new:
            return f"{old}.{leaf}"
    return rest


def _unet_key(key: str, config: dict) -> str:
    """The original (LDM) name of a diffusers UNet2DConditionModel key, for SD1.x-shaped UNets."""
    per = config["layers_per_block"] + 1
    parts = key.split(".")
    for new, old in _UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    if parts[0] == "mid_block":
        index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(parts[1:3])]
        rest = ".".join(parts[3:])
        return f"middle_block.{index}." + (_rename(rest, _UNET_RESNET) if index != 1 else rest)
    block, kind, layer, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
    if parts[0] == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(block + 1) * per}.0.op.{rest.removeprefix('conv.')}"
        index = block * per + layer + 1
        return f"input_blocks.{index}.0.{_rename(rest, _UNET_RESNET)}" if kind == "resnets" \
            else f"input_blocks.{index}.1.{rest}"
    if kind == "upsamplers":
        slot = 2 if config["up_block_types"][block].startswith("CrossAttn") else 1
        return f"output_blocks.{block * per + per - 1}.{slot}.{rest}"
    index = block * per + layer
    return f"output_blocks.{index}.0.{_rename(rest, _UNET_RESNET)}" if kind == "resnets" \
        else f"output_blocks.{index}.1.{rest}"


def _vae_key(key: str, config: dict) -> str:
    """The original (LDM) name of a diffusers AutoencoderKL key."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return key  # quant_conv, post_quant_conv
    parts = rest.split(".")
    if parts[0] in _VAE_FIXED:
        return f"{side}.{_VAE_FIXED[parts[0]]}.{'.'.join(parts[1:])}"
    if parts[0] == "mid_block":
        tail = ".".join(parts[3:])
        if parts[1] == "attentions":
            return f"{side}.mid.attn_1.{_rename(tail, _VAE_ATTENTION)}"
        return f"{side}.mid.block_{int(parts[2]) + 1}.{_rename(tail, (('conv_shortcut', 'nin_shortcut'),))}"
    if parts[0] in ("down_blocks", "up_blocks"):
        block = int(parts[1])
        if parts[0] == "up_blocks":
            block = len(config["up_block_types"]) - 1 - block
        word = "down" if parts[0] == "down_blocks" else "up"
        if parts[2] in ("downsamplers", "upsamplers"):
            return f"{side}.{word}.{block}.{parts[2][:-2]}.{'.'.join(parts[4:])}"
        tail = ".".join(parts[4:])
        return f"{side}.{word}.{block}.block.{parts[3]}.{_rename(tail, (('conv_shortcut', 'nin_shortcut'),))}"
    return key  # conv_in, conv_out


def ldm_checkpoint(pipeline: Path, path: Path) -> Path:
    """The tiny pipeline at ``pipeline`` as one single-file checkpoint in the original Stable Diffusion layout
    (``model.diffusion_model.``, ``first_stage_model.``, ``cond_stage_model.transformer.``), as A1111 and ComfyUI
    users have them; diffusers reads it back with ``from_single_file(config=<the folder>)``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(str(pipeline / "unet"))
    vae = AutoencoderKL.from_pretrained(str(pipeline / "vae"))
    text = CLIPTextModel.from_pretrained(str(pipeline / "text_encoder"))
    state: dict[str, torch.Tensor] = {}
    for key, value in unet.state_dict().items():
        state["model.diffusion_model." + _unet_key(key, dict(unet.config))] = value
    for key, value in vae.state_dict().items():
        state["first_stage_model." + _vae_key(key, dict(vae.config))] = value
    for key, value in text.state_dict().items():  # original checkpoints name the text model (transformers 5.6+ not)
        state["cond_stage_model.transformer." + ("" if key.startswith("text_model.") else "text_model.") + key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path),
              {"modelspec.architecture": "stable-diffusion-v1"})
    return path
