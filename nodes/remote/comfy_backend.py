"""The Python API's ComfyUI backend: each job's seeds are queued on a ComfyUI server (the graph of
``core/generation/graph.py``, a client-chosen prompt id), followed to the end within the deadline, and the
images fetched back from ``/view``; the LoRAs' matched modules come from LoRA Recommend's history output.

The checkpoint is a name in the server's ``checkpoints`` folder; LoRAs are names in its ``loras`` folder (the
API recommends from its own LoRA folders: point them at the server's). The time is ComfyUI's own (its
execution events); ComfyUI reports no memory per prompt, so the peak VRAM is None.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from ..core.base.errors import Unavailable, invalid
from ..core.generation.backend import Job, ModelInfo, Output
from ..core.generation.graph import LORA_NODE, OUT_NODE, job_graph
from ..core.quality.families import detect_family
from ..core.quality.runs import history_duration
from ..core.quality.service import QualityService
from .comfyui import ComfyClient

POLL_S = 0.2


class ComfyUIBackend:
    name = "comfyui"
    accelerator = True
    manages_memory = True  # ComfyUI's own (its --lowvram/--novram): nothing is offloaded from here

    def __init__(self, url: str, quality: QualityService, timeout_s: float, user: str = "") -> None:
        self.client = ComfyClient(url, timeout_s=min(30.0, timeout_s))
        self.quality = quality
        self.timeout_s = timeout_s
        self.user = user
        self.info: ModelInfo | None = None

    def _call(self, coroutine: Any) -> Any:
        """Runs a call to the end. Inside a running event loop (a notebook, an async caller) it runs on a thread
        of its own, as ``asyncio.run`` cannot nest."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            runner: Any = asyncio.run
        else:
            def runner(work: Any) -> Any:
                with ThreadPoolExecutor(1, thread_name_prefix="atelier-comfyui") as pool:
                    return pool.submit(asyncio.run, work).result()
        try:
            return runner(coroutine)
        except OSError as exc:  # aiohttp's connection errors are OSErrors
            raise Unavailable(f"cannot reach ComfyUI at {self.client.url} ({exc})", field="comfyui_url",
                              value=self.client.url) from None

    def load(self, model: str | None, family: str | None) -> ModelInfo:
        info = self._call(self.client.call("GET", "/object_info/CheckpointLoaderSimple"))
        names = list(((info or {}).get("CheckpointLoaderSimple", {}).get("input", {}).get("required", {})
                      .get("ckpt_name") or [[]])[0])
        if model is None:
            if not names:
                raise invalid("base_model", None, "a checkpoint in the server's models/checkpoints (it has none)")
            model = names[0]
        if model not in names:
            raise invalid("base_model", model, names[:50], "not in the ComfyUI server's checkpoints")
        families = self.quality.tables.families.families
        if family is not None and family not in families:
            raise invalid("model_family", family, sorted(families))
        detection = detect_family(model, None, self.quality.tables)
        self.info = ModelInfo(model, family or detection.family, "comfyui",
                              f"{detection.source}: {detection.evidence}")
        return self.info

    def run(self, job: Job) -> list[Output]:
        if self.info is None:
            raise RuntimeError("load a model first")
        return [self._call(self._one(job, seed)) for seed in job.seeds]

    async def _one(self, job: Job, seed: int) -> Output:
        assert self.info is not None
        graph = job_graph(self.info.id, self.info.family, job, seed, self.user)
        prompt_id = str(uuid.uuid4())
        started = time.monotonic()
        await self.client.queue(graph, prompt_id=prompt_id)
        item: dict[str, Any] | None = None
        while time.monotonic() - started < self.timeout_s:
            item = await self.client.history(prompt_id)
            if item and (item.get("status") or {}).get("status_str") in ("success", "error"):
                break
            await asyncio.sleep(POLL_S)
        else:
            await self.client.cancel(prompt_id)
            raise Unavailable(f"ComfyUI did not finish the generation within {self.timeout_s:g} s; it was cancelled",
                              field="timeout_s", value=self.timeout_s)
        assert item is not None
        status = item.get("status") or {}
        if status.get("status_str") != "success":
            errors = [m[1].get("exception_message") for m in status.get("messages") or []
                      if isinstance(m, (list, tuple)) and len(m) == 2 and m[0] == "execution_error"]
            raise invalid("job", prompt_id, "a graph ComfyUI runs", f"ComfyUI failed: {(errors or ['?'])[0]}"[:300])
        wall = time.monotonic() - started
        outputs = item.get("outputs") or {}
        images = (outputs.get(OUT_NODE) or {}).get("images") or []
        if not images:
            raise invalid("job", prompt_id, "a run with an image", "ComfyUI returned no image")
        image = await self._fetch(images[0])
        seconds, _ = history_duration(item)
        reports = [{k: x.get(k) for k in ("name", "strength", "matched", "modules", "warning", "report")
                    if x.get(k) is not None}
                   for x in (outputs.get(LORA_NODE) or {}).get("atelier_loras") or [] if isinstance(x, dict)]
        return Output(image, seed, seconds if seconds is not None else wall, None, reports, "none",
                      [] if seconds is not None else ["the time is the wall time (ComfyUI sent no execution events)"])

    async def _fetch(self, image: dict[str, Any]) -> Any:
        from PIL import Image

        query = urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
        data = await self.client.view(query)
        with Image.open(io.BytesIO(data)) as opened:
            return opened.convert("RGB")

    def close(self) -> None:
        self.info = None
