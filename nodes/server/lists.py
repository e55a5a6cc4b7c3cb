"""The lists the web panel shows (tiers, families, pipelines, scorers, LLM backends, ratings), from one source."""

from __future__ import annotations

from aiohttp import web

from ..core.lists import lists
from .http import Mount, Services, answer


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/lists")
    async def atelier_lists(request: web.Request) -> web.Response:
        """Tiers (with the default and reference tier), model families, pipelines (runnable or planned only),
        scorers (and the default), LLM backends, content ratings."""
        return answer(lists(ctx.quality, ctx.social))
