"""The workers and the jobs, in the records' database (tables ``atelier_workers`` and ``atelier_jobs``).

A job's row is the user's view of it: state, worker, ComfyUI, attempts, progress and times; the queue keeps
its own bookkeeping (what to run next, heartbeats, locks). Every read of a job is scoped to its user.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update

from ..base.errors import NotFound
from ..records.models import Job, Worker
from ..records.store import RecordStore
from .jobs import OPEN_STATES, JobSpec

MAX_LIST = 500


def _job(row: Job) -> dict[str, Any]:
    return {"id": row.record_id, "queue_job_id": row.queue_job_id, "kind": row.kind, "group_id": row.group_id,
            "position": row.position, "state": row.state, "worker": row.worker, "comfy_url": row.comfy_url,
            "attempts": row.attempts, "progress": row.progress, "enqueued_at": row.enqueued_at,
            "started_at": row.started_at, "finished_at": row.finished_at, "error": row.error}


class ScaleStore:
    """Jobs are named by their record's id (one job per record)."""

    def __init__(self, records: RecordStore) -> None:
        self.session = records.session

    # --- jobs ---------------------------------------------------------------------------------
    def add_jobs(self, specs: list[JobSpec]) -> None:
        now = time.time()
        with self.session.begin() as s:
            for spec in specs:
                s.add(Job(record_id=spec.record_id, user=spec.user, kind=spec.kind, group_id=spec.group_id,
                          position=spec.position, state="queued", attempts=0, enqueued_at=now))

    def queued(self, pairs: list[tuple[str, int]]) -> None:
        """The queue's ids of the jobs."""
        with self.session.begin() as s:
            for record_id, queue_job_id in pairs:
                s.execute(update(Job).where(Job.record_id == record_id).values(queue_job_id=queue_job_id))

    def start_job(self, record_id: str, worker: str, comfy_url: str) -> tuple[str, str | None]:
        """A worker took the job: (its state before, the ComfyUI an earlier attempt ran it on, if another)."""
        with self.session.begin() as s:
            row = s.get(Job, record_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no job for record {record_id}", field="job", value=record_id)
            before, previous = row.state, row.comfy_url
            if before in OPEN_STATES:
                row.state, row.worker, row.comfy_url = "running", worker, comfy_url
                row.attempts += 1
                row.started_at = row.started_at or time.time()
                s.execute(update(Worker).where(Worker.name == worker).values(current_job=record_id))
            return before, (previous if previous and previous != comfy_url else None)

    def progress(self, record_id: str, fraction: float) -> None:
        with self.session.begin() as s:
            s.execute(update(Job).where(Job.record_id == record_id)
                      .values(progress=round(min(1.0, max(0.0, fraction)), 4)))

    def finish_job(self, record_id: str, state: str, error: str | None = None, worker: str | None = None) -> None:
        """The job ended (completed, failed or cancelled); its worker's counts move with it."""
        with self.session.begin() as s:
            row = s.get(Job, record_id, with_for_update=True)
            if row is None or row.state not in OPEN_STATES:
                return
            row.state, row.finished_at, row.error = state, time.time(), (str(error)[:2000] if error else None)
            if state == "completed":
                row.progress = 1.0
            if worker:
                w = s.get(Worker, worker, with_for_update=True)
                if w is not None:
                    w.current_job = None if w.current_job == record_id else w.current_job
                    w.jobs_done += state == "completed"
                    w.failures += state == "failed"

    def requeued(self, queue_job_id: int, why: str) -> None:
        """The queue gave the job of a dead worker back: it waits for another."""
        with self.session.begin() as s:
            s.execute(update(Job).where(Job.queue_job_id == queue_job_id).where(Job.state == "running")
                      .values(state="queued", error=why[:2000]))

    def released(self, record_id: str, why: str) -> None:
        """A stopping worker let the job go: it waits for another."""
        with self.session.begin() as s:
            s.execute(update(Job).where(Job.record_id == record_id).where(Job.state == "running")
                      .values(state="queued", error=why[:2000]))

    def job(self, record_id: str, user: str | None = None) -> dict[str, Any]:
        with self.session() as s:
            row = s.get(Job, record_id) if isinstance(record_id, str) and len(record_id) <= 64 else None
            if row is None or (user is not None and row.user != user):
                raise NotFound(f"no job {str(record_id)[:80]!r}", field="id", value=str(record_id)[:80])
            return _job(row)

    def job_of_record(self, record_id: str) -> dict[str, Any] | None:
        try:
            return self.job(record_id)
        except NotFound:
            return None

    def job_at(self, group_id: str, position: int) -> dict[str, Any] | None:
        """The job at ``position`` of a batch or storyboard."""
        with self.session() as s:
            row = s.scalars(select(Job).where(Job.group_id == group_id).where(Job.position == position)).first()
            return _job(row) if row is not None else None

    def group_states(self, group_id: str) -> list[str]:
        """The states of a batch's or storyboard's jobs."""
        with self.session() as s:
            return list(s.scalars(select(Job.state).where(Job.group_id == group_id)))

    def jobs(self, user: str | None = None, group_id: str | None = None, state: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        query = select(Job)
        if user is not None:
            query = query.where(Job.user == user)
        if group_id is not None:
            query = query.where(Job.group_id == group_id)
        if state is not None:
            query = query.where(Job.state == state)
        with self.session() as s:
            rows = s.scalars(query.order_by(Job.enqueued_at.desc(), Job.position.desc())
                             .limit(min(limit, MAX_LIST))).all()
            return [_job(r) for r in rows]

    # --- workers ------------------------------------------------------------------------------
    def register_worker(self, name: str, comfy_url: str, host: str, queue_worker_id: int | None = None) -> None:
        now = time.time()
        with self.session.begin() as s:
            row = s.get(Worker, name, with_for_update=True)
            if row is None:
                s.add(Worker(name=name, comfy_url=comfy_url, host=host, queue_worker_id=queue_worker_id,
                             state="starting", message="", started_at=now, last_heartbeat=now, jobs_done=0,
                             failures=0))
            else:
                row.comfy_url, row.host, row.queue_worker_id = comfy_url, host, queue_worker_id
                row.state, row.message, row.started_at, row.last_heartbeat = "starting", "", now, now
                row.current_job = None

    def heartbeat(self, name: str, state: str, message: str = "", queue_worker_id: int | None = None) -> None:
        values: dict[str, Any] = {"state": state, "message": message[:2000], "last_heartbeat": time.time()}
        if queue_worker_id is not None:
            values["queue_worker_id"] = queue_worker_id
        with self.session.begin() as s:
            s.execute(update(Worker).where(Worker.name == name).values(**values))

    def workers(self, stale_after_s: float) -> list[dict[str, Any]]:
        """Every worker with its last heartbeat; one silent for ``stale_after_s`` is ``lost``."""
        now = time.time()
        with self.session() as s:
            rows = s.scalars(select(Worker).order_by(Worker.name)).all()
            out = []
            for w in rows:
                alive = now - w.last_heartbeat <= stale_after_s
                state = w.state if alive or w.state == "stopped" else "lost"
                out.append({"name": w.name, "comfy_url": w.comfy_url, "host": w.host, "state": state,
                            "message": w.message, "started_at": w.started_at, "last_heartbeat": w.last_heartbeat,
                            "seconds_since_heartbeat": round(now - w.last_heartbeat, 1),
                            "current_job": w.current_job if alive else None, "jobs_done": w.jobs_done,
                            "failures": w.failures})
            return out
