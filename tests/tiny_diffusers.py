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
