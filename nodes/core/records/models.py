"""The tables of generation records (their history lives in ``migrations/``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
