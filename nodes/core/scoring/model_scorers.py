"""The model-based scorers, on CLIP backbones found by ``models.ModelManager``.

- ``clip_score``: cosine of normalised image and text embeddings of OpenAI CLIP ViT-L/14, reported
  as ``max(100 cos, 0)`` (torchmetrics' CLIPScore; no logit scale).
- ``aesthetic``: LAION's aesthetic MLP on the L2-normalised projected ViT-L/14 image embedding
  (AVA 1-10), sharing the image forward with ``clip_score``.
- ``pickscore``: PickScore_v1 (Hugging Face CLIPModel), ``logit_scale.exp() * cos``; the softmax over
  the candidates of one prompt is kept as ``pickscore.probability``.
- ``hpsv2``: HPSv2 (open_clip ViT-H-14) on letterboxed images, raw cosine.

Images go through the backbone in batches; text embeddings are cached per (model, prompt).
"""

from __future__ import annotations

from typing import Any

import torch

from .models import ModelManager, ModelMissing
from .registry import Memo, ScorerSpec

CHUNK = 16
Scored = tuple[list[float], list[dict[str, float]]]


def manager(models: ModelManager | None) -> ModelManager:
    if models is None:
        raise ModelMissing("the model-based scorers have no model folders configured", field="model")
    return models


def image_embeddings(backbone: Any, images: list[torch.Tensor], mode: str, memo: Memo) -> torch.Tensor:
    """One batched forward per (backbone, preprocessing) per scoring call, shared by scorers."""
    key = ("image", backbone.id, mode)
    if key not in memo:
        memo[key] = torch.cat([backbone.image_embeddings(backbone.preprocess(images[i:i + CHUNK], mode))
                               for i in range(0, len(images), CHUNK)])
    return memo[key]


def _cosines(backbone: Any, images: list[torch.Tensor], prompts: list[str], mode: str, memo: Memo) -> torch.Tensor:
    image = image_embeddings(backbone, images, mode, memo)
    text = backbone.text_embeddings(prompts).to(image.device)
    return (image * text).sum(-1).float().cpu()


def clip_score(images: list[torch.Tensor], prompts: list[str], memo: Memo, models: ModelManager | None) -> Scored:
    cos = _cosines(manager(models).backbone("clip"), images, prompts, "round", memo)
    return (100 * cos).clamp(min=0).tolist(), [{"cosine": c} for c in cos.tolist()]


def aesthetic(images: list[torch.Tensor], prompts: list[str], memo: Memo, models: ModelManager | None) -> Scored:
    found = manager(models)
    backbone, head = found.backbone("clip"), found.head("aesthetic")
    embeddings = image_embeddings(backbone, images, "round", memo)
    weight = next(head.parameters())
    with torch.inference_mode():
        values = head(embeddings.to(weight.device, weight.dtype)).squeeze(-1).float().cpu()
    return values.tolist(), [{} for _ in images]


def pickscore(images: list[torch.Tensor], prompts: list[str], memo: Memo, models: ModelManager | None) -> Scored:
    backbone = manager(models).backbone("pickscore")
    scores = backbone.logit_scale * _cosines(backbone, images, prompts, "floor", memo)
    probability = torch.zeros_like(scores)
    for prompt in set(prompts):
        group = [i for i, p in enumerate(prompts) if p == prompt]
        probability[group] = torch.softmax(scores[group], dim=0)
    return scores.tolist(), [{"probability": p} for p in probability.tolist()]


def hpsv2(images: list[torch.Tensor], prompts: list[str], memo: Memo, models: ModelManager | None) -> Scored:
    cos = _cosines(manager(models).backbone("hpsv2"), images, prompts, "letterbox", memo)
    return cos.tolist(), [{} for _ in images]


def _linear(low: float, high: float):  # noqa: ANN202
    return lambda x: (x - low) / (high - low) * 100.0


MODEL_SCORERS = (
    ScorerSpec("clip_score", clip_score, _linear(15.0, 35.0), 1.0, needs_prompt=True, models=("clip",)),
    ScorerSpec("aesthetic", aesthetic, _linear(1.0, 10.0), 1.0, needs_prompt=False, models=("clip", "aesthetic")),
    ScorerSpec("pickscore", pickscore, _linear(16.0, 24.0), 1.0, needs_prompt=True, models=("pickscore",)),
    ScorerSpec("hpsv2", hpsv2, _linear(0.18, 0.34), 1.0, needs_prompt=True, models=("hpsv2",)),
)
