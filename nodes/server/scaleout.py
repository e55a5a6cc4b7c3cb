"""Scale-out routes: the user's jobs on the job queue (state, worker, attempts, progress, times), cancelling
one (its worker interrupts it in its ComfyUI), and the workers with the queue's counts. A server without a job
queue (records not in PostgreSQL, or no scale extra) lists no jobs and no workers and says why
(``available: false``); a job it is asked about is not found."""

from __future__ import annotations

from aiohttp import web

from ..core.base.errors import NotFound, Unavailable, invalid
from ..core.scaleout.jobs import STATES
from ..core.scaleout.service import DistributedSubmitter
from .http import Mount, Services, answer

GROUP = 64


def _queue(ctx: Services) -> tuple[DistributedSubmitter | None, str]:
    try:
        return ctx.distributed, ""
    except Unavailable as exc:
        return None, exc.message


def _needed(ctx: Services, record_id: str) -> DistributedSubmitter:
    queue, _ = _queue(ctx)
    if queue is None:
        raise NotFound(f"no job {record_id[:80]!r}: this server has no job queue", field="id", value=record_id[:80])
    return queue


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/jobs")
    async def list_jobs(request: web.Request) -> web.Response:
        """The user's jobs, newest first; ``group`` (a batch id), ``state`` and ``limit`` (1-500) filter."""
        query = request.query
        group, state, limit = query.get("group"), query.get("state"), query.get("limit", "100")
        if group is not None and not 0 < len(group) <= GROUP:
            raise invalid("group", group[:80], f"a batch id of 1-{GROUP} characters")
        if state is not None and state not in STATES:
            raise invalid("state", state[:40], list(STATES))
        if not limit.isascii() or not limit.isdigit() or not 1 <= int(limit) <= 500:
            raise invalid("limit", limit[:20], "a whole number 1-500")
        queue, why = _queue(ctx)
        if queue is None:
            return answer({"jobs": [], "available": False, "why": why})
        return answer({"jobs": await queue.jobs(mount.user(request), group, state, int(limit)), "available": True})

    @mount.get("/jobs/{record_id}")
    async def one_job(request: web.Request) -> web.Response:
        """One of the user's jobs, named by its record's id."""
        record_id = request.match_info["record_id"]
        return answer(await _needed(ctx, record_id).job(mount.user(request), record_id))

    @mount.post("/jobs/{record_id}/cancel")
    async def cancel_job(request: web.Request) -> web.Response:
        """Take the job off the queue, or have its worker interrupt it in its ComfyUI; its record."""
        record_id = request.match_info["record_id"]
        return answer((await _needed(ctx, record_id).cancel(record_id, mount.user(request))).to_dict())

    @mount.get("/workers")
    async def workers(request: web.Request) -> web.Response:
        """Every worker (state, ComfyUI, last heartbeat, current job, jobs done, failures) and the queue."""
        queue, why = _queue(ctx)
        if queue is None:
            return answer({"workers": [], "queue": {}, "available": False, "why": why})
        return answer({**await queue.workers(), "available": True})
