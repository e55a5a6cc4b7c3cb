"""Pipelines from ``presets/pipelines.yaml``, configured at one quality preset.

Every stage's parameters are the preset applied to the stage's category (quality), then the
stage's own parameters, then the user's (all stages, then per stage): quality < stage < user.
The workflow of each stage comes from the fixed mapping per task type and tier. Nothing
depends on the machine's free resources: the same tier always gives the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..base.errors import InvalidInput, NotFound, invalid
from ..base.validation import parse_model, validation_error
from .apply import CATEGORY_INPUTS, FunctionTemplate, apply_preset, round_to_multiple
from .estimate import Estimate, Estimator
from .schema import Preset, QualityWord, comfy_names
from .tables import Tables

_Steps = Annotated[int, Field(ge=1, le=200)]
_Unit = Annotated[float, Field(ge=0.0, le=1.0)]
_Size = Annotated[int, Field(ge=64, le=16384, multiple_of=8)]
_RULES: dict[str, Any] = {
    "steps": _Steps, "cfg": Annotated[float, Field(ge=0.0, le=30.0)], "sampler_name": str,
    "scheduler": str, "denoise": _Unit, "width": _Size, "height": _Size,
    "batch_size": Annotated[int, Field(ge=1, le=256)], "hires_enabled": bool,
    "hires_scale": Annotated[float, Field(ge=1.0, le=4.0)], "hires_steps": Annotated[int, Field(ge=0, le=150)],
    "hires_denoise": _Unit, "hires_width": _Size, "hires_height": _Size, "refinement": bool,
    "attention_slicing": bool, "vae_slicing": bool, "fps": Annotated[int, Field(ge=1, le=120)],
    "frames": Annotated[int, Field(ge=1, le=2000)], "motion_quality": QualityWord, "interpolation": bool,
    "sample_rate": Annotated[int, Field(ge=8000, le=192000)], "bitrate_kbps": Annotated[int, Field(ge=32, le=512)],
    "processing_quality": QualityWord, "duration_s": Annotated[float, Field(gt=0.0, le=3600.0)],
    "max_tokens": Annotated[int, Field(ge=16, le=32768)], "temperature": Annotated[float, Field(ge=0.0, le=2.0)],
}
PARAMETER_RULES: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(rule) for name, rule in _RULES.items()}


class PipelineRequest(BaseModel):
    """What a user may set when configuring a pipeline."""

    model_config = ConfigDict(extra="forbid")

    model_family: str = "auto"
    checkpoint: str | None = None
    width: Annotated[int, Field(ge=0, le=16384)] = 0
    height: Annotated[int, Field(ge=0, le=16384)] = 0
    parameters: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any) -> PipelineRequest:
        return parse_model(cls, {} if data is None else data, "a JSON object")


def check_parameter(field: str, name: str, value: Any) -> Any:
    rule = PARAMETER_RULES.get(name)
    if rule is None:
        raise invalid(field, name, sorted(PARAMETER_RULES), "unknown parameter")
    try:
        value = rule.validate_python(value, strict=isinstance(value, bool))
    except ValidationError as exc:
        raise validation_error(exc, f"{field}.{name}") from None
    kind = {"sampler_name": "samplers", "scheduler": "schedulers"}.get(name)
    if kind and value not in comfy_names(kind):
        raise invalid(f"{field}.{name}", value, comfy_names(kind))
    return value


@dataclass
class StagePlan:
    id: str
    task_type: str
    category: str
    workflow: str
    prompt_suffix: str
    parameters: dict[str, Any]
    sources: dict[str, str]  # parameter -> "quality" | "stage" | "user"
    estimate: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task_type": self.task_type, "category": self.category,
                "workflow": self.workflow, "prompt_suffix": self.prompt_suffix,
                "parameters": self.parameters, "sources": self.sources, "estimate": self.estimate.to_dict()}


@dataclass
class PipelinePlan:
    name: str
    description: str
    preset: Preset
    tier: str
    family: dict[str, str]
    stages: list[StagePlan]

    def totals(self) -> dict[str, Any]:
        est = [s.estimate for s in self.stages]
        return {"time_s": {"min": round(sum(e.time_min_s for e in est), 2),
                           "expected": round(sum(e.time_expected_s for e in est), 2),
                           "max": round(sum(e.time_max_s for e in est), 2)},
                "vram_gb": round(max(e.vram_gb for e in est), 2),
                "cost_usd": round(sum(e.cost_usd for e in est), 5)}

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.name, "description": self.description, "tier": self.tier,
                "preset": self.preset.summary(), "family": self.family,
                "stages": [s.to_dict() for s in self.stages], "totals": self.totals()}


def list_pipelines(tables: Tables) -> list[dict[str, Any]]:
    table = tables.pipelines
    return [{"name": name, "description": spec.description,
             "stages": [{"id": s.id, "task_type": s.task_type,
                         "category": table.task_types[s.task_type].category,
                         "workflows": table.workflows.get(s.task_type, {})} for s in spec.stages]}
            for name, spec in table.pipelines.items()]


def configure_pipeline(name: str, preset: Preset, request: PipelineRequest, tables: Tables,
                       estimator: Estimator) -> PipelinePlan:
    table = tables.pipelines
    spec = table.pipelines.get(name)
    if spec is None:
        raise NotFound(f"no pipeline {name!r}; known: {', '.join(table.pipelines)}",
                       field="pipeline", value=name, accepted=list(table.pipelines))
    stage_ids = [s.id for s in spec.stages]
    for stage_id in request.stages:
        if stage_id not in stage_ids:
            raise invalid(f"stages.{stage_id}", stage_id, stage_ids, f"{name} has no such stage")
    categories = {table.task_types[s.task_type].category for s in spec.stages}
    for key in request.parameters:
        if not any(key in CATEGORY_INPUTS[c] for c in categories):
            accepted = sorted({k for c in categories for k in CATEGORY_INPUTS[c]})
            raise invalid(f"parameters.{key}", key, accepted, f"no stage of {name} takes it")
    tier = preset.id if preset.builtin else tables.builtin_for_level(preset.level).id

    stages: list[StagePlan] = []
    family: dict[str, str] = {}
    for stage in spec.stages:
        category = table.task_types[stage.task_type].category
        workflow = table.workflows.get(stage.task_type, {}).get(tier)
        if workflow is None:
            raise InvalidInput(f"pipeline {name!r} maps no workflow for task type {stage.task_type!r} "
                               f"at tier {tier!r}", field="tier", value=tier)
        template = FunctionTemplate(id=f"{name}.{stage.id}", category=category,
                                    model_family=request.model_family, checkpoint=request.checkpoint,
                                    width=request.width, height=request.height)
        applied = apply_preset(preset, template, tables)
        family = applied.family.to_dict()
        params = dict(applied.params)
        sources = dict.fromkeys(params, "quality")
        layers = (("stage", f"pipelines.{name}.{stage.id}.parameters", stage.parameters),
                  ("user", "parameters", {k: v for k, v in request.parameters.items()
                                          if k in CATEGORY_INPUTS[category]}),
                  ("user", f"stages.{stage.id}", request.stages.get(stage.id, {})))
        for source, field, layer in layers:
            for key, value in layer.items():
                if key not in CATEGORY_INPUTS[category]:
                    raise invalid(f"{field}.{key}", key, list(CATEGORY_INPUTS[category]),
                                  f"not a {category} parameter")
                params[key] = check_parameter(field, key, value)
                sources[key] = source
        _rescale_hires(params, sources, tables, applied.family.family, category)
        estimate = estimator.estimate(category, params, applied.family.family)
        stages.append(StagePlan(stage.id, stage.task_type, category, workflow, stage.prompt_suffix,
                                params, sources, estimate))
    return PipelinePlan(name, spec.description, preset, tier, family, stages)


def _rescale_hires(params: dict[str, Any], sources: dict[str, str], tables: Tables, family: str,
                   category: str) -> None:
    """Keep the hires size consistent when a later layer changed the base size."""
    if category != "image" or not params.get("hires_enabled"):
        return
    multiple = tables.family(family).resolution_multiple
    for axis in ("width", "height"):
        if sources.get(axis) != "quality" and sources.get(f"hires_{axis}") == "quality":
            params[f"hires_{axis}"] = round_to_multiple(params[axis] * params["hires_scale"], multiple)
