"""JSON in and out, within bounds: strict (no NaN or Infinity either way), nested at most ``MAX_DEPTH``
deep, no lone surrogates or NUL characters in strings; what is wrong is named by its field path."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import InvalidInput, invalid

MAX_DEPTH = 32
MAX_ITEMS = 100_000  # values in one document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes | str, field: str = "body") -> Any:
    """Parse strict JSON and check every string and the nesting; an InvalidInput names the offending field."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise invalid(field, "(nested too deep)", f"JSON nested at most {MAX_DEPTH} deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the {field} is not valid JSON: {str(exc)[:200]}", field=field) from None
    check(data, field)
    return data


def check(value: Any, field: str = "body") -> None:
    """Depth, size, and strings (no lone surrogate, no NUL), walked without recursion."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    seen = 0
    while stack:
        item, where, depth = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            raise invalid(field, f"more than {MAX_ITEMS} values", f"at most {MAX_ITEMS} values")
        if depth > MAX_DEPTH:
            raise invalid(where, "(nested too deep)", f"JSON nested at most {MAX_DEPTH} deep")
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, where)
                stack.append((child, f"{where}.{key}"[:200], depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise invalid(where, str(item), "a finite number")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise invalid(where, text.replace("\x00", "\\0")[:80], "text without NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(where, text.encode("utf-8", "backslashreplace").decode()[:80],
                      "valid Unicode text (no lone surrogates)") from None


def strict(value: Any) -> Any:
    """``value`` with every NaN or infinity as null, so the JSON written is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON: NaN and infinities are written as null."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(strict(value), allow_nan=False, **kwargs)


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]…`` through mappings only, or None: a stored document (a record's parameters, which the
    user wrote) may hold any JSON where a mapping is expected, and reading it must not fail."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
