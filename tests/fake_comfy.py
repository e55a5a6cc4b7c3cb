"""A fake ComfyUI for scale-out tests and the scale bench: the HTTP surface a worker uses, on loopback, with a
fixed duration per prompt and failure injection. Run as a process (so tests can ``kill -9`` it):

    python tests/fake_comfy.py --port 8190 --seconds 0.5 [--mode ok|refuse|error|hang|crash]

- ``POST /prompt`` queues a graph under the client's ``prompt_id`` (like ComfyUI 0.3.64, it does not refuse a
  prompt id it has seen: running twice is the client's problem); ``mode=refuse`` answers 400 with node errors.
- One prompt runs at a time for ``seconds``; ``/ws?clientId=`` gets ComfyUI's events for the prompts that
  client queued (execution_start, executing, progress, executed, execution_success / _error / _interrupted).
- ``GET /queue``, ``GET /prompt``, ``GET /history[/{id}]``, ``POST /interrupt``, ``POST /queue`` (delete) and
  ``GET /view`` (a small PNG per output) behave as ComfyUI's.
- A graph with ``[fail]`` in any text fails in the history; ``POST /upload/image`` keeps the name and size of
  what was uploaded (in the stats), and the graphs that ran are kept too (``GET /fake/stats``).
- Failure modes: ``error`` (the prompt fails in the history), ``hang`` (it never finishes unless interrupted),
  ``crash`` (the process exits half-way through a prompt). ``POST /fake/mode {"mode", "seconds"}`` changes them
  while running; ``GET /fake/stats`` says what ran: submissions, starts and completions per prompt id, and when.

Unlike ``fake_comfyui.py`` (an in-process stand-in whose prompts a test moves by hand), this one runs prompts on
its own, in its own process, so that workers can be raced, timed and killed against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import time
import uuid
import zlib
from typing import Any

from aiohttp import WSMsgType, web

MODES = ("ok", "refuse", "error", "hang", "crash")


def png(seed: str, size: int = 8) -> bytes:
    """A small real PNG, coloured by ``seed``."""
    r, g, b = (zlib.crc32(seed.encode()) >> s & 255 for s in (0, 8, 16))
    raw = b"".join(b"\x00" + bytes((r, g, b)) * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class FakeComfy:
    def __init__(self, seconds: float, mode: str, name: str) -> None:
        self.seconds, self.mode, self.name = seconds, mode, name
        self.pending: list[tuple[int, str, dict[str, Any], str]] = []
        self.running: tuple[int, str, dict[str, Any], str] | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.clients: dict[str, web.WebSocketResponse] = {}
        self.number = 0
        self.wake = asyncio.Event()
        self.interrupted = False
        self.stats: dict[str, Any] = {"submitted": {}, "started": {}, "completed": {}, "times": {}, "graphs": {},
                                      "uploads": {}}

    async def send(self, client: str, kind: str, data: dict[str, Any]) -> None:
        ws = self.clients.get(client)
        if ws is not None and not ws.closed:
            try:
                await ws.send_str(json.dumps({"type": kind, "data": data}))
            except (ConnectionError, RuntimeError):
                pass

    async def executor(self) -> None:
        while True:
            while not self.pending:
                self.wake.clear()
                await self.wake.wait()
            self.running = self.pending.pop(0)
            number, prompt_id, graph, client = self.running
            self.interrupted = False
            started = time.time()
            self.stats["started"][prompt_id] = self.stats["started"].get(prompt_id, 0) + 1
            self.stats.setdefault("graphs", {})[prompt_id] = graph
            messages: list[list[Any]] = [["execution_start", {"prompt_id": prompt_id, "timestamp": int(started * 1000)}]]
            await self.send(client, "execution_start", {"prompt_id": prompt_id})
            await self.send(client, "executing", {"node": "1", "prompt_id": prompt_id})
            steps, outcome = 10, "success"
            for step in range(steps):
                if self.mode == "crash" and step == steps // 2:
                    os._exit(1)
                await asyncio.sleep(self.seconds / steps)
                while self.mode == "hang" and not self.interrupted:
                    await asyncio.sleep(0.05)
                if self.interrupted:
                    outcome = "interrupted"
                    break
                await self.send(client, "progress", {"value": step + 1, "max": steps, "prompt_id": prompt_id,
                                                     "node": "1"})
            if outcome == "success" and (self.mode == "error" or "[fail]" in json.dumps(graph)):
                outcome = "error"
            finished = time.time()
            outputs: dict[str, Any] = {}
            if outcome == "success":
                name = f"atelier_{prompt_id[:8]}_00001_.png"
                outputs = {"9": {"images": [{"filename": name, "subfolder": "", "type": "output"}]}}
                await self.send(client, "executed", {"node": "9", "output": outputs["9"], "prompt_id": prompt_id})
                messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": int(finished * 1000)}])
                self.stats["completed"][prompt_id] = self.stats["completed"].get(prompt_id, 0) + 1
            elif outcome == "error":
                messages.append(["execution_error", {"prompt_id": prompt_id, "exception_message": "injected failure",
                                                     "timestamp": int(finished * 1000)}])
            else:
                messages.append(["execution_interrupted", {"prompt_id": prompt_id,
                                                           "timestamp": int(finished * 1000)}])
            self.stats["times"].setdefault(prompt_id, []).append([started, finished, outcome])
            self.history[prompt_id] = {
                "prompt": [number, prompt_id, graph, {"client_id": client}, ["9"]], "outputs": outputs,
                "status": {"status_str": "success" if outcome == "success" else "error",
                           "completed": outcome == "success", "messages": messages}}
            self.running = None
            kind = {"success": "execution_success", "error": "execution_error"}.get(outcome, "execution_interrupted")
            await self.send(client, kind, {"prompt_id": prompt_id})
            await self.send(client, "executing", {"node": None, "prompt_id": prompt_id})

    # --- routes ---------------------------------------------------------------------------------
    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.mode == "refuse":
            return web.json_response({"error": {"type": "prompt_outputs_failed_validation",
                                                "message": "Prompt outputs failed validation"},
                                      "node_errors": {"1": {"errors": [{"message": "injected refusal"}]}}}, status=400)
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        self.number += 1
        self.stats["submitted"][prompt_id] = self.stats["submitted"].get(prompt_id, 0) + 1
        self.pending.append((self.number, prompt_id, body.get("prompt") or {}, str(body.get("client_id") or "")))
        self.wake.set()
        return web.json_response({"prompt_id": prompt_id, "number": self.number, "node_errors": {}})

    async def get_queue(self, request: web.Request) -> web.Response:
        def row(item: tuple[int, str, dict[str, Any], str]) -> list[Any]:
            return [item[0], item[1], item[2], {"client_id": item[3]}, ["9"]]
        return web.json_response({"queue_running": [row(self.running)] if self.running else [],
                                  "queue_pending": [row(i) for i in self.pending]})

    async def post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        drop = set(body.get("delete") or [])
        self.pending = [i for i in self.pending if i[1] not in drop]
        if body.get("clear"):
            self.pending = []
        return web.json_response({})

    async def get_prompt(self, request: web.Request) -> web.Response:
        remaining = len(self.pending) + (1 if self.running else 0)
        return web.json_response({"exec_info": {"queue_remaining": remaining}})

    async def get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info.get("prompt_id")
        if prompt_id is not None:
            item = self.history.get(prompt_id)
            return web.json_response({prompt_id: item} if item else {})
        limit = int(request.query.get("max_items", "64"))
        return web.json_response(dict(list(self.history.items())[-limit:]))

    async def post_interrupt(self, request: web.Request) -> web.Response:
        self.interrupted = True
        return web.json_response({})

    async def get_view(self, request: web.Request) -> web.Response:
        name = request.query.get("filename", "")
        if not name.startswith("atelier_"):
            return web.Response(status=404)
        return web.Response(body=png(name), content_type="image/png")

    async def system_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"comfyui_version": "fake"}, "devices": [
            {"name": "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync", "type": "cuda"}]})

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form.get("image")
        if image is None or not hasattr(image, "filename"):
            return web.json_response({"error": "no image"}, status=400)
        data = image.file.read()
        self.stats.setdefault("uploads", {})[image.filename] = len(data)
        return web.json_response({"name": image.filename, "subfolder": "", "type": "input"})

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        client = request.query.get("clientId") or uuid.uuid4().hex
        self.clients[client] = ws
        await ws.send_str(json.dumps({"type": "status", "data": {"sid": client, "status": {
            "exec_info": {"queue_remaining": len(self.pending)}}}}))
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
        self.clients.pop(client, None)
        return ws

    async def set_mode(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("mode") in MODES:
            self.mode = body["mode"]
        if isinstance(body.get("seconds"), (int, float)):
            self.seconds = float(body["seconds"])
        return web.json_response({"mode": self.mode, "seconds": self.seconds})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "name": self.name, "pending": len(self.pending),
                                  "running": self.running[1] if self.running else None})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/prompt", self.post_prompt)
        app.router.add_get("/prompt", self.get_prompt)
        app.router.add_get("/queue", self.get_queue)
        app.router.add_post("/queue", self.post_queue)
        app.router.add_get("/history", self.get_history)
        app.router.add_get("/history/{prompt_id}", self.get_history)
        app.router.add_post("/interrupt", self.post_interrupt)
        app.router.add_get("/view", self.get_view)
        app.router.add_get("/system_stats", self.system_stats)
        app.router.add_post("/upload/image", self.upload)
        app.router.add_get("/ws", self.websocket)
        app.router.add_post("/fake/mode", self.set_mode)
        app.router.add_get("/fake/stats", self.get_stats)

        async def start(app: web.Application) -> None:
            app["executor"] = asyncio.create_task(self.executor())

        app.on_startup.append(start)
        return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--name", default="fake")
    args = parser.parse_args()
    web.run_app(FakeComfy(args.seconds, args.mode, args.name).app(), host="127.0.0.1", port=args.port,
                print=lambda *_: print(f"fake ComfyUI on {args.port}", flush=True), access_log=None)


if __name__ == "__main__":
    main()
