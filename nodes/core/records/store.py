"""The record store: SQLAlchemy 2 over SQLite (WAL, busy timeout) or any URL, migrated by alembic on open.

Every write is one transaction. Listing uses a cursor (created_at, id) so pages never skip or
repeat rows while others write. Records, their feedback and prompt families belong to one user: a ``user``
given to a read or a write limits it to that user's, and anything else is "not found" (the same answer as
for what does not exist). Stored text is bounded: a rendered prompt, a comment, the parameters.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, func, select, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from ..base.errors import Conflict, InvalidInput, NotFound, TooLarge, invalid
from ..base.jsonsafe import dig
from .hashing import canonical, run_hash
from .models import FINAL, STATUSES, Choice, Feedback, PromptFamily, PromptVersion, Record
from .record import Feedback as FeedbackEntry
from .record import GenerationRecord, RecordPage

MIGRATIONS = Path(__file__).parent / "migrations"
VARIABLE_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
FAMILY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PAGE = 500
MAX_PROMPT = 20_000           # characters of a rendered prompt (or a template)
MAX_VARIABLE = 4_000          # characters of one variable's value
MAX_PARAMETERS = 512 * 1024   # bytes of a record's parameters as JSON
MAX_COMMENT = 5_000
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


class MissingVariable(InvalidInput):
    """The prompt uses a ``{{variable}}`` that has no value (a 400; the validation rule ``missing_variable``)."""


def with_addition(prompt: str, addition: str | None) -> str:
    """A rendered prompt with an addition appended (a social context's: ``"…, fully clothed"``)."""
    return (f"{prompt}, {addition}" if prompt else addition) if addition else prompt


def verbatim(text: str) -> tuple[str, dict[str, str]]:
    """A template and variables that render to ``text`` exactly, though ``text`` holds ``{{…}}`` (a variable's
    value once): each one becomes a variable whose value is itself."""
    values: dict[str, str] = {}

    def keep(match: re.Match[str]) -> str:
        name = f"_v{len(values)}"
        values[name] = match.group(0)
        return "{{" + name + "}}"

    return VARIABLE_RE.sub(keep, text), values


def render(template: str, variables: dict[str, Any]) -> str:
    """``{{name}}`` substitution; a missing variable is an error naming it. The result is bounded (MAX_PROMPT)
    before it is built, so a short request cannot make a huge prompt."""
    if len(template) > MAX_PROMPT:
        raise TooLarge(f"the prompt template has {len(template)} characters; at most {MAX_PROMPT}",
                       field="prompt", value=len(template), accepted=f"at most {MAX_PROMPT} characters")
    missing = sorted({m for m in VARIABLE_RE.findall(template) if m not in variables})
    if missing:
        refused = invalid("variables", missing[0], f"values for {', '.join(missing)}",
                          f"the prompt uses {{{{{missing[0]}}}}}")
        raise MissingVariable(refused.message, field=refused.field, value=refused.value, accepted=refused.accepted)
    values = {name: str(value) for name, value in variables.items() if isinstance(name, str)}
    for name, value in values.items():
        if len(value) > MAX_VARIABLE:
            raise TooLarge(f"variable {name!r} has {len(value)} characters; at most {MAX_VARIABLE}",
                           field=f"variables.{name}", value=len(value), accepted=f"at most {MAX_VARIABLE} characters")
    size = len(VARIABLE_RE.sub("", template)) + sum(len(values[m]) for m in VARIABLE_RE.findall(template))
    if size > MAX_PROMPT:
        raise TooLarge(f"the rendered prompt would have {size} characters; at most {MAX_PROMPT}", field="prompt",
                       value=size, accepted=f"at most {MAX_PROMPT} characters")
    return VARIABLE_RE.sub(lambda m: values[m.group(1)], template)


def family_key(user: str, family: Any) -> str:
    """A prompt family's key: its owner and its name (a name is 1-64 letters, digits, . _ -)."""
    if not isinstance(family, str) or not FAMILY_RE.match(family):
        raise invalid("family", str(family)[:80], "a name of 1-64 letters, digits, '.', '_' or '-'")
    return f"{user}/{family}"


def _bounded_parameters(parameters: dict[str, Any]) -> None:
    size = len(json.dumps(parameters, default=str))
    if size > MAX_PARAMETERS:
        raise TooLarge(f"the parameters are {size} bytes as JSON; at most {MAX_PARAMETERS}", field="parameters",
                       value=size, accepted=f"at most {MAX_PARAMETERS} bytes")


def _event_time(messages: dict[str, dict[str, Any]], kind: str) -> float | None:
    """The time (epoch seconds) of one of ComfyUI's execution events, as kept in its history."""
    stamp = messages.get(kind, {}).get("timestamp")
    return float(stamp) / 1000.0 if isinstance(stamp, (int, float)) else None


def _best_score(output: dict[str, Any]) -> float | None:
    """The best overall score a Rank Select node reported in a history entry's outputs, if any."""
    for selection in output.get("atelier_selection", []) or []:
        best = selection.get("best_score") if isinstance(selection, dict) else None
        if isinstance(best, (int, float)) and math.isfinite(best):
            return float(best)
    return None


def _cursor(cursor: str) -> tuple[float, str]:
    """A next_cursor of a previous page: base64 of [created_at, id]; anything else names the cursor."""
    bad = invalid("cursor", cursor[:80], "a next_cursor from a previous page")
    try:
        created, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, UnicodeError, RecursionError):
        raise bad from None
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not isinstance(last_id, str):
        raise bad
    if not -1e12 <= created <= 1e12 or not math.isfinite(created) or len(last_id) > 64:  # huge ints: no float
        raise bad
    return float(created), last_id


def _record_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64


class RecordStore:
    """``on_isolation(user, asked, why)``: told of every request for another user's record (the safety log)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        migrate(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)
        self.on_isolation: Callable[[str, str, str], None] | None = None

    def _isolation(self, user: str, record_id: str) -> None:
        if self.on_isolation is not None:
            self.on_isolation(user, f"record {record_id[:64]}", "the record is another user's")

    # --- prompts -----------------------------------------------------------------------------
    def add_prompt_version(self, user: str, name: str, template: str, description: str = "") -> dict[str, Any]:
        """A new version of ``user``'s prompt family ``name`` (made on its first version)."""
        family = family_key(user, name)
        if len(template) > MAX_PROMPT:
            raise TooLarge(f"the template has {len(template)} characters; at most {MAX_PROMPT}", field="template",
                           value=len(template), accepted=f"at most {MAX_PROMPT} characters")
        description = description[:2000]
        for attempt in range(20):
            try:
                self._ensure_family(family, description)
                with self.session.begin() as s:
                    s.get(PromptFamily, family, with_for_update=True)  # one writer per family (PostgreSQL)
                    latest = s.scalar(select(func.max(PromptVersion.version)).where(PromptVersion.family == family))
                    version = PromptVersion(id=uuid.uuid4().hex, family=family, version=(latest or 0) + 1,
                                            template=template, created_at=time.time())
                    s.add(version)
                return {"id": version.id, "family": name, "version": version.version, "template": template,
                        "variables": sorted(set(VARIABLE_RE.findall(template)))}
            except (IntegrityError, OperationalError):  # another writer took the number (or the lock): again
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
        raise Conflict(f"prompt family {name!r} is being written by others; retry", field="family", value=name)

    def _ensure_family(self, family: str, description: str) -> None:
        with self.session() as s:
            if s.get(PromptFamily, family) is not None:
                return
        try:
            with self.session.begin() as s:
                s.add(PromptFamily(name=family, description=description, created_at=time.time()))
        except IntegrityError:
            pass  # made by another writer meanwhile

    def prompt_version(self, user: str, name: str, version: int | None = None) -> PromptVersion:
        """A version (the latest by default) of ``user``'s prompt family ``name``."""
        family = family_key(user, name)
        with self.session() as s:
            query = select(PromptVersion).where(PromptVersion.family == family)
            query = query.where(PromptVersion.version == version) if version else query.order_by(
                PromptVersion.version.desc())
            found = s.scalars(query.limit(1)).first()
        if found is None:
            raise NotFound(f"no prompt {name!r}" + (f" version {version}" if version else ""), field="family",
                           value=name)
        return found

    def prompt_families(self, user: str) -> list[dict[str, Any]]:
        """``user``'s prompt families and their latest version."""
        prefix = f"{user}/"
        with self.session() as s:
            rows = s.execute(select(PromptVersion.family, func.max(PromptVersion.version))
                             .where(PromptVersion.family.startswith(prefix, autoescape=True))
                             .group_by(PromptVersion.family)).all()
        return [{"family": f.removeprefix(prefix), "latest_version": v} for f, v in sorted(rows)]

    # --- records -----------------------------------------------------------------------------
    def create(self, operation_type: str, user: str, parameters: dict[str, Any], workspace: str = "default",
               prompt: str | None = None, prompt_family: str | None = None, prompt_version: int | None = None,
               variables: dict[str, Any] | None = None, status: str = "pending", started_at: float | None = None,
               finished_at: float | None = None, graph: dict[str, Any] | None = None,
               prompt_addition: str | None = None) -> GenerationRecord:
        """A new record; its prompt is inline text or a (latest or given) version of a family, rendered, then
        ``prompt_addition`` appended (a social context's). A run that already happened (the Python API) is
        written complete, with its times, in one transaction."""
        if status not in STATUSES:
            raise invalid("status", status, list(STATUSES))
        version_id, source = None, "inline"
        if prompt_family:
            version = self.prompt_version(user, prompt_family, prompt_version)
            text = render(version.template, variables or {})
            version_id, source = version.id, "versioned"
        else:
            text = render(prompt or "", variables or {})
        text = with_addition(text, prompt_addition)
        params = canonical({**parameters, "prompt": text}, frozenset())
        _bounded_parameters(params)
        record = Record(id=uuid.uuid4().hex, status=status, operation_type=operation_type, workspace=workspace,
                        user=user, parameters=params, prompt_text=text, prompt_version_id=version_id,
                        prompt_source=source, repro_hash=run_hash(parameters, text, graph), created_at=time.time(),
                        outputs={}, scores={}, started_at=started_at, finished_at=finished_at, graph=graph)
        with self.session.begin() as s:
            s.add(record)
        return GenerationRecord.of(record)

    def get(self, record_id: str, user: str | None = None) -> GenerationRecord:
        """One record, with its feedback; another user's is not found."""
        with self.session() as s:
            record = s.get(Record, record_id) if _record_id(record_id) else None
            if record is not None and user is not None and record.user != user:
                self._isolation(user, record_id)
            if record is None or (user is not None and record.user != user):
                raise NotFound(f"no generation record {str(record_id)[:80]!r}", field="id", value=str(record_id)[:80])
            feedback = tuple(FeedbackEntry(f.rating, f.comment, f.created_at)
                             for f in s.scalars(select(Feedback).where(Feedback.record_id == record_id)))
            return GenerationRecord.of(record, feedback)

    def graph(self, record_id: str, user: str | None = None) -> dict[str, Any] | None:
        """The graph a record queued, or None (recorded without one, or before graphs were kept)."""
        with self.session() as s:
            row = s.get(Record, record_id) if _record_id(record_id) else None
            if row is not None and user is not None and row.user != user:
                self._isolation(user, record_id)
            if row is None or (user is not None and row.user != user):
                raise NotFound(f"no generation record {str(record_id)[:80]!r}", field="id", value=str(record_id)[:80])
            return row.graph

    def produced_by(self, user: str | None, class_type: str, node_id: str | None = None, status: str | None = None,
                    workspace: str | None = None, operation_type: str | None = None,
                    scan: int = 500) -> list[GenerationRecord]:
        """The records (``user``'s, newest first, among the newest ``scan`` that pass the filters) whose graph has
        a node of ``class_type`` (with id ``node_id`` when given): what a node of a workflow produced."""
        if status is not None and status not in STATUSES:
            raise invalid("status", status, list(STATUSES))
        query = select(Record).where(Record.graph.is_not(None))
        for column, value in ((Record.user, user), (Record.status, status), (Record.workspace, workspace),
                              (Record.operation_type, operation_type)):
            if value is not None:
                query = query.where(column == value)
        out = []
        with self.session() as s:
            for row in s.scalars(query.order_by(Record.created_at.desc()).limit(scan)):
                graph = row.graph if isinstance(row.graph, dict) else {}
                nodes = [graph.get(node_id)] if node_id is not None else list(graph.values())
                if any(isinstance(n, dict) and n.get("class_type") == class_type for n in nodes):
                    out.append(GenerationRecord.of(row))
        return out

    def identical(self, digest: str, exclude: str | None = None, user: str | None = None) -> list[str]:
        """The ids of earlier records with this reproducibility hash (``user``'s only, when given)."""
        query = select(Record.id).where(Record.repro_hash == digest)
        if user is not None:
            query = query.where(Record.user == user)
        with self.session() as s:
            return [i for i in s.scalars(query.order_by(Record.created_at)) if i != exclude]

    def page(self, status: str | None = None, workspace: str | None = None, operation_type: str | None = None,
             limit: int = 50, cursor: str | None = None, user: str | None = None) -> RecordPage:
        if status is not None and status not in STATUSES:
            raise invalid("status", status, list(STATUSES))
        if not 1 <= limit <= MAX_PAGE:
            raise invalid("limit", limit, f"1-{MAX_PAGE}")
        query = select(Record)
        for column, value in ((Record.status, status), (Record.workspace, workspace),
                              (Record.operation_type, operation_type), (Record.user, user)):
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

    def feedback(self, record_id: str, rating: Any, comment: Any = "", user: str | None = None) -> GenerationRecord:
        """Rate a record (``user``'s only, when given)."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise invalid("rating", rating, "a whole number from 1 to 5")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
            raise invalid("comment", type(comment).__name__, f"text of at most {MAX_COMMENT} characters")
        self.get(record_id, user)  # another user's record is not found
        with self.session.begin() as s:
            s.add(Feedback(record_id=record_id, rating=rating, comment=comment, created_at=time.time()))
        return self.get(record_id, user)

    def keep(self, record_id: str, user: str) -> GenerationRecord:
        """The user kept this variation of its batch (a record whose parameters name ``batch.batch_id``)."""
        record = self.get(record_id, user)
        batch = (record.parameters.get("batch") or {}).get("batch_id") if isinstance(record.parameters, dict) else None
        if not isinstance(batch, str) or not batch:
            raise invalid("id", record_id, "a generation of a batch (its record names the batch)")
        with self.session.begin() as s:
            s.add(Choice(record_id=record_id, batch=batch, user=user, created_at=time.time()))
        return record

    def choices(self, user: str, limit: int = 200) -> list[tuple[GenerationRecord, list[GenerationRecord]]]:
        """The user's newest choices: (the kept record, the other records of its batch)."""
        with self.session() as s:
            rows = list(s.scalars(select(Choice).where(Choice.user == user).order_by(Choice.id.desc())
                                  .limit(max(1, min(limit, 1000)))))
            out = []
            for choice in rows:
                kept = s.get(Record, choice.record_id)
                if kept is None:
                    continue
                others = [GenerationRecord.of(r) for r in s.scalars(
                    select(Record).where(Record.user == user, Record.id != kept.id,
                                         Record.operation_type == kept.operation_type,
                                         Record.created_at.between(kept.created_at - 86_400, kept.created_at + 86_400)))
                    if dig(r.parameters, "batch", "batch_id") == choice.batch]
                out.append((GenerationRecord.of(kept), others))
            return out

    def with_use_case(self, user: str, key: str, limit: int = 200) -> list[GenerationRecord]:
        """The user's newest records (of the newest 2,000) whose parameters name this use case (``use_case``,
        lowercased)."""
        out: list[GenerationRecord] = []
        cursor = None
        for _ in range(4):
            page = self.page(limit=MAX_PAGE, cursor=cursor, user=user)
            out += [r for r in page.items if isinstance(r.parameters, dict)
                    and isinstance(r.parameters.get("use_case"), str)
                    and " ".join(r.parameters["use_case"].lower().replace("_", " ").split()) == key]
            cursor = page.next_cursor
            if cursor is None or len(out) >= limit:
                break
        return out[:limit]

    def feedback_version(self) -> tuple[int, int]:
        """(newest feedback id, newest choice id): changes whenever someone rates or keeps something."""
        with self.session() as s:
            return (int(s.scalar(select(func.max(Feedback.id))) or 0), int(s.scalar(select(func.max(Choice.id))) or 0))

    def rated(self, user: str, limit: int = 500) -> list[tuple[GenerationRecord, int]]:
        """The user's rated records, newest rating first, each with its latest rating (what learning reads)."""
        latest = (select(Feedback.record_id, func.max(Feedback.id).label("last"))
                  .group_by(Feedback.record_id).subquery())
        query = (select(Record, Feedback.rating).join(latest, latest.c.record_id == Record.id)
                 .join(Feedback, Feedback.id == latest.c.last).where(Record.user == user)
                 .order_by(latest.c.last.desc()).limit(max(1, min(limit, 5000))))
        with self.session() as s:
            return [(GenerationRecord.of(record), int(rating)) for record, rating in s.execute(query)]

    def for_prompt(self, comfy_prompt_id: str, user: str | None = None) -> list[GenerationRecord]:
        """Every record of a ComfyUI prompt (``user``'s only, when given), oldest first."""
        query = select(Record).where(Record.comfy_prompt_id == comfy_prompt_id)
        if user is not None:
            query = query.where(Record.user == user)
        with self.session() as s:
            return [GenerationRecord.of(r) for r in s.scalars(query.order_by(Record.created_at))]

    def open_for_prompt(self, comfy_prompt_id: str) -> list[str]:
        """Records of a ComfyUI prompt that have not finished yet."""
        with self.session() as s:
            return list(s.scalars(select(Record.id).where(Record.comfy_prompt_id == comfy_prompt_id)
                                  .where(Record.status.in_(("pending", "queued", "running")))))

    def finish_from_history(self, comfy_prompt_id: str, item: dict[str, Any],
                            extra_outputs: dict[str, Any] | None = None) -> list[str]:
        """Completes or fails the open records of a finished prompt from its history entry. The outputs are
        ComfyUI's images by node id; what Atelier adds is under ``outputs.atelier`` (a mapping, so nothing reads it
        as images): the nodes ComfyUI took from its cache, and ``extra_outputs["atelier"]`` (e.g. a scale-out
        worker's files, name, device and per-node timings)."""
        status = (item.get("status") or {}).get("status_str")
        if status not in ("success", "error"):
            return []
        outputs: dict[str, Any] = {}
        scores: dict[str, Any] = {}
        for node_id, output in (item.get("outputs") or {}).items():
            if not isinstance(output, dict):
                continue
            images = [_image_name(i) for i in output.get("images", []) if isinstance(i, dict) and i.get("filename")]
            if images:
                outputs[node_id] = images
            best = _best_score(output)
            if best is not None:
                scores["best"] = max(best, scores.get("best", best))
        messages = {m[0]: m[1] for m in (item.get("status") or {}).get("messages", [])
                    if isinstance(m, (list, tuple)) and len(m) == 2 and isinstance(m[1], dict)}
        error = messages.get("execution_error", {}).get("exception_message") if status == "error" else None
        cached = messages.get("execution_cached", {}).get("nodes")
        ours: dict[str, Any] = dict((extra_outputs or {}).get("atelier") or {})
        if isinstance(cached, list) and cached:
            ours["cached"] = [str(n) for n in cached[:500]]  # what ComfyUI took from its cache
        started, finished = _event_time(messages, "execution_start"), None
        for kind in ("execution_success", "execution_error", "execution_interrupted"):
            finished = finished or _event_time(messages, kind)
        done = []
        for record_id in self.open_for_prompt(comfy_prompt_id):
            fields: dict[str, Any] = {"outputs": {**outputs, **(extra_outputs or {}), **({"atelier": ours} if ours else {})},
                                      "started_at": started, "finished_at": finished}
            if scores:
                fields["scores"] = scores
            if error:
                fields["error"] = str(error)[:5000]
            try:
                self.set_status(record_id, "completed" if status == "success" else "failed", **fields)
                done.append(record_id)
            except Conflict:
                continue  # cancelled meanwhile: it stays cancelled
        return done

    def telemetry(self, since: float | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Duration percentiles (p50/p95/p99, seconds) of completed records per operation type and tier."""
        query = select(Record.operation_type, Record.parameters, Record.started_at, Record.finished_at).where(
            Record.status == "completed", Record.started_at.is_not(None), Record.finished_at.is_not(None))
        if user is not None:
            query = query.where(Record.user == user)
        if since is not None:
            query = query.where(Record.created_at >= since)
        groups: dict[tuple[str, str], list[float]] = {}
        with self.session() as s:
            for operation, params, started, finished in s.execute(query):
                tier = str(dig(params, "quality", "preset") or "-")[:64]
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


def _image_name(image: dict[str, Any]) -> str:
    """An image of a history entry as ComfyUI names it: ``subfolder/file.png``, with `` [temp]`` for a preview
    (ComfyUI's annotated form: its /view finds it with the subfolder split off)."""
    name = f"{image['subfolder']}/{image['filename']}" if image.get("subfolder") else str(image["filename"])
    kind = image.get("type") or "output"
    return name if kind == "output" else f"{name} [{kind}]"
