"""Parameters under explicit constraints: ``max_time_s``, ``max_vram_gb`` and a priority, resolved once through
the calibrated estimator into a plan, with every decision explained.

The priority names the tier to start from and the lowest tier to step down to (``presets/optimiser.yaml``).
The prompt analysis shapes the plan where the user left a value to Atelier: the aspect ratio from the content
type (width and height 0), extra steps for complex prompts, a cfg shift by style. Over budget, the cuts run
in a fixed order: tier, then steps, then hires passes (refinement, hires fix), then resolution, then batch.
The first plan that fits is the answer; none fits: ``NoPlanFits`` names the cheapest plan and its estimate.
The same inputs (and calibration) give the same plan; nothing adapts to load behind the user's back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..base.data import PRESETS_DIR, read_yaml
from ..base.errors import InvalidInput
from ..base.validation import parse_model
from ..quality.apply import FunctionTemplate, apply_preset, round_to_multiple
from ..quality.estimate import Estimate
from ..quality.passes import sampling_passes
from ..quality.schema import Preset
from ..quality.service import QualityService
from .analysis import Analysis

Priority = Literal["quality", "balanced", "speed"]
PRIORITIES = ("quality", "balanced", "speed")


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    return read_yaml(PRESETS_DIR / "optimiser.yaml")


class Constraints(BaseModel):
    """What the user allows: time, VRAM and what matters most (validated; unknown fields refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_time_s: Annotated[float | None, Field(gt=0.0, le=86_400.0)] = None
    max_vram_gb: Annotated[float | None, Field(gt=0.0, le=1024.0)] = None
    priority: Priority = "balanced"

    @classmethod
    def parse(cls, data: Any) -> Constraints:
        return parse_model(cls, data or {}, "max_time_s (s), max_vram_gb (GB), priority (quality, balanced, speed)",
                           field="constraints", prefix="constraints")

    def over(self, estimate: Estimate) -> list[str]:
        """What an estimate breaks, in words."""
        out = []
        if self.max_time_s is not None and estimate.time_expected_s > self.max_time_s:
            out.append(f"~{estimate.time_expected_s:.1f} s > {self.max_time_s:g} s")
        if self.max_vram_gb is not None and estimate.vram_gb > self.max_vram_gb:
            out.append(f"{estimate.vram_gb:.1f} GB VRAM > {self.max_vram_gb:g} GB")
        return out


class NoPlanFits(InvalidInput):
    """No plan meets the constraints; ``cheapest`` is the least demanding one and its estimate."""

    status = 422

    def __init__(self, constraints: Constraints, cheapest: dict[str, Any], estimate: Estimate) -> None:
        super().__init__(
            f"no plan meets the constraints ({'; '.join(constraints.over(estimate))} at the cheapest plan: "
            f"{cheapest['tier']}, {cheapest['steps']} steps, {cheapest['width']}x{cheapest['height']}, batch "
            f"{cheapest['batch_size']})", field="constraints", value=constraints.model_dump(),
            accepted=f"a budget of at least ~{estimate.time_expected_s:.1f} s and {estimate.vram_gb:.1f} GB VRAM")
        self.cheapest = cheapest
        self.estimate = estimate

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "cheapest": self.cheapest, "estimate": self.estimate.to_dict()}


@dataclass
class Optimised:
    tier: str
    preset: Preset
    template: FunctionTemplate
    params: dict[str, Any]
    estimate: Estimate
    constraints: Constraints
    reasons: list[str] = field(default_factory=list)  # why each parameter is what it is
    cuts: list[str] = field(default_factory=list)  # what was given up to meet the budget, in order
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "params": self.params, "estimate": self.estimate.to_dict(),
                "constraints": self.constraints.model_dump(), "reasons": self.reasons, "cuts": self.cuts,
                "warnings": self.warnings, "passes": [p.to_dict() for p in sampling_passes(self.params)]}


def base_size(family: Any, analysis: Analysis | None, width: int, height: int,
              native_resolution: int | None = None) -> tuple[int, int, str | None]:
    """The base size: the user's, else the model's native area (``native_resolution``, as a diffusers folder
    states it; else the family's) at the content type's aspect ratio."""
    if width and height:
        return width, height, None
    native = int(native_resolution or family.native_resolution)
    ratio = table()["aspect"].get(analysis.content_type) if analysis else None
    if not ratio or width or height:
        w, h = width or native, height or native
        return w, h, None
    rw, rh = ratio
    scale = (native * native / (rw * rh)) ** 0.5
    multiple = max(64, int(family.resolution_multiple))
    w, h = round_to_multiple(rw * scale, multiple), round_to_multiple(rh * scale, multiple)
    whose = f"the model's native {native}x{native} area" if native_resolution else f"{family.display_name}'s native area"
    why = (f"size {w}x{h}: {analysis.content_type.replace('_', ' ')} at {rw}:{rh}, {whose}" if analysis else None)
    return w, h, why


def shaped_params(service: QualityService, preset: Preset, template: FunctionTemplate, family_name: str,
                  analysis: Analysis | None) -> tuple[dict[str, Any], list[str], list[str]]:
    """The tier's parameters with the analysis applied: (params, reasons, warnings)."""
    applied = apply_preset(preset, template, service.tables)
    params = dict(applied.params)
    family = service.tables.family(family_name)
    reasons: list[str] = []
    if analysis is not None and not family.steps_by_level:
        extra = float(table()["complexity_steps"].get(analysis.complexity, 0.0))
        if extra:
            before = params["steps"]
            params["steps"] = max(1, round(before * (1 + extra)))
            reasons.append(f"steps {before} -> {params['steps']}: a {analysis.complexity.replace('_', ' ')} prompt "
                           f"({', '.join(analysis.complexity_features)})")
    shift = float(table()["style_cfg"].get(analysis.style, 0.0)) if analysis else 0.0
    if shift:
        low, high = family.cfg
        cfg = round(min(max(params["cfg"] + shift, low), high), 2)
        if cfg != params["cfg"]:
            reasons.append(f"cfg {params['cfg']} -> {cfg}: {analysis.style if analysis else ''} prompts burn at high cfg")
            params["cfg"] = cfg
    return params, reasons, list(applied.warnings)


def _tiers(service: QualityService, priority: str) -> list[str]:
    order = list(service.tables.tiers)
    rule = table()["priorities"][priority]
    start, floor = order.index(rule["start"]), order.index(rule["floor"])
    return [order[i] for i in range(start, min(start, floor) - 1, -1)] if floor <= start else [order[start]]


def _variants(params: dict[str, Any], family: Any, base: tuple[int, int],
              batch: int) -> Iterator[tuple[dict[str, Any], str]]:
    """Cheaper versions of the floor tier's parameters, in the cut order, each with what it gave up."""
    cuts = table()["cuts"]
    current = dict(params)
    if not family.steps_by_level:
        for factor in cuts["steps"]:
            steps = max(int(cuts["min_steps"]), round(params["steps"] * float(factor)))
            if steps < current["steps"]:
                current = {**current, "steps": steps}
                yield dict(current), f"steps {params['steps']} -> {steps}"
    for name in cuts["passes"]:
        if name == "refinement" and current.get("refinement"):
            current = {**current, "refinement": False, "refine_steps": 0, "refine_denoise": 0.0}
            yield dict(current), "refinement pass dropped"
        if name == "hires_fix" and current.get("hires_enabled"):
            current = {**current, "hires_enabled": False, "hires_scale": 1.0, "hires_steps": 0,
                       "hires_denoise": 0.0, "hires_width": current["width"], "hires_height": current["height"]}
            yield dict(current), "hires fix dropped"
    width, height = current["width"], current["height"]
    for factor in cuts["resolution"]:
        w = round_to_multiple(width * float(factor), family.resolution_multiple)
        h = round_to_multiple(height * float(factor), family.resolution_multiple)
        if (w, h) != (current["width"], current["height"]):
            current = {**current, "width": w, "height": h, "hires_width": w, "hires_height": h}
            yield dict(current), f"size {width}x{height} -> {w}x{h}"
    size = batch
    while size > 1:
        size = max(1, size // 2)
        current = {**current, "batch_size": size}
        yield dict(current), f"batch {batch} -> {size}"


def optimise(service: QualityService, user: str, family_name: str, constraints: Constraints,
             analysis: Analysis | None = None, width: int = 0, height: int = 0, batch_size: int = 1,
             checkpoint: str | None = None, native_resolution: int | None = None,
             learned_tier: tuple[str, str] | None = None) -> Optimised:
    """The best plan within the constraints (see the module docstring for the order of cuts).
    ``learned_tier``: (tier, why) the user's ratings prefer; it replaces the priority's start tier."""
    family = service.tables.family(family_name)
    w, h, size_reason = base_size(family, analysis, width, height, native_resolution)
    template = FunctionTemplate(id="AtelierSmartPlan", category="image", model_family=family_name,
                                checkpoint=checkpoint, width=w, height=h, batch_size=batch_size)
    estimator = service.estimator
    cuts: list[str] = []
    tiers = _tiers(service, constraints.priority)
    reasons_head = [f"priority {constraints.priority}: start at {tiers[0]}" + (
        f", step down to {tiers[-1]}" if len(tiers) > 1 else "")]
    order = list(service.tables.tiers)
    if learned_tier is not None and learned_tier[0] in order and learned_tier[0] != tiers[0]:
        start = order.index(learned_tier[0])
        floor = min(start, order.index(tiers[-1]))
        tiers = [order[i] for i in range(start, floor - 1, -1)]
        reasons_head = [f"learned: start at {tiers[0]} ({learned_tier[1]}), step down to {tiers[-1]} if needed"]
    if size_reason:
        reasons_head.append(size_reason)
    last: tuple[str, Preset, dict[str, Any], list[str], list[str]] | None = None
    for tier in tiers:
        preset = service.library.get(user, tier)
        params, reasons, warnings = shaped_params(service, preset, template, family_name, analysis)
        estimate = estimator.estimate("image", params, family_name)
        broken = constraints.over(estimate)
        if not broken:
            return Optimised(tier, preset, template, params, estimate, constraints,
                             [*reasons_head, *reasons, _tier_reason(tier, estimate, cuts)], cuts, warnings)
        cuts.append(f"{tier} over budget ({'; '.join(broken)})")
        last = (tier, preset, params, reasons, warnings)
    assert last is not None
    tier, preset, params, reasons, warnings = last
    cheapest, cheapest_estimate = params, estimator.estimate("image", params, family_name)
    for variant, what in _variants(params, family, (w, h), batch_size):
        estimate = estimator.estimate("image", variant, family_name)
        cheapest, cheapest_estimate = variant, estimate
        broken = constraints.over(estimate)
        if not broken:
            cuts.append(what)
            return Optimised(tier, preset, template, variant, estimate, constraints,
                             [*reasons_head, *reasons, _tier_reason(tier, estimate, cuts)], cuts, warnings)
        cuts.append(f"{what} (still {'; '.join(broken)})")
    raise NoPlanFits(constraints, {"tier": tier, **cheapest}, cheapest_estimate)


def _tier_reason(tier: str, estimate: Estimate, cuts: list[str]) -> str:
    how = "calibrated on your runs" if estimate.calibrated else "prior estimate"
    return (f"{tier}: ~{estimate.time_expected_s:.1f} s, {estimate.vram_gb:.1f} GB VRAM ({how})"
            + (f" after {len(cuts)} cut(s)" if cuts else ""))
