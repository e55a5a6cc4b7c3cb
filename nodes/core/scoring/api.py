"""Scoring from Python, outside ComfyUI: images (tensors or files) and a prompt -> scores and ranking.

    from atelier.nodes.scoring.api import score
    result = score(["a.png", "b.png"], "a red fox", scorers="technical,clip_score", models_dir="ComfyUI/models")
    result["ranking"]["best_index"]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..base.errors import invalid
from . import ranking
from .builtin import builtin_scorers
from .images import collect
from .models import ModelFolders, ModelManager
from .registry import Scorers
from .scores import score_variations

FOLDER_KINDS = ("scorers", "aesthetic", "clip_vision")


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as a [1, H, W, 3] tensor in 0..1 (ComfyUI's IMAGE layout)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
            return data.view(rgb.height, rgb.width, 3).float().div(255).unsqueeze(0)
    except (OSError, UnidentifiedImageError) as exc:
        raise invalid("images", str(path), "readable image files (PNG, JPEG, WebP…)", str(exc)) from None


def folder_models(models_dir: str | Path | None, hf_cache: str | Path | None = None) -> ModelManager:
    """Models from a ComfyUI-style models folder (models/scorers, models/aesthetic, …)."""
    folders = {kind: [Path(models_dir) / kind] for kind in FOLDER_KINDS} if models_dir else {}
    return ModelManager(ModelFolders(folders, Path(hf_cache) if hf_cache else None))


def score(images: Sequence[str | Path | torch.Tensor] | torch.Tensor, prompt: str | Sequence[str] = "",
          scorers: str = "auto", weights: str | dict[str, Any] | None = None, top_k: int = 1,
          threshold: float = ranking.DEFAULT_THRESHOLD, models_dir: str | Path | None = None,
          hf_cache: str | Path | None = None, registry: Scorers | None = None) -> dict[str, Any]:
    """Scores of every image and the ranking, as the Variation Score and Rank Select nodes compute them.

    Models come from ``registry``, else from ``models_dir`` / ``hf_cache``."""
    if registry is None:
        registry = builtin_scorers(folder_models(models_dir, hf_cache) if models_dir or hf_cache else None)
    batches = [images] if isinstance(images, torch.Tensor) else [
        load_image(item) if isinstance(item, (str, Path)) else item for item in images]
    image_set = collect(batches)
    result = score_variations(image_set, prompt, scorers, weights, registry).to_dict()
    selection = ranking.select(result, len(image_set), top_k, threshold)
    return {"scores": result, "ranking": selection.to_dict(), "report": selection.report(result["overall"])}
