"""Template-aware application: a preset applied to a function template gives final parameters.

Order: the preset's parameters for the template's category, adapted to the model family
(steps, cfg range, sampler/scheduler per level, fixed steps of distilled models), the
category rules (quality tiers 3+ turn attention/VAE slicing off; cfg +0.5 above 1024 px
wide), global scaling (resolution scale rounded to the family's multiple), then only the
template's declared inputs are kept, with ``_quality_preset`` metadata and estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.validation import parse_model
from .families import Detection, detect_family
from .schema import Category, Preset
from .tables import Tables, load_tables

# Parameter names each category can fill (ComfyUI's input names where ComfyUI has one).
CATEGORY_INPUTS: dict[str, tuple[str, ...]] = {
    "image": ("steps", "cfg", "sampler_name", "scheduler", "denoise", "width", "height", "batch_size",
              "hires_enabled", "hires_scale", "hires_steps", "hires_denoise", "hires_width",
              "hires_height", "refinement", "refine_steps", "refine_denoise", "attention_slicing", "vae_slicing"),
    "video": ("fps", "frames", "width", "height", "motion_quality", "interpolation", "batch_size"),
    "audio": ("sample_rate", "bitrate_kbps", "processing_quality", "duration_s"),
    "text": ("max_tokens", "temperature", "enhance_iterations", "enhance_threshold"),
}
CFG_WIDE_THRESHOLD = 1024
CFG_WIDE_BONUS = 0.5
NO_SLICING_LEVEL = 3


class FunctionTemplate(BaseModel):
    """What a function (a workflow, a pipeline stage, a node) declares it needs."""

    model_config = ConfigDict(extra="forbid")

    id: str = "template"
    category: Category = "image"
    inputs: tuple[str, ...] | None = None
    model_family: str = "auto"
    checkpoint: str | None = None
    width: Annotated[int, Field(ge=0, le=16384)] = 0
    height: Annotated[int, Field(ge=0, le=16384)] = 0
    batch_size: Annotated[int, Field(ge=1, le=256)] = 1
    duration_s: Annotated[float, Field(gt=0.0, le=3600.0)] | None = None
    min_level: Annotated[int, Field(ge=1, le=4)] | None = None
    max_level: Annotated[int, Field(ge=1, le=4)] | None = None
    max_vram_gb: Annotated[float, Field(gt=0.0)] | None = None

    @classmethod
    def parse(cls, data: Any, field_prefix: str = "template") -> FunctionTemplate:
        if isinstance(data, FunctionTemplate):
            return data
        return parse_model(cls, {} if data is None else data, "an object with category, inputs, model_family…",
                           field=field_prefix, prefix=field_prefix)


@dataclass
class Compatibility:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": self.reasons, "warnings": self.warnings}


@dataclass
class Applied:
    preset: Preset
    template: FunctionTemplate
    family: Detection
    params: dict[str, Any]  # every parameter of the category
    warnings: list[str]

    def declared(self) -> dict[str, Any]:
        inputs = self.template.inputs
        return dict(self.params) if inputs is None else {k: self.params[k] for k in inputs if k in self.params}


def round_to_multiple(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def resolve_family(template: FunctionTemplate, tables: Tables) -> Detection:
    if template.model_family != "auto":
        tables.family(template.model_family)  # raises with the accepted names
        return Detection(template.model_family, "chosen", "chosen by the user")
    return detect_family(template.checkpoint, None, tables)


def _image(preset: Preset, template: FunctionTemplate, family_name: str, tables: Tables,
           warnings: list[str]) -> dict[str, Any]:
    fam = tables.family(family_name)
    img = preset.image
    level = preset.level
    explicit = set(preset.overridden)

    if fam.steps_by_level:
        steps = fam.steps_by_level[level]
        if "image.steps" in explicit and img.steps != steps:
            warnings.append(f"{fam.display_name} is distilled: steps fixed at {steps} (preset asked {img.steps})")
    else:
        steps = max(1, round(img.steps * fam.steps_scale))
    sampler = img.sampler if "image.sampler" in explicit else fam.samplers[level]
    scheduler = img.scheduler if "image.scheduler" in explicit else fam.schedulers[level]

    base_w = template.width or fam.native_resolution
    base_h = template.height or fam.native_resolution
    width = round_to_multiple(base_w * img.resolution_scale, fam.resolution_multiple)
    height = round_to_multiple(base_h * img.resolution_scale, fam.resolution_multiple)

    cfg = img.cfg + fam.cfg_offset
    if width > CFG_WIDE_THRESHOLD:
        cfg += CFG_WIDE_BONUS
    low, high = fam.cfg
    if not low <= cfg <= high:
        cfg = min(max(cfg, low), high)
    cfg = round(cfg, 2)

    hires = img.hires_fix
    hires_enabled = hires.enabled and fam.hires_fix
    if hires.enabled and not fam.hires_fix:
        warnings.append(f"hires fix disabled: {fam.display_name} is not made for a second pass")
    refinement = img.refinement.enabled and not fam.distilled
    if img.refinement.enabled and fam.distilled:
        warnings.append(f"refinement pass disabled: {fam.display_name} is distilled")
    no_slicing = level >= NO_SLICING_LEVEL
    return {
        "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
        "denoise": img.denoise, "width": width, "height": height, "batch_size": template.batch_size,
        "hires_enabled": hires_enabled,
        "hires_scale": hires.scale if hires_enabled else 1.0,
        "hires_steps": max(1, round(hires.steps * fam.steps_scale)) if hires_enabled else 0,
        "hires_denoise": hires.denoise if hires_enabled else 0.0,
        "hires_width": round_to_multiple(width * hires.scale, fam.resolution_multiple) if hires_enabled else width,
        "hires_height": round_to_multiple(height * hires.scale, fam.resolution_multiple) if hires_enabled else height,
        "refinement": refinement,
        "refine_steps": max(1, round(img.refinement.steps * fam.steps_scale)) if refinement else 0,
        "refine_denoise": img.refinement.denoise if refinement else 0.0,
        "attention_slicing": False if no_slicing else img.attention_slicing,
        "vae_slicing": False if no_slicing else img.vae_slicing,
    }


def _video(preset: Preset, template: FunctionTemplate, family_name: str, tables: Tables) -> dict[str, Any]:
    vid = preset.video
    fam = tables.family(family_name)
    base_w = template.width or fam.native_resolution
    base_h = template.height or fam.native_resolution
    return {
        "fps": vid.fps, "frames": vid.frames,
        "width": round_to_multiple(base_w * vid.resolution_scale, fam.resolution_multiple),
        "height": round_to_multiple(base_h * vid.resolution_scale, fam.resolution_multiple),
        "motion_quality": vid.motion_quality, "interpolation": vid.interpolation,
        "batch_size": template.batch_size,
    }


def _audio(preset: Preset, template: FunctionTemplate, tables: Tables) -> dict[str, Any]:
    aud = preset.audio
    duration = template.duration_s or float(tables.estimator["audio"]["default_duration_s"])
    return {"sample_rate": aud.sample_rate, "bitrate_kbps": aud.bitrate_kbps,
            "processing_quality": aud.processing_quality, "duration_s": duration}


def _text(preset: Preset) -> dict[str, Any]:
    text = preset.text
    return {"max_tokens": text.max_tokens, "temperature": text.temperature,
            "enhance_iterations": text.enhance_iterations, "enhance_threshold": text.enhance_threshold}


def apply_preset(preset: Preset, template: FunctionTemplate, tables: Tables | None = None) -> Applied:
    """The final parameters of ``template`` at ``preset`` (without estimates)."""
    tables = tables or load_tables()
    family = resolve_family(template, tables)
    warnings: list[str] = []
    if template.category == "image":
        params = _image(preset, template, family.family, tables, warnings)
    elif template.category == "video":
        params = _video(preset, template, family.family, tables)
    elif template.category == "audio":
        params = _audio(preset, template, tables)
    else:
        params = _text(preset)
    return Applied(preset, template, family, params, warnings)


def check_compatibility(preset: Preset, template: FunctionTemplate, tables: Tables | None = None,
                        vram_gb: float | None = None) -> Compatibility:
    """Whether ``preset`` can serve ``template``; reasons say why not."""
    tables = tables or load_tables()
    reasons: list[str] = []
    warnings: list[str] = []
    known = CATEGORY_INPUTS[template.category]
    for name in template.inputs or ():
        if name not in known:
            reasons.append(f"input {name!r} is not a {template.category} parameter; known: {', '.join(known)}")
    if template.min_level and preset.level < template.min_level:
        reasons.append(f"{template.id} needs quality level {template.min_level} or more; "
                       f"{preset.id} is level {preset.level}")
    if template.max_level and preset.level > template.max_level:
        reasons.append(f"{template.id} allows quality level {template.max_level} at most; "
                       f"{preset.id} is level {preset.level}")
    if template.model_family != "auto" and template.model_family not in tables.families.families:
        reasons.append(f"unknown model family {template.model_family!r}; known: "
                       f"{', '.join(tables.families.families)}")
    elif template.category == "image":
        fam = tables.family(resolve_family(template, tables).family)
        if fam.steps_by_level and "image.steps" in preset.overridden:
            warnings.append(f"{fam.display_name} fixes steps at {fam.steps_by_level[preset.level]}")
        if preset.image.hires_fix.enabled and not fam.hires_fix:
            warnings.append(f"hires fix is turned off for {fam.display_name}")
    if vram_gb is not None and template.max_vram_gb is not None and vram_gb > template.max_vram_gb:
        reasons.append(f"{preset.id} needs about {vram_gb:.1f} GB of VRAM; {template.id} allows "
                       f"{template.max_vram_gb:.1f} GB")
    return Compatibility(ok=not reasons, reasons=reasons, warnings=warnings)
