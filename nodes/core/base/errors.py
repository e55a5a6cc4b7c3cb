"""Errors the domain raises; adapters map them to HTTP statuses and node errors.

Every error carries what a person needs to fix the input: the field, the value given
and what is accepted.
"""

from __future__ import annotations

from typing import Any


class AtelierError(Exception):
    """Base class. ``status`` is the HTTP status an adapter answers with."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None, value: Any = None,
                 accepted: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.accepted = accepted

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.value is not None:
            body["value"] = self.value
        if self.accepted is not None:
            body["accepted"] = self.accepted
        return body


class InvalidInput(AtelierError, ValueError):
    """Also a ValueError, so Python callers of the API catch it as they would any bad argument."""

    status = 400


class NotFound(AtelierError, LookupError):
    status = 404


class Conflict(AtelierError):
    status = 409


class ReadOnly(AtelierError):
    status = 403


class Forbidden(AtelierError):
    """A policy refuses the request (e.g. a content rating above the allowed one)."""

    status = 403


def invalid(field: str, value: Any, accepted: Any, why: str = "") -> InvalidInput:
    """Build the standard "field=value is not accepted; use …" error."""
    shown = value if isinstance(value, (int, float, bool)) or value is None else \
        str(value)[:200].encode("utf-8", "backslashreplace").decode("utf-8")  # no lone surrogate in an answer
    reason = f" ({why})" if why else ""
    return InvalidInput(f"{field}={shown!r} is not accepted{reason}; accepted: {accepted}",
                        field=field, value=shown, accepted=accepted)


def node_error(exc: AtelierError) -> ValueError:
    """What a node raises so ComfyUI shows a readable error (no traceback to decode)."""
    return ValueError(f"Atelier: {exc.message}")


class Unavailable(AtelierError):
    """What the request needs is not here (e.g. a standalone server has no ComfyUI queue)."""

    status = 503


class TooLarge(AtelierError):
    """A request, a field or what it would make is over a documented limit."""

    status = 413


class Unauthenticated(AtelierError):
    """The request names no user where a trusted proxy must (``ATELIER_TRUSTED_USER_HEADER``)."""

    status = 401
