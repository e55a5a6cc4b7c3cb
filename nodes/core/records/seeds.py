"""Seed strategies, recorded with the run so any run can be told and replayed:

- ``fixed``: every image the base seed.
- ``per_item``: base + index (a batch's items, a graph's images).
- ``per_user`` / ``per_project``: a seed derived from a stable hash (SHA-256) of the user's or project's id and
  the base seed, + index: the same user (project) gets the same seeds for the same base, others get others.
- ``timestamp``: the clock's milliseconds at submission + index; the milliseconds are recorded (a whole number,
  ``timestamp_ms``, exact in the stored parameters, and ``utc``), so the seeds can be planned again.

Seeds stay below 2**48 (JavaScript and every sampler take them exactly).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from ..base.errors import invalid

STRATEGIES = ("fixed", "per_item", "per_user", "per_project", "timestamp")
LIMIT = 2**48
SEED_INPUTS = ("seed", "noise_seed")  # the inputs of ComfyUI's samplers (KSampler, KSamplerAdvanced, Atelier's)


@dataclass(frozen=True)
class SeedPlan:
    strategy: str
    base: int
    seeds: list[int]
    key: str | None = None          # the user or project the seeds were derived from
    timestamp_ms: int | None = None  # the clock a timestamp strategy read, in Unix milliseconds
    utc: str | None = None  # the same, as ISO 8601 in UTC

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _derived(kind: str, key: str, base: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{kind}:{key}:{base}".encode()).digest()[:8], "big") % LIMIT


def plan_seeds(strategy: str, base: int, count: int, user: str | None = None, project: str | None = None,
               now: float | None = None) -> SeedPlan:
    """The seeds of ``count`` images by ``strategy`` (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise invalid("seeds.strategy", strategy, list(STRATEGIES))
    if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base < LIMIT:
        raise invalid("seeds.base", base, f"a whole number 0 to {LIMIT - 1}")
    if not 1 <= count <= 4096:
        raise invalid("seeds.count", count, "1-4096 images")
    if strategy == "fixed":
        return SeedPlan(strategy, base, [base] * count)
    if strategy == "per_item":
        return SeedPlan(strategy, base, [(base + i) % LIMIT for i in range(count)])
    if strategy in ("per_user", "per_project"):
        key = user if strategy == "per_user" else project
        if not key:
            raise invalid(f"seeds.{'user' if strategy == 'per_user' else 'project'}", key,
                          "a user id" if strategy == "per_user" else "a project id (the workspace)")
        start = _derived(strategy, key, base)
        return SeedPlan(strategy, base, [(start + i) % LIMIT for i in range(count)], key=key)
    ms = round((time.time() if now is None else now) * 1000)  # round: ms / 1000 planned again gives ms back
    start = ms % LIMIT
    when = datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return SeedPlan(strategy, base, [(start + i) % LIMIT for i in range(count)], timestamp_ms=ms, utc=when)


def seed_inputs(graph: dict[str, Any]) -> list[tuple[str, str]]:
    """(node id, input) of every literal seed in an API-format graph, in node order."""
    out = []
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for name in SEED_INPUTS:
            if isinstance(inputs, dict) and isinstance(inputs.get(name), int) and not isinstance(inputs[name], bool):
                out.append((str(node_id), name))
    return out


def seeded(graph: dict[str, Any], plan: SeedPlan) -> dict[str, Any]:
    """The graph with its samplers' seeds from the plan: the k-th sampler gets seed k (the last one repeats)."""
    out = {k: ({**v, "inputs": dict(v["inputs"])} if isinstance(v, dict) and isinstance(v.get("inputs"), dict)
               else v) for k, v in graph.items()}
    for index, (node_id, name) in enumerate(seed_inputs(out)):
        out[node_id]["inputs"][name] = plan.seeds[min(index, len(plan.seeds) - 1)]
    return out
