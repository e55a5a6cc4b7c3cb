"""The record store: SQLAlchemy 2 over SQLite (WAL, busy timeout) or any URL, migrated by alembic on open.

Every write is one transaction. Listing uses a cursor (created_at, id) so pages never skip or
repeat rows while others write.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, func, select, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from ..base.errors import Conflict, NotFound, invalid
from .hashing import canonical, repro_hash
from .models import FINAL, STATUSES, Feedback, PromptFamily, PromptVersion, Record
from .record import Feedback as FeedbackEntry
from .record import GenerationRecord, RecordPage

MIGRATIONS = Path(__file__).parent / "migrations"
VARIABLE_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MAX_PAGE = 500
SETTABLE = ("comfy_prompt_id", "outputs", "scores", "error", "started_at", "finished_at")
TRANSITIONS = {"pending": {"queued", "running", "failed", "cancelled"}, "queued": {"running", "failed", "cancelled",
               "completed"}, "running": {"completed", "failed", "cancelled"}}


def migrate(engine: Engine, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def render(template: str, variables: dict[str, Any]) -> str:
    """``{{name}}`` substitution; a missing variable is an error naming it."""
    missing = sorted({m for m in VARIABLE_RE.findall(template) if m not in variables})
    if missing:
        raise invalid("variables", missing[0], f"values for {', '.join(missing)}",
                      f"the prompt uses {{{{{missing[0]}}}}}")
    return VARIABLE_RE.sub(lambda m: str(variables[m.group(1)]), template)


def _event_time(messages: dict[str, dict[str, Any]], kind: str) -> float | None:
    """The time (epoch seconds) of one of ComfyUI's execution events, as kept in its history."""
    stamp = messages.get(kind, {}).get("timestamp")
    return float(stamp) / 1000.0 if isinstance(stamp, (int, float)) else None


def _cursor(cursor: str) -> tuple[float, str]:
    """A next_cursor of a previous page: base64 of [created_at, id]; anything else names the cursor."""
    bad = invalid("cursor", cursor[:80], "a next_cursor from a previous page")
    try:
        created, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, UnicodeError, RecursionError):
        raise bad from None
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not isinstance(last_id, str):
        raise bad
    if not math.isfinite(created) or abs(created) > 1e12 or len(last_id) > 64:
        raise bad
    return float(created), last_id


class RecordStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        migrate(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    # --- prompts -----------------------------------------------------------------------------
    def add_prompt_version(self, family: str, template: str, description: str = "") -> dict[str, Any]:
        if not family or len(family) > 128:
            raise invalid("family", family, "a name of 1-128 characters")
        for attempt in range(20):
            try:
                self._ensure_family(family, description)
                with self.session.begin() as s:
                    s.get(PromptFamily, family, with_for_update=True)  # one writer per family (PostgreSQL)
                    latest = s.scalar(select(func.max(PromptVersion.version)).where(PromptVersion.family == family))
                    version = PromptVersion(id=uuid.uuid4().hex, family=family, version=(latest or 0) + 1,
                                            template=template, created_at=time.time())
                    s.add(version)
                return {"id": version.id, "family": family, "version": version.version, "template": template,
                        "variables": sorted(set(VARIABLE_RE.findall(template)))}
            except (IntegrityError, OperationalError):  # another writer took the number (or the lock): again
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
        raise Conflict(f"prompt family {family!r} is being written by others; retry", field="family", value=family)

    def _ensure_family(self, family: str, description: str) -> None:
        with self.session() as s:
            if s.get(PromptFamily, family) is not None:
                return
        try:
            with self.session.begin() as s:
                s.add(PromptFamily(name=family, description=description, created_at=time.time()))
        except IntegrityError:
            pass  # made by another writer meanwhile

    def prompt_version(self, family: str, version: int | None = None) -> PromptVersion:
        with self.session() as s:
            query = select(PromptVersion).where(PromptVersion.family == family)
            query = query.where(PromptVersion.version == version) if version else query.order_by(
                PromptVersion.version.desc())
            found = s.scalars(query.limit(1)).first()
        if found is None:
            raise NotFound(f"no prompt {family!r}" + (f" version {version}" if version else ""), field="family",
                           value=family)
        return found

    def prompt_families(self) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.execute(select(PromptVersion.family, func.max(PromptVersion.version)).group_by(
                PromptVersion.family)).all()
        return [{"family": f, "latest_version": v} for f, v in sorted(rows)]

    # --- records -----------------------------------------------------------------------------
    def create(self, operation_type: str, user: str, parameters: dict[str, Any], workspace: str = "default",
               prompt: str | None = None, prompt_family: str | None = None, prompt_version: int | None = None,
               variables: dict[str, Any] | None = None, status: str = "pending") -> GenerationRecord:
        """A new record; its prompt is inline text or a (latest or given) version of a family."""
        if status not in STATUSES:
            raise invalid("status", status, list(STATUSES))
        version_id, source = None, "inline"
        if prompt_family:
            version = self.prompt_version(prompt_family, prompt_version)
            text = render(version.template, variables or {})
            version_id, source = version.id, "versioned"
        else:
            text = render(prompt or "", variables or {})
        params = canonical({**parameters, "prompt": text})
        record = Record(id=uuid.uuid4().hex, status=status, operation_type=operation_type, workspace=workspace,
                        user=user, parameters=params, prompt_text=text, prompt_version_id=version_id,
                        prompt_source=source, repro_hash=repro_hash(params), created_at=time.time(), outputs={},
                        scores={})
        with self.session.begin() as s:
            s.add(record)
        return GenerationRecord.of(record)

    def get(self, record_id: str) -> GenerationRecord:
        """One record, with its feedback."""
        with self.session() as s:
            record = s.get(Record, record_id)
            if record is None:
                raise NotFound(f"no generation record {record_id!r}", field="id", value=record_id)
            feedback = tuple(FeedbackEntry(f.rating, f.comment, f.created_at)
                             for f in s.scalars(select(Feedback).where(Feedback.record_id == record_id)))
            return GenerationRecord.of(record, feedback)

    def identical(self, digest: str, exclude: str | None = None) -> list[str]:
        with self.session() as s:
            ids = s.scalars(select(Record.id).where(Record.repro_hash == digest).order_by(Record.created_at))
            return [i for i in ids if i != exclude]

    def page(self, status: str | None = None, workspace: str | None = None, operation_type: str | None = None,
             limit: int = 50, cursor: str | None = None) -> RecordPage:
        if status is not None and status not in STATUSES:
            raise invalid("status", status, list(STATUSES))
        if not 1 <= limit <= MAX_PAGE:
            raise invalid("limit", limit, f"1-{MAX_PAGE}")
        query = select(Record)
        for column, value in ((Record.status, status), (Record.workspace, workspace),
                              (Record.operation_type, operation_type)):
            if value is not None:
                query = query.where(column == value)
        if cursor:
            created, last_id = _cursor(cursor)
            query = query.where(tuple_(Record.created_at, Record.id) < tuple_(created, last_id))  # index-friendly
        query = query.order_by(Record.created_at.desc(), Record.id.desc()).limit(limit + 1)
        with self.session() as s:
            rows = list(s.scalars(query))
        items = [GenerationRecord.of(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = base64.urlsafe_b64encode(json.dumps([last.created_at, last.id]).encode()).decode()
        return RecordPage(items, next_cursor)

    def set_status(self, record_id: str, status: str, **fields: Any) -> GenerationRecord:
        """Move a record along pending -> queued -> running -> completed/failed/cancelled."""
        if status not in STATUSES:
            raise invalid("status", status, list(STATUSES))
        with self.session.begin() as s:
            record = s.get(Record, record_id, with_for_update=True)
            if record is None:
                raise NotFound(f"no generation record {record_id!r}", field="id", value=record_id)
            if status != record.status and status not in TRANSITIONS.get(record.status, set()):
                raise Conflict(f"record {record_id} is {record.status}; it cannot become {status}",
                               field="status", value=status, accepted=sorted(TRANSITIONS.get(record.status, [])))
            record.status = status
            now = time.time()
            if status == "running" and record.started_at is None:
                record.started_at = now
            if status in FINAL:
                record.finished_at = now
            for key, value in fields.items():
                if key not in SETTABLE:
                    raise invalid(key, key, list(SETTABLE))
                if value is not None or key not in ("started_at", "finished_at"):
                    setattr(record, key, value)
            return GenerationRecord.of(record)

    def mark_running(self, comfy_prompt_id: str, started_at: float | None = None) -> list[str]:
        """ComfyUI started executing a prompt: its pending or queued records become running."""
        moved = []
        with self.session() as s:
            ids = list(s.scalars(select(Record.id).where(Record.comfy_prompt_id == comfy_prompt_id)
                                 .where(Record.status.in_(("pending", "queued")))))
        for record_id in ids:
            try:
                self.set_status(record_id, "running", started_at=started_at)
                moved.append(record_id)
            except Conflict:
                continue  # cancelled or finished meanwhile
        return moved

    def feedback(self, record_id: str, rating: Any, comment: Any = "") -> GenerationRecord:
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise invalid("rating", rating, "a whole number from 1 to 5")
        if not isinstance(comment, str) or len(comment) > 5000:
            raise invalid("comment", type(comment).__name__, "text of at most 5000 characters")
        with self.session.begin() as s:
            if s.get(Record, record_id) is None:
                raise NotFound(f"no generation record {record_id!r}", field="id", value=record_id)
            s.add(Feedback(record_id=record_id, rating=rating, comment=comment, created_at=time.time()))
        return self.get(record_id)

    def for_prompt(self, comfy_prompt_id: str) -> list[GenerationRecord]:
        """Every record of a ComfyUI prompt, oldest first."""
        with self.session() as s:
            rows = s.scalars(select(Record).where(Record.comfy_prompt_id == comfy_prompt_id)
                             .order_by(Record.created_at))
            return [GenerationRecord.of(r) for r in rows]

    def open_for_prompt(self, comfy_prompt_id: str) -> list[str]:
        """Records of a ComfyUI prompt that have not finished yet."""
        with self.session() as s:
            return list(s.scalars(select(Record.id).where(Record.comfy_prompt_id == comfy_prompt_id)
                                  .where(Record.status.in_(("pending", "queued", "running")))))

    def finish_from_history(self, comfy_prompt_id: str, item: dict[str, Any]) -> list[str]:
        """Completes or fails the open records of a finished prompt from its history entry."""
        status = (item.get("status") or {}).get("status_str")
        if status not in ("success", "error"):
            return []
        outputs: dict[str, Any] = {}
        for node_id, output in (item.get("outputs") or {}).items():
            images = [i.get("filename") for i in output.get("images", []) if isinstance(i, dict)]
            if images:
                outputs[node_id] = images
        messages = {m[0]: m[1] for m in (item.get("status") or {}).get("messages", [])
                    if isinstance(m, (list, tuple)) and len(m) == 2 and isinstance(m[1], dict)}
        error = messages.get("execution_error", {}).get("exception_message") if status == "error" else None
        started, finished = _event_time(messages, "execution_start"), None
        for kind in ("execution_success", "execution_error", "execution_interrupted"):
            finished = finished or _event_time(messages, kind)
        done = []
        for record_id in self.open_for_prompt(comfy_prompt_id):
            fields: dict[str, Any] = {"outputs": outputs, "started_at": started, "finished_at": finished}
            if error:
                fields["error"] = str(error)[:5000]
            try:
                self.set_status(record_id, "completed" if status == "success" else "failed", **fields)
                done.append(record_id)
            except Conflict:
                continue  # cancelled meanwhile: it stays cancelled
        return done

    def telemetry(self, since: float | None = None) -> list[dict[str, Any]]:
        """Duration percentiles (p50/p95/p99, seconds) of completed records per operation type and tier."""
        query = select(Record.operation_type, Record.parameters, Record.started_at, Record.finished_at).where(
            Record.status == "completed", Record.started_at.is_not(None), Record.finished_at.is_not(None))
        if since is not None:
            query = query.where(Record.created_at >= since)
        groups: dict[tuple[str, str], list[float]] = {}
        with self.session() as s:
            for operation, params, started, finished in s.execute(query):
                tier = str(((params or {}).get("quality") or {}).get("preset") or "-")
                groups.setdefault((operation, tier), []).append(max(0.0, finished - started))
        out = []
        for (operation, tier), durations in sorted(groups.items()):
            ordered = sorted(durations)

            def pct(q: float, values: list[float] = ordered) -> float:
                return round(values[min(len(values) - 1, int(q * len(values)))], 3)

            out.append({"operation_type": operation, "tier": tier, "runs": len(ordered),
                        "p50_s": pct(0.5), "p95_s": pct(0.95), "p99_s": pct(0.99)})
        return out

    def count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Record)) or 0)


__all__ = ["RecordStore", "render", "sqlite_url", "migrate", "make_engine"]
