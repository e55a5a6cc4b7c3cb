"""Real HTTP servers on 127.0.0.1 that speak Ollama's and the OpenAI chat protocols, scripted per test."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

Reply = Callable[[dict[str, Any], web.Request], Any]  # may be a coroutine function


class ScriptedLLM:
    """Answers with ``reply(body, request)`` (a str is the assistant's text; a web.Response is sent as is)."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _answer(self, request: web.Request, wrap: Callable[[str], dict[str, Any]]) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body, dict(request.headers)))
        result = self.reply(body, request)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(wrap(str(result)))

    async def ollama(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, lambda text: {
            "model": "m", "message": {"role": "assistant", "content": text}, "done": True})

    async def openai(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, lambda text: {
            "id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})

    def start(self) -> str:
        started = threading.Event()

        async def boot() -> None:
            app = web.Application()
            app.router.add_post("/api/chat", self.ollama)
            app.router.add_post("/v1/chat/completions", self.openai)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(boot())
            started.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        assert started.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def is_critic(body: dict[str, Any]) -> bool:
    return "strict critic" in json.dumps(body.get("messages", ""))
