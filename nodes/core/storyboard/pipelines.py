"""The runnable pipelines and shipped workflows as ComfyUI API-format graphs (plain dicts; no ComfyUI import).

A pipeline's graph is compiled from its plan (``compile_pipeline``: the ``PipelinePlan`` that the summary, the
estimate and the picker show), so every stated parameter is what runs:

``storyboard_generation``: Quality Preset → Frame Chain (clips of chained start/end frames; each frame the
tier's variations and sampling passes, its prompt with the stage's suffix, enhanced by the tier's loop).
``shot_generation``: Quality Preset → Prompt Enhance → the shot's variations through Quality Sampler (the
tier's passes: base, hires fix, refinement) → Variation Score → Rank Select → Save Image.
``sequence_generation``: a continuous storyboard of keyframes (Frame Chain) → an animated WEBP at the
tier's frame rate. Its motion, interpolation and soundtrack stages need video and audio models: the plan
skips them with the reason, and the graph has none of them.

The other shipped workflows (best of N, the tier comparison, txt2img, img2img, prompt enhancement) are what the
fixed mapping of ``presets/pipelines.yaml`` names per task type and tier. Every graph starts at
CheckpointLoaderSimple with the checkpoint the caller names; ComfyUI's own validation (POST /prompt) then
checks that the file exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.errors import InvalidInput, NotFound, invalid
from ..base.validation import parse_model
from ..quality.estimate import Estimator
from ..quality.pipelines import PipelinePlan, PipelineRequest, configure_pipeline
from ..quality.schema import Preset
from ..quality.tables import Tables, load_tables
from .spec import Storyboard

Graph = dict[str, dict[str, Any]]
Link = list[Any]


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
    scorers: Annotated[str, Field(max_length=200)] = "auto"

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


def _enhance(run: PipelineRun, prompt: str) -> dict[str, Any]:
    """Prompt Enhance at the tier's loop (iterations 0: the tier's rounds and stopping score)."""
    return {"class_type": "AtelierPromptEnhance", "inputs": {
        "prompt": prompt, "negative": run.negative, "backend": "rule", "endpoint": "(backend default)",
        "model": "", "model_family": run.model_family, "threshold": 85.0, "iterations": 0, "seed": run.seed,
        "temperature": 0.7, "keep_trace": False, "keep_llm_loaded": False, "quality_preset": ["quality", 0]}}


def _sampled(graph: Graph, run: PipelineRun, text: Any, latent: Link, start: str = "text", q: str = "quality",
             suffix: str = "") -> Link:
    """Positive/negative prompts and the tier's passes (Quality Sampler) on ``latent``: the decoded images."""
    graph[f"positive{suffix}"] = {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["ckpt", 1]}}
    graph[f"negative{suffix}"] = {"class_type": "CLIPTextEncode", "inputs": {"text": run.negative,
                                                                             "clip": ["ckpt", 1]}}
    graph[f"sample{suffix}"] = {"class_type": "AtelierQualitySampler", "inputs": {
        "model": ["ckpt", 0], "positive": [f"positive{suffix}", 0], "negative": [f"negative{suffix}", 0],
        "latent_image": latent, "quality_preset": [q, 0], "seed": run.seed, "start": start}}
    graph[f"decode{suffix}"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"sample{suffix}", 0],
                                                                      "vae": ["ckpt", 2]}}
    return [f"decode{suffix}", 0]


def _empty_latent(q: str = "quality") -> dict[str, Any]:
    return {"class_type": "EmptyLatentImage", "inputs": {"width": [q, 5], "height": [q, 6], "batch_size": [q, 7]}}


def _best_of(run: PipelineRun, batch: int, prompt: str, enhance: bool, prefix: str) -> Graph:
    """Prompt → (enhance) → ``batch`` variations at the tier's passes → score → rank → save the best."""
    graph = _base(run, batch)
    text: Any = prompt
    if enhance:
        graph["enhance"] = _enhance(run, prompt)
        text = ["enhance", 0]
    graph["latent"] = _empty_latent()
    images = _sampled(graph, run, text, ["latent", 0])
    graph.update({
        "score": {"class_type": "AtelierVariationScore", "inputs": {
            "images": images, "prompt": text, "scorers": run.scorers, "weights": ""}},
        "rank": {"class_type": "AtelierRankSelect", "inputs": {
            "images": images, "scores": ["score", 0], "top_k": 1, "threshold": run.threshold,
            "below_threshold": "warn"}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["rank", 0], "filename_prefix": prefix}},
    })
    return graph


def _frame_chain(run: PipelineRun, storyboard: str, prefix: str, pipeline: str) -> Graph:
    graph = _base(run, 1)
    inputs: dict[str, Any] = {
        "model": ["ckpt", 0], "clip": ["ckpt", 1], "vae": ["ckpt", 2], "quality_preset": ["quality", 0],
        "storyboard": storyboard, "negative": run.negative, "variations": run.variations,
        "threshold": run.threshold, "seed": run.seed, "enhance": run.enhance, "scorers": run.scorers,
        "filename_prefix": prefix, "pipeline": pipeline}
    if run.reference:
        graph["reference"] = {"class_type": "LoadImage", "inputs": {"image": run.reference}}
        inputs["reference"] = ["reference", 0]
    graph["chain"] = {"class_type": "AtelierFrameChain", "inputs": inputs}
    return graph


def storyboard_text(name: str, run: PipelineRun) -> str:
    """The storyboard a pipeline runs: the caller's, or (sequence) an opening and a closing keyframe."""
    text = run.storyboard.strip()
    if not text and name == "sequence_generation":
        if not run.prompt.strip():
            raise invalid("prompt", run.prompt, "a prompt (or a storyboard) for the sequence")
        text = f"{run.prompt}, opening moment | {run.prompt}, closing moment"
    if not text:
        raise invalid("storyboard", run.storyboard, "clips, one per line: 'start prompt | end prompt' (or JSON)")
    return text


def pipeline_request(name: str, run: PipelineRun) -> dict[str, Any]:
    """What a run asks of the pipeline's plan (``configure_pipeline``): size, clips, reference, variations."""
    request: dict[str, Any] = {"model_family": run.model_family, "checkpoint": run.checkpoint, "width": run.width,
                               "height": run.height, "reference": bool(run.reference), "variations": run.variations,
                               "enhance": run.enhance}
    if name in ("storyboard_generation", "sequence_generation"):
        request["clips"] = len(Storyboard.from_text(storyboard_text(name, run)).clips)
    elif not run.prompt.strip():
        raise invalid("prompt", run.prompt, "the shot's prompt")
    return request


def storyboard_graph(run: PipelineRun, plan: PipelinePlan) -> Graph:
    return _frame_chain(run, storyboard_text(plan.name, run), "storyboard", plan.name)


def sequence_graph(run: PipelineRun, plan: PipelinePlan) -> Graph:
    graph = _frame_chain(run, storyboard_text(plan.name, run), "sequence", plan.name)
    graph["animate"] = {"class_type": "SaveAnimatedWEBP", "inputs": {
        "images": ["chain", 0], "filename_prefix": "atelier_sequence", "fps": 2.0, "lossless": False,
        "quality": 90, "method": "default"}}
    return graph


def shot_graph(run: PipelineRun, plan: PipelinePlan) -> Graph:
    shot = plan.stage("shot")
    if shot is None:
        raise invalid("pipeline", plan.name, "a plan with a shot stage")
    return _best_of(run, int(shot.parameters["batch_size"]), run.prompt + shot.prompt_suffix,
                    plan.stage("prompt") is not None, "atelier_shot")


def best_of_n_graph(run: PipelineRun) -> Graph:
    """Prompt → enhance → N variations at the tier's passes → score → rank → save."""
    if not run.prompt.strip():
        raise invalid("prompt", run.prompt, "the prompt")
    return _best_of(run, run.variations or 4, run.prompt, run.enhance, "atelier_best_of_n")


def txt2img_graph(run: PipelineRun) -> Graph:
    """One image at the tier: Quality Preset → Quality Sampler (its passes) → Save Image."""
    graph = _base(run, 1)
    graph["latent"] = _empty_latent()
    graph["save"] = {"class_type": "SaveImage", "inputs": {
        "images": _sampled(graph, run, run.prompt, ["latent", 0]), "filename_prefix": "atelier_txt2img"}}
    return graph


def img2img_graph(run: PipelineRun) -> Graph:
    """An image refined at the tier: scaled to the plan's size, encoded, sampled from it at the tier's img2img
    strength (storyboard.yaml's denoise) and the tier's passes."""
    graph = _base(run, 1)
    graph["image"] = {"class_type": "LoadImage", "inputs": {"image": run.reference or "example.png"}}
    graph["scale"] = {"class_type": "ImageScale", "inputs": {
        "image": ["image", 0], "upscale_method": "bicubic", "width": ["quality", 5], "height": ["quality", 6],
        "crop": "center"}}
    graph["encode"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["scale", 0], "vae": ["ckpt", 2]}}
    graph["save"] = {"class_type": "SaveImage", "inputs": {
        "images": _sampled(graph, run, run.prompt, ["encode", 0], start="image"),
        "filename_prefix": "atelier_img2img"}}
    return graph


def enhance_graph(run: PipelineRun) -> Graph:
    """The prompt through the tier's enhancement loop, shown (PreviewAny)."""
    graph = {"quality": _base(run, 1)["quality"], "enhance": _enhance(run, run.prompt)}
    graph["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["enhance", 0]}}
    return graph


def comparison_graph(run: PipelineRun) -> Graph:
    """One prompt and seed at the four tiers (each with its passes) → a labelled grid (tier, steps, size, time)."""
    if not run.prompt.strip():
        raise invalid("prompt", run.prompt, "the prompt to compare tiers with")
    graph: Graph = {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": run.checkpoint}}}
    grid: dict[str, Any] = {"columns": 2}
    for slot, tier in zip("abcd", load_tables().tiers, strict=True):  # the four built-in tiers
        q = f"quality_{tier}"
        graph[q] = {"class_type": "AtelierQualityPreset", "inputs": {
            "tier": tier, "model_family": run.model_family, "checkpoint": run.checkpoint, "width": run.width,
            "height": run.height, "batch_size": 1}}
        graph[f"latent_{tier}"] = _empty_latent(q)
        images = _sampled(graph, run, run.prompt, [f"latent_{tier}", 0], q=q, suffix=f"_{tier}")
        grid.update({f"image_{slot}": images, f"preset_{slot}": [q, 0]})
    graph["grid"] = {"class_type": "AtelierTierGrid", "inputs": grid}
    graph["save"] = {"class_type": "SaveImage", "inputs": {"images": ["grid", 0],
                                                           "filename_prefix": "atelier_quality_comparison"}}
    return graph


# Pipeline name -> its compiler (the plan decides batch, suffixes, enhancement; Frame Chain the frames).
BUILDERS: dict[str, Callable[[PipelineRun, PipelinePlan], Graph]] = {
    "storyboard_generation": storyboard_graph, "shot_generation": shot_graph, "sequence_generation": sequence_graph}


def compile_pipeline(run: PipelineRun, plan: PipelinePlan) -> Graph:
    """The ComfyUI graph that runs ``plan`` (every stage it states, nothing it does not)."""
    return BUILDERS[plan.name](run, plan)


def plan_run(name: str, run: PipelineRun, preset: Preset, tables: Tables, estimator: Estimator) -> PipelinePlan:
    """The plan of a run: the pipeline at the run's tier, size, clips, reference and variations."""
    if name not in BUILDERS:
        raise NotFound(f"no runnable pipeline {name!r}", field="name", value=name, accepted=sorted(BUILDERS))
    return configure_pipeline(name, preset, PipelineRequest.parse(pipeline_request(name, run)), tables, estimator)


def builtin_plan(name: str, run: PipelineRun) -> PipelinePlan:
    """The plan at a built-in tier with the priors (shipped workflows, the lists)."""
    tables = load_tables()
    tier = tables.tier_id(run.tier)
    if tier is None:
        raise invalid("tier", run.tier, list(tables.tiers))
    return plan_run(name, run, tables.tiers[tier], tables, Estimator(tables))


def _pipeline_workflow(name: str) -> Callable[[PipelineRun], Graph]:
    return lambda run: compile_pipeline(run, builtin_plan(name, run))


# The shipped workflows (workflows/ and workflows/api/), built from these graphs by tools/build_workflows.py;
# presets/pipelines.yaml names them (a pipeline's workflow, and the mapping per task type and tier).
def intelligent_graph(run: PipelineRun) -> Graph:
    """Prompt → Smart Plan (analysis, parameters under constraints) → LoRA Recommend (the user's LoRAs applied,
    trigger words added) → the plan's passes (Quality Sampler) → Save With Explanation."""
    if not run.prompt.strip():
        raise invalid("prompt", run.prompt, "the prompt")
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": run.checkpoint}},
        "plan": {"class_type": "AtelierSmartPlan", "inputs": {
            "prompt": run.prompt, "negative": run.negative, "checkpoint": run.checkpoint,
            "model_family": run.model_family, "mode": "AUTO", "priority": "balanced", "max_time_s": 0.0,
            "max_vram_gb": 0.0, "width": run.width, "height": run.height, "batch_size": 1, "tier": run.tier,
            "accepted": "", "owner": ""}},
        "loras": {"class_type": "AtelierLoraRecommend", "inputs": {
            "model": ["ckpt", 0], "clip": ["ckpt", 1], "prompt": ["plan", SMART_PLAN_PROMPT],
            "checkpoint_family": "auto", "mode": "AUTO", "max_loras": 3, "min_confidence": 0.5,
            "allow_style_mixing": True, "loras": "", "exclude": "", "explanation": ["plan", SMART_PLAN_PROMPT + 2],
            "owner": ""}},
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"text": ["loras", 2], "clip": ["loras", 1]}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"text": ["plan", SMART_PLAN_PROMPT + 1],
                                                                "clip": ["loras", 1]}},
        "latent": _empty_latent("plan"),
        "sample": {"class_type": "AtelierQualitySampler", "inputs": {
            "model": ["loras", 0], "positive": ["positive", 0], "negative": ["negative", 0],
            "latent_image": ["latent", 0], "quality_preset": ["plan", 0], "seed": run.seed, "start": "text"}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "explained": {"class_type": "AtelierSaveWithExplanation", "inputs": {
            "images": ["decode", 0], "filename_prefix": "atelier/explained", "explanation": ["loras", 3],
            "owner": ""}},
    }


SMART_PLAN_PROMPT = 15  # Smart Plan's outputs: QUALITY_PRESET, the 14 image outputs, prompt, negative, explanation


WORKFLOWS: dict[str, Callable[[PipelineRun], Graph]] = {
    "atelier_best_of_n": best_of_n_graph, "atelier_quality_comparison": comparison_graph,
    "atelier_quality_txt2img": txt2img_graph, "atelier_img2img": img2img_graph,
    "atelier_prompt_enhance": enhance_graph, "atelier_intelligent": intelligent_graph,
    "atelier_storyboard": _pipeline_workflow("storyboard_generation"),
    "atelier_shot": _pipeline_workflow("shot_generation"),
    "atelier_sequence": _pipeline_workflow("sequence_generation")}


def pipeline_graph(name: str, body: Any) -> tuple[PipelineRun, Graph]:
    """A pipeline's graph at a built-in tier (the lists' node types; runs use ``plan_run``)."""
    run = PipelineRun.parse(body)
    if name not in BUILDERS:
        raise NotFound(f"no runnable pipeline {name!r}", field="name", value=name, accepted=sorted(BUILDERS))
    return run, compile_pipeline(run, builtin_plan(name, run))


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
