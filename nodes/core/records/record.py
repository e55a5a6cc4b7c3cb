"""A generation record as the rest of Atelier sees it (typed), and a page of them; ``to_dict`` is the JSON
the routes answer with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Feedback:
    rating: int
    comment: str
    created_at: float


@dataclass(frozen=True)
class GenerationRecord:
    id: str
    status: str
    operation_type: str
    workspace: str
    user: str
    parameters: dict[str, Any]
    prompt_text: str
    prompt_version_id: str | None
    prompt_source: str
    repro_hash: str
    comfy_prompt_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    outputs: dict[str, Any]
    scores: dict[str, Any]
    error: str | None
    feedback: tuple[Feedback, ...] | None = None  # read with the record (``RecordStore.get``), else None

    @classmethod
    def of(cls, row: Any, feedback: tuple[Feedback, ...] | None = None) -> GenerationRecord:
        """From a database row (any object with the record's columns as attributes)."""
        names = [f.name for f in fields(cls) if f.name != "feedback"]
        return cls(**{name: getattr(row, name) for name in names}, feedback=feedback)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        if self.feedback is None:
            del body["feedback"]
        else:
            body["feedback"] = [asdict(f) for f in self.feedback]
        return body


@dataclass(frozen=True)
class RecordPage:
    items: list[GenerationRecord]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [r.to_dict() for r in self.items], "next_cursor": self.next_cursor}
