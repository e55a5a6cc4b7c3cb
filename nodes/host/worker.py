"""A scale-out worker: one process beside one ComfyUI, pulling jobs from the queue in the records' PostgreSQL.

    atelier worker --comfy http://127.0.0.1:8188 --database postgresql+psycopg://atelier@db/atelier

- One worker per ComfyUI: the worker holds a PostgreSQL advisory lock named by its ComfyUI's URL for as long as
  it lives (the database drops it when the process dies), so a second worker for the same ComfyUI is refused.
- It pulls a job only while its ComfyUI answers, and holds at most ``concurrency`` jobs (default 2: one
  running in ComfyUI, one waiting there). A ComfyUI that stops answering: the worker stops pulling, gives back
  what it holds, and says so in its heartbeat (``atelier workers``); it starts again when ComfyUI is back.
- Every ``heartbeat_s`` it writes its heartbeat and requeues the jobs of workers silent for ``stalled_after_s``
  (so a job whose worker died runs again elsewhere within ``stalled_after_s + heartbeat_s``: 25 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.base.errors import Conflict
from ..core.base.secrets import public_url
from ..core.records.store import RecordStore
from ..core.scaleout.runner import JobRunner
from ..core.scaleout.store import ScaleStore
from ..queue.procrastinate_queue import ProcrastinateQueue
from ..remote.comfyui import ComfyClient

log = logging.getLogger("atelier")
HEARTBEAT_S = 5.0
STALLED_AFTER_S = 20.0


@dataclass
class WorkerOptions:
    comfy_url: str
    database_url: str
    shared_dir: Path
    name: str | None = None
    concurrency: int = 2
    heartbeat_s: float = HEARTBEAT_S
    stalled_after_s: float = STALLED_AFTER_S
    poll_s: float = 1.0

    @property
    def public_comfy(self) -> str:
        return public_url(self.comfy_url).rstrip("/")

    @property
    def worker_name(self) -> str:
        return self.name or f"{socket.gethostname()}/{self.public_comfy.split('://', 1)[-1]}"


async def _hold_comfy(conninfo: str, comfy: str) -> Any:
    """A connection holding the advisory lock of ``comfy``; Conflict when another worker holds it."""
    import psycopg

    key = int.from_bytes(hashlib.sha256(f"atelier-comfy:{comfy.lower()}".encode()).digest()[:8], "big", signed=True)
    connection = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    row = await (await connection.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
    if not row or not row[0]:
        await connection.close()
        raise Conflict(f"another worker already serves the ComfyUI at {comfy}: one worker per ComfyUI",
                       field="comfy", value=comfy)
    return connection


async def _device(comfy: ComfyClient) -> str | None:
    """The GPU (or CPU) its ComfyUI runs on, as ``/system_stats`` names it: the records' device kind (cost)."""
    try:
        stats = await asyncio.wait_for(comfy.call("GET", "/system_stats"), 10)
        devices = stats.get("devices") or []
        return str(devices[0].get("name") or devices[0].get("type"))[:128] if devices else None
    except Exception:  # an older ComfyUI, or not up yet: the server's device applies
        return None


async def _answers(comfy: ComfyClient, within_s: float) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(comfy.queue_ids(), within_s)
        return True, ""
    except Exception as exc:  # unreachable, an error page, a timeout: not taking jobs
        return False, f"ComfyUI at {public_url(comfy.url)} does not answer ({type(exc).__name__}): not taking jobs"


async def run_worker(options: WorkerOptions, stop: asyncio.Event | None = None) -> None:
    """Serve jobs until ``stop`` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    name, comfy_shown = options.worker_name, options.public_comfy
    records = await asyncio.to_thread(RecordStore, options.database_url)
    store = ScaleStore(records)
    queue = ProcrastinateQueue(options.database_url)
    await queue.open()
    guard = await _hold_comfy(queue.conninfo, comfy_shown)
    comfy = ComfyClient(options.comfy_url)
    runner = JobRunner(name, comfy, comfy_shown, records, store, options.shared_dir,
                       connect=lambda url: ComfyClient(url))
    comfy.poll_s = options.poll_s
    runner.device = await _device(comfy)
    listening = asyncio.create_task(comfy.listen())  # progress and per-node timings of every prompt it queues
    await asyncio.to_thread(store.register_worker, name, comfy_shown, socket.gethostname())
    log.info("Atelier worker %s: serving ComfyUI at %s", name, comfy_shown)
    pulling: asyncio.Task[None] | None = None
    was: bool | None = None
    try:
        while not stop.is_set():
            healthy, why = await _answers(comfy, max(2.0, options.heartbeat_s))
            if healthy != was:
                (log.info if healthy else log.warning)("Atelier worker %s: %s", name,
                                                       "taking jobs" if healthy else why)
                was = healthy
            if pulling is not None and pulling.done():
                if not pulling.cancelled() and pulling.exception() is not None:
                    log.error("Atelier worker %s: the queue stopped (%s); starting it again", name,
                              pulling.exception())
                pulling = None
            if healthy and pulling is None:
                pulling = asyncio.create_task(queue.run_worker(name, runner, options.concurrency,
                                                               options.heartbeat_s, options.stalled_after_s))
            elif not healthy and pulling is not None:
                pulling.cancel()
                with contextlib.suppress(BaseException):
                    await pulling
                pulling = None
            await asyncio.to_thread(store.heartbeat, name, "ready" if healthy else "comfyui-unreachable", why)
            for job_id in await queue.requeue_stalled(options.stalled_after_s):
                log.warning("Atelier worker %s: job %s of a silent worker goes back to the queue", name, job_id)
                await asyncio.to_thread(store.requeued, job_id, "its worker stopped answering; queued again")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), options.heartbeat_s)
    finally:
        listening.cancel()
        if pulling is not None:
            pulling.cancel()
            with contextlib.suppress(BaseException):
                await pulling
        with contextlib.suppress(Exception):
            await asyncio.to_thread(store.heartbeat, name, "stopped", "stopped")
        with contextlib.suppress(Exception):
            await guard.close()
        await queue.close()
        records.engine.dispose()
