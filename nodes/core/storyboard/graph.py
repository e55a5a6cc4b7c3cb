"""The storyboard as a ComfyUI graph (API format), for the Frame Chain node's expansion.

Every frame is ComfyUI's own nodes: CLIPTextEncode, EmptyLatentImage or VAEEncode of the chained
image (resized with ImageScale, batched with RepeatLatentBatch), one KSampler for all variations,
VAEDecode; then Atelier's Frame Select scores them and keeps the best (or retries, by expanding a new
sampler with the next seed). Chained images are made by Atelier's Chain Image (reference blend +
colour match). Node ids are deterministic: ``<prefix>.<frame>.<part>``, so ComfyUI's cache keeps
every frame that did not change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .runner import frame_seed
from .spec import REFERENCE, ChainSettings, FrameSpec

Link = list[Any]  # [node id, output index]


@dataclass
class Sampling:
    width: int
    height: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    seed: int = 0


@dataclass
class Sources:
    """Links into the graph the Frame Chain node sits in."""

    model: Link
    clip: Link
    vae: Link
    reference: Link | None = None
    enhance: dict[str, Any] | None = None  # Prompt Enhance inputs (besides the prompt), or None: as written
    extra: dict[str, Any] = field(default_factory=dict)


def sampler_nodes(prefix: str, recipe: dict[str, Any], attempt: int) -> dict[str, dict[str, Any]]:
    """KSampler + VAEDecode of one attempt of a frame, from its recipe (shared with Frame Select's retry)."""
    ks, dec = f"{prefix}.a{attempt}.sample", f"{prefix}.a{attempt}.decode"
    return {
        ks: {"class_type": "KSampler", "inputs": {
            "model": recipe["model"], "seed": frame_seed(recipe["seed"], recipe["index"], attempt),
            "steps": recipe["steps"], "cfg": recipe["cfg"], "sampler_name": recipe["sampler_name"],
            "scheduler": recipe["scheduler"], "positive": recipe["positive"], "negative": recipe["negative"],
            "latent_image": recipe["latent"], "denoise": recipe["denoise"]}},
        dec: {"class_type": "VAEDecode", "inputs": {"samples": [ks, 0], "vae": recipe["vae"]}},
    }


def select_node(recipe: dict[str, Any], images: Link, attempt: int, previous: str = "") -> dict[str, Any]:
    return {"class_type": "AtelierFrameSelect", "inputs": {
        "images": images, "prompt": recipe["prompt_input"], "recipe": json.dumps(recipe), "attempt": attempt,
        "previous_attempts": previous,
        **({"fallback": recipe["fallback"]} if recipe.get("fallback") else {})}}


def storyboard_graph(specs: list[FrameSpec], settings: ChainSettings, sampling: Sampling, sources: Sources,
                     prefix: str, negative: str, save: dict[str, Any]) -> tuple[dict[str, Any], list[Link]]:
    """The expansion: every frame, collected in order into Storyboard Save; returns (graph, its outputs)."""
    graph: dict[str, dict[str, Any]] = {}
    selected: list[str] = []
    collected: str | None = None
    for spec in specs:
        p = f"{prefix}.{spec.name}"
        text: Any = spec.prompt
        if sources.enhance is not None:
            graph[f"{p}.enhance"] = {"class_type": "AtelierPromptEnhance", "inputs": {
                **sources.enhance, "prompt": spec.prompt, "negative": negative, "seed": sampling.seed + spec.index}}
            text = [f"{p}.enhance", 0]
        graph[f"{p}.pos"] = {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": sources.clip}}
        graph[f"{p}.neg"] = {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": sources.clip}}
        chained = [s for s in spec.sources if s != REFERENCE]
        has_reference = REFERENCE in spec.sources and sources.reference is not None
        init: Link | None = None
        if chained:
            previous = selected[spec.source_index(chained[0]) or 0]
            graph[f"{p}.chain"] = {"class_type": "AtelierChainImage", "inputs": {
                "previous": [previous, 0], "previous_report": [previous, 1], "anchor": settings.anchor,
                "color_match": settings.color_match, **({"reference": sources.reference} if has_reference else {})}}
            init = [f"{p}.chain", 0]
        elif has_reference:
            init = sources.reference
        if init is None:
            graph[f"{p}.latent"] = {"class_type": "EmptyLatentImage", "inputs": {
                "width": sampling.width, "height": sampling.height, "batch_size": settings.variations}}
            latent, denoise = [f"{p}.latent", 0], 1.0
        else:
            graph[f"{p}.size"] = {"class_type": "ImageScale", "inputs": {
                "image": init, "upscale_method": "bilinear", "width": sampling.width, "height": sampling.height,
                "crop": "center"}}
            graph[f"{p}.encode"] = {"class_type": "VAEEncode", "inputs": {"pixels": [f"{p}.size", 0],
                                                                          "vae": sources.vae}}
            graph[f"{p}.batch"] = {"class_type": "RepeatLatentBatch", "inputs": {
                "samples": [f"{p}.encode", 0], "amount": settings.variations}}
            latent, denoise = [f"{p}.batch", 0], settings.denoise
        recipe = {"prefix": p, "index": spec.index, "name": spec.name, "clip": spec.clip, "role": spec.role,
                  "prompt": spec.prompt, "sources": list(spec.sources), "model": sources.model,
                  "positive": [f"{p}.pos", 0], "negative": [f"{p}.neg", 0], "latent": latent, "vae": sources.vae,
                  "seed": sampling.seed, "steps": sampling.steps, "cfg": sampling.cfg,
                  "sampler_name": sampling.sampler_name, "scheduler": sampling.scheduler, "denoise": denoise,
                  "threshold": settings.threshold, "scorers": settings.scorers, "retries": settings.retries,
                  "width": sampling.width, "height": sampling.height,
                  "fallback": [f"{p}.size", 0] if init is not None else None, "prompt_input": text}
        graph.update(sampler_nodes(p, recipe, 0))
        graph[f"{p}.select"] = select_node(recipe, [f"{p}.a0.decode", 0], 0)
        selected.append(f"{p}.select")
        step = f"{p}.collect"
        graph[step] = {"class_type": "AtelierStoryboardCollect", "inputs": {
            "image": [f"{p}.select", 0], "report": [f"{p}.select", 1],
            **({"images": [collected, 0], "reports": [collected, 1]} if collected else {})}}
        collected = step
    assert collected is not None
    graph[f"{prefix}.save"] = {"class_type": "AtelierStoryboardSave", "inputs": {
        "images": [collected, 0], "reports": [collected, 1], **save}}
    return graph, [[f"{prefix}.save", 0], [f"{prefix}.save", 1]]
