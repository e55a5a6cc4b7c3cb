"""Atelier's HTTP routes (aiohttp), mounted on ComfyUI's PromptServer or a standalone app.

Adapter only: it parses requests, asks the domain service and writes JSON. Domain errors
become 4xx answers naming the field, the value and what is accepted; a malformed body is a
400; nothing a client sends turns into a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..core.base.errors import AtelierError, InvalidInput, NotFound, invalid
from ..core.base.ids import user_id
from ..core.quality.service import QualityService

log = logging.getLogger("atelier")
PREFIX = "/atelier"
MAX_BODY_BYTES = 1024 * 1024
WEB_DIR = Path(__file__).resolve().parents[2] / "web"
UI_PAGE = WEB_DIR / "ui" / "index.html"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UserResolver = Callable[[web.Request], str]


def header_user(request: web.Request) -> str:
    """The user of a standalone server: ComfyUI's ``comfy-user`` header, else ``default``."""
    return request.headers.get("comfy-user") or "default"


def error_response(exc: AtelierError) -> web.Response:
    return web.json_response(exc.to_dict(), status=exc.status)


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AtelierError as exc:
            return error_response(exc)
        except web.HTTPException:
            raise
        except Exception:  # a bug: log it, answer without leaking a traceback
            log.exception("Atelier route %s %s failed", request.method, request.path)
            return web.json_response({"error": "internal error in Atelier; see the ComfyUI log"}, status=500)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


async def json_body(request: web.Request, required: bool = True) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise invalid("body", f"{request.content_length} bytes", f"at most {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if not raw.strip():
        if required:
            raise InvalidInput("the request needs a JSON body", field="body")
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise invalid("body", f"{len(raw)} bytes", f"at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", field="body") from None


def query_template(request: web.Request) -> dict[str, Any]:
    """A function template from query parameters (category, model_family, checkpoint, sizes)."""
    template: dict[str, Any] = {}
    for key in ("category", "model_family", "checkpoint"):
        if key in request.query:
            template[key] = request.query[key]
    for key in ("width", "height", "batch_size"):
        if key in request.query:
            raw = request.query[key]
            try:
                template[key] = int(raw)
            except ValueError:
                raise invalid(key, raw, "a whole number") from None
    return template


def build_routes(service: Callable[[], QualityService], user_of: UserResolver = header_user,
                 prefix: str = PREFIX, enhance: Callable[[], Any] | None = None,
                 social: Callable[[], Any] | None = None,
                 records: Callable[[], Any] | None = None,
                 pipelines: Callable[[], Any] | None = None,
                 storyboards: Callable[[], Any] | None = None) -> web.RouteTableDef:
    """The route table; ``service`` is called per request so a server can start before it."""
    routes = web.RouteTableDef()

    def user(request: web.Request) -> str:
        try:
            return user_id(user_of(request))
        except KeyError as exc:
            raise AtelierError(f"unknown user: {exc}", field="comfy-user") from None

    @routes.get(f"{prefix}/ui")
    async def ui_redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{request.path}/")

    @routes.get(f"{prefix}/ui/")
    async def ui_page(request: web.Request) -> web.StreamResponse:
        """The Atelier panel as a standalone page (the views of the ComfyUI sidebar tab)."""
        return web.FileResponse(UI_PAGE, headers={"Cache-Control": "no-cache"})

    @routes.get(f"{prefix}/ui/{{path:.+}}")
    @guarded
    async def ui_file(request: web.Request) -> web.StreamResponse:
        """The page's scripts and styles: files under the pack's web/ folder, nothing outside it."""
        raw = request.match_info["path"]
        path = (WEB_DIR / raw).resolve()
        if WEB_DIR not in path.parents or not path.is_file() or path.suffix not in (".js", ".css", ".html", ".svg"):
            raise NotFound(f"no file {raw!r} in Atelier's web folder", field="path", value=raw)
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    if storyboards is not None:
        @routes.get(f"{prefix}/storyboards")
        @guarded
        async def list_storyboards(request: web.Request) -> web.Response:
            """Saved storyboards, newest first: id, status, tier, clips, frames kept, failed clips."""
            return web.json_response({"storyboards": storyboards().list()})

        @routes.get(f"{prefix}/storyboards/{{storyboard_id}}")
        @guarded
        async def get_storyboard(request: web.Request) -> web.Response:
            """A storyboard's manifest: frames in order with every attempt's scores, warnings, failed clips."""
            return web.json_response(storyboards().get(request.match_info["storyboard_id"]))

        @routes.get(f"{prefix}/storyboards/{{storyboard_id}}/files/{{name}}")
        @guarded
        async def storyboard_file(request: web.Request) -> web.StreamResponse:
            """A frame image the manifest names."""
            path = storyboards().file(request.match_info["storyboard_id"], request.match_info["name"])
            return web.FileResponse(path)

    if records is not None:
        @routes.get(f"{prefix}/generations")
        @guarded
        async def list_generations(request: web.Request) -> web.Response:
            """Filters: status, workspace, operation_type; limit (1-500) and cursor (from next_cursor)."""
            query = request.query
            limit = query.get("limit", "50")
            if not limit.isdigit():
                raise invalid("limit", limit, "a whole number 1-500")
            return web.json_response(records().store.page(
                query.get("status"), query.get("workspace"), query.get("operation_type"), int(limit),
                query.get("cursor")))

        @routes.post(f"{prefix}/generations")
        @guarded
        async def submit_generation(request: web.Request) -> web.Response:
            """A generation config (+ an API-format ``graph``): validated, recorded, put on ComfyUI's queue."""
            return web.json_response(await records().submitter.submit(user(request), await json_body(request)),
                                     status=201)

        @routes.post(f"{prefix}/generations/{{record_id}}/cancel")
        @guarded
        async def cancel_generation(request: web.Request) -> web.Response:
            """Removes the record's prompt from ComfyUI's queue, or interrupts it when it is running."""
            return web.json_response(await records().submitter.cancel(request.match_info["record_id"]))

        @routes.get(f"{prefix}/generations/telemetry")
        @guarded
        async def generation_telemetry(request: web.Request) -> web.Response:
            """Duration p50/p95/p99 of completed runs per operation type (pipeline) and tier."""
            return web.json_response({"groups": records().store.telemetry()})

        @routes.post(f"{prefix}/generations/validate")
        @guarded
        async def validate_generation(request: web.Request) -> web.Response:
            return web.json_response(records().validate(await json_body(request)))

        @routes.get(f"{prefix}/generations/prompts")
        @guarded
        async def prompt_families(request: web.Request) -> web.Response:
            return web.json_response({"families": records().store.prompt_families()})

        @routes.post(f"{prefix}/generations/prompts/{{family}}")
        @guarded
        async def add_prompt_version(request: web.Request) -> web.Response:
            """Body: {"template": "... {{variable}} ...", "description"}: a new version of the family."""
            body = await json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("template"), str) or not body["template"]:
                raise invalid("template", None, "a non-empty prompt template")
            version = records().store.add_prompt_version(request.match_info["family"], body["template"],
                                                         str(body.get("description", "")))
            return web.json_response(version, status=201)

        @routes.get(f"{prefix}/generations/{{record_id}}")
        @guarded
        async def get_generation(request: web.Request) -> web.Response:
            return web.json_response(records().store.get(request.match_info["record_id"]))

        @routes.post(f"{prefix}/generations/{{record_id}}/feedback")
        @guarded
        async def generation_feedback(request: web.Request) -> web.Response:
            """Body: {"rating": 1-5, "comment": "..."}."""
            body = await json_body(request)
            if not isinstance(body, dict):
                raise invalid("body", type(body).__name__, '{"rating": 1-5, "comment": "..."}')
            return web.json_response(records().store.feedback(
                request.match_info["record_id"], body.get("rating"), body.get("comment", "")))

    if social is not None:
        @routes.post(f"{prefix}/social-context/build")
        @guarded
        async def social_context(request: web.Request) -> web.Response:
            """Body: affinity, trust, chemistry, tension (0-100), npc_id, world_id, max_rating (can only lower the
            user's server-side maximum), requested_rating, enforcement (clamp|reject)."""
            return web.json_response(social().build(user(request), await json_body(request)))

        @routes.get(f"{prefix}/social-context/worlds")
        @guarded
        async def social_worlds(request: web.Request) -> web.Response:
            return web.json_response({"worlds": {k: w.model_dump(mode="json") for k, w in social().worlds().items()}})

    if enhance is not None:
        @routes.post(f"{prefix}/enhance")
        @guarded
        async def enhance_prompt(request: web.Request) -> web.Response:
            """Body: prompt, negative, backend, endpoint (a configured name), model, model_family, threshold,
            iterations, seed, temperature, keep_trace. Answers the enhanced prompt, negative, score and trace."""
            body = await json_body(request)
            keep = bool(body.pop("keep_trace", False)) if isinstance(body, dict) else False
            return web.json_response(await enhance().enhance(body, keep_trace=keep))

        @routes.get(f"{prefix}/enhance/endpoints")
        @guarded
        async def enhance_endpoints(request: web.Request) -> web.Response:
            """The configured LLM endpoints (names, backends, URLs, models; never keys)."""
            return web.json_response({"endpoints": enhance().endpoints()})

    @routes.get(f"{prefix}/presets")
    @guarded
    async def list_presets(request: web.Request) -> web.Response:
        """Built-in tiers and the user's custom presets, each with an estimate."""
        return web.json_response(service().list_presets(user(request)))

    @routes.post(f"{prefix}/presets")
    @guarded
    async def create_preset(request: web.Request) -> web.Response:
        body = await json_body(request)
        return web.json_response(service().create_preset(user(request), body), status=201)

    @routes.post(f"{prefix}/presets/validate")
    @guarded
    async def validate_preset(request: web.Request) -> web.Response:
        """Body: a preset as for create (or ?preset=<id> for an edit). Answers {"valid": true, "preset"} with
        the resolved preset and its estimate, or {"valid": false, "error", "field", "value", "accepted"};
        nothing is saved (the editor's live validation). A body that is not JSON is still a 400."""
        body = await json_body(request)
        try:
            preset = service().validate_preset(user(request), body, request.query.get("preset"))
        except AtelierError as exc:
            return web.json_response({"valid": False, **exc.to_dict()})
        return web.json_response({"valid": True, "preset": preset})

    @routes.get(f"{prefix}/presets/{{preset_id}}")
    @guarded
    async def get_preset(request: web.Request) -> web.Response:
        return web.json_response(service().get_preset(user(request), request.match_info["preset_id"]))

    @routes.put(f"{prefix}/presets/{{preset_id}}")
    @guarded
    async def update_preset(request: web.Request) -> web.Response:
        body = await json_body(request)
        if isinstance(body, dict) and "If-Match" in request.headers and "revision" not in body:
            raw = request.headers["If-Match"].strip('"W/ ')
            if not raw.isdigit():
                raise invalid("If-Match", raw, "the preset's revision number")
            body = {**body, "revision": int(raw)}
        preset_id = request.match_info["preset_id"]
        return web.json_response(service().update_preset(user(request), preset_id, body))

    @routes.delete(f"{prefix}/presets/{{preset_id}}")
    @guarded
    async def delete_preset(request: web.Request) -> web.Response:
        preset_id = request.match_info["preset_id"]
        service().delete_preset(user(request), preset_id)
        return web.json_response({"deleted": preset_id})

    @routes.post(f"{prefix}/presets/{{preset_id}}/apply")
    @guarded
    async def apply_preset(request: web.Request) -> web.Response:
        """Body: a function template ({category, inputs, model_family, width, …}) or {"template": …}."""
        body = await json_body(request, required=False)
        template = body.get("template", body) if isinstance(body, dict) else body
        return web.json_response(service().apply(user(request), request.match_info["preset_id"], template))

    @routes.get(f"{prefix}/pipelines")
    @guarded
    async def list_pipelines(request: web.Request) -> web.Response:
        return web.json_response({"pipelines": service().pipelines()})

    @routes.get(f"{prefix}/pipelines/{{name}}/summary/{{tier}}")
    @guarded
    async def pipeline_summary(request: web.Request) -> web.Response:
        template = query_template(request)
        template.pop("category", None)
        template.pop("batch_size", None)
        plan = service().pipeline_plan(user(request), request.match_info["name"],
                                       request.match_info["tier"], template)
        return web.json_response(plan)

    if pipelines is not None:
        @routes.post(f"{prefix}/pipelines/{{name}}/run")
        @guarded
        async def run_pipeline(request: web.Request) -> web.Response:
            """Build the pipeline's graph at a tier, record it and queue it on ComfyUI: the prompt id."""
            body = await json_body(request)
            return web.json_response(await pipelines().run(user(request), request.match_info["name"], body))

        @routes.get(f"{prefix}/pipelines/runs/{{prompt_id}}")
        @guarded
        async def pipeline_run(request: web.Request) -> web.Response:
            """Status from ComfyUI's queue and history, the storyboard manifests and the run's records."""
            return web.json_response(pipelines().status(request.match_info["prompt_id"]))

    @routes.post(f"{prefix}/estimate")
    @guarded
    async def estimate(request: web.Request) -> web.Response:
        """{"preset", "template"} for one function, or {"pipeline", "tier", …} for a pipeline."""
        return web.json_response(service().estimate(user(request), await json_body(request)))

    @routes.get(f"{prefix}/estimate/calibration")
    @guarded
    async def calibration(request: web.Request) -> web.Response:
        """Recorded runs per family and device, and the fit that replaced the prior."""
        return web.json_response(service().calibration())

    @routes.get(f"{prefix}/recommend")
    @guarded
    async def recommend(request: web.Request) -> web.Response:
        return web.json_response(service().recommend(request.query.get("use_case"), query_template(request)))

    @routes.post(f"{prefix}/compare")
    @guarded
    async def compare(request: web.Request) -> web.Response:
        """{"presets": [ids], "template": {...}}: parameters and estimates side by side."""
        return web.json_response(service().compare(user(request), await json_body(request, required=False)))

    @routes.get(f"{prefix}/families")
    @guarded
    async def families(request: web.Request) -> web.Response:
        table = service().tables.families
        return web.json_response({"default": table.default_family, "families": {
            name: fam.model_dump(mode="json") for name, fam in table.families.items()}})

    return routes


def standalone_app(service: QualityService, user_of: UserResolver = header_user,
                   enhance: Any = None, social: Any = None, records: Any = None,
                   pipelines: Any = None, storyboards: Any = None) -> web.Application:
    """An aiohttp app serving Atelier's routes under /atelier and /api/atelier, as ComfyUI does."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    enhancer = (lambda: enhance) if enhance is not None else None
    socials = (lambda: social) if social is not None else None
    recorder = (lambda: records) if records is not None else None
    runner = (lambda: pipelines) if pipelines is not None else None
    library = (lambda: storyboards) if storyboards is not None else None
    for prefix in (PREFIX, f"/api{PREFIX}"):
        app.add_routes(build_routes(lambda: service, user_of, prefix=prefix, enhance=enhancer, social=socials,
                                    records=recorder, pipelines=runner, storyboards=library))
    return app
