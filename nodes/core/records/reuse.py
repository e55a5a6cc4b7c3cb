"""The reproducibility hash put to work: seeds resolved and recorded before a run, an identical completed run
reused instead of queueing another, a record replayed exactly, and two records compared.

- ``with_seeds``: a request's ``seeds`` (``{"strategy", "base", "project"}``) become the seeds of its graph's
  samplers and ``parameters.seeds`` (the strategy, base, seeds and, for ``timestamp``, the time): the hash
  covers them, so a reuse only matches runs with the same seeds.
- ``reusable``: the user's newest completed run with the same hash and outputs, if any.
- ``replay_body``: a record's exact config and graph again (``parameters.replay_of`` names it; the hash ignores
  that key, so a replay has the hash of what it replays).
- ``compare``: two records, key path by key path: parameters, prompt (and its version), models, seeds, outputs.
"""

from __future__ import annotations

import re
from typing import Any

from ..base.diffs import key_diff
from ..base.errors import invalid
from .record import GenerationRecord
from .seeds import plan_seeds, seed_inputs, seeded
from .store import RecordStore, verbatim

MODEL_KEYS = re.compile(r"(^|_)(ckpt_name|checkpoint|unet_name|vae_name|lora_name|lora|loras|model_name|clip_name)$")
SEED_KEYS = ("seed", "noise_seed", "seeds")


def with_seeds(user: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its ``seeds`` request resolved into the graph and the parameters (or as it was)."""
    request = body.pop("seeds", None)
    if request is None:
        return body
    if not isinstance(request, dict) or set(request) - {"strategy", "base", "project"}:
        raise invalid("seeds", str(request)[:80], '{"strategy": fixed|per_item|per_user|per_project|timestamp, '
                                                  '"base": 0.., "project": ...}')
    graph = body.get("graph")
    count = max(1, len(seed_inputs(graph))) if isinstance(graph, dict) else 1
    project = request.get("project")
    if project is not None and (not isinstance(project, str) or not 1 <= len(project) <= 128):
        raise invalid("seeds.project", str(project)[:80], "a project name of 1-128 characters (default: the workspace)")
    project = project or body.get("workspace") or "default"
    plan = plan_seeds(str(request.get("strategy", "per_item")), request.get("base", 0), count, user, str(project))
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid("parameters", type(parameters).__name__, "a JSON object")
    parameters = dict(parameters or {})
    parameters["seeds"] = plan.to_dict()
    out = {**body, "parameters": parameters}
    if isinstance(graph, dict):
        out["graph"] = seeded(graph, plan)
    return out


def reusable(store: RecordStore, user: str, digest: str) -> GenerationRecord | None:
    """The user's newest completed run with this hash that has outputs."""
    for record_id in reversed(store.identical(digest, user=user)):
        record = store.get(record_id, user)
        if record.status == "completed" and record.outputs:
            return record
    return None


def replay_body(record: GenerationRecord, graph: dict[str, Any] | None) -> dict[str, Any]:
    """The config (and graph) that runs a record again exactly."""
    if graph is None:
        raise invalid("id", record.id, "a record that queued a graph (records keep their graph since this "
                                       "version; older ones and records without a graph cannot be replayed)")
    parameters = {k: v for k, v in record.parameters.items() if k not in ("prompt", "replay_of")}
    template, variables = verbatim(record.prompt_text)  # the prompt as it ran, though a "{{…}}" is in it
    return {"operation_type": record.operation_type, "workspace": record.workspace, "prompt": template,
            "variables": variables, "parameters": {**parameters, "replay_of": record.id}, "graph": graph}


def _found(value: Any, keys: Any, path: str = "") -> dict[str, Any]:
    """Every value under a matching key, by key path."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if (keys(str(k)) if callable(keys) else str(k) in keys) and not isinstance(v, dict):
                out[where] = v
            else:
                out.update(_found(v, keys, where))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(_found(v, keys, f"{path}[{i}]"))
    return out


def compare(a: GenerationRecord, b: GenerationRecord, graph_a: dict[str, Any] | None,
            graph_b: dict[str, Any] | None, versions: dict[str, Any]) -> dict[str, Any]:
    """Two records side by side; each section lists only what differs (empty: the same)."""
    def models(record: GenerationRecord, graph: dict[str, Any] | None) -> dict[str, Any]:
        return {**_found(record.parameters, lambda k: bool(MODEL_KEYS.search(k))),
                **{f"graph.{k}": v for k, v in _found(graph or {}, lambda k: bool(MODEL_KEYS.search(k))).items()}}

    def seeds(record: GenerationRecord, graph: dict[str, Any] | None) -> dict[str, Any]:
        return {**_found(record.parameters, SEED_KEYS),
                **{f"graph.{k}": v for k, v in _found(graph or {}, SEED_KEYS).items()}}

    params_a = {k: v for k, v in a.parameters.items() if k != "prompt"}
    params_b = {k: v for k, v in b.parameters.items() if k != "prompt"}
    return {
        "a": a.id, "b": b.id, "same_hash": a.repro_hash == b.repro_hash,
        "hashes": {"a": a.repro_hash, "b": b.repro_hash},
        "parameters": key_diff(params_a, params_b),
        "prompt": [] if a.prompt_text == b.prompt_text else [f"- {a.prompt_text}", f"+ {b.prompt_text}"],
        "prompt_versions": key_diff(versions.get(a.id), versions.get(b.id)),
        "models": key_diff(models(a, graph_a), models(b, graph_b)),
        "seeds": key_diff(seeds(a, graph_a), seeds(b, graph_b)),
        "graph": key_diff(graph_a or {}, graph_b or {}),  # a record without a graph: every node of the other
        "outputs": key_diff(a.outputs, b.outputs),
        "status": {"a": a.status, "b": b.status},
    }
