"""Pipelines from ``presets/pipelines.yaml``, configured at one quality preset.

Every stage's parameters are the preset applied to the stage's category (quality), then the
stage's own parameters, then (Frame Chain's frames) the tier's storyboard settings, then the user's
(variations, all stages, then per stage): quality < stage < storyboard < user. A stage the checkpoint
cannot run (video, audio on an image model) is skipped with the reason and what it needs.
The workflow of each stage comes from the fixed mapping per task type and tier. Nothing
depends on the machine's free resources: the same tier always gives the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..base.errors import InvalidInput, NotFound, invalid
from ..base.validation import parse_model, validation_error
from .apply import CATEGORY_INPUTS, FunctionTemplate, apply_preset, round_to_multiple
from .estimate import Estimate, Estimator
from .passes import SamplingPass, sampling_passes
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
    "refine_steps": Annotated[int, Field(ge=0, le=150)], "refine_denoise": _Unit,
    "attention_slicing": bool, "vae_slicing": bool, "fps": Annotated[int, Field(ge=1, le=120)],
    "frames": Annotated[int, Field(ge=1, le=2000)], "motion_quality": QualityWord, "interpolation": bool,
    "sample_rate": Annotated[int, Field(ge=8000, le=192000)], "bitrate_kbps": Annotated[int, Field(ge=32, le=512)],
    "processing_quality": QualityWord, "duration_s": Annotated[float, Field(gt=0.0, le=3600.0)],
    "max_tokens": Annotated[int, Field(ge=16, le=32768)], "temperature": Annotated[float, Field(ge=0.0, le=2.0)],
    "enhance_iterations": Annotated[int, Field(ge=1, le=4)], "enhance_threshold": Annotated[float, Field(ge=0.0, le=100.0)],
}
PARAMETER_RULES: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(rule) for name, rule in _RULES.items()}


class PipelineRequest(BaseModel):
    """What a user may set when configuring a pipeline."""

    model_config = ConfigDict(extra="forbid")

    model_family: str = "auto"
    checkpoint: str | None = None
    width: Annotated[int, Field(ge=0, le=16384)] = 0
    height: Annotated[int, Field(ge=0, le=16384)] = 0
    clips: Annotated[int, Field(ge=1, le=64)] = 1       # storyboard clips (each a start and an end frame)
    reference: bool = False                             # a reference image: every frame starts from an image
    variations: Annotated[int, Field(ge=0, le=16)] = 0  # per frame or shot; 0: the tier's (or the stage's)
    enhance: bool = True                                # the prompt enhancement stage runs
    enhance_backend: Literal["rule", "ollama", "openai", "transformers"] = "rule"  # what the graphs run
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
    sources: dict[str, str]  # parameter -> "quality" | "stage" | "storyboard" | "user"
    estimate: Estimate       # one run
    runs: int = 1            # how many times it runs (frames of a storyboard); the totals count them all
    note: str = ""

    @property
    def passes(self) -> list[SamplingPass]:
        """The sampling passes one run makes (image stages)."""
        return sampling_passes(self.parameters) if self.category == "image" else []

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task_type": self.task_type, "category": self.category,
                "workflow": self.workflow, "prompt_suffix": self.prompt_suffix,
                "parameters": self.parameters, "sources": self.sources, "runs": self.runs,
                "passes": [p.to_dict() for p in self.passes], "estimate": self.estimate.to_dict(),
                **({"note": self.note} if self.note else {})}


@dataclass(frozen=True)
class SkippedStage:
    """A stage the chosen checkpoint cannot run: neither planned nor priced."""

    id: str
    task_type: str
    reason: str
    needs: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task_type": self.task_type, "reason": self.reason, "needs": self.needs}


@dataclass
class PipelinePlan:
    name: str
    description: str
    workflow: str
    preset: Preset
    tier: str
    family: dict[str, str]
    stages: list[StagePlan]
    skipped: list[SkippedStage]
    request: PipelineRequest

    def stage(self, stage_id: str) -> StagePlan | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    def totals(self) -> dict[str, Any]:
        """Every run of every planned stage (a storyboard's stages run once per frame)."""
        est = [(s.estimate, s.runs) for s in self.stages]
        return {"time_s": {"min": round(sum(e.time_min_s * n for e, n in est), 2),
                           "expected": round(sum(e.time_expected_s * n for e, n in est), 2),
                           "max": round(sum(e.time_max_s * n for e, n in est), 2)},
                "vram_gb": round(max((e.vram_gb for e, n in est if n), default=0.0), 2),
                "cost_usd": round(sum(e.cost_usd * n for e, n in est), 5),
                "runs": sum(n for _, n in est)}

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.name, "description": self.description, "workflow": self.workflow,
                "tier": self.tier, "preset": self.preset.summary(), "family": self.family,
                "stages": [s.to_dict() for s in self.stages], "skipped": [s.to_dict() for s in self.skipped],
                "totals": self.totals()}


def list_pipelines(tables: Tables) -> list[dict[str, Any]]:
    table = tables.pipelines
    return [{"name": name, "description": spec.description, "workflow": spec.workflow,
             "stages": [{"id": s.id, "task_type": s.task_type,
                         "category": table.task_types[s.task_type].category,
                         "workflows": table.workflows.get(s.task_type, {})} for s in spec.stages]}
            for name, spec in table.pipelines.items()]


def frame_runs(chain: str, request: PipelineRequest) -> int:
    """How many frames of a storyboard of ``request.clips`` clips start from text / from an image: without a
    reference the first start frame starts from text and every other frame from an image (spec.frames)."""
    frames = 2 * request.clips
    from_text = 0 if request.reference else 1
    return from_text if chain == "text" else frames - from_text


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
    chain = tables.chain_level(preset.level)

    stages: list[StagePlan] = []
    skipped: list[SkippedStage] = []
    family: dict[str, str] = {}
    for stage in spec.stages:
        task = table.task_types[stage.task_type]
        category = task.category
        template = FunctionTemplate(id=f"{name}.{stage.id}", category=category,
                                    model_family=request.model_family, checkpoint=request.checkpoint,
                                    width=request.width, height=request.height)
        applied = apply_preset(preset, template, tables)
        family = applied.family.to_dict() if category == "image" or not family else family
        fam = tables.family(applied.family.family)
        if category != "text" and category not in fam.categories:
            made = " and ".join({"image": "images"}.get(c, c) for c in fam.categories)
            skipped.append(SkippedStage(stage.id, stage.task_type, f"{fam.display_name} checkpoints make {made} "
                                        f"only, not {category}", task.needs))
            continue
        if category == "text" and not request.enhance:
            skipped.append(SkippedStage(stage.id, stage.task_type, "prompt enhancement is off", ""))
            continue
        workflow = table.workflows.get(stage.task_type, {}).get(tier)
        if workflow is None:
            raise InvalidInput(f"pipeline {name!r} maps no workflow for task type {stage.task_type!r} "
                               f"at tier {tier!r}", field="tier", value=tier)
        params = dict(applied.params)
        sources = dict.fromkeys(params, "quality")
        chained: dict[str, Any] = {}
        if stage.chain is not None:  # Frame Chain's frames: the tier's variations and img2img strength
            chained["batch_size"] = chain["variations"]
            if stage.chain == "image":
                chained["denoise"] = chain["denoise"]
        variations = {"batch_size": request.variations} if request.variations and category == "image" else {}
        layers = (("stage", f"pipelines.{name}.{stage.id}.parameters", stage.parameters),
                  ("storyboard", f"storyboard.levels.{preset.level}", chained),
                  ("user", "variations", variations),
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
        if category == "text":  # priced as the backend the compiled graph runs (the rule loop: milliseconds)
            params["enhance_backend"] = request.enhance_backend
            sources["enhance_backend"] = "user" if "enhance_backend" in request.model_fields_set else "pipeline"
        runs, note = 1, ""
        if stage.chain is not None:
            runs = frame_runs(stage.chain, request)
            if runs == 0:
                note = "every frame starts from the reference image"
        elif category == "text" and any(s.chain for s in spec.stages):
            runs = 2 * request.clips  # every frame's prompt is enhanced
        estimate = estimator.estimate(category, params, applied.family.family)
        stages.append(StagePlan(stage.id, stage.task_type, category, workflow, stage.prompt_suffix,
                                params, sources, estimate, runs, note))
    return PipelinePlan(name, spec.description, spec.workflow, preset, tier, family, stages, skipped, request)


def _rescale_hires(params: dict[str, Any], sources: dict[str, str], tables: Tables, family: str,
                   category: str) -> None:
    """Keep the hires size consistent when a later layer changed the base size."""
    if category != "image" or not params.get("hires_enabled"):
        return
    multiple = tables.family(family).resolution_multiple
    for axis in ("width", "height"):
        if sources.get(axis) != "quality" and sources.get(f"hires_{axis}") == "quality":
            params[f"hires_{axis}"] = round_to_multiple(params[axis] * params["hires_scale"], multiple)
