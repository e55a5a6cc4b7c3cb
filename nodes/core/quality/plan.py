"""What the QualityPreset and QualityStage nodes compute, without ComfyUI.

A node's tier option is a preset id of the default user (``cinematic``) or, for other users
of a multi-user ComfyUI, ``user/preset``. The plan is the ``QUALITY_PRESET`` value that
travels on the wire between Atelier nodes; ``outputs`` lays it out for ComfyUI's sockets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from ..base.errors import AtelierError, invalid
from .apply import FunctionTemplate, apply_preset, check_compatibility
from .families import Detection, detect_family
from .runs import PlannedRun
from .service import QualityService

DEFAULT_USER = "default"
IMAGE_OUTPUTS = ("steps", "cfg", "sampler_name", "scheduler", "width", "height", "batch_size", "denoise",
                 "hires_enabled", "hires_scale", "hires_steps", "hires_denoise", "hires_width", "hires_height")
STAGES = ("base", "hires_fix", "refinement")


def tier_options(service: QualityService) -> list[str]:
    """Built-in tiers, then the default user's presets, then ``user/preset`` of other users."""
    options = list(service.tables.tiers)
    for user in [DEFAULT_USER, *[u for u in service.library.store.users() if u != DEFAULT_USER]]:
        presets, _ = service.library.list_all(user)
        prefix = "" if user == DEFAULT_USER else f"{user}/"
        options.extend(f"{prefix}{p.id}" for p in presets if not p.builtin)
    return options


def split_option(option: str) -> tuple[str, str]:
    user, _, preset_id = option.rpartition("/")
    return user or DEFAULT_USER, preset_id


def build_plan(service: QualityService, option: str, model_family: str = "auto", checkpoint: str | None = None,
               header: dict[str, Any] | None = None, width: int = 0, height: int = 0,
               batch_size: int = 1) -> dict[str, Any]:
    """The QUALITY_PRESET value: preset, family, final image parameters and their estimate."""
    user, preset_id = split_option(option)
    preset = service.library.get(user, preset_id)
    if model_family == "auto" and (checkpoint or header):
        detection: Detection = detect_family(checkpoint, header, service.tables)
        model_family = detection.family
    else:
        detection = Detection(model_family, "chosen", "chosen by the user") if model_family != "auto" else \
            detect_family(None, None, service.tables)
        model_family = detection.family
    template = FunctionTemplate(id="AtelierQualityPreset", category="image", model_family=model_family,
                                width=width, height=height, batch_size=batch_size)
    applied = apply_preset(preset, template, service.tables)
    estimate = service.estimator.estimate("image", applied.params, model_family)
    compatibility = check_compatibility(preset, template, service.tables, estimate.vram_gb)
    return {
        "preset": preset.model_dump(mode="json"), "user": user, "option": option,
        "family": {**detection.to_dict(), "family": model_family}, "template": template.model_dump(),
        "params": applied.params, "estimate": estimate.to_dict(),
        "warnings": applied.warnings + compatibility.warnings, "device": service.estimator.device,
    }


Header = Callable[[str | None], "dict[str, Any] | None"]  # checkpoint name -> its safetensors header


def planned_run(service: QualityService, inputs: dict[str, Any], header: Header) -> PlannedRun | None:
    """The plan of a Quality Preset node from its inputs as recorded in a prompt (None if linked or invalid)."""
    names = ("tier", "model_family", "checkpoint", "width", "height", "batch_size")
    if any(isinstance(inputs.get(n), list) for n in names) or not isinstance(inputs.get("tier"), str):
        return None
    checkpoint = inputs.get("checkpoint")
    try:
        plan = build_plan(service, inputs["tier"], inputs.get("model_family", "auto"), checkpoint,
                          header(checkpoint), int(inputs.get("width", 0)), int(inputs.get("height", 0)),
                          int(inputs.get("batch_size", 1)))
    except (AtelierError, TypeError, ValueError):
        return None
    return PlannedRun("image", plan["family"]["family"], plan["params"], plan["device"])


def outputs(plan: dict[str, Any], stage: str = "base") -> tuple[Any, ...]:
    """Socket values for a stage of the plan: the base pass, the hires-fix pass or refinement."""
    if stage not in STAGES:
        raise invalid("stage", stage, list(STAGES))
    p = dict(plan["params"])
    if stage == "hires_fix":
        p.update(steps=max(1, p["hires_steps"]), denoise=p["hires_denoise"] or 0.5,
                 width=p["hires_width"], height=p["hires_height"])
    elif stage == "refinement":
        fraction = 0.3
        p.update(steps=max(1, round(p["steps"] * fraction)), denoise=0.25,
                 width=p["hires_width"], height=p["hires_height"])
    return tuple(p[name] for name in IMAGE_OUTPUTS)


def summary_text(plan: dict[str, Any]) -> str:
    p, e, fam = plan["params"], plan["estimate"], plan["family"]
    hires = f" -> hires {p['hires_width']}x{p['hires_height']} ({p['hires_steps']} steps)" if p["hires_enabled"] else ""
    lines = [
        f"{plan['preset']['display_name']} (level {plan['preset']['level']}) on {fam['family']} [{fam['source']}]",
        f"{p['steps']} steps, cfg {p['cfg']}, {p['sampler_name']}/{p['scheduler']}, "
        f"{p['width']}x{p['height']} x{p['batch_size']}{hires}",
        f"~{e['time_s']['expected']:.1f}s ({e['time_s']['min']:.1f}-{e['time_s']['max']:.1f}), "
        f"{e['vram_gb']:.1f} GB VRAM, ${e['cost_usd']:.4f}" + (" [calibrated]" if e["calibrated"] else " [prior]"),
    ]
    lines.extend(f"warning: {w}" for w in plan["warnings"])
    return "\n".join(lines)


def fingerprint(plan_inputs: dict[str, Any], preset_dump: dict[str, Any]) -> str:
    """Changes exactly when the inputs or the (possibly edited) custom preset change."""
    blob = json.dumps({"inputs": plan_inputs, "preset": preset_dump}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
