"""A client of a running ComfyUI with Atelier: queue a pipeline or a workflow, follow its progress on
ComfyUI's websocket, download its outputs. Used by ``python -m atelier run``.

Pipelines go through ``POST /atelier/pipelines/{name}/run`` (the server builds the graph); workflow files
(API format, as ComfyUI's "Export (API)" writes them) go to ``POST /prompt``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from ..core.base.errors import AtelierError, InvalidInput, Unavailable, invalid

Progress = Callable[[str, dict[str, Any]], None]
HISTORY_CHECK_S = 5.0


CHECKPOINT_INPUTS = {"CheckpointLoaderSimple": "ckpt_name", "AtelierQualityPreset": "checkpoint"}


def use_checkpoint(graph: dict[str, Any], checkpoint: str) -> dict[str, Any]:
    """Shipped workflows name no checkpoint (the user picks theirs): set it in every loader (and preset)."""
    for node in graph.values():
        name = CHECKPOINT_INPUTS.get(node.get("class_type", ""))
        if name and not isinstance(node.get("inputs", {}).get(name), list):
            node.setdefault("inputs", {})[name] = checkpoint
    return graph


def load_workflow(path: Path) -> dict[str, Any]:
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise invalid("workflow", str(path), "a readable API-format workflow JSON file", str(exc)) from None
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise InvalidInput(f"{path} is a UI workflow; use its API-format twin (workflows/api/) or ComfyUI's "
                           f"'Export (API)'", field="workflow", value=str(path))
    if not isinstance(graph, dict) or not all(isinstance(n, dict) and "class_type" in n for n in graph.values()):
        raise invalid("workflow", str(path), "an API-format graph: {node id: {class_type, inputs}}")
    return graph


def progress_bar(event: str, data: dict[str, Any]) -> None:
    """A one-line progress bar on stderr from ComfyUI's events."""
    if event == "progress":
        value, total = int(data.get("value", 0)), max(1, int(data.get("max", 1)))
        filled = int(30 * value / total)
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {value}/{total}  node {data.get('node')}   ")
    elif event == "executing" and data.get("node"):
        sys.stderr.write(f"\r  running node {data['node']:<40}")
    elif event in ("execution_success", "execution_error", "execution_interrupted"):
        sys.stderr.write("\n")
    sys.stderr.flush()


class ComfyClient:
    def __init__(self, server: str, timeout_s: float = 3600.0) -> None:
        self.server = server.rstrip("/")
        self.timeout_s = timeout_s
        self.client_id = f"atelier-cli-{uuid.uuid4().hex[:12]}"

    async def run(self, target: str, body: dict[str, Any], out_dir: Path, progress: Progress | None = None
                  ) -> dict[str, Any]:
        """Queue ``target`` (a pipeline name or an API workflow file), wait for it, download its outputs."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                ws_url = self.server.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
                async with session.ws_connect(ws_url, heartbeat=30) as ws:
                    prompt_id = await self._queue(session, target, body)
                    outcome = await self._follow(session, ws, prompt_id, progress)
                history = await self._json(session, "GET", f"/history/{prompt_id}")
                item = history.get(prompt_id, {})
                files = await self._download(session, item.get("outputs") or {}, out_dir)
                report = await self._json(session, "GET", f"/atelier/pipelines/runs/{prompt_id}", allow=(404,))
        except aiohttp.ClientConnectionError as exc:
            raise Unavailable(f"cannot reach ComfyUI at {self.server} ({exc}); is it running, with Atelier "
                              f"installed?", field="server", value=self.server) from None
        return {"prompt_id": prompt_id, "status": outcome, "outputs": item.get("outputs") or {}, "files": files,
                "manifests": (report or {}).get("manifests", []), "error": item.get("status", {}).get("messages")
                if outcome == "failed" else None}

    async def _json(self, session: aiohttp.ClientSession, method: str, path: str, payload: Any = None,
                    allow: tuple[int, ...] = ()) -> Any:
        async with session.request(method, self.server + path, json=payload) as response:
            data = await response.json(content_type=None)
            if response.status in allow:
                return None
            if response.status >= 400:
                message = data.get("error") if isinstance(data, dict) else data
                if isinstance(message, dict):
                    message = message.get("message")
                details = data.get("node_errors") if isinstance(data, dict) else None
                raise AtelierError(f"{method} {path}: {response.status} {message}"
                                   + (f"; node errors: {json.dumps(details)[:2000]}" if details else ""),
                                   field=data.get("field") if isinstance(data, dict) else None)
            return data

    async def _queue(self, session: aiohttp.ClientSession, target: str, body: dict[str, Any]) -> str:
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

    async def _follow(self, session: aiohttp.ClientSession, ws: Any, prompt_id: str,
                      progress: Progress | None) -> str:
        """ComfyUI's events for this prompt until it ends: completed, failed or interrupted. Every few quiet
        seconds its history is checked too, so an event missed (or sent to another client) cannot hang us."""
        while True:
            try:
                message = await ws.receive(timeout=HISTORY_CHECK_S)
            except asyncio.TimeoutError:
                ended = await self._ended(session, prompt_id)
                if ended:
                    return ended
                continue
            if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                return await self._ended(session, prompt_id) or "unknown"
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

    async def _ended(self, session: aiohttp.ClientSession, prompt_id: str) -> str | None:
        history = await self._json(session, "GET", f"/history/{prompt_id}")
        status = (history.get(prompt_id) or {}).get("status") or {}
        return {"success": "completed", "error": "failed"}.get(str(status.get("status_str")))

    async def _download(self, session: aiohttp.ClientSession, outputs: dict[str, Any], out_dir: Path) -> list[str]:
        saved: list[str] = []
        for output in outputs.values():
            for image in output.get("images", []) if isinstance(output, dict) else []:
                if image.get("type") != "output":
                    continue
                query = urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
                async with session.get(f"{self.server}/view?{query}") as response:
                    if response.status != 200:
                        continue
                    data = await response.read()
                target = out_dir / Path(str(image.get("subfolder", ""))).name / Path(image["filename"]).name
                from ..core.base.files import atomic_write_bytes

                atomic_write_bytes(target, data)
                saved.append(str(target))
        return saved
