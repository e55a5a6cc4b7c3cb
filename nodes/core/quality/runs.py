"""Learning from real runs: ComfyUI's history says what ran and how long it took.

A finished prompt's history entry holds its graph (with each node's inputs) and status
messages with ``execution_start`` / ``execution_success`` timestamps and the list of cached
nodes. Every Quality Preset node in the graph gives the plan (re-computed from its inputs), the
timestamps the wall time; so a re-run with a new seed teaches the estimator even when the
Quality Preset node itself came from the cache.

Runs whose sampler was served from ComfyUI's cache, or that failed, are not recorded: they would
teach the estimator that sampling is free. Nor are runs in which a loader node executed (a
checkpoint read from disk): they time the disk, not the generation.

A run is priced by the passes that ran (``used_passes``): a Quality Sampler runs every pass of the plan; a
hand-wired graph runs the base pass (KSampler on Quality Preset's sockets) and the passes of the Quality Stage
nodes it has. A storyboard (Frame Chain) runs many frames from one plan and is not learned from.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .estimate import Estimator, calibration_key, model_evaluations, work_units

SAMPLER_MARKERS = ("KSampler", "SamplerCustom", "AtelierQualitySampler")
LOADER_MARKER = "Loader"  # CheckpointLoaderSimple, UNETLoader, VAELoader, LoraLoader, …
LOADING = ("AtelierLoraRecommend",)  # loads LoRA files from disk when it runs (not when ComfyUI caches it)
UNPLANNED = ("AtelierFrameChain",)  # many frames and retries from one plan: not the plan's units


@dataclass
class PlannedRun:
    category: str
    family: str
    params: dict[str, Any]
    device: str


def history_duration(item: dict[str, Any]) -> tuple[float | None, str]:
    """Seconds between execution_start and execution_success of a history item, with a reason."""
    status = item.get("status") or {}
    if status.get("status_str") != "success":
        return None, f"status {status.get('status_str')!r}"
    stamps: dict[str, float] = {}
    cached: set[str] = set()
    for message in status.get("messages") or []:
        if not (isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[1], dict)):
            continue
        kind, data = message
        if "timestamp" in data:
            stamps[kind] = float(data["timestamp"])
        if kind == "execution_cached":
            cached.update(str(n) for n in data.get("nodes") or [])
    if "execution_start" not in stamps or "execution_success" not in stamps:
        return None, "no start/success timestamps"
    prompt = item.get("prompt") or []
    graph = prompt[2] if len(prompt) > 2 and isinstance(prompt[2], dict) else {}
    samplers = [nid for nid, node in graph.items()
                if isinstance(node, dict) and any(m in str(node.get("class_type", "")) for m in SAMPLER_MARKERS)]
    if not samplers:
        return None, "no sampler in the graph"
    if any(nid in cached for nid in samplers):
        return None, "sampler served from cache"
    loaders = [nid for nid, node in graph.items()
               if isinstance(node, dict) and (LOADER_MARKER in str(node.get("class_type", ""))
                                              or node.get("class_type") in LOADING)]
    if any(nid not in cached for nid in loaders):
        return None, "models were loaded from disk during the run"
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0, "ok"


Planner = Callable[[dict[str, Any]], PlannedRun | None]


def used_passes(graph: dict[str, Any], preset_id: str) -> set[str]:
    """The passes of Quality Preset ``preset_id``'s plan that a graph runs: all of them through a Quality
    Sampler; otherwise the base pass and those of the Quality Stage nodes wired to it."""
    def linked(node: Any) -> bool:
        value = node.get("inputs", {}).get("quality_preset") if isinstance(node, dict) else None
        return isinstance(value, list) and bool(value) and str(value[0]) == str(preset_id)

    if any(linked(n) and n.get("class_type") == "AtelierQualitySampler" for n in graph.values()):
        return {"base", "hires_fix", "refinement"}
    return {"base"} | {str(n.get("inputs", {}).get("stage")) for n in graph.values()
                       if linked(n) and n.get("class_type") == "AtelierQualityStage"}


def ran(params: dict[str, Any], passes: set[str]) -> dict[str, Any]:
    """The plan's image parameters without the passes that did not run."""
    if "steps" not in params:
        return params
    return {**params, "hires_enabled": bool(params.get("hires_enabled")) and "hires_fix" in passes,
            "refinement": bool(params.get("refinement")) and "refinement" in passes}
PLANNING_NODE = "AtelierQualityPreset"
SEEN_LIMIT = 4096


class RunObserver:
    """Turns finished prompts into calibration samples, once per prompt."""

    def __init__(self, estimator: Estimator, planner: Planner) -> None:
        self.estimator = estimator
        self.planner = planner
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def _first_time(self, prompt_id: str) -> bool:
        with self._lock:
            if prompt_id in self._seen:
                return False
            self._seen[prompt_id] = None
            while len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            return True

    def ingest(self, prompt_id: str, item: dict[str, Any]) -> str:
        """Record the run of a finished prompt; returns what happened (for logs and tests)."""
        status = (item.get("status") or {}).get("status_str")
        if status not in ("success", "error"):
            return "not finished"
        if not self._first_time(prompt_id):
            return "already seen"
        prompt = item.get("prompt") or []
        graph = prompt[2] if len(prompt) > 2 and isinstance(prompt[2], dict) else {}
        nodes = [n for n in graph.values() if isinstance(n, dict) and n.get("class_type") == PLANNING_NODE]
        if not nodes:
            return "no Atelier plan"
        seconds, reason = history_duration(item)
        if seconds is None:
            return f"skipped: {reason}"
        if any(isinstance(n, dict) and n.get("class_type") in UNPLANNED for n in graph.values()):
            return "skipped: a storyboard's frames are not one plan's runs"
        ids = [nid for nid, n in graph.items() if isinstance(n, dict) and n.get("class_type") == PLANNING_NODE]
        runs = [self.planner(graph[nid].get("inputs") or {}) for nid in ids]
        if any(run is None for run in runs):
            return "skipped: a Quality Preset's inputs could not be planned"
        planned = [PlannedRun(r.category, r.family, ran(r.params, used_passes(graph, nid)), r.device)
                   for r, nid in zip(runs, ids, strict=True) if r is not None]
        keys = {(calibration_key(r.category, r.family), r.device) for r in planned}
        if len(keys) != 1:
            return "skipped: plans of several families or devices in one prompt"
        (key, device), = keys
        units = sum(work_units(r.category, r.params, r.family, self.estimator.tables) for r in planned)
        params = planned[0].params if len(planned) == 1 else {"plans": [r.params for r in planned]}
        if self.estimator.calibration is None:
            return "skipped: no calibration store"
        evaluations = sum(model_evaluations(r.category, r.params) for r in planned)
        stored = self.estimator.calibration.record(key, device, units, seconds, params, run_id=prompt_id,
                                                   evaluations=evaluations)
        return f"recorded {seconds:.2f}s" if stored else "already recorded"
