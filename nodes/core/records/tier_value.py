"""What each tier is worth here, from the user's own completed runs: per checkpoint and tier, how many runs,
their median time, their mean best score and their latest images; and each tier against the reference tier
("ultra costs 5.6x standard's time for +3.0 points here").

A run counts when its record names its tier (``parameters.quality.preset``, as pipeline runs, batch items and
Record Generation keep it), ComfyUI timed it (started and finished) and, for the score, a Rank Select reported
its best score. At most ``MAX_RECORDS`` of the newest completed records are read.
"""

from __future__ import annotations

import statistics
from typing import Any

from .record import GenerationRecord
from .store import RecordStore

MAX_RECORDS = 2000
PAGE = 500
IMAGES_PER_TIER = 3
UNKNOWN = "(unknown checkpoint)"


def _tier(record: GenerationRecord) -> str | None:
    quality = record.parameters.get("quality")
    tier = quality.get("preset") if isinstance(quality, dict) else record.parameters.get("tier")
    return tier if isinstance(tier, str) and tier else None


def _checkpoint(record: GenerationRecord) -> str:
    params = record.parameters
    run = params.get("run")
    for value in (params.get("checkpoint"), run.get("checkpoint") if isinstance(run, dict) else None):
        if isinstance(value, str) and value:
            return value
    return UNKNOWN


def _images(record: GenerationRecord) -> list[str]:
    return [name for names in record.outputs.values() if isinstance(names, list)
            for name in names if isinstance(name, str)]


def tier_value(store: RecordStore, user: str, tiers: list[str], reference: str,
               checkpoint: str | None = None) -> dict[str, Any]:
    """Per checkpoint (or the one asked for), every tier the user ran: runs, median time, mean best score, the
    latest images, and the ratio of time and the score difference against ``reference``."""
    groups: dict[str, dict[str, list[GenerationRecord]]] = {}
    cursor, read = None, 0
    while read < MAX_RECORDS:
        page = store.page(status="completed", limit=PAGE, cursor=cursor, user=user)
        for record in page.items:
            tier = _tier(record)
            where = _checkpoint(record)
            if tier is None or (checkpoint is not None and where != checkpoint):
                continue
            groups.setdefault(where, {}).setdefault(tier, []).append(record)
        read += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    order = {tier: i for i, tier in enumerate(tiers)}
    checkpoints = []
    for name, by_tier in sorted(groups.items()):
        rows = [_row(tier, records) for tier, records in
                sorted(by_tier.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))]
        base = next((r for r in rows if r["tier"] == reference), None)
        for row in rows:
            _against(row, base)
        checkpoints.append({"checkpoint": name, "tiers": rows,
                            "summary": [row["against_reference"] for row in rows if row.get("against_reference")]})
    return {"reference": reference, "records_read": read, "checkpoints": checkpoints}


def _row(tier: str, records: list[GenerationRecord]) -> dict[str, Any]:
    times = [r.finished_at - r.started_at for r in records if r.finished_at and r.started_at]
    scores = [float(r.scores["best"]) for r in records if isinstance(r.scores.get("best"), (int, float))]
    images: list[str] = []
    for record in records:  # newest first
        images.extend(_images(record)[: IMAGES_PER_TIER - len(images)])
        if len(images) >= IMAGES_PER_TIER:
            break
    return {"tier": tier, "runs": len(records), "timed_runs": len(times), "scored_runs": len(scores),
            "median_time_s": round(statistics.median(times), 2) if times else None,
            "mean_score": round(statistics.fmean(scores), 2) if scores else None, "images": images}


def _against(row: dict[str, Any], base: dict[str, Any] | None) -> None:
    if base is None or row is base or not base["median_time_s"] or row["median_time_s"] is None:
        return
    ratio = row["median_time_s"] / base["median_time_s"]
    row["time_ratio"] = round(ratio, 2)
    text = f"{row['tier']} costs {ratio:.1f}x {base['tier']}'s time"
    if row["mean_score"] is not None and base["mean_score"] is not None:
        delta = row["mean_score"] - base["mean_score"]
        row["score_delta"] = round(delta, 2)
        text += f" for {delta:+.1f} points"
    row["against_reference"] = text + " here"
