"""What the QualityPreset and QualityStage nodes compute, without ComfyUI.

A node's tier option is a preset id of the default user (``cinematic``) or, for other users
of a multi-user ComfyUI, ``user/preset``. The plan is the ``QUALITY_PRESET`` value that
travels on the wire between Atelier nodes; ``outputs`` lays it out for ComfyUI's sockets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base.errors import AtelierError, invalid
from .apply import FunctionTemplate, apply_preset, check_compatibility
from .estimate import Estimate
from .families import Detection, detect_family
from .passes import PASS_NAMES, Graph, Link, SamplingPass, sampling_graph, sampling_passes
from .runs import PlannedRun
from .schema import Preset
from .service import QualityService
from .summary import summary_text

DEFAULT_USER = "default"
IMAGE_OUTPUTS = ("steps", "cfg", "sampler_name", "scheduler", "width", "height", "batch_size", "denoise",
                 "hires_enabled", "hires_scale", "hires_steps", "hires_denoise", "hires_width", "hires_height")
STAGES = PASS_NAMES


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


@dataclass(frozen=True)
class QualityPlan:
    """The ``QUALITY_PRESET`` value between Atelier's nodes: the preset, the model family, the final image
    parameters (ComfyUI's input names) and their estimate."""

    preset: Preset
    user: str
    option: str
    family: Detection
    template: FunctionTemplate
    params: dict[str, Any]
    estimate: Estimate
    warnings: list[str]
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset.model_dump(mode="json"), "user": self.user, "option": self.option,
                "family": self.family.to_dict(), "template": self.template.model_dump(), "params": self.params,
                "estimate": self.estimate.to_dict(), "warnings": self.warnings, "device": self.device}

    def summary(self) -> str:
        """The plan in three lines (and its warnings), as the node and the tier picker show it."""
        return summary_text(self.preset.display_name, self.preset.level, self.family.to_dict(), self.params,
                            self.estimate.to_dict(), self.warnings)

    def grid_label(self) -> str:
        """One line for the Tier Comparison Grid: tier, steps, size, expected time."""
        p, e = self.params, self.estimate
        return (f"{self.preset.display_name}: {p['steps']} steps, {p['width']}x{p['height']}, "
                f"~{e.time_expected_s:.1f}s" + (" calibrated" if e.calibrated else " est."))


def build_plan(service: QualityService, option: str, model_family: str = "auto", checkpoint: str | None = None,
               header: dict[str, Any] | None = None, width: int = 0, height: int = 0,
               batch_size: int = 1) -> QualityPlan:
    """The QUALITY_PRESET value: preset, family, final image parameters and their estimate."""
    user, preset_id = split_option(option)
    preset = service.library.get(user, preset_id)
    if model_family == "auto" and (checkpoint or header):
        detection: Detection = detect_family(checkpoint, header, service.tables)
    elif model_family != "auto":
        service.tables.family(model_family)  # an unknown family names the accepted ones
        detection = Detection(model_family, "chosen", "chosen by the user")
    else:
        detection = detect_family(None, None, service.tables)
    template = FunctionTemplate(id="AtelierQualityPreset", category="image", model_family=detection.family,
                                checkpoint=checkpoint, width=width, height=height, batch_size=batch_size)
    applied = apply_preset(preset, template, service.tables)
    estimate = service.estimator.estimate("image", applied.params, detection.family)
    compatibility = check_compatibility(preset, template, service.tables, estimate.vram_gb)
    return QualityPlan(preset, user, option, detection, template, applied.params, estimate,
                       applied.warnings + compatibility.warnings, service.estimator.device)


def check_inputs(service: QualityService, tier: str | None, model_family: str | None) -> str | None:
    """Why a Quality Preset node's tier or family is refused when the prompt is queued, or None."""
    if tier is not None and not isinstance(tier, str):
        return f"tier: {str(tier)[:40]!r} is not accepted; accepted: a tier or preset name"
    if model_family is not None and not isinstance(model_family, str):
        return f"model_family: {str(model_family)[:40]!r} is not accepted; accepted: a family name or auto"
    if tier is not None:
        user, preset_id = split_option(tier)
        try:
            service.library.get(user, preset_id)
        except AtelierError as exc:
            return f"tier: {exc.message}"
    families = service.tables.families.families
    if model_family is not None and model_family != "auto" and model_family not in families:
        return f"model_family: {model_family!r} is not a known family; accepted: auto, " + ", ".join(families)
    return None


def node_fingerprint(service: QualityService, inputs: dict[str, Any]) -> str:
    """A Quality Preset node's cache key: changes exactly when its inputs or its (possibly edited) preset do."""
    user, preset_id = split_option(str(inputs.get("tier")))
    try:
        preset = service.library.get(user, preset_id).model_dump(mode="json")
    except AtelierError as exc:
        return f"error:{exc.message}"
    return fingerprint(inputs, preset)


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
    return PlannedRun("image", plan.family.family, plan.params, plan.device)


def outputs(plan: QualityPlan, stage: str = "base") -> tuple[Any, ...]:
    """Socket values for a pass of the plan (``passes.py``): the base pass, the hires-fix pass or refinement.

    A pass the plan does not state gets denoise 0: a KSampler wired to it passes its latent through
    unchanged, so a hand-made graph runs no pass that the plan does not price."""
    if stage not in STAGES:
        raise invalid("stage", stage, list(STAGES))
    passes = {p.name: p for p in sampling_passes(plan.params)}
    chosen = passes.get(stage)
    p = dict(plan.params)
    if chosen is None:
        last = list(passes.values())[-1]
        p.update(width=last.width, height=last.height, denoise=0.0)
    else:
        p.update(steps=chosen.steps, denoise=chosen.denoise, width=chosen.width, height=chosen.height)
    return tuple(p[name] for name in IMAGE_OUTPUTS)


START_MODES = ("text", "image")


def sampler_passes(plan: QualityPlan, start: str = "text", image_denoise: float | None = None) -> list[SamplingPass]:
    """The passes a Quality Sampler node runs: the plan's; from an image (``start`` "image") the base pass
    samples at the tier's img2img strength (``image_denoise``, storyboard.yaml's denoise of the level)."""
    if start not in START_MODES:
        raise invalid("start", start, list(START_MODES))
    passes = sampling_passes(plan.params)
    if start == "image":
        if image_denoise is None:
            raise invalid("image_denoise", image_denoise, "the tier's img2img denoise")
        base = passes[0]
        passes[0] = SamplingPass(base.name, base.steps, base.cfg, base.sampler_name, base.scheduler,
                                 float(image_denoise), base.width, base.height)
    return passes


def sampler_expansion(passes: list[SamplingPass], prefix: str, links: dict[str, Any],
                      seed: int) -> tuple[Graph, Link]:
    """What a Quality Sampler node expands into (``passes.sampling_graph`` on its own input links)."""
    return sampling_graph(prefix, passes, model=links["model"], positive=links["positive"],
                          negative=links["negative"], latent=links["latent_image"], seed=seed)


def passes_text(passes: list[SamplingPass]) -> str:
    """What a Quality Sampler shows: one line per pass."""
    return "\n".join(p.label() for p in passes)


def fingerprint(plan_inputs: dict[str, Any], preset_dump: dict[str, Any]) -> str:
    """Changes exactly when the inputs or the (possibly edited) custom preset change."""
    blob = json.dumps({"inputs": plan_inputs, "preset": preset_dump}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
