"""``presets/generation.yaml``: batch grids, memory shares, and ComfyUI sampler names on diffusers."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..base.data import PRESETS_DIR, read_yaml
from ..base.errors import invalid
from .memory import STRATEGIES


@lru_cache(maxsize=1)
def generation_tables() -> dict[str, Any]:
    data = read_yaml(PRESETS_DIR / "generation.yaml")
    if not isinstance(data, dict) or data.get("version") != 1:
        raise invalid("generation.yaml version", data.get("version") if isinstance(data, dict) else data, 1)
    shares = data["memory"]["shares"]
    if set(shares) != set(STRATEGIES) or not all(0 < float(v) <= 1 for v in shares.values()):
        raise invalid("generation.yaml memory.shares", shares, f"a share 0-1 for each of {list(STRATEGIES)}")
    for offset in data["batch"]["param_grid"]:
        if set(offset) != {"steps", "cfg"}:
            raise invalid("generation.yaml batch.param_grid", offset, "{steps: factor, cfg: offset}")
    return data
