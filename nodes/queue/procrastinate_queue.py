"""The job queue on Procrastinate (PostgreSQL): jobs and records share the database users already run, workers
pull work when free (``FOR UPDATE SKIP LOCKED``, woken by LISTEN/NOTIFY), jobs sharing a lock run one at a
time in the order they were queued, and the jobs of a worker whose heartbeat stopped are found and queued
again (``requeue_stalled``, run by every live worker).

One task, ``atelier.run_job``: a ``JobSpec`` run by the worker's ``JobRunner`` (given in the worker's context).
A ComfyUI that stops answering (``Unavailable``) is retried a few times; other failures are final.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import procrastinate
from procrastinate.job_context import AbortReason, JobContext
from sqlalchemy.engine import make_url

from ..core.base.errors import Unavailable
from ..core.scaleout.jobs import JobSpec
from ..core.scaleout.runner import JobRunner

log = logging.getLogger("atelier")
TASK = "atelier.run_job"
QUEUE = "atelier"
RETRIES = 4  # a ComfyUI that stops answering: the job goes back to the queue this many times


def conninfo(database_url: str) -> str:
    """A libpq connection string from the records' SQLAlchemy URL (``postgresql+psycopg://...``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise Unavailable("scale-out needs the records in PostgreSQL (ATELIER_DATABASE_URL=postgresql+psycopg://...)",
                          field="database", value=url.get_backend_name())
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _run_job(context: JobContext, **data: Any) -> str:
    runner: JobRunner = context.additional_context["runner"]
    spec = JobSpec.of(data)
    try:
        return await runner.run(spec, user_abort=lambda: context.abort_reason() == AbortReason.USER_REQUEST)
    except asyncio.CancelledError:
        if context.abort_reason() == AbortReason.USER_REQUEST:
            raise
        # the worker is stopping: as Unavailable the job goes back to the queue for another worker
        raise Unavailable(f"worker {runner.name} stopped", field="worker", value=runner.name) from None
    except Unavailable as exc:
        if context.job.attempts + 1 >= RETRIES:  # the last try: the record says why it failed
            await runner.give_up(spec, f"{exc.message} (tried {RETRIES} times)")
        raise


class ProcrastinateQueue:
    """The queue on the database at ``database_url``; opened on first use."""

    def __init__(self, database_url: str, pool_size: int = 4) -> None:
        self.conninfo = conninfo(database_url)
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=self.conninfo, min_size=1, max_size=pool_size))
        self.task = self.app.task(name=TASK, queue=QUEUE, pass_context=True,
                                  retry=procrastinate.RetryStrategy(max_attempts=RETRIES, wait=2,
                                                                    retry_exceptions={Unavailable}))(_run_job)
        self._open = False

    async def open(self) -> None:
        if self._open:
            return
        await self.app.open_async()
        self._open = True
        await self.ensure_schema()

    async def close(self) -> None:
        if self._open:
            await self.app.close_async()
            self._open = False

    async def ensure_schema(self) -> None:
        """The queue's tables, when the records' migration ran before the scale extra was installed."""
        connector = self.app.connector
        row = await connector.execute_query_one_async("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS ok")
        if not row["ok"]:
            await connector.execute_query_async("SELECT pg_advisory_xact_lock(4217001)")
            await self.app.schema_manager.apply_schema_async()

    # --- the JobQueue protocol ------------------------------------------------------------------
    async def enqueue(self, specs: list[JobSpec]) -> list[int]:
        """The jobs in one transaction per lock (the order within a lock is the order given)."""
        await self.open()
        ids: dict[int, int] = {}
        for lock in dict.fromkeys(s.lock for s in specs):
            indexes = [i for i, s in enumerate(specs) if s.lock == lock]
            got = await self.task.configure(lock=lock).batch_defer_async(*[specs[i].to_dict() for i in indexes])
            ids.update(zip(indexes, got, strict=True))
        return [ids[i] for i in range(len(specs))]

    async def cancel(self, job_id: int) -> bool:
        await self.open()
        return bool(await self.app.job_manager.cancel_job_by_id_async(job_id, abort=True))

    async def counts(self) -> dict[str, int]:
        await self.open()
        rows = await self.app.connector.execute_query_all_async(
            "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs WHERE task_name = %(task)s "
            "GROUP BY status", task=TASK)
        return {str(r["status"]): int(r["n"]) for r in rows}

    # --- for workers ----------------------------------------------------------------------------
    async def requeue_stalled(self, stalled_after_s: float) -> list[int]:
        """Jobs held by workers silent for ``stalled_after_s``: back to the queue, for another worker."""
        await self.open()
        out = []
        for job in await self.app.job_manager.get_stalled_jobs(task_name=TASK,
                                                                seconds_since_heartbeat=stalled_after_s):
            try:
                await self.app.job_manager.retry_job(job)
            except Exception:  # another worker requeued it first
                continue
            assert job.id is not None
            out.append(job.id)
        return out

    async def run_worker(self, name: str, runner: JobRunner, concurrency: int, heartbeat_s: float,
                         stalled_after_s: float) -> None:
        """Pull and run jobs until cancelled (then the jobs in hand go back to the queue)."""
        await self.open()
        await self.app.run_worker_async(queues=[QUEUE], name=name, concurrency=concurrency, wait=True,
                                        additional_context={"runner": runner}, install_signal_handlers=False,
                                        update_heartbeat_interval=heartbeat_s,
                                        stalled_worker_timeout=stalled_after_s, shutdown_graceful_timeout=5,
                                        fetch_job_polling_interval=max(0.5, heartbeat_s))
