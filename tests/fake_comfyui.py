"""A stand-in for ComfyUI's HTTP API on 127.0.0.1 (CI has no ComfyUI; the opt-in suite runs the real one).

It speaks the parts Atelier's client uses, as ComfyUI 0.3.64 answers them: ``POST /prompt`` (a graph
with a node of class ``Invalid`` is refused with node errors), ``GET /queue``, ``POST /queue`` (delete),
``POST /interrupt``, ``GET /history`` (``max_items``) and ``GET /history/{prompt_id}``. A test moves
prompts along with ``start`` and ``finish``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

from aiohttp import web


class FakeComfyUI:
    def __init__(self) -> None:
        self.pending: list[str] = []
        self.running: list[str] = []
        self.graphs: dict[str, dict[str, Any]] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.interrupted: list[str] = []
        self.deleted: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- what a test does --------------------------------------------------------------------
    def start(self, prompt_id: str) -> None:
        self.pending.remove(prompt_id)
        self.running.append(prompt_id)

    def finish(self, prompt_id: str, ok: bool = True, seconds: float = 2.0,
               outputs: dict[str, Any] | None = None, cached: list[str] | None = None) -> None:
        """The prompt ends as ComfyUI records it: status, execution events with timestamps (ms), outputs."""
        for queue in (self.pending, self.running):
            if prompt_id in queue:
                queue.remove(prompt_id)
        start = time.time() * 1000
        end_kind = "execution_success" if ok else "execution_error"
        end: dict[str, Any] = {"prompt_id": prompt_id, "timestamp": start + seconds * 1000}
        if not ok:
            end["exception_message"] = "CUDA out of memory"
        messages = [["execution_start", {"prompt_id": prompt_id, "timestamp": start}],
                    ["execution_cached", {"nodes": cached or [], "prompt_id": prompt_id, "timestamp": start}],
                    [end_kind, end]]
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, self.graphs.get(prompt_id, {}), {}, []],
            "outputs": outputs or {},
            "status": {"status_str": "success" if ok else "error", "completed": ok, "messages": messages}}

    # --- ComfyUI's routes --------------------------------------------------------------------
    async def _prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        graph = body.get("prompt") or {}
        bad = [nid for nid, node in graph.items() if node.get("class_type") == "Invalid"]
        if bad:
            return web.json_response({"error": {"type": "prompt_outputs_failed_validation",
                                                "message": "Prompt outputs failed validation"},
                                      "node_errors": {nid: {"errors": [{"message": "unknown node"}]} for nid in bad}},
                                     status=400)
        prompt_id = body.get("prompt_id") or uuid.uuid4().hex
        self.graphs[prompt_id] = graph
        self.pending.append(prompt_id)
        return web.json_response({"prompt_id": prompt_id, "number": len(self.graphs), "node_errors": {}})

    async def _queue(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [[0, p, self.graphs[p], {}, []] for p in self.running],
                                  "queue_pending": [[1, p, self.graphs[p], {}, []] for p in self.pending]})

    async def _queue_post(self, request: web.Request) -> web.Response:
        for prompt_id in (await request.json()).get("delete", []):
            if prompt_id in self.pending:
                self.pending.remove(prompt_id)
                self.deleted.append(prompt_id)
        return web.Response()

    async def _interrupt(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.interrupted.append(body.get("prompt_id"))
        return web.Response()

    async def _history(self, request: web.Request) -> web.Response:
        items = list(self.history.items())
        if "max_items" in request.query:
            items = items[-int(request.query["max_items"]):]
        return web.json_response(dict(items))

    async def _history_one(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        return web.json_response({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    # --- the server ----------------------------------------------------------------------------
    def __enter__(self) -> FakeComfyUI:
        app = web.Application()
        app.add_routes([web.post("/prompt", self._prompt), web.get("/queue", self._queue),
                        web.post("/queue", self._queue_post), web.post("/interrupt", self._interrupt),
                        web.get("/history", self._history), web.get("/history/{prompt_id}", self._history_one)])
        started = threading.Event()

        async def serve() -> None:
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(10), "the fake ComfyUI did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
