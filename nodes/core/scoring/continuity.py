"""Continuity: how consistent each variation of a storyboard frame is with the frames it should match (the
reference and the previous frame), 0..100.

- With a CLIP model in place (the ``clip`` model of ``presets/scorers.yaml``): the cosine of the image
  embeddings, mapped ``(cos - 0.5) / 0.5`` to 0..100 (unrelated images sit near 0.5, near-duplicates near 1).
- Weight-free otherwise: the mean of
  - structure: the Pearson correlation of the two images' luma, area-resized to 32x32, mapped from -1..1
    to 0..1 (composition, layout and lighting direction), and
  - palette: the intersection of their 4x4x4 RGB histograms (0..1: the same colours in the same amounts).

Each variation's figure is the mean over the anchors it is compared with. Frame selection weighs it with
the quality score (``ChainSettings.continuity``): ``overall = (1 - w) quality + w continuity``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models import ModelManager, ModelMissing
from .technical import luma

STRUCTURE_SIDE = 32
PALETTE_BINS = 4
CLIP_FLOOR = 0.5  # the image-image cosine of unrelated pictures, about


@dataclass(frozen=True)
class Continuity:
    scores: list[float]  # per variation, 0..100
    method: str          # "clip" or "structure+palette"
    note: str = ""       # why the weight-free method was used


def _structure(a: torch.Tensor, b: torch.Tensor) -> float:
    ya = F.interpolate(luma(a[..., :3].float()), size=(STRUCTURE_SIDE, STRUCTURE_SIDE), mode="area").flatten()
    yb = F.interpolate(luma(b[..., :3].float()), size=(STRUCTURE_SIDE, STRUCTURE_SIDE), mode="area").flatten()
    ya, yb = ya - ya.mean(), yb - yb.mean()
    norms = float(ya.norm()), float(yb.norm())
    if min(norms) <= 1e-6:  # a flat image: the same structure only as another flat one
        return 1.0 if max(norms) <= 1e-6 else 0.5
    correlation = float((ya * yb).sum()) / (norms[0] * norms[1])
    return (correlation + 1.0) / 2.0


def _histogram(image: torch.Tensor) -> torch.Tensor:
    bins = (image[..., :3].float().clamp(0, 1) * (PALETTE_BINS - 1e-6)).long().reshape(-1, 3)
    index = bins[:, 0] * PALETTE_BINS * PALETTE_BINS + bins[:, 1] * PALETTE_BINS + bins[:, 2]
    counts = torch.bincount(index, minlength=PALETTE_BINS ** 3).float()
    return counts / counts.sum()


def _palette(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.minimum(_histogram(a), _histogram(b)).sum())


def weight_free(images: list[torch.Tensor], anchors: list[torch.Tensor]) -> list[float]:
    """Structure and palette similarity of each image [H, W, C] to each anchor, averaged, 0..100."""
    return [round(100.0 * sum(0.5 * _structure(img, a) + 0.5 * _palette(img, a) for a in anchors) / len(anchors), 3)
            for img in images]


def clip_similarity(images: list[torch.Tensor], anchors: list[torch.Tensor], models: ModelManager) -> list[float]:
    """CLIP image-embedding cosine of each image to each anchor (one batched forward), averaged, 0..100."""
    from .model_scorers import image_embeddings

    backbone = models.backbone("clip")
    embeddings = image_embeddings(backbone, [*images, *anchors], "round", {}).float()
    embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    own, theirs = embeddings[: len(images)], embeddings[len(images):]
    cosine = (own @ theirs.T).mean(dim=1)
    return [round(float(v), 3) for v in ((cosine - CLIP_FLOOR) / (1 - CLIP_FLOOR) * 100).clamp(0, 100)]


def continuity(images: list[torch.Tensor], anchors: list[torch.Tensor], models: ModelManager | None) -> Continuity:
    """Each image's continuity with ``anchors`` (the reference and the previous frame; at least one)."""
    if not anchors:
        raise ValueError("continuity needs at least one image to compare with")
    note = "no model folders" if models is None else ""
    if models is not None:
        try:
            return Continuity(clip_similarity(images, anchors, models), "clip")
        except ModelMissing as exc:
            note = exc.message
    return Continuity(weight_free(images, anchors), "structure+palette", note)
