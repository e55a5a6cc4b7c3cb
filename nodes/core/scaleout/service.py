"""Submission to the job queue instead of the local ComfyUI: the same record-then-queue contract as the
records' ``Submitter`` (so pipelines, batches and ``POST /generations`` take either), plus cancellation that
reaches the worker holding a job, and the status of jobs and workers.

A record is written first (pending), then the jobs are queued in one transaction, then the record says queued
with the prompt id every attempt will use. When the queue cannot take them, the records say failed with the
reason and nothing is half-queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..base.errors import Conflict, Unavailable, invalid
from ..records.record import GenerationRecord
from ..records.service import RecordService
from .jobs import DEFAULT_DEADLINE_S, JobQueue, JobSpec, prompt_id_for
from .store import ScaleStore

KIND_OF = {"batch_item": "batch_item", "api_generation": "generation", "storyboard_frame": "frame"}


def job_queue(make: Callable[[], DistributedSubmitter] | None) -> DistributedSubmitter:
    """The job queue's submitter; a server without one refuses ``distributed`` naming what it lacks (400)."""
    try:
        if make is None:
            raise Unavailable("this Atelier has no job queue", field="distributed", value=True)
        return make()
    except Unavailable as exc:
        raise invalid("distributed", True, "false on this server", exc.message) from None


class DistributedSubmitter:
    def __init__(self, service: RecordService, store: ScaleStore, queue: JobQueue, stale_after_s: float) -> None:
        self.service = service
        self.store = store
        self.queue = queue
        self.stale_after_s = stale_after_s

    async def submit(self, user: str, body: Any, client_id: str | None = None) -> GenerationRecord:
        """Record the config and queue its ``graph`` as one job (``client_id`` has no meaning here: progress is
        the job's, see ``GET /atelier/jobs``)."""
        return (await self.submit_many(user, [body]))[0]

    async def submit_many(self, user: str, bodies: list[Any], group_id: str | None = None,
                          lock: str | None = None) -> list[GenerationRecord]:
        """Record each config and queue their graphs in one transaction; ``lock``: they run one at a time, in
        this order (a storyboard's frames). A config's ``chain`` (a storyboard frame's, see
        ``storyboard/distributed.py``) and ``deadline_s`` go to its job, not its record."""
        specs_in = []
        for index, body in enumerate(bodies):
            if not isinstance(body, dict):
                raise invalid("body", type(body).__name__, "a generation config with an API-format graph")
            body = dict(body)
            graph = body.pop("graph", None)
            if not isinstance(graph, dict) or not graph:
                raise invalid("graph", type(graph).__name__, "an API-format graph: {node id: {class_type, inputs}}")
            deadline = body.pop("deadline_s", DEFAULT_DEADLINE_S)
            extra = {"chain": body.pop("chain")} if "chain" in body else {}
            specs_in.append((index, body, graph, deadline, extra))
        records = [await asyncio.to_thread(self.service.create, user, body, graph=graph)
                   for _, body, graph, _, _ in specs_in]
        specs = [JobSpec(kind=KIND_OF.get(r.operation_type, "pipeline"), record_id=r.id, user=user, graph=graph,
                         group_id=group_id, position=index, lock=lock, deadline_s=float(deadline), extra=extra)
                 for r, (index, _, graph, deadline, extra) in zip(records, specs_in, strict=True)]
        await asyncio.to_thread(self.store.add_jobs, specs)
        queued = [await asyncio.to_thread(self.service.store.set_status, r.id, "queued",
                                          comfy_prompt_id=prompt_id_for(r.id)) for r in records]
        try:
            job_ids = await self.queue.enqueue(specs)
        except Exception as exc:  # the queue's database is down: the records say so, nothing is half-queued
            why = f"the job queue refused it: {type(exc).__name__}"
            for r in records:
                await asyncio.to_thread(self.store.finish_job, r.id, "failed", why)
                await asyncio.to_thread(self.service.store.set_status, r.id, "failed", error=why)
            raise Unavailable("the job queue cannot take jobs now (is its database reachable?)", field="distributed",
                              value=True) from None
        await asyncio.to_thread(self.store.queued, [(r.id, j) for r, j in zip(records, job_ids, strict=True)])
        return queued

    def owns(self, record_id: str) -> bool:
        return self.store.job_of_record(record_id) is not None

    async def cancel(self, record_id: str, user: str | None = None) -> GenerationRecord:
        """Cancel ``user``'s record: a waiting job leaves the queue; a running one is aborted by its worker,
        which interrupts it in its ComfyUI. The record says cancelled at once."""
        record = await asyncio.to_thread(self.service.store.get, record_id, user)
        if record.status not in ("pending", "queued", "running"):
            raise Conflict(f"record {record_id} is {record.status}; only pending, queued or running ones "
                           f"can be cancelled", field="status", value=record.status)
        job = await asyncio.to_thread(self.store.job_of_record, record_id)
        if job is not None:
            if job["queue_job_id"] is not None:
                await self.queue.cancel(int(job["queue_job_id"]))
            await asyncio.to_thread(self.store.finish_job, record_id, "cancelled", "cancelled by the user",
                                    job["worker"])
        return await asyncio.to_thread(self.service.store.set_status, record_id, "cancelled")

    # --- status -------------------------------------------------------------------------------
    async def job(self, user: str, record_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.job, record_id, user)

    async def jobs(self, user: str, group_id: str | None = None, state: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.store.jobs, user, group_id, state, limit)

    async def workers(self) -> dict[str, Any]:
        """Every worker (state, last heartbeat, ComfyUI, current job, jobs done, failures) and the queue."""
        workers = await asyncio.to_thread(self.store.workers, self.stale_after_s)
        try:
            queue: dict[str, Any] = await self.queue.counts()
        except Exception as exc:
            queue = {"error": f"the job queue cannot be read: {type(exc).__name__}"}
        return {"workers": workers, "queue": queue, "stale_after_s": self.stale_after_s}
