"""One job on one worker's ComfyUI, written so that a job runs once however often it is delivered:

1. The job's row says running (a cancelled or finished job is left as it is).
2. An earlier attempt on another ComfyUI (its worker died) is adopted when that ComfyUI still answers: a
   finished prompt is taken from its history, a queued or running one is followed there. Just before queueing,
   a worker checks that the job is still its own: one whose heartbeat only looked dead (a stalled event loop)
   leaves a job another worker has taken over, so the two never both queue it.
3. Otherwise the graph goes to this worker's ComfyUI under the record's prompt id, unless that ComfyUI already
   has it (queued, running or done): a resubmission never runs twice.
4. Progress comes from the websocket; ComfyUI's ``/history`` is the truth about the end.
5. The images are fetched into shared storage (``<shared>/<user>/<record id>/``), then the record is completed
   (or failed) once, in one transaction, with ComfyUI's own times and, under ``outputs.atelier``, the files, the
   worker, its ComfyUI and device, and each node's seconds.

A ComfyUI that stops answering raises ``Unavailable``: the queue retries the job (on a worker that can run it).
A graph ComfyUI refuses, an execution error and a missed deadline fail the job for good. An abort (cancel)
interrupts the prompt in the ComfyUI that holds it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from ..base.errors import AtelierError, Conflict, NotFound, Unavailable
from ..base.files import atomic_write_bytes
from ..base.ids import inside
from ..records.comfy import ComfyUI
from ..records.models import FINAL
from ..records.service import QueueError
from ..records.store import RecordStore
from ..records.timings import finished
from .jobs import OPEN_STATES, JobSpec
from .store import ScaleStore

log = logging.getLogger("atelier")
MAX_FILES = 64
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DeadlineExceeded(AtelierError):
    status = 504


class WorkerComfy(ComfyUI, Protocol):
    async def view(self, query: str, limit: int = ...) -> bytes:
        """An output's bytes from ``/view``."""
        ...

    async def upload(self, name: str, data: bytes) -> str:
        """An image into ComfyUI's input folder (``/upload/image``); the name ComfyUI gives it."""
        ...

    async def wait(self, prompt_id: str, deadline_s: float, progress: Callable[[float], None] | None = None,
                   poll_s: float | None = None, misses: int = 3,
                   timings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The prompt's history entry once it has finished (progress 0-1 on the way, each node's seconds into
        ``timings``); DeadlineExceeded past ``deadline_s``; Unavailable when ComfyUI stops answering."""
        ...


def _images(item: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for output in (item.get("outputs") or {}).values():
        if isinstance(output, dict):
            out += [i for i in output.get("images", []) if isinstance(i, dict) and isinstance(i.get("filename"), str)]
    return out[:MAX_FILES]


class JobRunner:
    """Runs jobs for the worker ``name`` on its ComfyUI ``comfy`` (at ``comfy_url``, credentials removed);
    ``connect(url)`` reaches another worker's ComfyUI for adoption."""

    def __init__(self, name: str, comfy: WorkerComfy, comfy_url: str, records: RecordStore, store: ScaleStore,
                 shared: Path, connect: Callable[[str], WorkerComfy]) -> None:
        self.name = name
        self.comfy = comfy
        self.comfy_url = comfy_url
        self.records = records
        self.store = store
        self.shared = shared
        self.connect = connect
        self.device: str | None = None  # what its ComfyUI runs on (the records' device kind, for cost)

    async def run(self, spec: JobSpec, user_abort: Callable[[], bool] = lambda: True) -> str:
        """The job, to its end; returns its final state. Cancelled with ``user_abort()`` true, the prompt is
        stopped and the record cancelled; otherwise (the worker is stopping) the job waits for another worker
        and the prompt runs on, to be adopted."""
        job_id = spec.record_id
        before, previous = await asyncio.to_thread(self.store.start_job, job_id, self.name, self.comfy_url)
        if before not in OPEN_STATES:
            return before  # cancelled or finished already: a late delivery does nothing
        record = await asyncio.to_thread(self.records.get, spec.record_id)
        if record.status in FINAL:
            await asyncio.to_thread(self.store.finish_job, job_id, record.status, record.error, self.name)
            return record.status
        prompt_id = spec.prompt_id
        await asyncio.to_thread(self.records.set_status, spec.record_id, "running", comfy_prompt_id=prompt_id)
        where: WorkerComfy = self.comfy
        timings: list[dict[str, Any]] = []
        try:
            item = None
            if previous:
                where = self.connect(previous)
                item = await self._adopt(where, prompt_id, job_id, spec)
            if item is None:
                where = self.comfy
                if not await self._has(prompt_id):
                    graph = await self._graph(spec)
                    holder = (await asyncio.to_thread(self.store.job, job_id))["worker"]
                    if holder != self.name:  # taken over meanwhile (our heartbeat looked dead): theirs now
                        log.warning("Atelier worker %s: job %s was taken over by %s before it was queued here; "
                                    "leaving it to them", self.name, job_id, holder)
                        return "taken over"
                    await self.comfy.queue(graph, prompt_id=prompt_id)
                item = await self.comfy.wait(prompt_id, spec.deadline_s, self._progress(job_id), timings=timings)
        except asyncio.CancelledError:
            if not user_abort():  # the worker is stopping: another one takes the job over
                await asyncio.to_thread(self.store.released, job_id, f"worker {self.name} stopped")
                raise
            with suppress(Exception):  # the user cancelled: stop it where it runs
                await asyncio.wait_for(asyncio.shield(where.cancel(prompt_id)), 10)
            await asyncio.to_thread(self._end, job_id, spec, "cancelled", "cancelled by the user")
            raise
        except QueueError as exc:
            await asyncio.to_thread(self._end, job_id, spec, "failed", f"ComfyUI refused the graph: {exc.message}")
            return "failed"
        except DeadlineExceeded as exc:
            with suppress(Exception):
                await where.cancel(prompt_id)
            await asyncio.to_thread(self._end, job_id, spec, "failed", exc.message)
            return "failed"
        files = await self._fetch(where, item, spec)
        return await asyncio.to_thread(self._finish, job_id, spec, item, files, finished(timings, spec.graph))

    async def _graph(self, spec: JobSpec) -> dict[str, Any]:
        """The graph to queue: a chained storyboard frame gets the kept image of the frame it chains from
        (uploaded to this ComfyUI), or, when that frame did not complete, its fallback graph."""
        chain = spec.extra.get("chain")
        if not chain or spec.group_id is None:
            return spec.graph
        earlier = await asyncio.to_thread(self.store.job_at, spec.group_id, int(chain["position"]))
        record = await asyncio.to_thread(self.records.get, earlier["id"]) if earlier else None
        ours = (record.outputs.get("atelier") or {}) if record is not None and record.status == "completed" else {}
        files = ours.get("files") or []
        if not files:
            log.info("Atelier worker %s: frame %s starts without the frame it chains from (%s)", self.name,
                     spec.position, record.status if record else "missing")
            return dict(chain["fallback"])
        try:
            source = inside(self.shared, str(files[0]), "files")
        except NotFound:
            raise Unavailable(f"the chained frame's image {files[0]} is not in this worker's shared storage "
                              f"({self.shared.name}): is the storage shared?", field="shared", value=files[0]) \
                from None
        data = await asyncio.to_thread(source.read_bytes)
        name = await self.comfy.upload(f"atelier_chain_{spec.record_id}.png", data)
        graph = json.loads(json.dumps(spec.graph))
        graph[chain["node"]]["inputs"]["image"] = name
        return dict(graph)

    async def _adopt(self, other: WorkerComfy, prompt_id: str, job_id: str, spec: JobSpec) -> dict[str, Any] | None:
        """The prompt as an earlier attempt left it on another ComfyUI: its finished entry, or followed to its end
        while that ComfyUI still has it; None when it answers nothing useful (then it runs here)."""
        try:
            item = await other.history(prompt_id)
            if item is not None and (item.get("status") or {}).get("status_str") in ("success", "error"):
                log.info("Atelier worker %s: job %s had finished where it started; its outputs are taken",
                         self.name, job_id)
                return item
            running, pending = await other.queue_ids()
            if prompt_id in running or prompt_id in pending:
                log.info("Atelier worker %s: job %s is still running where it started; following it there",
                         self.name, job_id)
                return await other.wait(prompt_id, spec.deadline_s, self._progress(job_id))
        except Unavailable:
            pass
        return None

    async def _has(self, prompt_id: str) -> bool:
        """Whether this ComfyUI already has the prompt (queued, running or finished well)."""
        running, pending = await self.comfy.queue_ids()
        if prompt_id in running or prompt_id in pending:
            return True
        item = await self.comfy.history(prompt_id)
        return item is not None and (item.get("status") or {}).get("status_str") == "success"

    def _progress(self, job_id: str) -> Callable[[float], None]:
        """A progress callback for the event loop: at most ten writes a job, each off the loop; a failed write
        is a courtesy lost, never the job."""
        last = [-1.0]
        loop = asyncio.get_running_loop()

        def write(fraction: float) -> None:
            try:
                self.store.progress(job_id, fraction)
            except Exception:
                log.debug("Atelier worker: progress of job %s not written", job_id, exc_info=True)

        def report(fraction: float) -> None:
            if fraction - last[0] >= 0.1 or (fraction >= 1.0 > last[0]):
                last[0] = fraction
                loop.run_in_executor(None, write, fraction)
        return report

    async def _fetch(self, where: WorkerComfy, item: dict[str, Any], spec: JobSpec) -> list[str]:
        """The job's images, copied from ComfyUI into shared storage: their paths relative to it."""
        folder = self.shared / spec.user / spec.record_id
        out = []
        for image in _images(item):
            name = _SAFE.sub("_", Path(str(image["filename"])).name).lstrip(".") or "image.png"
            query = urlencode({"filename": image["filename"], "subfolder": image.get("subfolder") or "",
                               "type": image.get("type") or "output"})
            data = await where.view(query)
            await asyncio.to_thread(atomic_write_bytes, folder / name, data)
            out.append(f"{spec.user}/{spec.record_id}/{name}")
        return out

    def _finish(self, job_id: str, spec: JobSpec, item: dict[str, Any], files: list[str],
                timings: list[dict[str, Any]] | None = None) -> str:
        extra: dict[str, Any] = {"files": files, "worker": self.name, "comfy_url": self.comfy_url}
        if self.device:
            extra["device"] = self.device
        if timings:
            extra["timings"] = timings
        done = self.records.finish_from_history(spec.prompt_id, item, extra_outputs={"atelier": extra})
        record = self.records.get(spec.record_id)
        state = record.status if record.status in FINAL else "failed"
        if not done and record.status not in FINAL:  # a history without a final status: never leave it open
            self._end(job_id, spec, "failed", "ComfyUI's history has no final status")
            return "failed"
        self.store.finish_job(job_id, state, record.error, self.name)
        self._close_group(spec)
        return state

    def _close_group(self, spec: JobSpec) -> None:
        """The last job of a batch or storyboard to end ends its run record: completed when any job completed
        (with a note when some did not), failed when none did."""
        if spec.group_id is None:
            return
        states = self.store.group_states(spec.group_id)
        if any(s in OPEN_STATES for s in states):
            return
        try:
            parent = self.records.get(spec.group_id)
        except NotFound:
            return
        if parent.status in FINAL:
            return
        ok = "completed" in states
        with suppress(Conflict):
            self.records.set_status(parent.id, "completed" if ok else "failed",
                                    error=None if all(s == "completed" for s in states) else
                                    f"{sum(s != 'completed' for s in states)} of {len(states)} jobs did not complete")

    async def give_up(self, spec: JobSpec, why: str) -> None:
        """The queue will not try the job again: it failed, and says why."""
        await asyncio.to_thread(self._end, spec.record_id, spec, "failed", why)

    def _end(self, job_id: str, spec: JobSpec, state: str, why: str) -> None:
        try:
            self.records.set_status(spec.record_id, state, error=why)
        except Conflict:
            pass  # already final
        self.store.finish_job(job_id, state, why, self.name)
        self._close_group(spec)
