"""Per-node timings from ComfyUI's execution events: a node's time runs from its ``executing`` event to the
next one, or to the prompt's end (``execution_success`` / ``_error`` / ``_interrupted``, or ``executing`` with
no node). Nodes ComfyUI took from its cache send no ``executing`` event and have no time.

``advance`` folds one event into a prompt's list (a scale-out worker's client uses it on the events it
buffers); ``PromptTimings`` keeps the lists of the prompts a ComfyUI is running, from events it is told as
they are sent, bounded in prompts and nodes, safe to call from ComfyUI's execution thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

MAX_NODES = 500  # timed nodes kept per prompt
MAX_PROMPTS = 256  # prompts kept (running, or finished and not yet taken)
ENDS = ("execution_success", "execution_error", "execution_interrupted")

Timings = list[dict[str, Any]]


def is_end(kind: str, data: dict[str, Any]) -> bool:
    """Whether an event ends its prompt (its last node's time stops there)."""
    return kind in ENDS or (kind == "executing" and data.get("node") is None)


def advance(timings: Timings, kind: str, data: dict[str, Any], at: float) -> bool:
    """One event into ``timings`` (entries ``{"node", "seconds"}``; the running one holds ``_at``); whether it
    ended the prompt."""
    ended = is_end(kind, data)
    if kind != "executing" and not ended:
        return False
    if timings and "_at" in timings[-1]:
        timings[-1]["seconds"] = round(max(0.0, at - timings[-1].pop("_at")), 3)
    if not ended and len(timings) < MAX_NODES:
        timings.append({"node": str(data["node"]), "_at": at})
    return ended


def finished(timings: Timings, graph: Any = None) -> Timings:
    """The timed nodes, each with its ``class_type`` when the graph says."""
    classes = {str(k): v.get("class_type") for k, v in graph.items() if isinstance(v, dict)} \
        if isinstance(graph, dict) else {}
    return [{"node": t["node"], "seconds": t["seconds"], "class_type": classes.get(t["node"])}
            for t in timings if "seconds" in t]


class PromptTimings:
    """The per-node timings of the prompts one ComfyUI runs, from the events it sends (``observe``), until the
    history follower takes them (``take``) for the prompt's records."""

    def __init__(self, max_prompts: int = MAX_PROMPTS) -> None:
        self.max_prompts = max_prompts
        self._lock = threading.Lock()
        self._prompts: OrderedDict[str, Timings] = OrderedDict()

    def observe(self, kind: str, data: Any, at: float | None = None) -> None:
        """An event as ComfyUI sends it; anything without a prompt id is ignored, and this never raises."""
        if not isinstance(data, dict) or not isinstance(data.get("prompt_id"), str):
            return
        if kind not in ENDS and kind != "executing":
            return
        at = time.monotonic() if at is None else at
        with self._lock:
            timings = self._prompts.get(data["prompt_id"])
            if timings is None:
                if kind != "executing" or data.get("node") is None:
                    return
                timings = self._prompts[data["prompt_id"]] = []
                while len(self._prompts) > self.max_prompts:
                    self._prompts.popitem(last=False)
            advance(timings, kind, data, at)

    def take(self, prompt_id: str, graph: Any = None) -> Timings:
        """A finished prompt's timed nodes (with their class from ``graph``), forgotten here."""
        with self._lock:
            timings = self._prompts.pop(prompt_id, None) or []
        return finished(timings, graph)


__all__ = ["PromptTimings", "advance", "finished", "is_end"]
