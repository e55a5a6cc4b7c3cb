"""The tables of generation records (their history lives in ``migrations/``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("pending", "queued", "running", "completed", "failed", "cancelled")
FINAL = ("completed", "failed", "cancelled")


class Base(DeclarativeBase):
    pass


class Record(Base):
    __tablename__ = "atelier_records"
    __table_args__ = tuple(Index(f"ix_atelier_records_{c}_page", c, "created_at", "id")
                           for c in ("status", "workspace", "operation_type", "user"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    operation_type: Mapped[str] = mapped_column(String(64), index=True)
    workspace: Mapped[str] = mapped_column(String(128), index=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    prompt_text: Mapped[str] = mapped_column(Text, default="")
    prompt_version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_source: Mapped[str] = mapped_column(String(16), default="inline")
    repro_hash: Mapped[str] = mapped_column(String(64), index=True)
    comfy_prompt_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    graph: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # what was queued (replay)


class Feedback(Base):
    __tablename__ = "atelier_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("atelier_records.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class Choice(Base):
    """A variation the user kept from a batch (``batch``: the batch's id); the others of the batch were not."""

    __tablename__ = "atelier_choices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("atelier_records.id", ondelete="CASCADE"), index=True)
    batch: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[float] = mapped_column(Float)


class PromptFamily(Base):
    __tablename__ = "atelier_prompt_families"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)  # "<user>/<family>"
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class PromptVersion(Base):
    __tablename__ = "atelier_prompt_versions"
    __table_args__ = (UniqueConstraint("family", "version", name="uq_prompt_family_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    family: Mapped[str] = mapped_column(String(256), ForeignKey("atelier_prompt_families.name", ondelete="CASCADE"),
                                        index=True)
    version: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class Worker(Base):
    """A scale-out worker: one per ComfyUI (``comfy_url``, credentials removed), with its heartbeat and counts."""

    __tablename__ = "atelier_workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    comfy_url: Mapped[str] = mapped_column(String(512))
    host: Mapped[str] = mapped_column(String(256), default="")
    queue_worker_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    state: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[float] = mapped_column(Float)
    last_heartbeat: Mapped[float] = mapped_column(Float)
    current_job: Mapped[str | None] = mapped_column(String(32), nullable=True)  # a record id
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    """A queued generation (one per record, named by the record's id) and what became of it: its worker, its
    ComfyUI, its times. ``group_id`` and ``position``: the batch or storyboard it belongs to, and its place there;
    ``queue_job_id``: the queue's own id."""

    __tablename__ = "atelier_jobs"

    record_id: Mapped[str] = mapped_column(ForeignKey("atelier_records.id", ondelete="CASCADE"), primary_key=True)
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger, index=True, nullable=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    group_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), index=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    comfy_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float | None] = mapped_column(Float, nullable=True)  # 0-1, from ComfyUI's progress events
    enqueued_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Violation(Base):
    """A safety event: a content rating clamped or rejected, a prompt-variable value refused, a request refused
    because what it named is another user's."""

    __tablename__ = "atelier_violations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(64))
    asked: Mapped[str] = mapped_column(Text)
    applied: Mapped[str] = mapped_column(Text)
    why: Mapped[str] = mapped_column(Text)


class LLMCall(Base):
    """One call to an LLM endpoint during prompt enhancement (telemetry and provider health)."""

    __tablename__ = "atelier_llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    endpoint: Mapped[str] = mapped_column(String(512), index=True)  # shown without credentials
    backend: Mapped[str] = mapped_column(String(32))
    ok: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    workspace: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the route's; else the run's records'
    comfy_prompt_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)  # the run's
