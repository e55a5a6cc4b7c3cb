"""Totals per user, workspace and day, and the charts' series, from the records (device time: ComfyUI's own
start and end of each run; cost: device time x the rate of the device kind) and the LLM calls.

A record's device kind: ``outputs.atelier.device`` (a scale-out worker's GPU), else ``parameters.device``, else the
host's device (``reference`` outside ComfyUI).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..base.data import PRESETS_DIR, read_yaml
from ..base.errors import invalid
from ..base.jsonsafe import dig
from ..records.models import Record
from ..records.store import RecordStore
from .llm import LLMCalls, window

MAX_RECORDS = 200_000


@dataclass(frozen=True)
class Rates:
    by_kind: dict[str, float]
    default: float
    buckets: list[float]

    @classmethod
    def load(cls, override_default: float | None = None) -> Rates:
        table = read_yaml(PRESETS_DIR / "telemetry.yaml")
        rates = {str(k).lower(): float(v) for k, v in (table.get("rates_usd_per_hour") or {}).items()}
        default = float(override_default if override_default is not None else table.get("default_usd_per_hour", 0.8))
        return cls(rates, default, [float(b) for b in table.get("score_buckets") or [0, 50, 100]])

    def rate(self, device: str | None) -> float:
        name = (device or "").lower()
        return next((r for kind, r in self.by_kind.items() if kind in name), self.default)

    def cost(self, seconds: float, device: str | None) -> float:
        """USD for ``seconds`` of device time on ``device``."""
        return seconds / 3600.0 * self.rate(device)


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def run_telemetry(record: Any, rates: Rates, host_device: str) -> dict[str, Any]:
    """One record's device time and cost (None while it has not run)."""
    device = str(dig(record.outputs, "atelier", "device") or dig(record.parameters, "device") or host_device)
    seconds = (record.finished_at - record.started_at) if record.finished_at and record.started_at else None
    return {"device": device, "device_s": round(seconds, 3) if seconds is not None else None,
            "rate_usd_per_hour": rates.rate(device),
            "cost_usd": round(rates.cost(seconds, device), 6) if seconds is not None else None}


def telemetry(store: RecordStore, calls: LLMCalls, rates: Rates, host_device: str, user: str | None,
              since: float | None = None, until: float | None = None) -> dict[str, Any]:
    """Totals per day, per workspace and per user; per tier and day the device time and cost; the best-score
    distribution per tier; ``user`` None: everyone's."""
    if since is not None and until is not None and until <= since:
        raise invalid("until", until, "a time after since")
    query = select(Record.user, Record.workspace, Record.parameters, Record.outputs, Record.scores,
                   Record.started_at, Record.finished_at, Record.created_at).where(Record.status == "completed")
    query = window(query, Record.user, Record.created_at, user, since, until)
    days: dict[str, dict[str, Any]] = {}
    workspaces: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    tiers: dict[tuple[str, str], dict[str, float]] = {}
    scores: dict[str, list[float]] = {}
    with store.session() as s:
        rows = s.execute(query.limit(MAX_RECORDS)).all()
    for who, workspace, params, outputs, score, started, finished, created in rows:
        if not started or not finished:
            continue
        seconds = max(0.0, finished - started)
        device = str(dig(outputs, "atelier", "device") or dig(params, "device") or host_device)
        cost = rates.cost(seconds, device)
        day = _day(created)
        tier = str(dig(params, "quality", "preset") or dig(params, "tier") or "-")[:64]
        for table, key in ((days, day), (workspaces, workspace), (users, who)):
            entry = table.setdefault(key, {"runs": 0, "device_s": 0.0, "cost_usd": 0.0})
            entry["runs"] += 1
            entry["device_s"] += seconds
            entry["cost_usd"] += cost
        series = tiers.setdefault((tier, day), {"runs": 0, "device_s": 0.0, "cost_usd": 0.0})
        series["runs"] += 1
        series["device_s"] += seconds
        series["cost_usd"] += cost
        best = dig(score, "best")
        if isinstance(best, (int, float)) and not isinstance(best, bool) and math.isfinite(best):
            scores.setdefault(tier, []).append(float(best))
    llm = calls.totals(user, since, until)
    for (who, day, workspace), entry in llm.items():
        for table, key in ((days, day), (users, who), (workspaces, workspace)):
            target = table.setdefault(key, {"runs": 0, "device_s": 0.0, "cost_usd": 0.0})
            for name in ("llm_calls", "llm_failures", "llm_tokens"):
                target[name] = target.get(name, 0) + entry[name]
            target.setdefault("llm_latency_ms", []).extend(entry["llm_latency_ms"])

    def tidy(entry: dict[str, Any]) -> dict[str, Any]:
        latencies = entry.pop("llm_latency_ms", [])
        out = {**entry, "device_s": round(entry["device_s"], 3), "cost_usd": round(entry["cost_usd"], 6)}
        out.setdefault("llm_calls", 0)
        out.setdefault("llm_failures", 0)
        out.setdefault("llm_tokens", 0)
        out["llm_mean_latency_ms"] = round(statistics.fmean(latencies), 1) if latencies else None
        return out

    buckets = rates.buckets
    return {
        "user": user, "since": since, "until": until,
        "days": [{"day": d, **tidy(e)} for d, e in sorted(days.items())],
        "workspaces": [{"workspace": w, **tidy(e)} for w, e in sorted(workspaces.items())],
        "users": [{"user": u, **tidy(e)} for u, e in sorted(users.items())],
        "tiers": [{"tier": t, "day": d, "runs": e["runs"], "device_s": round(e["device_s"], 3),
                   "cost_usd": round(e["cost_usd"], 6)} for (t, d), e in sorted(tiers.items())],
        "scores": {t: {"buckets": buckets, "counts": [sum(1 for v in values if lo <= v < hi or (hi == buckets[-1]
                                                                                                and v == hi))
                                                      for lo, hi in zip(buckets, buckets[1:], strict=False)],
                       "runs": len(values), "mean": round(statistics.fmean(values), 2)}
                   for t, values in sorted(scores.items())},
        "rates": {"by_kind": rates.by_kind, "default_usd_per_hour": rates.default},
    }
