"""Composition for the Python API: the backend a ``PipelineConfig`` names, built on this context's folders,
and the scoring core as the batches' ranker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.generation.types import PipelineConfig
    from .context import Atelier


def backend_for(atelier: Atelier, config: PipelineConfig) -> Any:
    """``diffusers``: models from ``base_model`` or ATELIER_HOME/models/diffusers, then models/checkpoints;
    LoRAs from the library (by name, the user's view). ``comfyui``: the server at ``comfyui_url``."""
    if config.backend == "comfyui":
        from ..remote.comfy_backend import ComfyUIBackend

        return ComfyUIBackend(str(config.comfyui_url), atelier.quality, config.timeout_s, config.user)
    from ..engines.diffusers_backend import DiffusersBackend

    models = atelier.settings.data_dir.parent / "models"
    library = atelier.loras
    return DiffusersBackend(atelier.quality, lambda name: library.path_of(library.by_name(config.user, name)),
                            [models / "diffusers", models / "checkpoints"], config.device, config.dtype,
                            config.model_config)


def scorer(atelier: Atelier) -> Any:
    """Scores of PIL images by the named scorers (the scoring core, with this context's models): the caller's
    weights, else what the user's ratings taught (``core/learning``), else the defaults."""

    def score(images: list[Any], prompt: str, scorers: str, weights: Any, user: str) -> dict[str, Any]:
        import numpy as np
        import torch

        from ..core.scoring.images import collect
        from ..core.scoring.scores import score_variations

        registry = atelier.scorers
        reason = "your weights" if weights else ""
        if not weights:
            names = registry.resolve(scorers).names
            learned = atelier.learning.weights(user, registry.weights(None, names))
            weights, reason = learned.weights, learned.reason
        tensors = [torch.from_numpy(np.asarray(i.convert("RGB"), dtype=np.float32) / 255.0)[None] for i in images]
        result = score_variations(collect(tensors), prompt, scorers, weights, registry=registry)
        return {"overall": [float(x) for x in result.overall], "normalised": result.normalised,
                "metrics": result.metrics, "weights": result.weights, "reason": reason}

    return score
