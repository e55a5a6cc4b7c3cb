"""Learning from real runs: which prompts to time, and reading their duration from history.

When an Atelier node plans a generation inside ComfyUI it registers the plan under the
prompt id. Once ComfyUI has finished that prompt, its history entry (status messages with
``execution_start`` / ``execution_success`` timestamps and the list of cached nodes) gives
the wall time. Runs whose sampler was served from ComfyUI's cache, or that failed, are not
recorded: they would teach the estimator that sampling is free. Nor are runs in which a loader
node executed (a checkpoint read from disk): they time the disk, not the generation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .estimate import Estimator, calibration_key, work_units

PENDING_TTL_S = 6 * 3600
SAMPLER_MARKERS = ("KSampler", "SamplerCustom")
LOADER_MARKER = "Loader"  # CheckpointLoaderSimple, UNETLoader, VAELoader, LoraLoader, …


@dataclass
class PlannedRun:
    category: str
    family: str
    params: dict[str, Any]
    device: str


@dataclass
class PendingPrompt:
    runs: dict[str, PlannedRun] = field(default_factory=dict)  # by node id
    since: float = field(default_factory=time.monotonic)


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


class RunObserver:
    def __init__(self, estimator: Estimator) -> None:
        self.estimator = estimator
        self._pending: dict[str, PendingPrompt] = {}
        self._lock = threading.Lock()

    def observe(self, prompt_id: str | None, node_id: str, run: PlannedRun) -> None:
        if not prompt_id:
            return
        with self._lock:
            self._pending.setdefault(prompt_id, PendingPrompt()).runs[node_id] = run

    def pending(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            for prompt_id in [p for p, v in self._pending.items() if now - v.since > PENDING_TTL_S]:
                del self._pending[prompt_id]
            return list(self._pending)

    def ingest(self, prompt_id: str, item: dict[str, Any]) -> str:
        """Record the run of a finished prompt; returns what happened (for logs and tests)."""
        with self._lock:
            pending = self._pending.pop(prompt_id, None)
        if pending is None or not pending.runs:
            return "not observed"
        seconds, reason = history_duration(item)
        if seconds is None:
            return f"skipped: {reason}"
        runs = list(pending.runs.values())
        keys = {(calibration_key(r.category, r.family), r.device) for r in runs}
        if len(keys) != 1:
            return "skipped: plans of several families or devices in one prompt"
        (key, device), = keys
        units = sum(work_units(r.category, r.params, r.family, self.estimator.tables) for r in runs)
        params = runs[0].params if len(runs) == 1 else {"plans": [r.params for r in runs]}
        if self.estimator.calibration is None:
            return "skipped: no calibration store"
        stored = self.estimator.calibration.record(key, device, units, seconds, params, run_id=prompt_id)
        return f"recorded {seconds:.2f}s" if stored else "already recorded"
