"""Intelligent generation routes: the LoRA library (list with filters, one card, rescan, per-file family
override), prompt analysis, LoRA recommendations, parameters under constraints, and the whole decision."""

from __future__ import annotations

from aiohttp import web

from ..core.base.errors import invalid
from .http import Mount, Services, answer, blocking, json_body

QUERY_KEYS = {"family", "kind", "q", "limit"}


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/loras")
    async def list_loras(request: web.Request) -> web.Response:
        """Cards of every LoRA file (?family=sdxl&kind=style&q=watercolor&limit=100), with the problems."""
        unknown = set(request.query) - QUERY_KEYS
        if unknown:
            raise invalid("query", sorted(unknown)[0], sorted(QUERY_KEYS))
        query = {k: v[:200] for k, v in request.query.items()}
        return answer(await blocking(ctx.intelligence.library_view, mount.user(request), query))

    @mount.post("/loras/rescan")
    async def rescan(request: web.Request) -> web.Response:
        """Rebuild every card from its file (the cache is otherwise refreshed per changed file)."""
        scan = await blocking(ctx.intelligence.library.scan, mount.user(request), True)
        return answer(scan.to_dict(with_cards=False))

    @mount.get("/loras/{lora_id}")
    async def card(request: web.Request) -> web.Response:
        found = await blocking(ctx.intelligence.library.card, mount.user(request), request.match_info["lora_id"])
        return answer(found.to_dict())

    @mount.put("/loras/{lora_id}/family")
    async def override(request: web.Request) -> web.Response:
        """Body {"family": "sdxl"} (or "auto" to remove yours): your family for this LoRA; the file is
        never written."""
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) != {"family"}:
            raise invalid("body", body if not isinstance(body, dict) else sorted(body), '{"family": "<family>"}')
        changed = await blocking(ctx.intelligence.library.set_override, mount.user(request),
                                 request.match_info["lora_id"], body["family"])
        return answer(changed.to_dict())

    @mount.post("/intelligence/analyze")
    async def analyse(request: web.Request) -> web.Response:
        """Body {"prompt", "negative"?, "llm_endpoint"?}: subjects, style, content type, lighting, mood and
        complexity with the features that decided it."""
        body = await json_body(request)
        result = await ctx.intelligence.analyse(_decide_body(body))
        return answer({**result.to_dict(), "summary": result.summary()})

    @mount.post("/intelligence/loras")
    async def recommend(request: web.Request) -> web.Response:
        """Body {"prompt", "family" or "checkpoint", "preferences"?, "rating"?, "world"?}: the LoRAs to use, each
        with score, confidence, strength and reason; the ones filtered out with theirs."""
        body = _decide_body(await json_body(request))
        decision = await ctx.intelligence.decide_async(mount.user(request), body)
        return answer({"family": decision.family, "lora_family": decision.base,
                       "analysis": decision.analysis.to_dict(), **decision.recommendations.to_dict()})

    @mount.post("/intelligence/optimize")
    async def optimise(request: web.Request) -> web.Response:
        """Body {"prompt", "family" or "checkpoint", "constraints": {max_time_s, max_vram_gb, priority}, width?,
        height?, batch_size?}: the plan within the constraints and every decision; no plan fits: 422 with the
        cheapest plan and its estimate."""
        body = _decide_body(await json_body(request))
        decision = await blocking(ctx.intelligence.decide, mount.user(request), body)
        return answer({"family": decision.family, **decision.plan.to_dict()})

    @mount.post("/intelligence/decide")
    async def decide(request: web.Request) -> web.Response:
        """Analysis, LoRA recommendations, plan and explanation in one (what the Smart Plan node runs)."""
        body = _decide_body(await json_body(request))
        decision = await ctx.intelligence.decide_async(mount.user(request), body)
        return answer(decision.to_dict())


def _decide_body(body: object) -> object:
    from ..core.intelligence.service import DecideRequest

    return DecideRequest.parse(body)
