"""The Python API's values: what a caller configures (``PipelineConfig`` and what it holds), what a
recommendation is (``Recommendations`` with editable ``suggested_params``), and what a generation returns
(``GenerationResult`` with its ``GenerationMetadata`` and explanation).

Plain dataclasses, validated when made: a bad value raises ``InvalidInput`` (a ``ValueError``) naming the
field, the value and what is accepted.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..base.errors import invalid

BACKENDS = ("diffusers", "comfyui")
MAX_BATCH = 64


class OperationMode(str, enum.Enum):
    AUTO = "AUTO"  # analysis, LoRAs and parameters are applied
    ASSISTED = "ASSISTED"  # recommend, let the caller edit, then generate what was accepted
    MANUAL = "MANUAL"  # exactly what the caller gives; the explanation says where it differs


class Priority(str, enum.Enum):
    QUALITY = "quality"
    BALANCED = "balanced"
    SPEED = "speed"


class VariationStrategy(str, enum.Enum):
    SEED_VARIATION = "seed"  # base seed + i (or random seeds, recorded)
    PARAM_VARIATION = "param"  # a grid over steps and cfg, or the caller's list
    LORA_VARIATION = "lora"  # subsets and strengths of the recommended LoRAs


def _enum(kind: type[enum.Enum], value: Any, name: str) -> Any:
    if isinstance(value, kind):
        return value
    for member in kind:  # type: ignore[var-annotated]
        if value in (member.value, member.name) or (isinstance(value, str) and value.lower() == member.value.lower()):
            return member
    raise invalid(name, value, [m.value for m in kind])  # type: ignore[attr-defined]


def _number(value: Any, name: str, low: float, high: float, accepted: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
            and low <= value <= high
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise invalid(name, value if not isinstance(value, int) or abs(value) < 10**18 else "a huge number", accepted)
    return value


def _size(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 8192 or value % 8:
        raise invalid(name, value, "a multiple of 8, 16-8192")


DEVICE = re.compile(r"^(cpu|cuda|mps|xpu)(:[0-9]{1,2})?$")


@dataclass
class GenerationConstraints:
    """What the caller allows: time per image, accelerator memory, and what matters most."""

    max_time_seconds: float | None = None
    max_vram_gb: float | None = None
    priority: Priority | str = Priority.BALANCED

    def __post_init__(self) -> None:
        _number(self.max_time_seconds, "constraints.max_time_seconds", 0.001, 86_400, "seconds, 0-86400 or None",
                optional=True)
        _number(self.max_vram_gb, "constraints.max_vram_gb", 0.01, 1024, "GB, 0-1024 or None", optional=True)
        self.priority = _enum(Priority, self.priority, "constraints.priority")

    def to_request(self) -> dict[str, Any]:
        return {"max_time_s": self.max_time_seconds, "max_vram_gb": self.max_vram_gb,
                "priority": Priority(self.priority).value}


@dataclass
class LoRAPreferences:
    max_loras: int = 3
    min_confidence: float = 0.5
    allow_style_mixing: bool = True
    exclude: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.max_loras, bool) or not isinstance(self.max_loras, int) or not 0 <= self.max_loras <= 8:
            raise invalid("lora_preferences.max_loras", self.max_loras, "a whole number 0-8")
        _number(self.min_confidence, "lora_preferences.min_confidence", 0.0, 1.0, "0-1")
        if not isinstance(self.allow_style_mixing, bool):
            raise invalid("lora_preferences.allow_style_mixing", self.allow_style_mixing, "True or False")
        if not isinstance(self.exclude, (list, tuple)) or not all(isinstance(x, str) for x in self.exclude):
            raise invalid("lora_preferences.exclude", self.exclude, "a list of LoRA names or ids")

    def to_request(self) -> dict[str, Any]:
        return {"max_loras": self.max_loras, "min_confidence": self.min_confidence,
                "allow_style_mixing": self.allow_style_mixing, "exclude": list(self.exclude)}


@dataclass
class PipelineConfig:
    """How the pipeline runs. ``base_model``: a local diffusers folder or one checkpoint file (``None``: the
    first model found in Atelier's model folders, or ``ATELIER_MODEL``); nothing is ever downloaded.
    ``backend``: ``diffusers`` (here, on this machine) or ``comfyui`` (queued on ``comfyui_url``)."""

    base_model: str | None = None
    mode: OperationMode | str = OperationMode.AUTO
    constraints: GenerationConstraints = field(default_factory=GenerationConstraints)
    lora_preferences: LoRAPreferences = field(default_factory=LoRAPreferences)
    backend: str = "diffusers"
    comfyui_url: str | None = None
    lora_folders: list[str] | None = None  # None: ATELIER_LORAS, else ATELIER_HOME/models/loras
    model_family: str | None = None  # None: told from the model
    user: str = "default"
    device: str | None = None  # diffusers: "cuda", "cpu" ... (None: cuda when there is one)
    dtype: str | None = None  # diffusers: "float16", "bfloat16", "float32" (None: float16 on cuda, else float32)
    timeout_s: float = 600.0  # comfyui: the deadline of one generation
    model_config: str | None = None  # diffusers, a single file: a local diffusers folder with its configs
    use_case: str | None = None  # recorded with each image: the use case's tier is learned from what you run

    def __post_init__(self) -> None:
        self.mode = _enum(OperationMode, self.mode, "mode")
        if self.backend not in BACKENDS:
            raise invalid("backend", self.backend, list(BACKENDS))
        if self.backend == "comfyui" and not self.comfyui_url:
            raise invalid("comfyui_url", self.comfyui_url, "the URL of a ComfyUI server (backend comfyui)")
        if not isinstance(self.constraints, GenerationConstraints):
            raise invalid("constraints", type(self.constraints).__name__, "GenerationConstraints(...)")
        if not isinstance(self.lora_preferences, LoRAPreferences):
            raise invalid("lora_preferences", type(self.lora_preferences).__name__, "LoRAPreferences(...)")
        if self.dtype not in (None, "float16", "bfloat16", "float32"):
            raise invalid("dtype", self.dtype, ["float16", "bfloat16", "float32", None])
        _number(self.timeout_s, "timeout_s", 1, 86_400, "seconds, 1-86400")
        if self.lora_folders is not None and (not isinstance(self.lora_folders, (list, tuple))
                                              or not all(isinstance(p, str) and p for p in self.lora_folders)):
            raise invalid("lora_folders", str(self.lora_folders)[:80], "a list of folder paths, or None")
        if self.device is not None and (not isinstance(self.device, str) or not DEVICE.match(self.device)):
            raise invalid("device", self.device, "cpu, cuda, cuda:N, mps, xpu, or None")
        if self.use_case is not None and (not isinstance(self.use_case, str) or not 0 < len(self.use_case) <= 200):
            raise invalid("use_case", self.use_case, "text of 1-200 characters, or None")


@dataclass
class BatchConfig:
    """``num_images`` images by a strategy. PARAM_VARIATION takes ``param_grid`` (a list of
    ``{"num_steps": .., "guidance_scale": ..}``) or the documented grid; LORA_VARIATION the recommended
    LoRAs' subsets and strengths. ``parallel_generation``: seeds sharing every other setting run as one
    batched call where the backend allows. ``select_best``: score the images and rank them (best first)."""

    num_images: int = 4
    variation_strategy: VariationStrategy | str = VariationStrategy.SEED_VARIATION
    parallel_generation: bool = False
    base_seed: int | None = None  # None: random seeds, recorded
    param_grid: list[dict[str, Any]] | None = None
    select_best: bool = False
    scorers: str = "technical"
    weights: dict[str, float] | None = None  # None: what your ratings taught, else the scorers' defaults

    def __post_init__(self) -> None:
        if isinstance(self.num_images, bool) or not isinstance(self.num_images, int) \
                or not 1 <= self.num_images <= MAX_BATCH:
            raise invalid("batch_config.num_images", self.num_images, f"a whole number 1-{MAX_BATCH}")
        self.variation_strategy = _enum(VariationStrategy, self.variation_strategy, "batch_config.variation_strategy")
        if self.base_seed is not None and (isinstance(self.base_seed, bool) or not isinstance(self.base_seed, int)
                                           or not 0 <= self.base_seed < 2**63):
            raise invalid("batch_config.base_seed", self.base_seed, "a whole number 0 to 2^63-1, or None")
        from ..scoring.registry import SCORER_NAMES

        names = [n.strip() for n in self.scorers.split(",")] if isinstance(self.scorers, str) else None
        if not names or not all(n in (*SCORER_NAMES, "auto") for n in names):
            raise invalid("batch_config.scorers", self.scorers, f"comma-separated names of {list(SCORER_NAMES)}")
        if self.weights is not None:
            if not isinstance(self.weights, dict) or not self.weights:
                raise invalid("batch_config.weights", str(self.weights)[:80], "{scorer: weight >= 0}, or None")
            for name, weight in self.weights.items():
                if name not in SCORER_NAMES:
                    raise invalid("batch_config.weights", name, list(SCORER_NAMES))
                _number(weight, f"batch_config.weights.{name}", 0, 1e6, "a number >= 0")
        if self.param_grid is not None:
            if not isinstance(self.param_grid, list) or not self.param_grid \
                    or not all(isinstance(p, dict) and set(p) <= PARAM_KEYS for p in self.param_grid):
                raise invalid("batch_config.param_grid", str(self.param_grid)[:80],
                              f"a list of dicts with {sorted(PARAM_KEYS)}")


PARAM_KEYS = {"num_steps", "guidance_scale", "width", "height", "sampler", "scheduler"}


@dataclass
class GenerationParams:
    """The parameters one image runs with (editable in ASSISTED mode before ``generate_from_recommendations``).
    ``hires`` and ``refine``: the plan's extra passes ({"width", "height", "steps", "denoise"} or None)."""

    num_steps: int
    guidance_scale: float
    width: int
    height: int
    sampler: str
    scheduler: str
    tier: str
    batch_size: int = 1
    hires: dict[str, Any] | None = None
    refine: dict[str, Any] | None = None

    def validate(self, where: str = "suggested_params") -> GenerationParams:
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int) or not 1 <= self.num_steps <= 500:
            raise invalid(f"{where}.num_steps", self.num_steps, "a whole number 1-500")
        _number(self.guidance_scale, f"{where}.guidance_scale", 0.0, 50.0, "0-50")
        for name in ("width", "height"):
            _size(getattr(self, name), f"{where}.{name}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 64:
            raise invalid(f"{where}.batch_size", self.batch_size, "a whole number 1-64")
        for stage, keys in (("hires", ("width", "height", "steps", "denoise")), ("refine", ("steps", "denoise"))):
            value = getattr(self, stage)
            if value is None:
                continue
            if not isinstance(value, dict) or set(value) != set(keys):
                raise invalid(f"{where}.{stage}", str(value)[:80], f"None or {{{', '.join(keys)}}}")
            for key in ("width", "height"):
                if key in value:
                    _size(value[key], f"{where}.{stage}.{key}")
            if isinstance(value["steps"], bool) or not isinstance(value["steps"], int) or not 1 <= value["steps"] <= 500:
                raise invalid(f"{where}.{stage}.steps", value["steps"], "a whole number 1-500")
            _number(value["denoise"], f"{where}.{stage}.denoise", 0.01, 1.0, "0.01-1 (the share of the pass re-noised)")
        for name in ("sampler", "scheduler", "tier"):
            if not isinstance(getattr(self, name), str) or not 0 < len(getattr(self, name)) <= 64:
                raise invalid(f"{where}.{name}", getattr(self, name), "a name of 1-64 characters")
        return self

    @classmethod
    def from_plan(cls, tier: str, params: dict[str, Any]) -> GenerationParams:
        hires = refine = None
        if params.get("hires_enabled"):
            hires = {"width": int(params["hires_width"]), "height": int(params["hires_height"]),
                     "steps": int(params["hires_steps"]), "denoise": float(params["hires_denoise"])}
        if params.get("refinement"):
            refine = {"steps": int(params["refine_steps"]), "denoise": float(params["refine_denoise"])}
        return cls(int(params["steps"]), float(params["cfg"]), int(params["width"]), int(params["height"]),
                   str(params["sampler_name"]), str(params["scheduler"]), tier, int(params.get("batch_size", 1)),
                   hires, refine)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def follow_size(self, before: GenerationParams) -> GenerationParams:
        """After an edit of the base size from ``before``'s, a hires pass the edit left alone scales with it (the
        plan's upscale factor is kept, on multiples of 8), so the final image is not stretched."""
        if not self.hires or self.hires != before.hires or (self.width, self.height) == (before.width, before.height):
            return self
        hires = dict(self.hires)
        for key, new, old in (("width", self.width, before.width), ("height", self.height, before.height)):
            hires[key] = max(8, round(int(hires[key]) * new / old / 8) * 8)
        return replace(self, hires=hires)

    def final_size(self) -> tuple[int, int]:
        if self.hires:
            return int(self.hires["width"]), int(self.hires["height"])
        return self.width, self.height

    def passes(self) -> list[dict[str, Any]]:
        """The sampling passes, as ComfyUI's Quality Sampler runs them."""
        out = [{"pass": "base", "width": self.width, "height": self.height, "steps": self.num_steps, "denoise": 1.0}]
        width, height = self.final_size()
        if self.hires:
            out.append({"pass": "hires", "width": width, "height": height, "steps": int(self.hires["steps"]),
                        "denoise": float(self.hires["denoise"])})
        if self.refine:
            out.append({"pass": "refine", "width": width, "height": height, "steps": int(self.refine["steps"]),
                        "denoise": float(self.refine["denoise"])})
        return out


@dataclass
class LoRAChoice:
    """A LoRA to apply: its name in the LoRA folders and strength; ``reason`` says why."""

    name: str
    strength: float
    reason: str = ""
    family: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Recommendations:
    """What ASSISTED mode offers: edit ``suggested_params`` and ``loras``, then generate from it."""

    analysis: dict[str, Any]
    loras: list[LoRAChoice]
    suggested_params: GenerationParams
    explanation: dict[str, Any]
    filtered: list[dict[str, str]] = field(default_factory=list)
    family: str = ""
    original: dict[str, Any] = field(default_factory=dict)  # what was recommended, to tell the edits apart

    def to_dict(self) -> dict[str, Any]:
        return {"analysis": self.analysis, "loras": [x.to_dict() for x in self.loras],
                "suggested_params": self.suggested_params.to_dict(), "explanation": self.explanation,
                "filtered": self.filtered, "family": self.family}


@dataclass
class GenerationMetadata:
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    cfg: float
    width: int
    height: int
    sampler: str
    scheduler: str
    loras_used: list[dict[str, Any]]  # name, strength, matched, modules
    generation_time_s: float
    peak_vram_gb: float | None  # measured by the device; None where it reports nothing (the CPU)
    base_model: str
    pipeline_type: str
    backend: str
    tier: str
    memory_strategy: str = "none"
    passes: list[dict[str, Any]] = field(default_factory=list)  # base, hires, refine: size, steps, denoise

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GenerationResult:
    id: str  # the generation record's id
    image: Any  # a PIL image
    metadata: GenerationMetadata
    explanation: dict[str, Any]
    score: float | None = None  # batches with select_best: the overall score
    rank: int | None = None

    def save(self, path: str | Any) -> Any:
        """Writes the PNG (metadata and explanation in its text chunks) and ``<name>.atelier.json`` beside it;
        returns the PNG's path."""
        from .files import save_result

        return save_result(self, path)
