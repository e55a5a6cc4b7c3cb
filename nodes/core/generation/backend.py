"""What a generation backend does for the pipeline, whatever runs the model (diffusers here, a ComfyUI server):
load a model once, then run jobs — one parameter set and LoRA set over one or more seeds — and say what it
measured. The pipeline orders the jobs; the backend never decides a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .types import GenerationParams, LoRAChoice


@dataclass(frozen=True)
class ModelInfo:
    id: str  # what the metadata names as the base model (the path's name, never a server path)
    family: str  # Atelier's checkpoint family (sd15, sdxl, ...)
    pipeline_type: str  # e.g. StableDiffusionPipeline, or "comfyui"
    evidence: str = ""
    native_resolution: int | None = None  # the model's own side in pixels, where it states one


@dataclass
class Job:
    """One call: these parameters and LoRAs for these seeds (several seeds: one batched call where the
    backend allows, else one call per seed)."""

    prompt: str
    negative_prompt: str
    params: GenerationParams
    loras: list[LoRAChoice]
    seeds: list[int]
    memory_strategy: str = "none"
    batched: bool = False


@dataclass
class Output:
    image: Any  # a PIL image
    seed: int
    seconds: float  # this image's share of the call
    peak_vram_gb: float | None
    lora_reports: list[dict[str, Any]] = field(default_factory=list)  # name, strength, matched, modules, warning
    memory_strategy: str = "none"
    notes: list[str] = field(default_factory=list)


class Backend(Protocol):
    name: str
    accelerator: bool  # runs on an accelerator (memory strategies apply)

    def load(self, model: str | None, family: str | None) -> ModelInfo: ...

    def run(self, job: Job) -> list[Output]: ...

    def close(self) -> None: ...
