"""What the storyboard's ComfyUI steps decide, as plain functions (the node classes only translate):
Frame Chain's expansion, Frame Start's decision, Frame Select's verdict and retry, Chain Image's blend, and
Storyboard Save's folder, manifest and record.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..base.errors import invalid
from ..base.ids import user_id
from ..quality.passes import SamplingPass, sampling_passes
from ..quality.plan import QualityPlan
from ..quality.tables import Tables, load_tables
from ..scoring.registry import Scorers
from .chaining import Start, frame_start, start_image
from .frames import Attempt, FrameResult, conclude, continuity_anchors, judge_attempt
from .graph import (
    Graph,
    Link,
    Sampling,
    Sources,
    StartRecipe,
    previous_failed,
    sampler_nodes,
    select_node,
    storyboard_graph,
)
from .graph import start_expansion as _start_expansion
from .manifest import StoryboardManifest, build_manifest
from .spec import ChainSettings, FrameSpec, Storyboard, chain_settings, frame_seed, frames

GREY = 0.5
# Prompt Enhance in Frame Chain's expansion: the rule backend, the tier's loop (iterations 0: the tier's
# rounds and stopping score, from the Quality Preset).
ENHANCE_DEFAULTS = {"backend": "rule", "model": "", "threshold": 85.0, "iterations": 0, "temperature": 0.7,
                    "keep_trace": False, "keep_llm_loaded": False}
NO_PIPELINE = "none"


# --- Frame Chain -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainRequest:
    """The Frame Chain node's widgets."""

    storyboard: str
    negative: str = ""
    variations: int = 0        # 0: the tier's
    threshold: float = 30.0
    seed: int = 0
    enhance: bool = True
    scorers: str = "auto"
    filename_prefix: str = "storyboard"
    owner: str = ""            # the user the storyboard belongs to ("": default)
    pipeline: str = "storyboard_generation"  # whose stage prompt suffixes the frames get ("none": none)


def chain_suffixes(tables: Tables, pipeline: str) -> dict[str, str]:
    """The prompt suffixes of a pipeline's Frame Chain stages: frames starting from text / from an image."""
    if pipeline == NO_PIPELINE:
        return {}
    spec = tables.pipelines.pipelines.get(pipeline)
    chained = [name for name, p in tables.pipelines.pipelines.items() if any(s.chain for s in p.stages)]
    if spec is None or not any(s.chain for s in spec.stages):
        raise invalid("pipeline", pipeline, [*chained, NO_PIPELINE], "a pipeline with Frame Chain stages")
    return {s.chain: s.prompt_suffix for s in spec.stages if s.chain}


def chain_pipelines(tables: Tables) -> list[str]:
    """The options of Frame Chain's ``pipeline`` input."""
    return [name for name, p in tables.pipelines.pipelines.items() if any(s.chain for s in p.stages)] + [NO_PIPELINE]

def frame_chain(plan: QualityPlan, request: ChainRequest, links: dict[str, Link], prefix: str,
                endpoint: str) -> tuple[Graph, list[Link]]:
    """Frame Chain's expansion: the storyboard at the plan's sampling settings and the tier's chaining
    strength. ``links``: the node's own input links (model, clip, vae, reference)."""
    board = Storyboard.from_text(request.storyboard)
    settings = chain_settings(plan.preset.level, {"variations": request.variations or None,
                                                  "threshold": request.threshold, "scorers": request.scorers})
    sampling = Sampling(sampling_passes(plan.params), request.seed)
    enhance = {**ENHANCE_DEFAULTS, "endpoint": endpoint, "model_family": plan.family.family} \
        if request.enhance else None
    sources = Sources(links["model"], links["clip"], links["vae"], links.get("reference"), enhance,
                      links.get("quality_preset"))
    suffixes = chain_suffixes(load_tables(), request.pipeline)
    specs = [replace(s, prompt=s.prompt + suffixes.get("image" if s.sources else "text", ""))
             for s in frames(board, "reference" in links, settings.reanchor_every)]
    save = {"storyboard": board.model_dump_json(), "settings": settings.model_dump_json(), "tier": plan.preset.id,
            "filename_prefix": request.filename_prefix, "owner": request.owner}
    return storyboard_graph(specs, settings, sampling, sources, prefix, board.negative or request.negative, save)


# --- Frame Start -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartOutcome:
    """Frame Start's decision: the start, the nodes it expands into, and its outputs (latent, denoise, start)."""

    start: Start
    graph: Graph
    outputs: list[Any]


def start_expansion(recipe: str, previous_report: str | None, links: dict[str, Link]) -> StartOutcome:
    """Frame Start: the frame's start now that the frame it chains from has a report (None: nothing chained)."""
    parsed = StartRecipe.from_json(recipe)
    start, graph, latent = _start_expansion(parsed, previous_failed(previous_report), links.get("previous"),
                                            links.get("reference"), links["vae"])
    denoise = parsed.denoise if start.sources else 1.0
    return StartOutcome(start, graph, [latent, denoise, start_json(start, denoise)])


# --- Frame Select ----------------------------------------------------------------------------------
@dataclass
class Verdict:
    """Frame Select's outcome: the report, and the kept variation, a retry to expand, or the fallback."""

    frame: FrameResult
    chosen: int | None            # the kept variation (an index of this attempt's images)
    retry: Graph | None = None    # a new attempt to expand (next seed), with its select node
    retry_outputs: list[Link] | None = None

    def summary(self) -> str:
        best = f", best {self.frame.best_score:.1f}" if self.frame.best_score else ""
        return f"{self.frame.name}: {self.frame.status}{best}"


def select_frame(images: torch.Tensor, prompt: str, recipe: str, attempt: int, previous_attempts: str,
                 start: str, registry: Scorers | None, previous: torch.Tensor | None = None,
                 previous_report: str | None = None, reference: torch.Tensor | None = None) -> Verdict:
    """Score one attempt's variations (quality, and continuity with the previous frame and the reference);
    keep the best, or retry with the next seed, or mark the frame failed."""
    plan = json.loads(recipe)
    anchors = continuity_anchors(reference, None if previous_failed(previous_report) else previous)
    used = json.loads(start)["sources"] if start else list(plan["sources"])
    frame = FrameResult(plan["name"], plan["clip"], plan["role"], prompt, list(used))
    frame.attempts = [Attempt(**a) for a in (json.loads(previous_attempts) if previous_attempts else [])]
    seed = frame_seed(int(plan["seed"]), int(plan["index"]), attempt)
    result, chosen, below = judge_attempt(images, prompt, seed, plan["scorers"], plan["threshold"], registry,
                                          anchors, float(plan.get("continuity", 0.0)))
    conclude(frame, result, chosen, below, plan["threshold"])
    denoise = json.loads(start).get("denoise") if start else None
    frame.passes = [SamplingPass(**{**p, "denoise": denoise if p["name"] == "base" and denoise else p["denoise"]})
                    .label() for p in plan.get("passes", [])]
    if chosen is None and attempt < plan["retries"]:
        retry = sampler_nodes(plan["prefix"], plan, attempt + 1)
        select_id = f"{plan['prefix']}.a{attempt + 1}.select"
        retry[select_id] = select_node(plan, [f"{plan['prefix']}.a{attempt + 1}.decode", 0], attempt + 1,
                                       json.dumps([a.__dict__ for a in frame.attempts]))  # the same start link
        return Verdict(frame, None, retry, [[select_id, 0], [select_id, 1]])
    return Verdict(frame, chosen)


def start_json(start: Start, denoise: float | None = None) -> str:
    """Frame Start's third output: what the frame started from (Frame Select reports it as ``sources``) and
    the base pass's denoise."""
    return json.dumps({"sources": list(start.sources), "mode": start.mode,
                       **({"denoise": denoise} if denoise is not None else {})})


def fallback_image(width: int, height: int) -> torch.Tensor:
    """What a failed frame passes on: a grey image of the frame's size, which no later frame starts from."""
    return torch.full((1, height, width, 3), GREY)


# --- Chain Image -----------------------------------------------------------------------------------
def chain_image(previous: torch.Tensor, reference: torch.Tensor | None, anchor: float, color_match: float,
                previous_report: str = "") -> torch.Tensor:
    """Chain Image: the previous frame blended with the reference and colour-matched to it, by the chaining
    rule; a failed previous frame is left out (the reference alone; with no reference the image passes)."""
    spec = FrameSpec(1, 0, "start", "", ("reference", "previous_end") if reference is not None else ("previous_end",))
    start = frame_start(spec, {0} if previous_failed(previous_report) else set())
    settings = ChainSettings(anchor=anchor, color_match=color_match)
    image = start_image(start, previous, reference[:1] if reference is not None else None, settings)
    return image if image is not None else previous


# --- Storyboard Save -------------------------------------------------------------------------------
def folder_name(prefix: str, now: float | None = None) -> str:
    """``<prefix>_<YYYYmmdd-HHMMSS>_<µs>``: a new folder per run; the prefix keeps letters, digits, - and _."""
    now = time.time() if now is None else now
    safe = re.sub(r"[^A-Za-z0-9_-]", "", prefix) or "storyboard"
    return f"{safe}_{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}_{int(now * 1e6) % 10**6:06d}"


def owner(value: str) -> str:
    """The user named by a node's ``owner`` input ("" is the default user)."""
    return user_id(value or None)


def saved_manifest(storyboard: str, settings: str, reports: str, tier: str,
                   comfy_prompt_id: str | None, owner_name: str = "") -> StoryboardManifest:
    """Storyboard Save's manifest, from Frame Chain's storyboard and settings and the collected reports."""
    try:
        board = Storyboard.from_text(storyboard)
        chain = ChainSettings(**json.loads(settings or "{}"))
        results = [FrameResult.from_dict(r) for r in json.loads(reports)]
    except (ValueError, TypeError) as exc:
        raise invalid("reports", "(frame reports)", "the reports Storyboard Collect gathered", str(exc)) from None
    return build_manifest(board, chain, results, tier, comfy_prompt_id=comfy_prompt_id, owner=owner(owner_name))


def record_config(manifest: StoryboardManifest, graph: dict[str, Any]) -> dict[str, Any]:
    """The generation record of a saved storyboard (its graph, clips, settings and tier)."""
    return {"operation_type": "storyboard", "workspace": "default",
            "parameters": {"graph": graph, "storyboard": manifest.clips, "settings": manifest.settings,
                           "quality": {"preset": manifest.tier}},
            "prompt": " | ".join(f"{c['start']} -> {c['end']}" for c in manifest.clips)[:20000]}


def record_scores(manifest: StoryboardManifest, folder: str) -> dict[str, Any]:
    """The record's scores: each frame's best, the failed clips, and the folder (relative to ComfyUI's output)."""
    return {"frames": {f.name: f.best_score for f in manifest.frames}, "failed_clips": manifest.failed_clips,
            "folder": folder, "files": [f.file for f in manifest.frames if f.file]}
