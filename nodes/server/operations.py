"""Routes for operators: the app map (Atelier's routes, storage locations and the health of each part) and the
developer drill-down of recent generations (graph, plan, timings, outputs, scores, explanation, cost). Everyone
sees their own generations; an operator (``ATELIER_OPERATORS``) everyone's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..core.base.errors import Forbidden, invalid
from .http import Mount, Services, answer, blocking

MAX_LIST = 200


def _graph_nodes(graph: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A graph's nodes, each with its literal inputs and its links (``node:output``)."""
    out = []
    for node_id, node in (graph or {}).items():
        if not isinstance(node, dict):
            continue
        inputs: dict[str, Any] = node["inputs"] if isinstance(node.get("inputs"), dict) else {}
        out.append({"id": str(node_id), "class_type": str(node.get("class_type", "?")),
                    "inputs": {k: v for k, v in inputs.items() if not isinstance(v, list)},
                    "links": {k: f"{v[0]}:{v[1]}" for k, v in inputs.items()
                              if isinstance(v, list) and len(v) == 2}})
    return out


def add_routes(mount: Mount, ctx: Services) -> None:
    @mount.get("/app-map")
    async def app_map(request: web.Request) -> web.Response:
        """Atelier's routes (method, path, what each does), its storage locations and the health of each part
        (records database, folders, ComfyUI, job queue, LLM providers, scorer weights)."""
        return answer({"routes": sorted(mount.table, key=lambda r: (r["path"], r["method"])),
                       **await blocking(ctx.app_health)})

    @mount.get("/dev/generations")
    async def dev_generations(request: web.Request) -> web.Response:
        """Recent generations, newest first, with their run's device time and cost: yours, or everyone's for an
        operator (``?user=`` narrows it); filters ``status``, ``workspace``, ``operation_type``, ``limit``, and
        ``node_type`` (+ ``node_id``): what a node of a workflow produced (records whose graph has it)."""
        query, user = request.query, mount.user(request)
        limit = query.get("limit", "50")
        if len(limit) > 6 or not limit.isascii() or not limit.isdigit() or not 1 <= int(limit) <= MAX_LIST:
            raise invalid("limit", limit[:20], f"a whole number 1-{MAX_LIST}")
        who = query.get("user")
        if who is not None and who != user and not ctx.operator(user):
            raise Forbidden("only operators read other users' generations", field="user", value=who,
                            accepted="your own (without user)")
        everyone = ctx.operator(user) and who is None

        node_type, node_id = query.get("node_type"), query.get("node_id")
        if node_type is not None and not 0 < len(node_type) <= 128:
            raise invalid("node_type", node_type[:80], "a node class of 1-128 characters")
        if node_id is not None and not 0 < len(node_id) <= 64:
            raise invalid("node_id", node_id[:80], "a node id of 1-64 characters")
        if node_id is not None and node_type is None:
            raise invalid("node_id", node_id, "node_id with node_type (the node's class)")
        owner = None if everyone else (who or user)

        def page() -> dict[str, Any]:
            store = ctx.records.store
            if node_type:
                items = store.produced_by(owner, node_type, node_id, query.get("status"), query.get("workspace"),
                                          query.get("operation_type"))[: int(limit)]
            else:
                items = store.page(query.get("status"), query.get("workspace"), query.get("operation_type"),
                                   int(limit), None, owner).items
            return {"items": [{**r.to_dict(), "telemetry": ctx.run_telemetry(r)} for r in items],
                    "everyone": everyone}

        return answer(await blocking(page))

    @mount.get("/dev/generations/{record_id}")
    async def dev_generation(request: web.Request) -> web.Response:
        """One generation drilled down: its graph (nodes, inputs, links), plan, per-node timings where the run
        recorded them, cached nodes, outputs, scores, explanation and cost."""
        user = mount.user(request)
        record_id = request.match_info["record_id"]

        def drill() -> dict[str, Any]:
            store = ctx.records.store
            owner = None if ctx.operator(user) else user
            record = store.get(record_id, owner)
            params, outputs = record.parameters, record.outputs or {}
            ours: dict[str, Any] = outputs["atelier"] if isinstance(outputs.get("atelier"), dict) else {}
            return {"record": record.to_dict(), "graph": _graph_nodes(store.graph(record_id, owner)),
                    "plan": params.get("plan") or params.get("quality") or params.get("generation"),
                    "timings": ours.get("timings"), "cached": ours.get("cached"),
                    "outputs": {k: v for k, v in outputs.items() if k != "atelier"},
                    "scores": record.scores, "explanation": params.get("explanation"),
                    "telemetry": ctx.run_telemetry(record)}

        return answer(await blocking(drill))
