"""Atelier's HTTP routes (aiohttp), one module per capability, mounted by one function.

Adapter only: a route parses the request, asks a service of the host's context and writes JSON. Domain
errors become 4xx answers naming the field, the value and what is accepted; nothing a client sends turns
into a 500. Inside ComfyUI the routes are added to PromptServer's table (which also serves them under
``/api``); ``standalone_app`` serves both prefixes itself (``atelier serve``).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from ..core.base.errors import NotFound
from . import (
    enhance,
    intelligence,
    lists,
    operations,
    pipelines,
    quality,
    records,
    scaleout,
    social,
    storyboards,
    ui,
)
from .http import MAX_BODY_BYTES, PREFIX, Mount, Services, UserResolver, header_user, trusted_header

CAPABILITIES = (ui, lists, quality, pipelines, enhance, intelligence, social, records, storyboards, scaleout,
                operations)


def build_routes(ctx: Services, user_of: UserResolver = header_user, prefix: str = PREFIX,
                 authenticated: bool = False) -> web.RouteTableDef:
    """Every route of every capability, under ``prefix``; services are asked per request. ``authenticated``:
    ``user_of`` reads a trusted proxy's header (else a user name is only a claim)."""
    routes = web.RouteTableDef()
    mount = Mount(routes, prefix, user_of, authenticated)
    for capability in CAPABILITIES:
        capability.add_routes(mount, ctx)
    for method in ("GET", "POST", "PUT", "DELETE"):  # last: any other path under the prefix is a JSON 404
        mount._add(method, "/{path:.*}")(_no_route)
    return routes


async def _no_route(request: web.Request) -> web.Response:
    raise NotFound(f"no Atelier route {request.method} {request.path[:200]!r}", field="path",
                   value=request.path[:200])


def mount_on(table: web.RouteTableDef, ctx: Services, user_of: UserResolver, authenticated: bool = False) -> int:
    """Add Atelier's routes to another route table (ComfyUI's PromptServer.routes); returns how many."""
    count = 0
    for route in build_routes(ctx, user_of, authenticated=authenticated):
        if isinstance(route, web.RouteDef):
            table.route(route.method, route.path, **route.kwargs)(route.handler)
            count += 1
    return count


def standalone_app(ctx: Services, user_of: UserResolver = header_user,
                   prefixes: Iterable[str] = (PREFIX, f"/api{PREFIX}"), authenticated: bool = False) -> web.Application:
    """An aiohttp app serving Atelier's routes under /atelier and /api/atelier, as ComfyUI does."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    for prefix in prefixes:
        app.add_routes(build_routes(ctx, user_of, prefix, authenticated))
    return app


__all__ = ["build_routes", "mount_on", "standalone_app", "header_user", "trusted_header", "Services", "PREFIX"]
