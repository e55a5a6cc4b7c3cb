"""LLM calls, as the enhancement backends report them (``remote/llm.py``'s observer): stored per user in the
records' database, and each endpoint's health (success rate, p50/p95 latency, last error) from its recent calls,
with the circuit breaker's state.

The user a call belongs to is the one whose enhancement made it: ``calling_user`` (a context variable the
enhancement route and the Prompt Enhance node set around their work). Its workspace is the route's
``workspace`` (``calling_workspace``), or for a Prompt Enhance node's call, the workspace of the records of the
ComfyUI prompt it ran in (``calling_prompt``), or ``default``.
"""

from __future__ import annotations

import contextvars
import logging
import statistics
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ..records.models import LLMCall, Record

log = logging.getLogger("atelier")
calling_user: contextvars.ContextVar[str] = contextvars.ContextVar("atelier_calling_user", default="default")
# the ComfyUI prompt a Prompt Enhance node runs in: its calls belong to that run's telemetry
calling_prompt: contextvars.ContextVar[str | None] = contextvars.ContextVar("atelier_calling_prompt", default=None)
# the workspace the enhancement route was asked for
calling_workspace: contextvars.ContextVar[str | None] = contextvars.ContextVar("atelier_calling_workspace",
                                                                               default=None)
WINDOW = 200  # recent calls per endpoint behind its health
Q = TypeVar("Q")  # a select
DEFAULT_WORKSPACE = "default"  # a record's default workspace, and a call's without one


def window(query: Q, user_column: Any, time_column: Any, user: str | None, since: float | None,
           until: float | None) -> Q:
    """A select narrowed to ``user``'s rows (None: everyone's) created in [since, until)."""
    narrowed: Any = query
    if user is not None:
        narrowed = narrowed.where(user_column == user)
    if since is not None:
        narrowed = narrowed.where(time_column >= since)
    if until is not None:
        narrowed = narrowed.where(time_column < until)
    return narrowed  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Call:
    endpoint: str  # without credentials
    backend: str
    ok: bool
    latency_ms: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


class LLMCalls:
    def __init__(self, session: sessionmaker[Session]) -> None:
        self.session = session

    def add(self, call: Call, user: str | None = None) -> None:
        """One call (never fails the enhancement: a call that cannot be stored is logged)."""
        try:
            with self.session.begin() as s:
                s.add(LLMCall(user=(user or calling_user.get())[:128], created_at=time.time(),
                              endpoint=call.endpoint[:512], backend=call.backend[:32], ok=call.ok,
                              latency_ms=round(call.latency_ms, 1), prompt_tokens=call.prompt_tokens,
                              completion_tokens=call.completion_tokens,
                              error=call.error[:1000] if call.error else None,
                              comfy_prompt_id=calling_prompt.get(), workspace=calling_workspace.get()))
        except Exception:
            log.exception("Atelier: an LLM call's telemetry could not be stored")

    def health(self, circuit: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """Per endpoint: calls in its window, success rate, p50/p95 latency, last error, circuit state
        (``circuit``: endpoint → seconds it stays open)."""
        with self.session() as s:
            endpoints = list(s.scalars(select(LLMCall.endpoint).distinct()))
            out = []
            for endpoint in sorted(endpoints):
                rows = s.scalars(select(LLMCall).where(LLMCall.endpoint == endpoint)
                                 .order_by(LLMCall.id.desc()).limit(WINDOW)).all()
                ok = [r for r in rows if r.ok]
                failed = next((r for r in rows if not r.ok), None)
                latencies = [r.latency_ms for r in ok]
                open_s = (circuit or {}).get(endpoint)
                out.append({
                    "endpoint": endpoint, "backend": rows[0].backend if rows else "", "calls": len(rows),
                    "success_rate": round(len(ok) / len(rows), 3) if rows else None,
                    "p50_ms": _pct(latencies, 0.5), "p95_ms": _pct(latencies, 0.95),
                    "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
                    "last_error": failed.error if failed else None,
                    "last_error_at": failed.created_at if failed else None,
                    "circuit": "open" if open_s else "closed", "circuit_open_s": round(open_s, 1) if open_s else 0})
            return out

    def totals(self, user: str | None, since: float | None,
               until: float | None) -> dict[tuple[str, str, str], dict[str, Any]]:
        """(user, day, workspace) → calls, failures, tokens, latencies."""
        query = select(LLMCall.user, LLMCall.created_at, LLMCall.ok, LLMCall.latency_ms, LLMCall.prompt_tokens,
                       LLMCall.completion_tokens, LLMCall.workspace, LLMCall.comfy_prompt_id)
        query = window(query, LLMCall.user, LLMCall.created_at, user, since, until)
        out: dict[tuple[str, str, str], dict[str, Any]] = {}
        with self.session() as s:
            rows = s.execute(query.limit(200_000)).all()
            runs = self._run_workspaces(s, {r[7] for r in rows if r[6] is None and r[7]})
        for who, at, ok, latency, tokens_in, tokens_out, workspace, prompt_id in rows:
            day = time.strftime("%Y-%m-%d", time.gmtime(at))
            where = workspace or runs.get(prompt_id or "") or DEFAULT_WORKSPACE
            entry = out.setdefault((who, day, where), {"llm_calls": 0, "llm_failures": 0, "llm_tokens": 0,
                                                       "llm_latency_ms": []})
            entry["llm_calls"] += 1
            entry["llm_failures"] += 0 if ok else 1
            entry["llm_tokens"] += (tokens_in or 0) + (tokens_out or 0)
            entry["llm_latency_ms"].append(latency)
        return out

    @staticmethod
    def _run_workspaces(s: Session, prompt_ids: set[str]) -> dict[str, str]:
        """The workspace of each ComfyUI prompt's records (its first record's, when they differ)."""
        out: dict[str, str] = {}
        ids = sorted(prompt_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for prompt_id, workspace in s.execute(select(Record.comfy_prompt_id, Record.workspace)
                                                  .where(Record.comfy_prompt_id.in_(chunk))
                                                  .order_by(Record.created_at)):
                out.setdefault(str(prompt_id), workspace)
        return out

    def of_prompt(self, comfy_prompt_id: str | None) -> dict[str, Any]:
        """The LLM calls made during one ComfyUI prompt: count, failures, tokens, total and mean latency."""
        if not comfy_prompt_id:
            return {"llm_calls": 0, "llm_failures": 0, "llm_tokens": 0, "llm_latency_ms": 0.0}
        with self.session() as s:
            rows = s.scalars(select(LLMCall).where(LLMCall.comfy_prompt_id == comfy_prompt_id).limit(10_000)).all()
        return {"llm_calls": len(rows), "llm_failures": sum(not r.ok for r in rows),
                "llm_tokens": sum((r.prompt_tokens or 0) + (r.completion_tokens or 0) for r in rows),
                "llm_latency_ms": round(sum(r.latency_ms for r in rows), 1),
                "endpoints": sorted({r.endpoint for r in rows})}

    def count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(LLMCall)) or 0)
