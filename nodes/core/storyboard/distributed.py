"""A storyboard on the job queue: one job per frame, so the frames of many storyboards spread over every worker.

Each frame is a ComfyUI graph of its own (Quality Preset → prompt → its variations at the tier's passes →
score → rank → save the best), at the frame's seed (``frame_seed``, as Frame Chain uses). A frame planned to
start from the frame before it (``frames()``: a clip's start from the previous end, its end from its start)
loads that frame's kept image, which the worker uploads to its ComfyUI when the job starts (the ``chain`` of
the job: the position of the frame it chains from, the node to give the image to, and the graph to run
instead when that frame failed: the reference alone, or text to image, as ``frame_start`` decides). With a
reference the chained image is blended with it and colour-matched (Chain Image). The frames of one storyboard
share a lock, so they run one after another, in order, whichever workers run them.

Frame Chain's in-graph retry of a frame below the threshold is not repeated here: the best variation is kept
(Rank Select ``warn``) and its score recorded.
"""

from __future__ import annotations

from typing import Any

from ..base.errors import invalid
from ..quality.pipelines import PipelinePlan
from ..quality.tables import load_tables
from .chaining import Start, frame_start
from .pipelines import Graph, PipelineRun, _base, _empty_latent, _enhance, _sampled, storyboard_text
from .spec import ChainSettings, FrameSpec, Storyboard, chain_settings, frame_seed, frames
from .steps import chain_suffixes

CHAIN_NODE = "chain.previous"
CHAIN_PLACEHOLDER = "atelier_chain_previous.png"  # replaced by the uploaded image's name when the job starts


def _frame_graph(run: PipelineRun, spec: FrameSpec, start: Start, settings: ChainSettings,
                 suffixes: dict[str, str]) -> Graph:
    seeded = run.model_copy(update={"seed": frame_seed(run.seed, spec.index, 0) % 2**48})
    batch = settings.variations
    graph = _base(seeded, batch)
    prompt = spec.prompt + suffixes.get("image" if start.sources else "text", "")
    text: Any = prompt
    if run.enhance:
        graph["enhance"] = _enhance(seeded, prompt)
        text = ["enhance", 0]
    init: list[Any] | None = None
    if start.reference:
        graph["reference"] = {"class_type": "LoadImage", "inputs": {"image": run.reference}}
        init = ["reference", 0]
    if start.chained is not None:
        graph[CHAIN_NODE] = {"class_type": "LoadImage", "inputs": {"image": CHAIN_PLACEHOLDER}}
        init = [CHAIN_NODE, 0]
        if start.reference:
            graph["chain.blend"] = {"class_type": "AtelierChainImage", "inputs": {
                "previous": [CHAIN_NODE, 0], "anchor": settings.anchor, "color_match": settings.color_match,
                "reference": ["reference", 0]}}
            init = ["chain.blend", 0]
    if init is None:
        graph["latent"] = _empty_latent()
        latent, kind = ["latent", 0], "text"
    else:
        graph["chain.size"] = {"class_type": "ImageScale", "inputs": {
            "image": init, "upscale_method": "bilinear", "width": ["quality", 5], "height": ["quality", 6],
            "crop": "center"}}
        graph["chain.encode"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["chain.size", 0],
                                                                       "vae": ["ckpt", 2]}}
        graph["chain.batch"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["chain.encode", 0],
                                                                              "amount": batch}}
        latent, kind = ["chain.batch", 0], "image"
    images = _sampled(graph, seeded, text, latent, start=kind)
    graph.update({
        "score": {"class_type": "AtelierVariationScore", "inputs": {
            "images": images, "prompt": text, "scorers": settings.scorers, "weights": ""}},
        "rank": {"class_type": "AtelierRankSelect", "inputs": {
            "images": images, "scores": ["score", 0], "top_k": 1, "threshold": settings.threshold,
            "below_threshold": "warn"}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["rank", 0],
                                                       "filename_prefix": f"atelier_storyboard/{spec.name}"}},
    })
    return graph


def frame_configs(name: str, run: PipelineRun, plan: PipelinePlan, parent: str) -> list[dict[str, Any]]:
    """One generation config per frame (operation ``storyboard_frame``), in order, each with its graph and,
    for a chained frame, its ``chain`` (what the worker resolves when the job starts)."""
    board = Storyboard.from_text(storyboard_text(name, run))
    settings = chain_settings(plan.preset.level, {"variations": run.variations or None,
                                                  "threshold": run.threshold, "scorers": run.scorers})
    if not any(s.chain for s in load_tables().pipelines.pipelines[name].stages):
        raise invalid("name", name, "a storyboard pipeline (with Frame Chain stages)")
    suffixes = chain_suffixes(load_tables(), name)
    out = []
    for spec in frames(board, bool(run.reference), settings.reanchor_every):
        start = frame_start(spec, set())
        config: dict[str, Any] = {
            "operation_type": "storyboard_frame", "workspace": "pipelines", "prompt": spec.prompt,
            "parameters": {"storyboard": parent, "pipeline": name, "frame": spec.index, "clip": spec.clip,
                           "role": spec.role, "sources": list(start.sources), "quality": {"preset": run.tier},
                           "seed": frame_seed(run.seed, spec.index, 0) % 2**48},
            "graph": _frame_graph(run, spec, start, settings, suffixes)}
        if start.chained is not None:
            fallback = frame_start(spec, {start.chained})
            config["chain"] = {"position": start.chained, "node": CHAIN_NODE,
                               "fallback": _frame_graph(run, spec, fallback, settings, suffixes),
                               "fallback_sources": list(fallback.sources)}
        out.append(config)
    return out
