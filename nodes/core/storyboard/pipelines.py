"""The runnable pipelines as ComfyUI API-format graphs (plain dicts; no ComfyUI import).

``storyboard_generation``: Quality Preset → Frame Chain (clips of chained start/end frames).
``shot_generation``: Quality Preset → Prompt Enhance → N variations → Variation Score → Rank Select →
a refinement img2img pass (Quality Stage) → Save Image.
``sequence_generation``: a continuous storyboard of keyframes (Frame Chain) → an animated WEBP at the
tier's frame rate. Its motion, interpolation and soundtrack stages need video and audio models; on an
image checkpoint the sequence is the chained keyframes.

Every graph starts at CheckpointLoaderSimple with the checkpoint the caller names; ComfyUI's own
validation (POST /prompt) then checks that the file exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.errors import InvalidInput, NotFound, invalid
from ..base.validation import parse_model
from ..quality.tables import load_tables
from .spec import Storyboard

Graph = dict[str, dict[str, Any]]


class PipelineRun(BaseModel):
    """What a caller sets to run a pipeline."""

    model_config = ConfigDict(extra="forbid")
    tier: Annotated[str, Field(min_length=1, max_length=64)] = Field(default_factory=lambda: load_tables().default_tier)
    checkpoint: Annotated[str, Field(min_length=1, max_length=512)]
    model_family: Annotated[str, Field(max_length=64)] = "auto"
    prompt: Annotated[str, Field(max_length=4000)] = ""
    negative: Annotated[str, Field(max_length=4000)] = "text, watermark, blurry"
    storyboard: Annotated[str, Field(max_length=100_000)] = ""
    reference: Annotated[str, Field(max_length=512)] | None = None  # an image in ComfyUI's input folder
    width: Annotated[int, Field(ge=0, le=8192)] = 0
    height: Annotated[int, Field(ge=0, le=8192)] = 0
    variations: Annotated[int, Field(ge=0, le=16)] = 0
    threshold: Annotated[float, Field(ge=0.0, le=100.0)] = 30.0
    seed: Annotated[int, Field(ge=0, le=2**48)] = 0
    enhance: bool = True
    scorers: Annotated[str, Field(max_length=200)] = "technical"

    @classmethod
    def parse(cls, data: Any) -> PipelineRun:
        return parse_model(cls, data, "a JSON object with at least a checkpoint")


def _base(run: PipelineRun, batch: int) -> Graph:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": run.checkpoint}},
        "quality": {"class_type": "AtelierQualityPreset", "inputs": {
            "tier": run.tier, "model_family": run.model_family, "checkpoint": run.checkpoint,
            "width": run.width, "height": run.height, "batch_size": batch}},
    }


def _frame_chain(run: PipelineRun, storyboard: str, prefix: str) -> Graph:
    graph = _base(run, 1)
    inputs: dict[str, Any] = {
        "model": ["ckpt", 0], "clip": ["ckpt", 1], "vae": ["ckpt", 2], "quality_preset": ["quality", 0],
        "storyboard": storyboard, "negative": run.negative, "variations": run.variations,
        "threshold": run.threshold, "seed": run.seed, "enhance": run.enhance, "scorers": run.scorers,
        "filename_prefix": prefix}
    if run.reference:
        graph["reference"] = {"class_type": "LoadImage", "inputs": {"image": run.reference}}
        inputs["reference"] = ["reference", 0]
    graph["chain"] = {"class_type": "AtelierFrameChain", "inputs": inputs}
    return graph


def storyboard_graph(run: PipelineRun) -> Graph:
    if not run.storyboard.strip():
        raise invalid("storyboard", run.storyboard, "clips, one per line: 'start prompt | end prompt' (or JSON)")
    Storyboard.from_text(run.storyboard)
    return _frame_chain(run, run.storyboard, "storyboard")


def sequence_graph(run: PipelineRun) -> Graph:
    text = run.storyboard.strip()
    if not text:
        if not run.prompt.strip():
            raise invalid("prompt", run.prompt, "a prompt (or a storyboard) for the sequence")
        text = f"{run.prompt}, opening moment | {run.prompt}, closing moment"
    Storyboard.from_text(text)
    graph = _frame_chain(run, text, "sequence")
    graph["animate"] = {"class_type": "SaveAnimatedWEBP", "inputs": {
        "images": ["chain", 0], "filename_prefix": "atelier_sequence", "fps": 2.0, "lossless": False,
        "quality": 90, "method": "default"}}
    return graph


def shot_graph(run: PipelineRun) -> Graph:
    if not run.prompt.strip():
        raise invalid("prompt", run.prompt, "the shot's prompt")
    graph = _base(run, run.variations or 4)
    text: Any = run.prompt
    if run.enhance:
        graph["enhance"] = {"class_type": "AtelierPromptEnhance", "inputs": {
            "prompt": run.prompt, "negative": run.negative, "backend": "rule", "endpoint": "(backend default)",
            "model": "", "model_family": run.model_family, "threshold": 85.0, "iterations": 4, "seed": run.seed,
            "temperature": 0.7, "keep_trace": False, "keep_llm_loaded": False, "quality_preset": ["quality", 0]}}
        text = ["enhance", 0]
    graph.update({
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["ckpt", 1]}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"text": run.negative, "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {
            "width": ["quality", 5], "height": ["quality", 6], "batch_size": ["quality", 7]}},
        "sample": {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["positive", 0], "negative": ["negative", 0],
            "latent_image": ["latent", 0], "seed": run.seed, "steps": ["quality", 1], "cfg": ["quality", 2],
            "sampler_name": ["quality", 3], "scheduler": ["quality", 4], "denoise": ["quality", 8]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "score": {"class_type": "AtelierVariationScore", "inputs": {
            "images": ["decode", 0], "prompt": text, "scorers": run.scorers, "weights": ""}},
        "rank": {"class_type": "AtelierRankSelect", "inputs": {
            "images": ["decode", 0], "scores": ["score", 0], "top_k": 1, "threshold": run.threshold,
            "below_threshold": "warn"}},
        "refine_stage": {"class_type": "AtelierQualityStage", "inputs": {
            "quality_preset": ["quality", 0], "stage": "refinement"}},
        "refine_encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["rank", 0], "vae": ["ckpt", 2]}},
        "refine": {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["positive", 0], "negative": ["negative", 0],
            "latent_image": ["refine_encode", 0], "seed": run.seed + 1, "steps": ["refine_stage", 0],
            "cfg": ["refine_stage", 1], "sampler_name": ["refine_stage", 2], "scheduler": ["refine_stage", 3],
            "denoise": ["refine_stage", 7]}},
        "refine_decode": {"class_type": "VAEDecode", "inputs": {"samples": ["refine", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["refine_decode", 0],
                                                       "filename_prefix": "atelier_shot"}},
    })
    return graph


def best_of_n_graph(run: PipelineRun) -> Graph:
    """Prompt → enhance → N variations → score → rank → save (the shot without its refinement pass)."""
    graph = shot_graph(run)
    for node in ("refine_stage", "refine_encode", "refine", "refine_decode"):
        del graph[node]
    graph["save"]["inputs"].update(images=["rank", 0], filename_prefix="atelier_best_of_n")
    return graph


def comparison_graph(run: PipelineRun) -> Graph:
    """One prompt and seed at the four tiers → a labelled grid (tier, steps, size, estimated time)."""
    if not run.prompt.strip():
        raise invalid("prompt", run.prompt, "the prompt to compare tiers with")
    graph: Graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": run.checkpoint}},
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"text": run.prompt, "clip": ["ckpt", 1]}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"text": run.negative, "clip": ["ckpt", 1]}},
    }
    grid: dict[str, Any] = {"columns": 2}
    for slot, tier in zip("abcd", load_tables().tiers, strict=True):  # the four built-in tiers
        graph[f"quality_{tier}"] = {"class_type": "AtelierQualityPreset", "inputs": {
            "tier": tier, "model_family": run.model_family, "checkpoint": run.checkpoint, "width": run.width,
            "height": run.height, "batch_size": 1}}
        q = f"quality_{tier}"
        graph[f"latent_{tier}"] = {"class_type": "EmptyLatentImage", "inputs": {
            "width": [q, 5], "height": [q, 6], "batch_size": [q, 7]}}
        graph[f"sample_{tier}"] = {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["positive", 0], "negative": ["negative", 0],
            "latent_image": [f"latent_{tier}", 0], "seed": run.seed, "steps": [q, 1], "cfg": [q, 2],
            "sampler_name": [q, 3], "scheduler": [q, 4], "denoise": [q, 8]}}
        graph[f"decode_{tier}"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"sample_{tier}", 0],
                                                                         "vae": ["ckpt", 2]}}
        grid.update({f"image_{slot}": [f"decode_{tier}", 0], f"preset_{slot}": [q, 0]})
    graph["grid"] = {"class_type": "AtelierTierGrid", "inputs": grid}
    graph["save"] = {"class_type": "SaveImage", "inputs": {"images": ["grid", 0],
                                                           "filename_prefix": "atelier_quality_comparison"}}
    return graph


BUILDERS: dict[str, Callable[[PipelineRun], Graph]] = {
    "storyboard_generation": storyboard_graph, "shot_generation": shot_graph, "sequence_generation": sequence_graph}


# The shipped workflows (workflows/ and workflows/api/), built from the same graphs by tools/build_workflows.py.
WORKFLOWS: dict[str, Callable[[PipelineRun], Graph]] = {
    "atelier_best_of_n": best_of_n_graph, "atelier_quality_comparison": comparison_graph,
    "atelier_storyboard": storyboard_graph, "atelier_shot": shot_graph, "atelier_sequence": sequence_graph}


def pipeline_graph(name: str, body: Any) -> tuple[PipelineRun, Graph]:
    if name not in BUILDERS:
        raise NotFound(f"no runnable pipeline {name!r}", field="name", value=name, accepted=sorted(BUILDERS))
    run = PipelineRun.parse(body)
    return run, BUILDERS[name](run)


CHECKPOINT_INPUTS = {"CheckpointLoaderSimple": "ckpt_name", "AtelierQualityPreset": "checkpoint"}


def use_checkpoint(graph: Graph, checkpoint: str) -> Graph:
    """Shipped workflows name no checkpoint (the user picks theirs): set it in every loader (and preset)."""
    for node in graph.values():
        name = CHECKPOINT_INPUTS.get(node.get("class_type", ""))
        if name and not isinstance(node.get("inputs", {}).get(name), list):
            node.setdefault("inputs", {})[name] = checkpoint
    return graph


def load_workflow(path: Path) -> Graph:
    """An API-format workflow file (as ComfyUI's "Export (API)" writes it); a UI workflow is refused."""
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise invalid("workflow", str(path), "a readable API-format workflow JSON file", str(exc)) from None
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise InvalidInput(f"{path} is a UI workflow; use its API-format twin (workflows/api/) or ComfyUI's "
                           f"'Export (API)'", field="workflow", value=str(path))
    if not isinstance(graph, dict) or not all(isinstance(n, dict) and "class_type" in n for n in graph.values()):
        raise invalid("workflow", str(path), "an API-format graph: {node id: {class_type, inputs}}")
    return graph
