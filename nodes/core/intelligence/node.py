"""What the intelligence nodes compute, without ComfyUI: the ASSISTED mode's accepted values, the plan as a
``QUALITY_PRESET`` value, and the names a save answers with."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..base.errors import invalid
from ..quality.families import Detection, detect_family
from ..quality.plan import QualityPlan
from ..quality.service import QualityService
from .explain import Explanation
from .service import Decision

ACCEPTED_KEYS = ("tier", "loras", "width", "height", "batch_size")


def accepted_values(text: str | None) -> dict[str, Any]:
    """ASSISTED: what the user accepted on the canvas (JSON); empty means "the recommendation"."""
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise invalid("accepted", text[:80], 'JSON like {"tier": "high", "loras": [["name.safetensors", 0.8]]}') \
            from None
    if not isinstance(data, dict) or set(data) - set(ACCEPTED_KEYS):
        raise invalid("accepted", text[:80], f"a JSON object with {', '.join(ACCEPTED_KEYS)}")
    return data


def quality_plan(decision: Decision, user: str, quality: QualityService,
                 header_of: Callable[[str | None], dict[str, Any] | None]) -> QualityPlan:
    """The decision's plan as the ``QUALITY_PRESET`` value the Quality Sampler and the records read."""
    plan = decision.plan
    checkpoint = plan.template.checkpoint
    if checkpoint and plan.template.model_family == decision.family:
        detection = detect_family(checkpoint, header_of(checkpoint), quality.tables)
        if detection.family != decision.family:
            detection = Detection(decision.family, "chosen", "chosen by the user")
    else:
        detection = Detection(decision.family, "chosen", "chosen by the user")
    return QualityPlan(plan.preset, user, plan.tier, detection, plan.template, plan.params, plan.estimate,
                       list(plan.warnings), quality.estimator.device)


def record_parameters(explanation: Explanation, images: list[str]) -> dict[str, Any]:
    """What Save With Explanation records: the explanation, the images, and the plan that ran as ``quality``
    (tier, family, category, params) so the finished run calibrates the estimator like a Quality Preset's."""
    values = dict(explanation.parameters)
    tier, family, checkpoint = values.pop("tier", None), values.pop("family", None), values.pop("checkpoint", None)
    parameters: dict[str, Any] = {"explanation": explanation.to_dict(), "images": images}
    if checkpoint:
        parameters["checkpoint"] = checkpoint  # what the tier value chart groups by
    if tier and family and values:
        parameters["quality"] = {"preset": tier, "family": family, "category": "image", "params": values}
    return parameters


def save_names(saved: list[dict[str, Any]]) -> list[str]:
    return [f"{s['subfolder']}/{s['filename']}" if s.get("subfolder") else str(s["filename"]) for s in saved]
