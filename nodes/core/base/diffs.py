"""A readable difference of two JSON-like values, one line per key path (``- a.b[2]: old`` / ``+ a.b[2]: new``):
the regression harness's and the records' diffs."""

from __future__ import annotations

import json
from typing import Any

MAX_VALUE = 200


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)[:MAX_VALUE]


def key_diff(old: Any, new: Any, path: str = "", limit: int = 500) -> list[str]:
    """What changed from ``old`` to ``new``: nothing when equal; at most ``limit`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(f"- {where}: {_shown(old[key])}")
            elif key not in old:
                out.append(f"+ {where}: {_shown(new[key])}")
            else:
                out += key_diff(old[key], new[key], where, limit)
            if len(out) >= limit:
                return out[:limit]
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += key_diff(a, b, f"{path}[{i}]", limit)
            if len(out) >= limit:
                return out[:limit]
        return out
    if old == new:
        return []
    where = path or "(value)"
    return [f"- {where}: {_shown(old)}", f"+ {where}: {_shown(new)}"]
