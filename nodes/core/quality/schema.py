"""Validated shapes of quality presets and of the YAML tables behind them.

A preset sets parameters per function type (image, video, audio, text). Names of samplers
and schedulers are checked against ComfyUI's (``presets/comfyui_names.yaml`` plus the names
of the running ComfyUI, when there is one).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..base.ids import PRESET_ID

CATEGORIES = ("image", "video", "audio", "text")
Category = Literal["image", "video", "audio", "text"]
QualityWord = Literal["low", "medium", "high", "ultra"]
SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)

PRESET_ID_PATTERN = PRESET_ID

_names: dict[str, set[str]] = {"samplers": set(), "schedulers": set()}


def register_comfy_names(samplers: list[str] | tuple[str, ...] = (),
                         schedulers: list[str] | tuple[str, ...] = ()) -> None:
    """Accept more sampler/scheduler names (those of the running ComfyUI)."""
    _names["samplers"].update(samplers)
    _names["schedulers"].update(schedulers)


def comfy_names(kind: str) -> list[str]:
    return sorted(_names[kind])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HiresFix(_Strict):
    enabled: bool
    scale: Annotated[float, Field(ge=1.0, le=4.0)]
    steps: Annotated[int, Field(ge=0, le=150)]
    denoise: Annotated[float, Field(ge=0.0, le=1.0)]


class Refinement(_Strict):
    """A last low-denoise pass at the final size (after the hires fix when there is one)."""

    enabled: bool
    steps: Annotated[int, Field(ge=0, le=150)] = 0
    denoise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value: Any) -> Any:
        """``refinement: true`` (a preset written before the pass had settings) takes the ultra tier's pass."""
        if isinstance(value, bool):
            return {"enabled": value, **(LEGACY_REFINEMENT if value else {})}
        return value

    @model_validator(mode="after")
    def _runnable(self) -> Refinement:
        if self.enabled and (self.steps < 1 or self.denoise <= 0.0):
            raise ValueError(f"an enabled refinement pass needs steps >= 1 and denoise > 0 "
                             f"(got steps {self.steps}, denoise {self.denoise})")
        return self


LEGACY_REFINEMENT = {"steps": 15, "denoise": 0.25}


class ImageParams(_Strict):
    steps: Annotated[int, Field(ge=1, le=200)]
    cfg: Annotated[float, Field(ge=0.0, le=30.0)]
    sampler: str
    scheduler: str
    denoise: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    resolution_scale: Annotated[float, Field(ge=0.25, le=4.0)]
    hires_fix: HiresFix
    refinement: Refinement
    attention_slicing: bool = True
    vae_slicing: bool = True

    @field_validator("sampler", "scheduler")
    @classmethod
    def _known_comfy_name(cls, value: str, info: ValidationInfo) -> str:
        kind = f"{info.field_name}s"
        if _names[kind] and value not in _names[kind]:
            raise ValueError(f"unknown ComfyUI {info.field_name} {value!r}; accepted: {comfy_names(kind)}")
        return value


class VideoParams(_Strict):
    fps: Annotated[int, Field(ge=1, le=120)]
    frames: Annotated[int, Field(ge=1, le=2000)]
    resolution_scale: Annotated[float, Field(ge=0.25, le=4.0)]
    motion_quality: QualityWord
    interpolation: bool


class AudioParams(_Strict):
    sample_rate: int
    bitrate_kbps: Annotated[int, Field(ge=32, le=512)]
    processing_quality: QualityWord

    @field_validator("sample_rate")
    @classmethod
    def _known_rate(cls, value: int) -> int:
        if value not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {list(SAMPLE_RATES)}")
        return value


class TextParams(_Strict):
    max_tokens: Annotated[int, Field(ge=16, le=32768)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)]
    enhance_iterations: Annotated[int, Field(ge=1, le=4)] = 4   # writer/critic rounds at most
    enhance_threshold: Annotated[float, Field(ge=0.0, le=100.0)] = 85.0  # the critic's score that stops early


class Multipliers(_Strict):
    time: Annotated[float, Field(gt=0.0, le=100.0)]
    resource: Annotated[float, Field(gt=0.0, le=100.0)]
    cost: Annotated[float, Field(gt=0.0, le=100.0)]


PARAM_MODELS: dict[str, type[_Strict]] = {
    "image": ImageParams, "video": VideoParams, "audio": AudioParams, "text": TextParams,
}


class _Parts(_Strict):
    """What every preset sets: multipliers and the parameters of each function type."""

    multipliers: Multipliers
    image: ImageParams
    video: VideoParams
    audio: AudioParams
    text: TextParams


class Preset(_Parts):
    """A fully resolved preset: a built-in tier, or a custom one after inheritance."""

    id: str
    display_name: str
    level: Annotated[int, Field(ge=1, le=4)]
    description: str = ""
    builtin: bool = False
    extends: str | None = None
    lineage: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()  # "image.sampler", … set explicitly by a custom preset
    owner: str | None = None
    revision: int = 0
    aliases: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "display_name": self.display_name, "level": self.level,
                "builtin": self.builtin, "extends": self.extends, "description": self.description}


class CustomPresetSpec(_Strict):
    """What a user writes: an id, a parent and partial overrides per function type."""

    id: Annotated[str, Field(pattern=PRESET_ID_PATTERN)]
    extends: str  # the library fills in the default tier when a body has none
    display_name: Annotated[str, Field(max_length=80)] | None = None
    description: Annotated[str, Field(max_length=2000)] = ""
    level: Annotated[int, Field(ge=1, le=4)] | None = None
    multipliers: dict[str, Any] = Field(default_factory=dict)
    image: dict[str, Any] = Field(default_factory=dict)
    video: dict[str, Any] = Field(default_factory=dict)
    audio: dict[str, Any] = Field(default_factory=dict)
    text: dict[str, Any] = Field(default_factory=dict)
    revision: Annotated[int, Field(ge=0)] = 0

    def overrides(self) -> dict[str, Any]:
        """The keys this preset sets itself (for display and for merging)."""
        body: dict[str, Any] = {c: getattr(self, c) for c in CATEGORIES if getattr(self, c)}
        if self.multipliers:
            body["multipliers"] = self.multipliers
        return body


# --- YAML tables -----------------------------------------------------------------------------

class TierSpec(_Parts):
    level: Annotated[int, Field(ge=1, le=4)]
    display_name: str
    description: str
    aliases: tuple[str, ...] = ()


LevelMap = dict[int, str]


class FamilyMatch(_Strict):
    names: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()


class FamilySpec(_Strict):
    display_name: str
    base: str
    distilled: bool
    native_resolution: Annotated[int, Field(ge=128, le=4096)]
    resolution_multiple: Annotated[int, Field(ge=1, le=128)]
    cfg: tuple[float, float]
    cfg_offset: float = 0.0
    steps_scale: Annotated[float, Field(gt=0.0, le=4.0)] = 1.0
    steps_by_level: dict[int, Annotated[int, Field(ge=1, le=200)]] | None = None
    samplers: LevelMap
    schedulers: LevelMap
    hires_fix: bool
    categories: tuple[Category, ...] = ("image",)  # what its checkpoints make (prompt enhancement needs none)
    cost: Annotated[float, Field(gt=0.0)]
    weights_gb: Annotated[float, Field(gt=0.0)]
    match: FamilyMatch


class TensorSignature(_Strict):
    family: str
    prefixes: tuple[str, ...]


class FamiliesTable(_Strict):
    version: int
    families: dict[str, FamilySpec]
    tensor_signatures: tuple[TensorSignature, ...] = ()
    default_family: str


class StageSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    task_type: str
    prompt_suffix: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    chain: Literal["text", "image"] | None = None  # Frame Chain's frames starting from text / from an image


class PipelineSpec(_Strict):
    description: str
    workflow: str  # the shipped workflow that runs the whole pipeline
    stages: tuple[StageSpec, ...]


class TaskTypeSpec(_Strict):
    category: Category
    needs: str = ""  # what it needs beyond an image checkpoint (a video or audio model)


class PipelinesTable(_Strict):
    version: int
    task_types: dict[str, TaskTypeSpec]
    workflows: dict[str, dict[str, str]]
    pipelines: dict[str, PipelineSpec]


class UseCaseSpec(_Strict):
    tier: str
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    why: str
    alternatives: tuple[str, ...] = ()
    words: tuple[str, ...] = ()  # what free text that means this use case says (matched as whole words)
