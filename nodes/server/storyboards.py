"""The storyboard viewer's routes: saved storyboards, a manifest, and the frame images it names."""

from __future__ import annotations

from aiohttp import web

from .http import Mount, Services, answer


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/storyboards")
    async def list_storyboards(request: web.Request) -> web.Response:
        """Saved storyboards, newest first: id, status, tier, clips, frames kept, failed clips."""
        return answer({"storyboards": ctx.storyboards.list()})

    @mount.get("/storyboards/{storyboard_id}")
    async def get_storyboard(request: web.Request) -> web.Response:
        """A storyboard's manifest: frames in order with every attempt's scores, warnings, failed clips."""
        return answer(ctx.storyboards.get(request.match_info["storyboard_id"]))

    @mount.get("/storyboards/{storyboard_id}/files/{name}")
    async def storyboard_file(request: web.Request) -> web.StreamResponse:
        """A frame image the manifest names."""
        return web.FileResponse(ctx.storyboards.file(request.match_info["storyboard_id"], request.match_info["name"]))
