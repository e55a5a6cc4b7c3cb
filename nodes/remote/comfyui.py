"""The one client of a running ComfyUI (HTTP + websocket), used by every part of Atelier that talks to one:
the routes that queue and cancel generations and pipelines, the follower that moves records along
ComfyUI's queue and history, and ``python -m atelier run``.

``/history`` is the truth about a prompt; websocket events are for progress and may be missed, so a
quiet websocket is backed by a look at the history. Every call has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from ..core.base.errors import AtelierError, Unavailable
from ..core.base.files import atomic_write_bytes
from ..core.base.secrets import public_url
from ..core.records.service import QueueError
from ..core.records.timings import advance, is_end
from ..core.scaleout.runner import DeadlineExceeded
from ..core.storyboard.pipelines import load_workflow, use_checkpoint

Progress = Callable[[str, dict[str, Any]], None]
CALL_TIMEOUT_S = 30.0
HISTORY_CHECK_S = 5.0
MAX_EVENTS = 2000   # buffered events per prompt
MAX_PROMPTS = 256   # prompts with buffered events
ENDED = {"success": "completed", "error": "failed"}


class ComfyClient:
    """ComfyUI at ``url`` (``http://127.0.0.1:8188``). ``verify_tls=False`` for a loopback server with a
    self-signed certificate."""

    def __init__(self, url: str, timeout_s: float = CALL_TIMEOUT_S, verify_tls: bool = True) -> None:
        self.url = url.rstrip("/")
        self.shown = public_url(self.url)  # what messages name: never the URL's credentials
        self.timeout_s = timeout_s
        self.ssl: ssl.SSLContext | bool = True if verify_tls else False
        self.client_id = f"atelier-{uuid.uuid4().hex[:12]}"
        self.poll_s = 1.0  # how often ``wait`` looks at the history when the websocket is quiet
        self._events: dict[str, list[tuple[float, str, dict[str, Any]]]] = {}  # per prompt, by ``listen``
        self._arrived = asyncio.Event()
        self._listening = False

    def _session(self, total: float | None = None) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=total or self.timeout_s, sock_connect=10)
        return aiohttp.ClientSession(timeout=timeout)

    async def _json(self, session: aiohttp.ClientSession, method: str, path: str, payload: Any = None,
                    allow: tuple[int, ...] = ()) -> Any:
        try:
            async with session.request(method, self.url + path, json=payload, ssl=self.ssl) as response:
                data = await response.json(content_type=None)
                if response.status in allow:
                    return None
                if response.status >= 400:
                    raise _refusal(method, path, response.status, data)
                return data
        except aiohttp.ClientConnectionError as exc:
            raise Unavailable(f"cannot reach ComfyUI at {self.shown} ({exc}); is it running, with Atelier "
                              f"installed?", field="server", value=self.shown) from None
        except (asyncio.TimeoutError, ValueError) as exc:
            why = f"no answer within {self.timeout_s:g} s" if isinstance(exc, asyncio.TimeoutError) else \
                "an answer that is not JSON"
            raise Unavailable(f"ComfyUI at {self.shown} gave {why} to {method} {path}", field="server",
                              value=self.shown) from None

    async def call(self, method: str, path: str, payload: Any = None, allow: tuple[int, ...] = ()) -> Any:
        async with self._session() as session:
            return await self._json(session, method, path, payload, allow)

    # --- the queue ----------------------------------------------------------------------------
    async def queue(self, graph: dict[str, Any], client_id: str | None = None, prompt_id: str | None = None) -> str:
        """Put an API-format graph on ComfyUI's queue; ComfyUI's refusal is a QueueError naming its node errors.
        ``prompt_id`` (chosen by the caller) makes a resubmission idempotent."""
        payload: dict[str, Any] = {"prompt": graph, "client_id": client_id or self.client_id}
        if prompt_id:
            payload["prompt_id"] = prompt_id
        try:
            answer = await self.call("POST", "/prompt", payload)
        except Refused as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error")
            message = error.get("message", body) if isinstance(error, dict) else (error or exc.body)
            raise QueueError(f"ComfyUI refused the graph: {message}", field="graph",
                             value=body.get("node_errors") or error) from None
        return str(answer["prompt_id"])

    async def queue_ids(self) -> tuple[list[str], list[str]]:
        """The prompt ids ComfyUI is running and has queued (``GET /queue``)."""
        data = await self.call("GET", "/queue")
        return ([str(item[1]) for item in data.get("queue_running", [])],
                [str(item[1]) for item in data.get("queue_pending", [])])

    async def cancel(self, prompt_id: str) -> None:
        """Interrupt the prompt when it is running, else take it off the queue."""
        running, _ = await self.queue_ids()
        if prompt_id in running:
            await self.call("POST", "/interrupt", {"prompt_id": prompt_id})
        else:
            await self.call("POST", "/queue", {"delete": [prompt_id]})

    async def view(self, query: str, limit: int = 256 * 1024 * 1024) -> bytes:
        """An image's bytes from ``/view?<query>`` (filename, subfolder, type), at most ``limit``."""
        try:
            async with self._session() as session:
                async with session.get(f"{self.url}/view?{query}", ssl=self.ssl) as response:
                    if response.status != 200:
                        raise Unavailable(f"ComfyUI at {self.shown} answered {response.status} to /view",
                                          field="server", value=self.shown)
                    data = await response.content.read(limit + 1)
        except aiohttp.ClientConnectionError as exc:
            raise Unavailable(f"cannot reach ComfyUI at {self.shown} ({exc})", field="server", value=self.shown) from None
        if len(data) > limit:
            raise Unavailable(f"an image from ComfyUI at {self.shown} is over {limit} bytes", field="server",
                              value=self.shown)
        return data

    async def upload(self, name: str, data: bytes) -> str:
        """An image into ComfyUI's input folder (``POST /upload/image``, overwriting one of the same name);
        the name ComfyUI files it under (with its subfolder, as LoadImage takes it)."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="image/png")
        form.add_field("overwrite", "true")
        form.add_field("type", "input")
        try:
            async with self._session() as session:
                async with session.post(f"{self.url}/upload/image", data=form, ssl=self.ssl) as response:
                    answer = await response.json(content_type=None)
                    if response.status != 200 or not isinstance(answer, dict) or not answer.get("name"):
                        raise Unavailable(f"ComfyUI at {self.shown} answered {response.status} to an upload",
                                          field="server", value=self.shown)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, ValueError) as exc:
            raise Unavailable(f"cannot upload to ComfyUI at {self.shown} ({type(exc).__name__})", field="server",
                              value=self.shown) from None
        sub = str(answer.get("subfolder") or "")
        return f"{sub}/{answer['name']}" if sub else str(answer["name"])

    # --- the history --------------------------------------------------------------------------
    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """ComfyUI's history entry of one prompt, or None while it has none."""
        data = await self.call("GET", f"/history/{prompt_id}")
        item = (data or {}).get(prompt_id)
        return item if isinstance(item, dict) else None

    async def recent_history(self, max_items: int) -> dict[str, dict[str, Any]]:
        """The most recent ``max_items`` prompts of ComfyUI's history, by prompt id."""
        data = await self.call("GET", f"/history?{urlencode({'max_items': max_items})}")
        return {str(k): v for k, v in (data or {}).items() if isinstance(v, dict)}

    async def ended(self, prompt_id: str) -> str | None:
        """``completed`` or ``failed`` once the history says so, else None."""
        status = ((await self.history(prompt_id)) or {}).get("status") or {}
        return ENDED.get(str(status.get("status_str")))

    # --- one prompt to its end, for a scale-out worker ----------------------------------------
    async def listen(self) -> None:
        """Keep a websocket open to ComfyUI (until cancelled), buffering each prompt's events as they arrive, with
        their arrival time: ``wait`` reads them, so the first events of a prompt queued just now are not missed.
        A dropped connection is opened again."""
        while True:
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
                    async with session.ws_connect(self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}",
                                                  heartbeat=30, ssl=self.ssl) as ws:
                        self._listening = True
                        async for message in ws:
                            if message.type != aiohttp.WSMsgType.TEXT:
                                continue
                            try:
                                event = json.loads(message.data)
                            except ValueError:
                                continue
                            data = event.get("data")
                            if isinstance(data, dict) and isinstance(data.get("prompt_id"), str):
                                self._events_of(data["prompt_id"]).append((time.monotonic(), str(event.get("type")),
                                                                           data))
                                self._arrived.set()
            except asyncio.CancelledError:
                self._listening = False
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            self._listening = False
            await asyncio.sleep(1.0)

    def _events_of(self, prompt_id: str) -> list[tuple[float, str, dict[str, Any]]]:
        buffered = self._events.setdefault(prompt_id, [])
        del buffered[:-MAX_EVENTS]  # bounded: a prompt nobody waits for keeps its last events only
        while len(self._events) > MAX_PROMPTS:
            self._events.pop(next(iter(self._events)))
        return buffered

    async def wait(self, prompt_id: str, deadline_s: float, progress: Callable[[float], None] | None = None,
                   poll_s: float | None = None, misses: int = 3,
                   timings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The prompt's history entry once it has finished. Progress (0-1) comes from the websocket events
        ``listen`` buffers; the end comes from ``/history``, looked at after every end-like event and every quiet
        ``poll_s`` (without a listener, the history alone). A prompt that ComfyUI no longer has anywhere (it
        restarted), or ``misses`` failed looks in a row, is Unavailable; past ``deadline_s`` it is
        DeadlineExceeded. ``timings`` gets each node's seconds, from the ``executing`` events as they arrived (a
        node's time runs until the next one starts)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        poll_s = poll_s or self.poll_s
        failures = looks = 0
        try:
            while True:
                if loop.time() > deadline:
                    raise DeadlineExceeded(f"prompt {prompt_id} did not finish within {deadline_s:g} s",
                                           field="deadline_s", value=deadline_s)
                if not await self._next_events(prompt_id, poll_s, progress, timings):
                    continue
                looks += 1
                try:
                    item = await self.history(prompt_id)
                    if item is not None and (item.get("status") or {}).get("status_str") in ("success", "error"):
                        self._read_events(prompt_id, progress, timings)  # the last ones, if they came late
                        return item
                    if looks % 5 == 0 and item is None:
                        running, pending = await self.queue_ids()
                        if prompt_id not in running and prompt_id not in pending:
                            raise Unavailable(f"ComfyUI at {self.shown} no longer has prompt {prompt_id} (restarted?)",
                                              field="server", value=self.shown)
                    failures = 0
                except Unavailable:
                    failures += 1
                    if failures >= misses:
                        raise
                    await asyncio.sleep(poll_s)
        finally:
            self._events.pop(prompt_id, None)

    async def _next_events(self, prompt_id: str, poll_s: float, progress: Callable[[float], None] | None,
                           timings: list[dict[str, Any]] | None) -> bool:
        """Whether to look at the history now: after an end-like event, or ``poll_s`` without one."""
        if not self._listening and not self._events.get(prompt_id):
            await asyncio.sleep(poll_s)
            return True
        until = asyncio.get_running_loop().time() + poll_s
        while True:
            if self._read_events(prompt_id, progress, timings):
                return True
            left = until - asyncio.get_running_loop().time()
            if left <= 0:
                return True
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                return True

    def _read_events(self, prompt_id: str, progress: Callable[[float], None] | None,
                     timings: list[dict[str, Any]] | None) -> bool:
        """The prompt's buffered events, taken: progress and timings told; whether one of them was end-like."""
        events = self._events.get(prompt_id) or []
        taken, events[:] = list(events), []
        ended = False
        for at, kind, data in taken:
            if timings is not None:
                advance(timings, kind, data, at)
            if kind == "progress" and progress is not None:
                try:
                    progress(float(data["value"]) / max(1.0, float(data["max"])))
                except (KeyError, TypeError, ValueError):
                    pass
            ended = ended or is_end(kind, data)
        return ended

    # --- a whole run, for the command line ----------------------------------------------------
    async def run(self, target: str, body: dict[str, Any], out_dir: Path, progress: Progress | None = None,
                  timeout_s: float = 3600.0) -> dict[str, Any]:
        """Queue ``target`` (a pipeline name, through Atelier's route, or an API workflow file), follow it on
        the websocket, and download its outputs to ``out_dir``."""
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        try:
            async with self._session(timeout_s) as session:
                async with session.ws_connect(ws_url, heartbeat=30, ssl=self.ssl) as ws:
                    prompt_id = await self._submit(session, target, body)
                    outcome = await self._follow(ws, prompt_id, progress)
                item = await self._settled(prompt_id)
                files = await self._download(session, item.get("outputs") or {}, out_dir)
                report = await self._json(session, "GET", f"/atelier/pipelines/runs/{prompt_id}", allow=(404,))
        except aiohttp.ClientConnectionError as exc:
            raise Unavailable(f"cannot reach ComfyUI at {self.shown} ({exc}); is it running, with Atelier "
                              f"installed?", field="server", value=self.shown) from None
        return {"prompt_id": prompt_id, "status": outcome, "outputs": item.get("outputs") or {}, "files": files,
                "manifests": (report or {}).get("manifests", []),
                "error": (item.get("status") or {}).get("messages") if outcome == "failed" else None}

    async def batch(self, body: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None = None,
                    poll_s: float = 1.0, timeout_s: float = 6 * 3600.0) -> dict[str, Any]:
        """Queue a batch through Atelier's route and follow it until every item has ended: its last report."""
        report = await self.call("POST", "/atelier/batches", body)
        deadline = asyncio.get_running_loop().time() + timeout_s
        seen = -1
        while report["progress"]["done"] < report["progress"]["total"]:
            if progress and report["progress"]["done"] != seen:
                seen = report["progress"]["done"]
                progress(report)
            if asyncio.get_running_loop().time() > deadline:
                raise Unavailable(f"batch {report['id']} did not finish within {timeout_s:g} s", field="server",
                                  value=self.shown)
            await asyncio.sleep(poll_s)
            report = await self.call("GET", f"/atelier/batches/{report['id']}")
        return dict(report)

    async def _settled(self, prompt_id: str, wait_s: float = HISTORY_CHECK_S * 2) -> dict[str, Any]:
        """The prompt's history entry: ComfyUI writes it just after its last websocket event, so wait for it."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            item = await self.history(prompt_id)
            if item is not None or asyncio.get_running_loop().time() > deadline:
                return item or {}
            await asyncio.sleep(0.2)

    async def _submit(self, session: aiohttp.ClientSession, target: str, body: dict[str, Any]) -> str:
        path = Path(target)
        if target.endswith(".json") or path.is_file():
            graph = load_workflow(path)
            if body.get("checkpoint"):
                use_checkpoint(graph, body["checkpoint"])
            answer = await self._json(session, "POST", "/prompt", {"prompt": graph, "client_id": self.client_id})
        else:
            answer = await self._json(session, "POST", f"/atelier/pipelines/{target}/run",
                                      {**body, "client_id": self.client_id})
        return str(answer["prompt_id"])

    async def _follow(self, ws: Any, prompt_id: str, progress: Progress | None) -> str:
        """ComfyUI's events for this prompt until it ends: completed, failed or interrupted. Every few quiet
        seconds its history is checked too, so an event missed (or sent to another client) cannot hang us."""
        while True:
            try:
                message = await ws.receive(timeout=HISTORY_CHECK_S)
            except asyncio.TimeoutError:
                ended = await self.ended(prompt_id)
                if ended:
                    return ended
                continue
            if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                return await self.ended(prompt_id) or "unknown"
            if message.type != aiohttp.WSMsgType.TEXT:
                continue  # binary previews
            event = json.loads(message.data)
            kind, data = event.get("type"), event.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if progress and kind in ("progress", "executing", "execution_success", "execution_error",
                                     "execution_interrupted"):
                progress(kind, data)
            if kind == "execution_success" or (kind == "executing" and data.get("node") is None
                                               and data.get("prompt_id") == prompt_id):
                return "completed"
            if kind == "execution_error":
                return "failed"
            if kind == "execution_interrupted":
                return "interrupted"

    async def _download(self, session: aiohttp.ClientSession, outputs: dict[str, Any], out_dir: Path) -> list[str]:
        saved: list[str] = []
        for output in outputs.values():
            for image in output.get("images", []) if isinstance(output, dict) else []:
                if image.get("type") != "output":
                    continue
                query = urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
                async with session.get(f"{self.url}/view?{query}", ssl=self.ssl) as response:
                    if response.status != 200:
                        continue
                    data = await response.read()
                target = out_dir / Path(str(image.get("subfolder", ""))).name / Path(image["filename"]).name
                atomic_write_bytes(target, data)
                saved.append(str(target))
        return saved


class Refused(AtelierError):
    """ComfyUI (or Atelier on it) answered with an error status; ``body`` is its answer."""

    def __init__(self, message: str, status: int, body: Any, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status
        self.body = body


def _refusal(method: str, path: str, status: int, data: Any) -> Refused:
    """ComfyUI's (or Atelier's) error answer: its message and node errors."""
    message = data.get("error") if isinstance(data, dict) else data
    if isinstance(message, dict):
        message = message.get("message")
    details = data.get("node_errors") if isinstance(data, dict) else None
    field = data.get("field") if isinstance(data, dict) else None
    text = f"{method} {path}: {status} {message}" + (f"; node errors: {json.dumps(details)[:2000]}" if details else "")
    return Refused(text, status if 400 <= status < 500 else 502, data, field)
