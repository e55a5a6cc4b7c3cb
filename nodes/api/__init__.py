"""The intelligent pipeline as a Python API (the host entry point for scripts and notebooks).

    from atelier.api import IntelligentGenerationPipeline, PipelineConfig, OperationMode
"""

from ..core.generation.types import (
    BatchConfig,
    GenerationConstraints,
    GenerationMetadata,
    GenerationParams,
    GenerationResult,
    LoRAChoice,
    LoRAPreferences,
    OperationMode,
    PipelineConfig,
    Priority,
    Recommendations,
    VariationStrategy,
)
from .pipeline import IntelligentGenerationPipeline

__all__ = ["BatchConfig", "GenerationConstraints", "GenerationMetadata", "GenerationParams", "GenerationResult",
           "IntelligentGenerationPipeline", "LoRAChoice", "LoRAPreferences", "OperationMode", "PipelineConfig",
           "Priority", "Recommendations", "VariationStrategy"]
