"""Learning from real runs: ComfyUI's history says what ran and how long it took.

A finished prompt's history entry holds its graph (with each node's inputs) and status
messages with ``execution_start`` / ``execution_success`` timestamps and the list of cached
nodes. Every Quality Preset node in the graph gives the plan (re-computed from its inputs), the
timestamps the wall time; so a re-run with a new seed teaches the estimator even when the
Quality Preset node itself came from the cache.

Runs whose sampler was served from ComfyUI's cache, or that failed, are not recorded: they would
teach the estimator that sampling is free. Nor are runs in which a loader node executed (a
checkpoint read from disk): they time the disk, not the generation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .estimate import Estimator, calibration_key, work_units

SAMPLER_MARKERS = ("KSampler", "SamplerCustom")
LOADER_MARKER = "Loader"  # CheckpointLoaderSimple, UNETLoader, VAELoader, LoraLoader, …


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
               if isinstance(node, dict) and LOADER_MARKER in str(node.get("class_type", ""))]
    if any(nid not in cached for nid in loaders):
        return None, "models were loaded from disk during the run"
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0, "ok"


Planner = Callable[[dict[str, Any]], PlannedRun | None]
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
        runs = [self.planner(node.get("inputs") or {}) for node in nodes]
        if any(run is None for run in runs):
            return "skipped: a Quality Preset's inputs could not be planned"
        planned = [r for r in runs if r is not None]
        keys = {(calibration_key(r.category, r.family), r.device) for r in planned}
        if len(keys) != 1:
            return "skipped: plans of several families or devices in one prompt"
        (key, device), = keys
        units = sum(work_units(r.category, r.params, r.family, self.estimator.tables) for r in planned)
        params = planned[0].params if len(planned) == 1 else {"plans": [r.params for r in planned]}
        if self.estimator.calibration is None:
            return "skipped: no calibration store"
        stored = self.estimator.calibration.record(key, device, units, seconds, params, run_id=prompt_id)
        return f"recorded {seconds:.2f}s" if stored else "already recorded"
