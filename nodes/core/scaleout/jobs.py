"""What a distributed job is, and what the core needs from a job queue (Procrastinate in ``nodes/queue/``; any
engine with locks, heartbeats and cancellation could stand in)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..base.errors import invalid

KINDS = ("generation", "batch_item", "pipeline", "frame")
STATES = ("queued", "running", "completed", "failed", "cancelled")
OPEN_STATES = ("queued", "running")
# prompt ids are UUIDs derived from the record: a resubmission names the same prompt
_NAMESPACE = uuid.UUID("5b3c1f0e-7a43-4d8e-9a51-0c9a0b7f2e11")
DEFAULT_DEADLINE_S = 6 * 3600.0


def prompt_id_for(record_id: str) -> str:
    """The ComfyUI prompt id of a record's job: the same on every attempt and every worker (lowercase UUID)."""
    return str(uuid.uuid5(_NAMESPACE, record_id))


@dataclass
class JobSpec:
    """One job: a ComfyUI graph to run for a record. ``group_id``/``position``: its batch or storyboard and its
    place there; ``lock``: jobs sharing it run one at a time, in the order they were queued (a storyboard's
    frames); ``deadline_s``: past it the prompt is cancelled and the job fails."""

    kind: str
    record_id: str
    user: str
    graph: dict[str, Any]
    group_id: str | None = None
    position: int = 0
    lock: str | None = None
    deadline_s: float = DEFAULT_DEADLINE_S
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise invalid("kind", self.kind, list(KINDS))
        if not isinstance(self.graph, dict) or not self.graph:
            raise invalid("graph", str(self.graph)[:80], "a ComfyUI API-format graph (an object of nodes)")
        if not 1.0 <= float(self.deadline_s) <= 7 * 24 * 3600:
            raise invalid("deadline_s", self.deadline_s, "1 second to 7 days")

    @property
    def prompt_id(self) -> str:
        return prompt_id_for(self.record_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: dict[str, Any]) -> JobSpec:
        return cls(**data)


class JobQueue(Protocol):
    """The job queue a host gives the core."""

    async def enqueue(self, specs: list[JobSpec]) -> list[int]:
        """Queue the jobs (one transaction); their ids, in order."""
        ...

    async def cancel(self, job_id: int) -> bool:
        """Cancel a waiting job, or ask its worker to abort a running one; whether the queue knew it."""
        ...

    async def counts(self) -> dict[str, int]:
        """Jobs per state in the queue (todo, doing, ...)."""
        ...

    async def close(self) -> None:
        """Let go of the queue's connections."""
        ...
