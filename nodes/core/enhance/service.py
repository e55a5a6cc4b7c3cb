"""One facade over prompt enhancement for the node, the route and the CLI.

Requests name an endpoint from Atelier's configuration (or the backend's default address); a URL or
an API key in a request is refused, so graphs and requests never carry secrets or reach arbitrary
hosts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..base.errors import invalid
from ..quality.plan import QualityPlan
from ..quality.tables import load_tables
from .config import DEFAULT_ENDPOINT, load_endpoints
from .loop import DEFAULT_THRESHOLD, MAX_ITERATIONS, Backends, Enhancer, EnhanceRequest


class EnhanceService:
    """``config``: the LLM config file (named endpoints); ``backends``: the writers and critics the host
    provides (rule only when none are given); ``trace_dir``: where a running loop's trace is written
    (``<output>/atelier/traces``: a kept trace is answered as a path from the output folder)."""

    def __init__(self, config: Path | None = None, trace_dir: Path | None = None,
                 backends: Backends | None = None) -> None:
        self.config = config
        self.trace_dir = trace_dir
        self.enhancer = Enhancer(backends)

    def endpoints(self) -> list[dict[str, Any]]:
        return [e.public() for e in load_endpoints(self.config).values()]

    def endpoint_names(self) -> list[str]:
        return [DEFAULT_ENDPOINT, *load_endpoints(self.config)]

    def request(self, body: Any) -> EnhanceRequest:
        """A validated request; ``endpoint`` is a configured name (its backend, URL and model apply)."""
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, "a JSON object with at least a prompt")
        body = dict(body)
        for internal in ("endpoint_name",):
            body.pop(internal, None)  # set from the configured name below, never by a client
        for secret in ("api_key", "key", "token"):
            if secret in body:
                raise invalid(secret, "(hidden)", "nothing: keys live in the environment or the LLM config file")
        name = body.pop("endpoint", DEFAULT_ENDPOINT) or DEFAULT_ENDPOINT
        if name != DEFAULT_ENDPOINT:
            endpoints = load_endpoints(self.config)
            if name not in endpoints:
                raise invalid("endpoint", name, self.endpoint_names())
            chosen = endpoints[name]
            body.setdefault("backend", chosen.backend)
            if body["backend"] != chosen.backend:
                raise invalid("backend", body["backend"], [chosen.backend], f"endpoint {name!r} is {chosen.backend}")
            body["endpoint"] = chosen.url
            body["endpoint_name"] = name  # its key is chosen by name, never by URL
            if not body.get("model"):
                body["model"] = chosen.model
        family = body.get("model_family", "sd15")
        known = load_tables().families.families
        if family not in known:  # the same families plan and the Quality Preset accept
            raise invalid("model_family", family, list(known))
        return EnhanceRequest.parse(body)

    async def enhance(self, body: Any, keep_trace: bool = False) -> dict[str, Any]:
        request = self.request(body)
        trace_file = None
        if self.trace_dir is not None:
            name = hashlib.sha256(request.cache_key().encode()).hexdigest()[:16]
            trace_file = self.trace_dir / f"enhance_{name}.json"
        result = (await self.enhancer.run(request, trace_file, keep_trace)).to_dict()
        if result.get("trace_file") and self.trace_dir is not None:  # shown from the output folder, no server path
            result["trace_file"] = Path(result["trace_file"]).relative_to(self.trace_dir.parents[1]).as_posix()
        return result


def node_body(inputs: dict[str, Any], plan: QualityPlan | None = None) -> dict[str, Any]:
    """The Prompt Enhance node's widgets as a request: ``auto`` family from the Quality Preset (else SD1.5), the
    checkpoint too (its name tells Pony/Illustrious styles), the LLM freed after the loop unless kept, and
    ``iterations`` 0 for the tier's loop (``tier_enhancement``)."""
    body = {k: v for k, v in inputs.items() if k not in ("keep_trace", "keep_llm_loaded")}
    family = body.get("model_family", "auto")
    if family == "auto" and plan is not None:
        family = plan.family.family
    body["model_family"] = "sd15" if family == "auto" else family
    body["checkpoint"] = plan.template.checkpoint if plan is not None else None
    body["release_after"] = not inputs.get("keep_llm_loaded", False)
    if body.get("iterations") == 0:  # the tier's loop: its rounds and its stopping score
        body.update(tier_enhancement(plan))
    return body


def tier_enhancement(plan: QualityPlan | None) -> dict[str, Any]:
    """The enhancement loop a tier states (``text.enhance_iterations`` and ``enhance_threshold`` in tiers.yaml);
    without a Quality Preset, the loop's own defaults."""
    if plan is None:
        return {"iterations": MAX_ITERATIONS, "threshold": DEFAULT_THRESHOLD}
    return {"iterations": plan.preset.text.enhance_iterations, "threshold": plan.preset.text.enhance_threshold}


def node_fingerprint(service: EnhanceService, inputs: dict[str, Any]) -> str:
    """Prompt Enhance's cache key: changes exactly when an input (seed included) or the endpoint's settings do."""
    endpoint = inputs.get("endpoint", DEFAULT_ENDPOINT)
    resolved = next((e for e in service.endpoints() if e["name"] == endpoint), None)
    blob = json.dumps({"inputs": {k: v for k, v in inputs.items() if k != "quality_preset"}, "endpoint": resolved},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def node_text(result: dict[str, Any]) -> str:
    """What the Prompt Enhance node shows: score, iterations, the prompt and any fallback."""
    return "\n".join([f"score {result['score']:.0f} after {result['iterations']} iteration(s)", result["prompt"],
                      *[f"fallback: {f}" for f in result["fallbacks"]]])
