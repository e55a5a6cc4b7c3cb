"""``IntelligentGenerationPipeline``: the intelligent pipeline from Python, wired to Atelier's folders (presets,
LoRA library, records, calibration under ``ATELIER_HOME``) and to the backend ``PipelineConfig`` names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.generation.service import GenerationService
from ..core.generation.types import (
    BatchConfig,
    GenerationParams,
    GenerationResult,
    LoRAChoice,
    PipelineConfig,
    Recommendations,
)
from ..host import Atelier, Settings
from ..host.generation import backend_for, scorer


class IntelligentGenerationPipeline:
    """Analysis → LoRAs from your library → parameters under your constraints → generation → explanation →
    a generation record per image (the same store as the ComfyUI nodes) → your feedback.

    ``home``: Atelier's folder (default ``ATELIER_HOME`` or ``~/.atelier``); ``settings`` replaces it whole."""

    def __init__(self, config: PipelineConfig | None = None, *, home: str | Path | None = None,
                 settings: Settings | None = None) -> None:
        self.config = config or PipelineConfig()
        if not isinstance(self.config, PipelineConfig):
            from ..core.base.errors import invalid

            raise invalid("config", type(self.config).__name__, "PipelineConfig(...)")
        base = settings or Settings.standalone(Path(home) if home else None)
        if self.config.lora_folders is not None:
            base = base.with_loras([Path(p) for p in self.config.lora_folders])
        self.atelier = Atelier(base)
        self.backend = backend_for(self.atelier, self.config)
        self.service = GenerationService(self.config, self.atelier.intelligence, self.atelier.quality,
                                         self.atelier.records, self.backend, self.backend.accelerator,
                                         scorer(self.atelier))

    # ---- the API -----------------------------------------------------------------------------------------
    def generate(self, prompt: str, negative_prompt: str = "", seed: int | None = None, *,
                 params: GenerationParams | None = None, loras: list[LoRAChoice] | None = None) -> GenerationResult:
        """One image. AUTO (and ASSISTED without edits): the recommendation applied. MANUAL: ``params`` and
        ``loras`` exactly as given."""
        return self.service.generate(prompt, negative_prompt, seed, params, loras)

    def generate_batch(self, prompt: str, batch_config: BatchConfig | None = None, negative_prompt: str = "", *,
                       params: GenerationParams | None = None,
                       loras: list[LoRAChoice] | None = None) -> list[GenerationResult]:
        """Images by the batch's strategy around the recommendation (MANUAL: around ``params``/``loras``)."""
        return self.service.generate_batch(prompt, batch_config, negative_prompt, params, loras)

    def analyze_and_recommend(self, prompt: str, negative_prompt: str = "") -> Recommendations:
        return self.service.analyze_and_recommend(prompt, negative_prompt)

    def generate_from_recommendations(self, prompt: str, recommendations: Recommendations,
                                      negative_prompt: str = "", seed: int | None = None) -> GenerationResult:
        return self.service.generate_from_recommendations(prompt, recommendations, negative_prompt, seed)

    def provide_feedback(self, generation_id: str, rating: int, comments: str = "") -> None:
        self.service.provide_feedback(generation_id, rating, comments)

    def keep(self, generation_id: str) -> None:
        """You kept this image of a batch (whether or not it was ranked first): learning takes it as your
        choice over the batch's other images."""
        self.service.keep(generation_id)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> IntelligentGenerationPipeline:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
