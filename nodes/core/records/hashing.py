"""The reproducibility hash: equal for runs that must give the same result, different otherwise.

A run's hash (``run_hash``) covers its parameters, its rendered prompt and the graph it queued: two runs of the
same config on different graphs (another checkpoint, other seeds) are different runs. A node's record already
carries its graph in its parameters, in the same shape (``graph_parameters``), so both hash alike.

Canonical form: keys sorted; fields that do not change the result dropped (output names, ids,
timestamps, traces, UI-only settings); integral floats written as integers (7.0 == 7); other floats
rounded to 9 significant digits (so 0.1 + 0.2 == 0.3); ints exact (seeds keep every digit).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

IGNORED = frozenset({
    "filename_prefix", "client_id", "prompt_id", "comfy_prompt_id", "workspace", "user", "created_at",
    "trace", "keep_trace", "keep_llm_loaded", "release_after", "keep_alive", "timeout_s", "_meta", "estimate",
    "warnings", "display_name", "description", "performance", "summary", "decided_at", "decided_in_ms", "batch_id",
    "replay_of",  # a replay is the same run again: it must have the same hash
})


def canonical(value: Any, ignored: frozenset[str] = IGNORED) -> Any:
    """The hashed form; with ``ignored=frozenset()`` the stored form (the same numbers, nothing dropped: an
    explanation keeps its estimate and measured time, which never change the image)."""
    if isinstance(value, dict):
        return {str(k): canonical(v, ignored) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
                if str(k) not in ignored}
    if isinstance(value, (list, tuple)):
        return [canonical(v, ignored) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        rounded = float(f"{value:.9g}")
        return int(rounded) if rounded.is_integer() and abs(rounded) < 2**53 else rounded  # idempotent
    return str(value)


def repro_hash(parameters: dict[str, Any]) -> str:
    blob = json.dumps(canonical(parameters), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def graph_parameters(prompt: dict[str, Any] | None) -> dict[str, Any]:
    """A queued graph as canonical parameters: every node's type and inputs, by node id."""
    return {str(node_id): {"class_type": node.get("class_type"), "inputs": node.get("inputs", {})}
            for node_id, node in (prompt or {}).items() if isinstance(node, dict)}


def run_hash(parameters: dict[str, Any], prompt: str, graph: dict[str, Any] | None = None) -> str:
    """A run's hash: its parameters and rendered prompt, and the graph it queued (when its parameters do not
    carry that graph already)."""
    hashed = {**parameters, "prompt": prompt}
    if isinstance(graph, dict) and graph:
        shape = graph_parameters(graph)
        if "graph" not in parameters:
            hashed["graph"] = shape
        elif canonical(parameters["graph"]) != canonical(shape):
            hashed["queued_graph"] = shape
    return repro_hash(hashed)
