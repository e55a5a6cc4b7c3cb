"""Quality routes: presets (CRUD, live validation, application), pipelines and their summaries, estimates
and calibration, recommendations, tier comparison, the model families."""

from __future__ import annotations

import re

from aiohttp import web

from ..core.base.errors import AtelierError, invalid
from .http import Mount, Services, answer, blocking, json_body, query_template

REVISION = re.compile(r"^[0-9]{1,9}$")


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/presets")
    async def list_presets(request: web.Request) -> web.Response:
        """Built-in tiers and the user's custom presets, each with an estimate."""
        return answer(ctx.quality.list_presets(mount.user(request)))

    @mount.post("/presets")
    async def create_preset(request: web.Request) -> web.Response:
        body = await json_body(request)
        return answer(await blocking(ctx.quality.create_preset, mount.user(request), body), status=201)

    @mount.post("/presets/validate")
    async def validate_preset(request: web.Request) -> web.Response:
        """Body: a preset as for create (or ?preset=<id> for an edit). Answers {"valid": true, "preset"} with
        the resolved preset and its estimate, or {"valid": false, "error", "field", "value", "accepted"};
        nothing is saved (the editor's live validation). A body that is not JSON is still a 400."""
        body = await json_body(request)
        try:
            preset = ctx.quality.validate_preset(mount.user(request), body, request.query.get("preset"))
        except AtelierError as exc:
            return answer({"valid": False, **exc.to_dict()})
        return answer({"valid": True, "preset": preset})

    @mount.get("/presets/{preset_id}")
    async def get_preset(request: web.Request) -> web.Response:
        return answer(ctx.quality.get_preset(mount.user(request), request.match_info["preset_id"]))

    @mount.put("/presets/{preset_id}")
    async def update_preset(request: web.Request) -> web.Response:
        body = await json_body(request)
        if isinstance(body, dict) and "If-Match" in request.headers and "revision" not in body:
            raw = request.headers["If-Match"].strip('"W/ ')
            if not REVISION.match(raw):  # ASCII digits ("²".isdigit() is True)
                raise invalid("If-Match", raw, "the preset's revision number")
            body = {**body, "revision": int(raw)}
        preset_id = request.match_info["preset_id"]
        return answer(await blocking(ctx.quality.update_preset, mount.user(request), preset_id, body))

    @mount.delete("/presets/{preset_id}")
    async def delete_preset(request: web.Request) -> web.Response:
        preset_id = request.match_info["preset_id"]
        await blocking(ctx.quality.delete_preset, mount.user(request), preset_id)
        return answer({"deleted": preset_id})

    @mount.post("/presets/{preset_id}/apply")
    async def apply_preset(request: web.Request) -> web.Response:
        """Body: a function template ({category, inputs, model_family, width, …}) or {"template": …}."""
        body = await json_body(request, required=False)
        template = body.get("template", body) if isinstance(body, dict) else body
        return answer(ctx.quality.apply(mount.user(request), request.match_info["preset_id"], template))

    @mount.get("/pipelines")
    async def list_pipelines(request: web.Request) -> web.Response:
        return answer({"pipelines": ctx.quality.pipelines()})

    @mount.get("/pipelines/{name}/summary/{tier}")
    async def pipeline_summary(request: web.Request) -> web.Response:
        template = query_template(request)
        template.pop("category", None)
        template.pop("batch_size", None)
        return answer(ctx.quality.pipeline_plan(mount.user(request), request.match_info["name"],
                                                request.match_info["tier"], template))

    @mount.post("/estimate")
    async def estimate(request: web.Request) -> web.Response:
        """{"preset", "template"} for one function, or {"pipeline", "tier", …} for a pipeline."""
        return answer(ctx.quality.estimate(mount.user(request), await json_body(request)))

    @mount.get("/estimate/calibration")
    async def calibration(request: web.Request) -> web.Response:
        """Recorded runs per family and device, and the fit that replaced the prior."""
        return answer(ctx.quality.calibration())

    @mount.get("/recommend")
    async def recommend(request: web.Request) -> web.Response:
        use_case = request.query.get("use_case")
        learned = None
        if use_case and len(use_case) <= 200:  # what your runs for this use case settled on
            learned = await blocking(ctx.learning.use_case_tier, mount.user(request), use_case)
        return answer(ctx.quality.recommend(use_case, query_template(request), learned))

    @mount.post("/compare")
    async def compare(request: web.Request) -> web.Response:
        """{"presets": [ids], "template": {...}}: parameters and estimates side by side."""
        return answer(ctx.quality.compare(mount.user(request), await json_body(request, required=False)))

    @mount.get("/families")
    async def families(request: web.Request) -> web.Response:
        table = ctx.quality.tables.families
        return answer({"default": table.default_family, "families": {
            name: fam.model_dump(mode="json") for name, fam in table.families.items()}})
