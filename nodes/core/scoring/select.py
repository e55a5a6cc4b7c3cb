"""Keeping images, latents and masks aligned when a selection is applied to them (Rank Select)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..base.errors import invalid
from . import ranking

if TYPE_CHECKING:
    from .scores import ScoreResult


def take_images(images: torch.Tensor, indices: list[int]) -> torch.Tensor:
    return images[indices]


def take_latent(latent: dict[str, Any] | None, indices: list[int], count: int) -> dict[str, Any] | None:
    """The chosen latents; their batch must match the images'."""
    if latent is None:
        return None
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor):
        raise invalid("latent", type(latent).__name__, "a LATENT ({'samples': tensor})")
    if samples.shape[0] != count:
        raise invalid("latent", f"batch of {samples.shape[0]}", f"the images' batch size ({count})")
    out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
    out["samples"] = samples[indices]
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor):
        out["noise_mask"] = mask[indices] if mask.shape[0] == count else mask
    return out


def take_mask(mask: torch.Tensor | None, indices: list[int], count: int) -> torch.Tensor | None:
    """The chosen masks; one mask for the whole batch is kept as it is."""
    if mask is None:
        return None
    if mask.ndim == 2:
        return mask
    if mask.shape[0] == count:
        return mask[indices]
    if mask.shape[0] == 1:
        return mask
    raise invalid("mask", f"batch of {mask.shape[0]}", f"1 or the images' batch size ({count})")


@dataclass
class Chosen:
    """What Rank Select passes on: the chosen images, latents and masks, the best index, the report, and the
    message that blocks the downstream branch (None: it goes on)."""

    selection: ranking.Selection
    images: torch.Tensor
    latent: dict[str, Any] | None
    mask: torch.Tensor
    report: str
    overall: list[float]
    block: str | None
    below_message: str | None

    def outputs(self) -> tuple[Any, ...]:
        return self.images, self.latent, self.mask, self.selection.best_index, self.report


def rank_select(images: torch.Tensor, scores: ScoreResult | dict[str, Any] | None, top_k: int = 1,
                threshold: float = ranking.DEFAULT_THRESHOLD, below_threshold: str = "warn",
                latent: dict[str, Any] | None = None, mask: torch.Tensor | None = None) -> Chosen:
    """The top-k images with their latents and masks kept aligned; below the threshold, a warning or (``block``)
    a message that stops only the downstream branch. Without a mask, ComfyUI's empty one (zeros)."""
    if below_threshold not in ranking.BELOW_THRESHOLD:
        raise invalid("below_threshold", below_threshold, list(ranking.BELOW_THRESHOLD))
    count = int(images.shape[0])
    selection = ranking.select(scores, count, top_k, threshold)
    chosen_latent = take_latent(latent, selection.chosen, count)
    chosen_mask = take_mask(mask, selection.chosen, count)
    if chosen_mask is None:
        chosen_mask = torch.zeros((len(selection.chosen), images.shape[1], images.shape[2]))
    overall = list(scores.overall) if scores is not None and not isinstance(scores, dict) else \
        list((scores or {}).get("overall") or [])
    message = (f"Atelier Rank Select: best score {selection.best_score:.2f} < threshold {threshold:g}"
               if selection.below_threshold else None)
    return Chosen(selection, take_images(images, selection.chosen), chosen_latent, chosen_mask,
                  selection.report(overall), overall, message if below_threshold == "block" else None, message)
