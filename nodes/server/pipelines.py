"""Runnable pipelines: built at a tier, recorded and queued on ComfyUI; their status from its queue and history."""

from __future__ import annotations

from aiohttp import web

from .http import Mount, Services, answer, json_body


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.post("/pipelines/{name}/run")
    async def run_pipeline(request: web.Request) -> web.Response:
        """Build the pipeline's graph at a tier, record it and queue it on ComfyUI: the prompt id."""
        body = await json_body(request)
        return answer(await ctx.pipelines.run(mount.user(request), request.match_info["name"], body))

    @mount.get("/pipelines/runs/{prompt_id}")
    async def pipeline_run(request: web.Request) -> web.Response:
        """Status from ComfyUI's queue and history, the storyboard manifests and the run's records."""
        return answer(await ctx.pipelines.status(mount.user(request), request.match_info["prompt_id"]))
