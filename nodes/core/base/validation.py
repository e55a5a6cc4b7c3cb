"""Request bodies as pydantic models, and pydantic's errors as Atelier's (field, value, what is accepted)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidInput, invalid

M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, accepted: str, field: str = "body", prefix: str = "") -> M:
    """``data`` (a JSON object) as ``model``, or an InvalidInput naming the field, the value and the rule."""
    if not isinstance(data, dict):
        raise invalid(field, type(data).__name__, accepted)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, prefix) from None


def validation_error(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """Turn pydantic's first error into an InvalidInput naming field, value and rule."""
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "body")
    value = first.get("input")
    if isinstance(value, (dict, list)):
        value = None
    message = first.get("msg", "invalid value")
    accepted = message.removeprefix("Value error, ")
    count = len(exc.errors())
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    shown = f"={value!r}" if value is not None else ""
    return InvalidInput(f"{field}{shown} is not accepted: {accepted}{more}",
                        field=field, value=value, accepted=accepted)
