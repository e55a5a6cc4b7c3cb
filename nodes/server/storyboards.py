"""The storyboard viewer's routes: the user's saved storyboards, a manifest, and the frame images it names."""

from __future__ import annotations

from aiohttp import web

from .http import Mount, Services, answer, blocking


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/storyboards")
    async def list_storyboards(request: web.Request) -> web.Response:
        """Saved storyboards, newest first: id, status, tier, clips, frames kept, failed clips."""
        return answer({"storyboards": await blocking(ctx.storyboards.list, mount.user(request))})

    @mount.get("/storyboards/{storyboard_id}")
    async def get_storyboard(request: web.Request) -> web.Response:
        """A storyboard's manifest: frames in order with every attempt's scores, warnings, failed clips."""
        return answer(await blocking(ctx.storyboards.get, request.match_info["storyboard_id"], mount.user(request)))

    @mount.get("/storyboards/{storyboard_id}/files/{name}")
    async def storyboard_file(request: web.Request) -> web.StreamResponse:
        """A frame image the manifest names."""
        return web.FileResponse(await blocking(ctx.storyboards.file, request.match_info["storyboard_id"],
                                               request.match_info["name"], mount.user(request)))
