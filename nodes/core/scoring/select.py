"""Keeping images, latents and masks aligned when a selection is applied to them."""

from __future__ import annotations

from typing import Any

import torch

from ..base.errors import invalid


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
