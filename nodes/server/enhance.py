"""Prompt enhancement routes: the writer/critic loop and the configured LLM endpoints (never their keys)."""

from __future__ import annotations

from aiohttp import web

from ..core.base.errors import invalid
from ..core.telemetry.llm import calling_user, calling_workspace
from .http import Mount, Services, answer, json_body, while_connected


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.post("/enhance")
    async def enhance_prompt(request: web.Request) -> web.Response:
        """Body: prompt, negative, backend, endpoint (a configured name), model, model_family, threshold,
        iterations, seed, temperature, timeout_s (the whole enhancement's deadline, default 30, at most 120),
        keep_trace, workspace (whose totals its LLM calls count in; default ``default``). Answers the enhanced
        prompt, negative, score and trace; stops when the client leaves."""
        body = await json_body(request)
        keep = bool(body.pop("keep_trace", False)) if isinstance(body, dict) else False
        workspace = body.pop("workspace", None) if isinstance(body, dict) else None
        if workspace is not None and (not isinstance(workspace, str) or not 1 <= len(workspace) <= 128):
            raise invalid("workspace", workspace, "a workspace name of 1-128 characters")
        token = calling_user.set(mount.user(request))  # the LLM calls' telemetry is this user's
        place = calling_workspace.set(workspace)  # ... and this workspace's
        try:
            result = await while_connected(request, ctx.enhance.enhance(body, keep_trace=keep))  # stops if it leaves
        finally:
            calling_workspace.reset(place)
            calling_user.reset(token)
        return answer(result) if result is not None else web.Response(status=499)

    @mount.get("/enhance/endpoints")
    async def enhance_endpoints(request: web.Request) -> web.Response:
        """The configured LLM endpoints (names, backends, URLs, models; never keys)."""
        return answer({"endpoints": ctx.enhance.endpoints()})
