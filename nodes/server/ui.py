"""The Atelier panel as a standalone page (``/atelier/ui/``): its files from the pack's ``web/`` folder only."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..core.base.errors import NotFound
from .http import Mount, Services

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
UI_PAGE = WEB_DIR / "ui" / "index.html"
SERVED = (".js", ".css", ".html", ".svg")


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/ui")
    async def ui_redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{request.path}/")

    @mount.get("/ui/")
    async def ui_page(request: web.Request) -> web.StreamResponse:
        """The Atelier panel as a standalone page (the views of the ComfyUI sidebar tab)."""
        return web.FileResponse(UI_PAGE, headers={"Cache-Control": "no-cache"})

    @mount.get("/ui/{path:.+}")
    async def ui_file(request: web.Request) -> web.StreamResponse:
        """The page's scripts and styles: files under the pack's web/ folder, nothing outside it."""
        raw = request.match_info["path"]
        missing = NotFound(f"no file {raw[:200]!r} in Atelier's web folder", field="path", value=raw[:200])
        try:
            path = (WEB_DIR / raw).resolve()
            if WEB_DIR not in path.parents or not path.is_file() or path.suffix not in SERVED:
                raise missing
        except (OSError, ValueError):  # a name too long, a NUL: no such file either
            raise missing from None
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
