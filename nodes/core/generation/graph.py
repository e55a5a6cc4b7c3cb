"""One job on ComfyUI: the API-format graph that runs exactly the job's parameters, LoRAs and seed.

CheckpointLoaderSimple → (LoRA Recommend in MANUAL mode with the job's LoRAs: ComfyUI's own LoRA loading, the
matched modules reported) → CLIPTextEncode ×2 → EmptyLatentImage → KSampler (base) → [LatentUpscale →
KSampler (hires)] → [KSampler (refine)] → VAEDecode → PreviewImage (a temp image the backend fetches: nothing
lands in the server's output folder). The prompt is encoded as given: the API adds no trigger words.
"""

from __future__ import annotations

from typing import Any

from .backend import Job

LORA_NODE = "loras"
OUT_NODE = "out"


def job_graph(checkpoint: str, family: str, job: Job, seed: int, user: str = "") -> dict[str, Any]:
    p = job.params
    graph: dict[str, Any] = {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}}}
    model: list[Any] = ["ckpt", 0]
    clip: list[Any] = ["ckpt", 1]
    if job.loras:
        graph[LORA_NODE] = {"class_type": "AtelierLoraRecommend", "inputs": {
            "model": model, "clip": clip, "prompt": job.prompt, "checkpoint_family": family, "mode": "MANUAL",
            "max_loras": 8, "min_confidence": 0.0, "allow_style_mixing": True,
            "loras": "\n".join(f"{x.name}:{x.strength:g}" for x in job.loras), "exclude": "", "owner": user}}
        model, clip = [LORA_NODE, 0], [LORA_NODE, 1]
    graph["pos"] = {"class_type": "CLIPTextEncode", "inputs": {"text": job.prompt, "clip": clip}}
    graph["neg"] = {"class_type": "CLIPTextEncode", "inputs": {"text": job.negative_prompt, "clip": clip}}
    graph["latent"] = {"class_type": "EmptyLatentImage", "inputs": {"width": p.width, "height": p.height,
                                                                    "batch_size": 1}}

    def sampler(latent: list[Any], steps: int, denoise: float, node_seed: int) -> dict[str, Any]:
        return {"class_type": "KSampler", "inputs": {
            "model": model, "seed": node_seed, "steps": steps, "cfg": p.guidance_scale, "sampler_name": p.sampler,
            "scheduler": p.scheduler, "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": latent,
            "denoise": denoise}}

    graph["base"] = sampler(["latent", 0], p.num_steps, 1.0, seed)
    last: list[Any] = ["base", 0]
    if p.hires:
        graph["up"] = {"class_type": "LatentUpscale", "inputs": {
            "samples": last, "upscale_method": "nearest-exact", "width": int(p.hires["width"]),
            "height": int(p.hires["height"]), "crop": "disabled"}}
        graph["hires"] = sampler(["up", 0], int(p.hires["steps"]), float(p.hires["denoise"]), seed)
        last = ["hires", 0]
    if p.refine:
        graph["refine"] = sampler(last, int(p.refine["steps"]), float(p.refine["denoise"]), seed)
        last = ["refine", 0]
    graph["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": last, "vae": ["ckpt", 2]}}
    graph[OUT_NODE] = {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}}
    return graph
