"""Generation record routes: list and read, submit (record + queue on ComfyUI), cancel, validate, feedback,
prompt families and versions, telemetry. Everything is the requesting user's: another user's record or family
is not found. Database work runs off the event loop."""

from __future__ import annotations

import math
import re
from typing import Any

from aiohttp import web

from ..core.base.errors import Forbidden, Unavailable, invalid
from ..core.records.reuse import compare, replay_body, reusable, with_seeds
from ..core.records.store import MissingVariable
from ..core.records.tier_value import tier_value
from ..core.records.why import why
from ..core.scaleout.service import DistributedSubmitter, job_queue
from ..core.social.service import apply_context
from ..core.validation.rules import check_config, check_graph, graph_report, missing_variable, report
from .http import Mount, Services, answer, blocking, json_body

MAX_GRAPH_NODES = 2000
WHOLE_NUMBER = re.compile(r"^[0-9]{1,6}$")  # ASCII digits only ("²".isdigit() is True)


def _time(query: Any, name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise invalid(name, raw[:40], "a Unix time in seconds") from None
    if not math.isfinite(value) or not 0 <= value < 1e11:
        raise invalid(name, raw[:40], "a Unix time in seconds")
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.pop(name, None)
    if value is not None and not isinstance(value, bool):  # (1 == True: a membership test would take 1 and 0)
        raise invalid(name, value, "true or false")
    return bool(value)


def _queue_or_none(ctx: Services) -> DistributedSubmitter | None:
    try:
        return ctx.distributed
    except Unavailable:  # no job queue here: every record is this server's ComfyUI's
        return None


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/generations")
    async def list_generations(request: web.Request) -> web.Response:
        """Filters: status, workspace, operation_type; limit (1-500) and cursor (from next_cursor)."""
        query = request.query
        limit = query.get("limit", "50")
        if not WHOLE_NUMBER.match(limit):
            raise invalid("limit", limit[:20], "a whole number 1-500")
        page = await blocking(ctx.records.store.page, query.get("status"), query.get("workspace"),
                              query.get("operation_type"), int(limit), query.get("cursor"), mount.user(request))
        return answer(page.to_dict())

    @mount.post("/generations")
    async def submit_generation(request: web.Request) -> web.Response:
        """A generation config (+ an API-format ``graph``): validated, recorded, put on ComfyUI's queue (or, with
        ``"distributed": true``, on the job queue of many workers)."""
        body = await json_body(request)
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, "a generation config with an API-format graph")
        user = mount.user(request)
        if body.get("parameters") is not None and not isinstance(body["parameters"], dict):
            raise invalid("parameters", type(body["parameters"]).__name__, "a JSON object")
        distributed, reuse = _flag(body, "distributed"), _flag(body, "reuse")
        body = with_seeds(user, body)
        social = body.pop("social_context", None)
        if social is not None:  # clamped or rejected (403) as the Social Context node does; logged either way
            config = {k: v for k, v in body.items() if k not in ("graph", "deadline_s")}
            rendered = (await blocking(ctx.records.validate, user, config))["prompt"]  # a bad config: its 400 first
            context = ctx.social.build(user, social, authenticated=mount.authenticated, source="POST /generations")
            body = apply_context(body, context, rendered)
        if reuse:  # an identical completed run (the same config on the same graph) answers instead of a new one
            config = {k: v for k, v in body.items() if k not in ("graph", "deadline_s")}
            graph = body.get("graph") if isinstance(body.get("graph"), dict) else None
            digest = (await blocking(ctx.records.validate, user, config, graph))["repro_hash"]
            earlier = await blocking(reusable, ctx.records.store, user, digest)
            if earlier is not None:
                return answer({**earlier.to_dict(), "reused": True})
        submitter = job_queue(lambda: ctx.distributed) if distributed else ctx.records.submitter
        record = await submitter.submit(user, body)
        return answer({**record.to_dict(), "reused": False}, status=201)

    @mount.get("/telemetry")
    async def telemetry(request: web.Request) -> web.Response:
        """Your totals per day, workspace and user (runs, device time, cost, LLM calls, tokens, latency), device
        time and cost per tier and day, the best-score distribution per tier (``?since=&until=`` Unix seconds;
        ``?all=1`` everyone's, for an operator)."""
        query, user = request.query, mount.user(request)
        since, until = _time(query, "since"), _time(query, "until")
        everyone = query.get("all") in ("1", "true")
        if everyone and not ctx.operator(user):
            raise Forbidden("only operators read everyone's telemetry", field="all", value=True,
                            accepted="your own totals (without all)")
        return answer(await blocking(ctx.telemetry, None if everyone else user, since, until))

    @mount.get("/telemetry/providers")
    async def provider_health(request: web.Request) -> web.Response:
        """Each LLM endpoint's health: calls, success rate, p50/p95 latency, last error, circuit state."""
        return answer({"providers": await blocking(ctx.provider_health)})

    @mount.get("/violations")
    async def violations(request: web.Request) -> web.Response:
        """The safety log: your entries (``?kind=&since=&limit=``), newest first; ``?all=1`` everyone's, for an
        operator (``ATELIER_OPERATORS``); anyone else asking for all is refused (403), and that is logged too."""
        query, user = request.query, mount.user(request)
        kind, since, limit = query.get("kind"), query.get("since"), query.get("limit", "100")
        if not WHOLE_NUMBER.match(limit) or not 1 <= int(limit) <= 500:
            raise invalid("limit", limit[:20], "a whole number 1-500")
        try:
            after = float(since) if since is not None else None
        except ValueError:
            raise invalid("since", since[:40] if since else since, "a Unix time in seconds") from None
        if after is not None and not math.isfinite(after):
            raise invalid("since", since, "a Unix time in seconds")
        everyone = query.get("all") in ("1", "true")
        if everyone and not ctx.operator(user):
            await blocking(ctx.violations.add, user, "isolation_refused", "GET /violations", "everyone's safety log",
                           "refused (403)", "only operators (ATELIER_OPERATORS) read other users' entries")
            raise Forbidden("only operators read everyone's safety log", field="all", value=True,
                            accepted="your own entries (without all)")
        entries = await blocking(ctx.violations.entries, None if everyone else user, kind, after, int(limit))
        return answer({"entries": entries, "all": everyone, "operator": ctx.operator(user)})

    @mount.post("/generations/{record_id}/replay")
    async def replay_generation(request: web.Request) -> web.Response:
        """The record's config and graph queued again exactly (where it ran: this ComfyUI, or the job queue);
        the new record names it (``replay_of``) and has its hash."""
        record_id, user = request.match_info["record_id"], mount.user(request)
        record = await blocking(ctx.records.store.get, record_id, user)
        body = replay_body(record, await blocking(ctx.records.store.graph, record_id, user))
        queue = _queue_or_none(ctx)
        distributed = queue is not None and await blocking(queue.owns, record_id)
        submitter = queue if distributed and queue is not None else ctx.records.submitter
        again = await submitter.submit(user, body)
        return answer({**again.to_dict(), "replay_of": record.id, "same_hash": again.repro_hash == record.repro_hash},
                      status=201)

    @mount.post("/generations/{record_id}/cancel")
    async def cancel_generation(request: web.Request) -> web.Response:
        """Removes the record's prompt from ComfyUI's queue, or interrupts it when it is running."""
        record_id, user = request.match_info["record_id"], mount.user(request)
        queue = _queue_or_none(ctx)
        if queue is not None and await blocking(queue.owns, record_id):
            return answer((await queue.cancel(record_id, user)).to_dict())
        record = await ctx.records.submitter.cancel(record_id, user)
        return answer(record.to_dict())

    @mount.get("/generations/tiers")
    async def tier_value_chart(request: web.Request) -> web.Response:
        """Per checkpoint (``?checkpoint=`` for one) and tier, from the user's completed runs: runs, median time,
        mean best score, latest images, and each tier against the reference tier."""
        checkpoint = request.query.get("checkpoint")
        if checkpoint is not None and not 0 < len(checkpoint) <= 512:
            raise invalid("checkpoint", checkpoint[:80], "a checkpoint name of 1-512 characters")
        tables = ctx.quality.tables
        return answer(await blocking(tier_value, ctx.records.store, mount.user(request), list(tables.tiers),
                                     tables.reference_tier, checkpoint))

    @mount.get("/generations/telemetry")
    async def generation_telemetry(request: web.Request) -> web.Response:
        """Duration p50/p95/p99 of the user's completed runs per operation type (pipeline) and tier."""
        return answer({"groups": await blocking(ctx.records.store.telemetry, None, mount.user(request))})

    @mount.get("/generations/diff")
    async def diff_generations(request: web.Request) -> web.Response:
        """``?a=<record id>&b=<record id>``: what differs between two of the user's records (parameters, prompt
        and its version, models, seeds, graph, outputs) and whether their hashes match."""
        a, b = request.query.get("a"), request.query.get("b")
        if not a or not b:
            raise invalid("a" if not a else "b", a if not a else b, "two record ids: ?a=...&b=...")
        user = mount.user(request)

        def both() -> dict[str, object]:
            store = ctx.records.store
            ra, rb = store.get(a, user), store.get(b, user)
            versions = {r.id: {"source": r.prompt_source, "version_id": r.prompt_version_id} for r in (ra, rb)}
            return compare(ra, rb, store.graph(a, user), store.graph(b, user), versions)

        return answer(await blocking(both))

    @mount.post("/generations/validate")
    async def validate_generation(request: web.Request) -> web.Response:
        """A config (and the ``graph`` it would queue) checked without writing: its rendered prompt, hash and
        identical earlier runs, and the rules' errors and warnings (each with its code, field and message);
        ``valid`` when there is no error."""
        body = await json_body(request)
        user = mount.user(request)
        graph = body.pop("graph", None) if isinstance(body, dict) else None
        if graph is not None and (not isinstance(graph, dict) or len(graph) > MAX_GRAPH_NODES):
            raise invalid("graph", type(graph).__name__, f"an API-format graph of at most {MAX_GRAPH_NODES} nodes")

        def check() -> dict[str, Any]:
            issues = []
            try:
                base = ctx.records.validate(user, body, graph)
            except MissingVariable as exc:  # a rule's error; a variables value of the wrong kind stays a 400
                issues.append(missing_variable(str(exc.field), exc.value, exc.message))
                base = {"prompt": None, "repro_hash": None, "identical": []}
            parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
            issues += check_config(ctx.rules, user, parameters, base["prompt"], mount.authenticated)
            return {**base, **report(issues)}

        return answer(await blocking(check))

    @mount.post("/graph/validate")
    async def validate_graph(request: web.Request) -> web.Response:
        """``{"graph": <API-format graph>}``: every Atelier node's status (ok / warning / error) and issues, for the
        nodes' health badges; the graph's counts."""
        body = await json_body(request)
        graph = body.get("graph") if isinstance(body, dict) else None
        if not isinstance(graph, dict) or len(graph) > MAX_GRAPH_NODES:
            raise invalid("graph", type(graph).__name__, f"an API-format graph of at most {MAX_GRAPH_NODES} nodes")
        return answer(await blocking(lambda: graph_report(check_graph(ctx.rules, mount.user(request), graph,
                                                                       mount.authenticated))))

    @mount.get("/generations/prompts")
    async def prompt_families(request: web.Request) -> web.Response:
        return answer({"families": await blocking(ctx.records.store.prompt_families, mount.user(request))})

    @mount.post("/generations/prompts/{family}")
    async def add_prompt_version(request: web.Request) -> web.Response:
        """Body: {"template": "... {{variable}} ...", "description"}: a new version of the user's family."""
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("template"), str) or not body["template"]:
            raise invalid("template", None, "a non-empty prompt template")
        description = body.get("description", "")
        if not isinstance(description, str):
            raise invalid("description", type(description).__name__, "text")
        version = await blocking(ctx.records.store.add_prompt_version, mount.user(request),
                                 request.match_info["family"], body["template"], description)
        return answer(version, status=201)

    @mount.get("/learning")
    async def learned(request: web.Request) -> web.Response:
        """What your ratings taught (``?scorers=technical,clip_score``; default: the scorers of your newest scored
        feedback, else every scorer): the scorer weights
        with the reason, and each LoRA's prior with the ratings behind it."""
        names = [n.strip() for n in request.query.get("scorers", "").split(",") if n.strip()][:16]
        registry = ctx.scorers
        user = mount.user(request)
        if not names:  # the scorers of your newest scored feedback, else every scorer
            seen = await blocking(ctx.learning.scorers_seen, user)
            names = [n for n in seen if n in registry.specs] or list(registry.specs)
        unknown = [n for n in names if n not in registry.specs]
        if unknown:
            raise invalid("scorers", unknown[0], sorted(registry.specs))
        return answer(await blocking(ctx.learning.view, user, registry.weights(None, names),
                                     list(ctx.quality.tables.tiers)))

    @mount.get("/generations/{record_id}")
    async def get_generation(request: web.Request) -> web.Response:
        record = await blocking(ctx.records.store.get, request.match_info["record_id"], mount.user(request))
        return answer(record.to_dict())

    @mount.get("/generations/{record_id}/telemetry")
    async def generation_telemetry_one(request: web.Request) -> web.Response:
        """One run's device time (ComfyUI's own start and end), device kind, rate and cost."""
        record = await blocking(ctx.records.store.get, request.match_info["record_id"], mount.user(request))
        return answer({"id": record.id, **ctx.run_telemetry(record)})

    @mount.get("/generations/{record_id}/graph")
    async def generation_graph(request: web.Request) -> web.Response:
        """The API-format graph the record queued (null for a record without one)."""
        graph = await blocking(ctx.records.store.graph, request.match_info["record_id"], mount.user(request))
        return answer({"graph": graph})

    @mount.get("/generations/{record_id}/why")
    async def why_this_image(request: web.Request) -> web.Response:
        """Every decision behind the record's images: plan and reasons, LoRAs, prompt given vs used, the
        variations' scores and ranks, the rating clamp, the hash and the identical earlier runs."""
        user = mount.user(request)

        def card() -> dict[str, object]:
            record = ctx.records.store.get(request.match_info["record_id"], user)
            return why(record, ctx.records.store.identical(record.repro_hash, exclude=record.id, user=user))

        return answer(await blocking(card))

    @mount.post("/generations/{record_id}/keep")
    async def keep_variation(request: web.Request) -> web.Response:
        """You kept this variation of its batch: learning takes it over the batch's others."""
        record = await blocking(ctx.records.store.keep, request.match_info["record_id"], mount.user(request))
        return answer({"kept": record.id})

    @mount.post("/generations/{record_id}/feedback")
    async def generation_feedback(request: web.Request) -> web.Response:
        """Body: {"rating": 1-5, "comment": "..."}."""
        body = await json_body(request)
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, '{"rating": 1-5, "comment": "..."}')
        record = await blocking(ctx.records.store.feedback, request.match_info["record_id"], body.get("rating"),
                                body.get("comment", ""), mount.user(request))
        return answer(record.to_dict())
