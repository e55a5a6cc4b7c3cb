"""Following a ComfyUI's queue and history: records move to running, then to completed or failed (timed
by ComfyUI's own execution events, with per-node timings where the ComfyUI's events were observed), and finished
prompts with a Quality Preset teach the estimator.

ComfyUI's history is the truth: a prompt is looked at once it has finished there, whatever events were
missed. The store is written off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..quality.runs import RunObserver
from .comfy import ComfyUI
from .record import GenerationRecord
from .store import RecordStore

log = logging.getLogger("atelier")
POLL_S = 2.0
WINDOW = 64  # most recent prompts looked at per poll
REMEMBERED = 4096  # finished prompts remembered (each is handled once)
FINISHED = ("success", "error")

# (completed record, history item) -> whether it taught the estimator
Calibrate = Callable[[GenerationRecord, dict[str, Any]], bool]
# (prompt id, its graph) -> its per-node timings, taken (``PromptTimings.take``)
TakeTimings = Callable[[str, Any], list[dict[str, Any]]]


class HistoryFollower:
    def __init__(self, comfy: ComfyUI, store: RecordStore, observer: RunObserver | None = None,
                 calibrate: Calibrate | None = None, window: int = WINDOW, timings: TakeTimings | None = None) -> None:
        self.comfy = comfy
        self.timings = timings
        self.store = store
        self.observer = observer
        self.calibrate = calibrate
        self.window = window
        self._finished: OrderedDict[str, None] = OrderedDict()

    async def poll(self) -> list[str]:
        """One look at ComfyUI: returns the ids of the records that finished."""
        running, _ = await self.comfy.queue_ids()
        for prompt_id in running:
            await asyncio.to_thread(self.store.mark_running, prompt_id)
        done: list[str] = []
        for prompt_id, item in (await self.comfy.recent_history(self.window)).items():
            done += await asyncio.to_thread(self._finish, prompt_id, item)
        return done

    def _finish(self, prompt_id: str, item: dict[str, Any]) -> list[str]:
        """A finished prompt, once: its open records completed or failed, its run taught to the estimator."""
        if prompt_id in self._finished or (item.get("status") or {}).get("status_str") not in FINISHED:
            return []
        self._finished[prompt_id] = None
        while len(self._finished) > REMEMBERED:
            self._finished.popitem(last=False)
        extra = None
        if self.timings is not None:
            prompt = item.get("prompt")
            timed = self.timings(prompt_id, prompt[2] if isinstance(prompt, list) and len(prompt) > 2 else None)
            extra = {"atelier": {"timings": timed}} if timed else None
        done = self.store.finish_from_history(prompt_id, item, extra)
        if self.calibrate is not None:
            for record_id in done:
                self.calibrate(self.store.get(record_id), item)
        if self.observer is not None:
            outcome = self.observer.ingest(prompt_id, item)
            if outcome.startswith(("recorded", "skipped")):
                log.debug("Atelier calibration %s: %s", prompt_id, outcome)
        return done

    async def run(self, interval_s: float = POLL_S) -> None:
        """Poll until cancelled; a bad history entry or an unreachable ComfyUI never stops it."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following; the next poll may succeed
                log.exception("Atelier: following ComfyUI's queue and history failed")
