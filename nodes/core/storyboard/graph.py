"""The storyboard as a ComfyUI graph (API format), for the Frame Chain node's expansion.

Every frame is ComfyUI's own nodes: CLIPTextEncode, a latent to start from, the tier's sampling passes
for all variations (KSampler; LatentUpscale + KSampler for the hires fix; KSampler for refinement), VAEDecode; then Atelier's Frame Select scores them and keeps the best (or retries, by expanding
a new sampler with the next seed). A frame planned from text alone starts from EmptyLatentImage. A frame
planned from other images gets a Frame Start node, which applies the chaining rule (``chaining.py``) at run
time, once the frame it chains from has succeeded or failed, and expands (``start_expansion``) into
EmptyLatentImage, or Chain Image (reference blend + colour match) → ImageScale → VAEEncode →
RepeatLatentBatch, with the matching denoise. Node ids are deterministic: ``<prefix>.<frame>.<part>``, so
ComfyUI's cache keeps every frame that did not change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..quality.passes import SamplingPass, sampling_graph
from .chaining import Start, frame_start
from .frames import FrameResult
from .spec import REFERENCE, ChainSettings, FrameSpec, frame_seed

Link = list[Any]  # [node id, output index]
Graph = dict[str, dict[str, Any]]


@dataclass
class Sampling:
    """The plan's sampling passes (base, hires fix, refinement) and the storyboard's seed."""

    passes: list[SamplingPass]
    seed: int = 0

    @property
    def width(self) -> int:  # the base pass's size: what a chained start is scaled to
        return self.passes[0].width

    @property
    def height(self) -> int:
        return self.passes[0].height


@dataclass
class Sources:
    """Links into the graph the Frame Chain node sits in."""

    model: Link
    clip: Link
    vae: Link
    reference: Link | None = None
    enhance: dict[str, Any] | None = None  # Prompt Enhance inputs (besides the prompt), or None: as written
    quality_preset: Link | None = None     # the tier (Prompt Enhance's loop at iterations 0)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StartRecipe:
    """What a Frame Start node needs to decide and build a frame's start (its ``recipe`` input, as JSON)."""

    prefix: str
    index: int
    sources: tuple[str, ...]   # planned
    width: int
    height: int
    variations: int
    denoise: float
    anchor: float
    color_match: float

    def spec(self) -> FrameSpec:
        return FrameSpec(self.index, 0, "start", "", self.sources)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StartRecipe:
        data = json.loads(text)
        return cls(**{**data, "sources": tuple(data["sources"])})


def sampler_nodes(prefix: str, recipe: dict[str, Any], attempt: int) -> Graph:
    """The plan's passes (KSampler, LatentUpscale + KSampler, KSampler: ``passes.sampling_graph``) and
    VAEDecode of one attempt of a frame, from its recipe (shared with Frame Select's retry). The base pass
    samples at the start's denoise (1 from text, the tier's img2img strength from an image)."""
    passes = [SamplingPass(**p) for p in recipe["passes"]]
    graph, latent = sampling_graph(f"{prefix}.a{attempt}", passes, model=recipe["model"],
                                   positive=recipe["positive"], negative=recipe["negative"],
                                   latent=recipe["latent"], seed=frame_seed(recipe["seed"], recipe["index"], attempt),
                                   denoise=recipe["denoise"])
    graph[f"{prefix}.a{attempt}.decode"] = {"class_type": "VAEDecode", "inputs": {"samples": latent,
                                                                                  "vae": recipe["vae"]}}
    return graph


def select_node(recipe: dict[str, Any], images: Link, attempt: int, previous: str = "") -> dict[str, Any]:
    inputs: dict[str, Any] = {"images": images, "prompt": recipe["prompt_input"], "recipe": json.dumps(recipe),
                              "attempt": attempt, "previous_attempts": previous}
    if recipe.get("start"):
        inputs["start"] = recipe["start"]
    for name, link in (recipe.get("anchors") or {}).items():  # what continuity compares with
        inputs[name] = link
    return {"class_type": "AtelierFrameSelect", "inputs": inputs}


def _empty_latent(width: int, height: int, batch: int) -> dict[str, Any]:
    return {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}}


def start_expansion(recipe: StartRecipe, previous_failed: bool, previous: Link | None, reference: Link | None,
                    vae: Link) -> tuple[Start, Graph, Link]:
    """What a Frame Start node expands into, decided by the chaining rule now that the frame it chains from
    has succeeded (``previous_failed`` False) or failed: (the start, its nodes, the latent's link)."""
    spec = recipe.spec()
    chained = next((spec.source_index(s) for s in spec.sources if spec.source_index(s) is not None), None)
    start = frame_start(spec, {chained} if previous_failed and chained is not None else set())
    p = f"{recipe.prefix}.start"
    graph: Graph = {}
    init: Link | None = None
    if start.chained is not None:
        graph[f"{p}.chain"] = {"class_type": "AtelierChainImage", "inputs": {
            "previous": previous, "anchor": recipe.anchor, "color_match": recipe.color_match,
            **({"reference": reference} if start.reference else {})}}
        init = [f"{p}.chain", 0]
    elif start.reference:
        init = reference
    if init is None:
        graph[f"{p}.latent"] = _empty_latent(recipe.width, recipe.height, recipe.variations)
        return start, graph, [f"{p}.latent", 0]
    graph[f"{p}.size"] = {"class_type": "ImageScale", "inputs": {
        "image": init, "upscale_method": "bilinear", "width": recipe.width, "height": recipe.height, "crop": "center"}}
    graph[f"{p}.encode"] = {"class_type": "VAEEncode", "inputs": {"pixels": [f"{p}.size", 0], "vae": vae}}
    graph[f"{p}.batch"] = {"class_type": "RepeatLatentBatch", "inputs": {
        "samples": [f"{p}.encode", 0], "amount": recipe.variations}}
    return start, graph, [f"{p}.batch", 0]


def previous_failed(report: str | None) -> bool:
    """Whether the frame a report describes failed (no report: nothing chained failed)."""
    return bool(report) and FrameResult.from_json(str(report)).status == "failed"


def _anchors(selected: list[str], reference: Link | None) -> dict[str, Link]:
    """Frame Select's continuity inputs: the previous frame (its image and report) and the reference."""
    anchors: dict[str, Link] = {}
    if selected:
        anchors.update(previous=[selected[-1], 0], previous_report=[selected[-1], 1])
    if reference is not None:
        anchors["reference"] = reference
    return anchors


def storyboard_graph(specs: list[FrameSpec], settings: ChainSettings, sampling: Sampling, sources: Sources,
                     prefix: str, negative: str, save: dict[str, Any]) -> tuple[Graph, list[Link]]:
    """The expansion: every frame, collected in order into Storyboard Save; returns (graph, its outputs)."""
    graph: Graph = {}
    selected: list[str] = []
    collected: str | None = None
    for spec in specs:
        p = f"{prefix}.{spec.name}"
        text: Any = spec.prompt
        if sources.enhance is not None:
            graph[f"{p}.enhance"] = {"class_type": "AtelierPromptEnhance", "inputs": {
                **sources.enhance, "prompt": spec.prompt, "negative": negative, "seed": sampling.seed + spec.index,
                **({"quality_preset": sources.quality_preset} if sources.quality_preset else {})}}
            text = [f"{p}.enhance", 0]
        graph[f"{p}.pos"] = {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": sources.clip}}
        graph[f"{p}.neg"] = {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": sources.clip}}
        planned = spec.sources  # the reference is planned only when the Frame Chain node has one
        start: Link | None = None
        denoise: Link | float
        if planned:  # decided at run time by Frame Start (the chaining rule)
            recipe = StartRecipe(p, spec.index, planned, sampling.width, sampling.height, settings.variations,
                                 settings.denoise, settings.anchor, settings.color_match)
            chained = next((spec.source_index(s) for s in planned if spec.source_index(s) is not None), None)
            inputs: dict[str, Any] = {"recipe": recipe.to_json(), "vae": sources.vae}
            if chained is not None:
                inputs.update(previous=[selected[chained], 0], previous_report=[selected[chained], 1])
            if REFERENCE in planned:
                inputs["reference"] = sources.reference
            graph[f"{p}.start"] = {"class_type": "AtelierFrameStart", "inputs": inputs}
            latent, denoise, start = [f"{p}.start", 0], [f"{p}.start", 1], [f"{p}.start", 2]
        else:
            graph[f"{p}.latent"] = _empty_latent(sampling.width, sampling.height, settings.variations)
            latent, denoise = [f"{p}.latent", 0], 1.0
        recipe_dict = {"prefix": p, "index": spec.index, "name": spec.name, "clip": spec.clip, "role": spec.role,
                       "prompt": spec.prompt, "sources": [], "model": sources.model,
                       "positive": [f"{p}.pos", 0], "negative": [f"{p}.neg", 0], "latent": latent, "vae": sources.vae,
                       "seed": sampling.seed, "passes": [p.to_dict() for p in sampling.passes], "denoise": denoise,
                       "threshold": settings.threshold, "scorers": settings.scorers, "retries": settings.retries,
                       "width": sampling.passes[-1].width, "height": sampling.passes[-1].height,  # the frame's
                       "prompt_input": text, "start": start, "continuity": settings.continuity,
                       "anchors": _anchors(selected, sources.reference)}
        graph.update(sampler_nodes(p, recipe_dict, 0))
        graph[f"{p}.select"] = select_node(recipe_dict, [f"{p}.a0.decode", 0], 0)
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
