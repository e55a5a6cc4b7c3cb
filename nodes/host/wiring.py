"""What a host wires between adapters: Atelier's routes on a server's route table, a standalone server,
and a client of a running ComfyUI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..remote.comfyui import ComfyClient
from ..server import mount_on, standalone_app
from ..server.http import UserResolver, header_user, trusted_header
from .context import Atelier


def comfyui(url: str, verify_tls: bool = True) -> ComfyClient:
    """The one client of a running ComfyUI (queue, cancel, history, websocket progress, downloads)."""
    return ComfyClient(url, verify_tls=verify_tls)


def users(atelier: Atelier, default: UserResolver) -> tuple[UserResolver, bool]:
    """Who a request comes from: the trusted proxy's header when one is configured (authenticated), else the
    host's own notion (ComfyUI's ``comfy-user``, a claim anyone can make)."""
    header = atelier.settings.trusted_user_header
    return (trusted_header(header), True) if header else (default, False)


def mount_routes(table: Any, atelier: Atelier, user_of: UserResolver) -> int:
    """Atelier's routes on another server's route table (ComfyUI's ``PromptServer.routes``)."""
    resolver, authenticated = users(atelier, user_of)
    return mount_on(table, atelier, resolver, authenticated)


def app(atelier: Atelier, user_of: UserResolver = header_user) -> web.Application:
    """The standalone server's aiohttp application (``serve``; tests and benchmarks serve it themselves)."""
    resolver, authenticated = users(atelier, user_of)
    served = standalone_app(atelier, resolver, authenticated=authenticated)

    async def close(_: web.Application) -> None:
        await atelier.aclose()

    served.on_cleanup.append(close)
    return served


def serve(atelier: Atelier, host: str, port: int, user_of: UserResolver = header_user,
          on_listening: Callable[[], None] | None = None) -> None:
    """Atelier's routes and panel on a standalone aiohttp server, until interrupted; ``on_listening`` once the
    port is bound (an OSError, e.g. a taken port, comes first)."""
    async def run() -> None:
        runner = web.AppRunner(app(atelier, user_of))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            if on_listening is not None:
                on_listening()
            await asyncio.Event().wait()  # until Ctrl+C
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
