"""Build a random-weight SD1.5-family checkpoint that ComfyUI's CheckpointLoaderSimple accepts.

Run with ComfyUI's interpreter and ComfyUI's folder as the first argument:

    python make_checkpoint.py /path/to/ComfyUI out.safetensors

A reduced UNet (model_channels=320 and context_dim=768 are what SD1.5 detection checks),
ComfyUI's own random CLIP-L text encoder and a TAESD VAE, all built from ComfyUI's model
classes with random weights (nothing is downloaded), stored in fp16: about 300 MB. Every tensor is
set explicitly, so the images it makes are finite (random-looking, but real pixels).
"""

from __future__ import annotations

import sys

import torch


def build(comfy_dir: str, out: str) -> None:
    sys.path.insert(0, comfy_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()  # so ComfyUI reads --cpu, as main.py does
    import comfy.ops
    import comfy.sd1_clip
    import comfy.taesd.taesd
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import save_file

    torch.manual_seed(0)
    unet = UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1, 1],
                     channel_mult=(1, 2), num_heads=8, use_spatial_transformer=True, transformer_depth=[1, 1],
                     transformer_depth_output=[1, 1, 1, 1], transformer_depth_middle=1, context_dim=768,
                     use_linear_in_transformer=False, legacy=False, operations=comfy.ops.manual_cast)
    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    vae = comfy.taesd.taesd.TAESD()
    state: dict[str, torch.Tensor] = {}
    for prefix, module in (("model.diffusion_model.", unet), ("cond_stage_model.", clip),
                           ("first_stage_model.", vae)):
        for key, tensor in module.state_dict().items():
            if prefix == "first_stage_model." and not key.startswith("taesd"):
                continue
            value = tensor.detach()
            if not torch.is_floating_point(value):
                state[prefix + key] = value.contiguous()
                continue
            # ComfyUI's ops skip weight initialisation (the tensors are torch.empty): set every one.
            if value.ndim > 1:
                value = torch.randn_like(value) * 0.02
            elif key.endswith("weight"):
                value = torch.ones_like(value)   # norms: identity scale
            else:
                value = torch.zeros_like(value)  # biases, shifts
            state[prefix + key] = value.to(torch.float16).contiguous()
    save_file(state, out, metadata={"modelspec.architecture": "stable-diffusion-v1"})


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2])
