"""Mixed tiers in one batch: items, each with its own prompt, tier and count, queued as one ComfyUI prompt per
item (the best-of-N graph at the item's tier: its passes, its variations, scored and ranked), recorded as a
batch record and one record per item, reported with progress and a summary.

The batch is a generation record (operation ``batch``) whose outputs list its items' records; each item is a
record (operation ``batch_item``) that the records follower moves along ComfyUI's queue and history, with
its run time and best score (Rank Select's) when it completes. Everything is the user's: another user's
batch is not found.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..base.errors import NotFound, Unavailable
from ..base.validation import parse_model
from ..quality import plan as planning
from ..quality.service import QualityService
from ..records.record import GenerationRecord
from ..records.seeds import SeedPlan, plan_seeds
from ..records.service import QueueError, RecordService
from ..scaleout.service import job_queue
from .library import DEFAULT_OWNER
from .pipelines import PipelineRun, best_of_n_graph

if TYPE_CHECKING:
    from ..scaleout.service import DistributedSubmitter

MAX_ITEMS = 256  # a studio batch; each item is one prompt (one job when distributed)
OPEN = ("pending", "queued", "running")


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: Annotated[str, Field(min_length=1, max_length=4000)]
    tier: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # None: the batch's
    count: Annotated[int, Field(ge=1, le=16)] = 4   # variations; the best is kept
    negative: Annotated[str, Field(max_length=4000)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**48)] | None = None


class BatchRequest(BaseModel):
    """What ``POST /atelier/batches`` and ``atelier batch FILE`` take."""

    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[BatchItem], Field(min_length=1, max_length=MAX_ITEMS)]
    checkpoint: Annotated[str, Field(min_length=1, max_length=512)]
    tier: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # default for items without one
    model_family: Annotated[str, Field(max_length=64)] = "auto"
    width: Annotated[int, Field(ge=0, le=8192)] = 0
    height: Annotated[int, Field(ge=0, le=8192)] = 0
    negative: Annotated[str, Field(max_length=4000)] = "text, watermark, blurry"
    scorers: Annotated[str, Field(max_length=200)] = "auto"
    enhance: bool = True
    seed: Annotated[int, Field(ge=0, le=2**48)] = 0
    distributed: bool | None = None  # None: the server's setting; true: the job queue of many workers
    seed_strategy: Literal["fixed", "per_item", "per_user", "per_project", "timestamp"] = "per_item"
    project: Annotated[str, Field(min_length=1, max_length=128)] | None = None  # per_project's id

    @classmethod
    def parse(cls, data: Any) -> BatchRequest:
        return parse_model(cls, data, 'a JSON object {"checkpoint": ..., "items": [{"prompt", "tier", "count"}]}')


class BatchService:
    """``distributed``: the job queue's submitter, made on first use (scale-out), and whether batches go there
    by default."""

    def __init__(self, records: RecordService, quality: QualityService,
                 distributed: Callable[[], DistributedSubmitter] | None = None,
                 distributed_default: bool = False) -> None:
        self.records = records
        self.quality = quality
        self.distributed = distributed
        self.distributed_default = distributed_default

    def _runs(self, user: str, request: BatchRequest, seeds: SeedPlan) -> list[tuple[PipelineRun, str, float]]:
        """Each item's run (its tier checked for ``user``, its seed: its own, else the strategy's), the tier the
        graph names, and its estimate."""
        out = []
        for index, item in enumerate(request.items):
            tier = item.tier or request.tier or self.quality.tables.default_tier
            preset = self.quality.tier(user, tier, field=f"items.{index}.tier")
            option = preset.id if preset.builtin or user == DEFAULT_OWNER else f"{user}/{preset.id}"
            run = PipelineRun(tier=option, checkpoint=request.checkpoint, model_family=request.model_family,
                              prompt=item.prompt, negative=item.negative or request.negative, width=request.width,
                              height=request.height, variations=item.count,
                              seed=item.seed if item.seed is not None else seeds.seeds[index],
                              enhance=request.enhance, scorers=request.scorers)
            plan = planning.build_plan(self.quality, option, request.model_family, request.checkpoint, None,
                                       request.width, request.height, item.count)
            out.append((run, preset.id, plan.estimate.time_expected_s))
        return out

    async def create(self, user: str, body: Any) -> dict[str, Any]:
        """Record the batch and queue every item (a refused item is recorded failed; the others go on). On the
        job queue (``distributed``) the items are queued in one transaction and spread over the workers."""
        request = BatchRequest.parse(body)
        seeds = plan_seeds(request.seed_strategy, request.seed, len(request.items), user, request.project or "batches")
        runs = self._runs(user, request, seeds)  # every item is checked before anything is queued
        distributed = self.distributed_default if request.distributed is None else request.distributed
        dispatcher = job_queue(self.distributed) if distributed else None
        if dispatcher is None and self.records.submitter.comfy is None:
            raise Unavailable("this Atelier server has no ComfyUI queue: run batches on a ComfyUI server, or with "
                              '"distributed": true on the job queue', field="items", value=len(request.items))
        batch = await asyncio.to_thread(self.records.create, user, {
            "operation_type": "batch", "workspace": "batches", "prompt": request.items[0].prompt,
            "parameters": {"checkpoint": request.checkpoint, "distributed": dispatcher is not None,
                           "seeds": seeds.to_dict(), "items": [
                {"prompt": r.prompt, "tier": tier, "count": r.variations, "seed": r.seed,
                 "expected_s": round(expected, 2)} for r, tier, expected in runs]}}, status="running")
        item_ids: list[str] = []
        configs = [_item_config(batch.id, index, run, tier, expected)
                   for index, (run, tier, expected) in enumerate(runs)]
        try:
            if dispatcher is not None:
                item_ids += [r.id for r in await dispatcher.submit_many(user, configs, group_id=batch.id)]
            else:
                await self._queue(user, configs, item_ids)
        finally:  # whatever was queued belongs to the batch, even when ComfyUI went away midway
            self.records.store.set_status(batch.id, "running", outputs={"items": item_ids})
        return await self.get(user, batch.id)

    async def _queue(self, user: str, configs: list[dict[str, Any]], item_ids: list[str]) -> None:
        submitter = self.records.submitter
        for config in configs:
            try:
                item_ids.append((await submitter.submit(user, config)).id)
            except QueueError as exc:  # recorded failed with ComfyUI's reason; the other items go on
                if exc.record_id is None:
                    raise
                item_ids.append(exc.record_id)

    async def get(self, user: str, batch_id: str) -> dict[str, Any]:
        """The batch's progress and, per item, its tier, status, time and best score; a summary per tier."""
        return await asyncio.to_thread(self._report, user, batch_id)

    def _report(self, user: str, batch_id: str) -> dict[str, Any]:
        store = self.records.store
        batch = store.get(batch_id, user)
        if batch.operation_type != "batch":
            raise NotFound(f"no batch {batch_id!r}", field="id", value=batch_id)
        items = [store.get(i, user) for i in batch.outputs.get("items", [])]
        rows = [_row(record) for record in items]
        if batch.parameters.get("distributed") and self.distributed is not None:
            jobs = {j["id"]: j for j in self.distributed().store.jobs(user, group_id=batch.id, limit=MAX_ITEMS)}
            for row in rows:
                job = jobs.get(row["record_id"])
                row["job"] = {k: job[k] for k in ("state", "worker", "attempts", "progress", "enqueued_at",
                                                  "started_at", "finished_at", "error")} if job else None
        done = [r for r in rows if r["status"] not in OPEN]
        status = batch.status
        if len(done) == len(rows) and status in OPEN:
            failed = any(r["status"] != "completed" for r in rows)
            status = "failed" if all(r["status"] != "completed" for r in rows) else "completed"
            store.set_status(batch.id, status, error="some items did not complete" if failed else None)
        return {"id": batch.id, "status": status, "created_at": batch.created_at,
                "progress": {"done": len(done), "total": len(rows)}, "items": rows, "summary": _summary(rows)}


def _item_config(batch_id: str, index: int, run: PipelineRun, tier: str, expected: float) -> dict[str, Any]:
    return {"operation_type": "batch_item", "workspace": "batches", "prompt": run.prompt,
            "parameters": {"batch": batch_id, "index": index, "tier": tier, "count": run.variations,
                           "checkpoint": run.checkpoint, "seed": run.seed, "expected_s": round(expected, 2),
                           "quality": {"preset": tier}},
            "graph": best_of_n_graph(run)}


def _row(record: GenerationRecord) -> dict[str, Any]:
    params = record.parameters
    elapsed = (record.finished_at - record.started_at) if record.finished_at and record.started_at else None
    return {"index": params.get("index"), "record_id": record.id, "prompt_id": record.comfy_prompt_id,
            "prompt": record.prompt_text, "tier": params.get("tier"), "count": params.get("count"),
            "status": record.status, "expected_s": params.get("expected_s"),
            "time_s": round(elapsed, 2) if elapsed is not None else None,
            "best_score": record.scores.get("best"), "error": record.error, "outputs": record.outputs}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per tier: items, completed, median time and mean best score of the completed ones."""
    tiers: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = tiers.setdefault(str(row["tier"]), {"items": 0, "completed": 0, "times": [], "scores": []})
        entry["items"] += 1
        if row["status"] == "completed":
            entry["completed"] += 1
            if row["time_s"] is not None:
                entry["times"].append(row["time_s"])
            if row["best_score"] is not None:
                entry["scores"].append(row["best_score"])
    return {tier: {"items": e["items"], "completed": e["completed"],
                   "median_time_s": round(statistics.median(e["times"]), 2) if e["times"] else None,
                   "mean_best_score": round(statistics.fmean(e["scores"]), 2) if e["scores"] else None}
            for tier, e in tiers.items()}
