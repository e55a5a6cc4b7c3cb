"""Runnable pipelines: built at a tier, recorded and queued on ComfyUI; their status from its queue and history.
Batches: items of mixed tiers, one ComfyUI prompt each, with progress and a summary."""

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

    @mount.post("/batches")
    async def create_batch(request: web.Request) -> web.Response:
        """Queue a batch: items each with its prompt, tier and count; answers its progress (201)."""
        body = await json_body(request)
        return answer(await ctx.batches.create(mount.user(request), body), status=201)

    @mount.get("/batches/{batch_id}")
    async def batch(request: web.Request) -> web.Response:
        """A batch's progress and, per item, its tier, time and best score; a summary per tier."""
        return answer(await ctx.batches.get(mount.user(request), request.match_info["batch_id"]))

    @mount.post("/comparisons")
    async def render_comparison(request: web.Request) -> web.Response:
        """Render the tier comparison grid for ``{"prompt", "checkpoint"}`` (cached: the same request answers the
        earlier render): its record, prompt id, status and, once finished, the grid image."""
        body = await json_body(request)
        return answer(await ctx.pipelines.comparison(mount.user(request), body))
