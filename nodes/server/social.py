"""Social context routes: a relationship's tier, band and content rating; the world schemas."""

from __future__ import annotations

from aiohttp import web

from .http import Mount, Services, answer, json_body


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.post("/social-context/build")
    async def social_context(request: web.Request) -> web.Response:
        """Body: affinity, trust, chemistry, tension (0-100), npc_id, world_id, max_rating (can only lower the
        user's server-side maximum), requested_rating, enforcement (clamp|reject)."""
        body = await json_body(request)
        return answer(ctx.social.build(mount.user(request), body, authenticated=mount.authenticated,
                                       source="POST /social-context/build"))

    @mount.get("/social-context/worlds")
    async def social_worlds(request: web.Request) -> web.Response:
        return answer({"worlds": {k: w.model_dump(mode="json") for k, w in ctx.social.worlds().items()}})
