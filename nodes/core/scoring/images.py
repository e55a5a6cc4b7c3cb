"""Checking and normalising images in ComfyUI's IMAGE layout before they are scored."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from ..base.errors import invalid

MIN_SIDE = 8          # smaller images cannot be judged (a 3x3 filter needs room)
MAX_PIXELS = 64 * 1024 * 1024


@dataclass
class ImageSet:
    """Single images [H, W, 3] in 0..1, in order, with what was done to make them so."""

    images: list[torch.Tensor]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def _as_rgb(image: torch.Tensor, index: int, warnings: list[str]) -> torch.Tensor:
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels == 1:
        warnings.append(f"image {index}: 1 channel, scored as grey RGB")
        return image.expand(*image.shape[:-1], 3)
    if channels == 4:
        warnings.append(f"image {index}: alpha channel ignored")
        return image[..., :3]
    raise invalid(f"images[{index}]", f"{channels} channels", "1, 3 or 4 channels ([B, H, W, C])")


def collect(batches: Iterable[torch.Tensor] | torch.Tensor) -> ImageSet:
    """A batch [B,H,W,C], a single image [H,W,C] or a list of either, as single RGB images."""
    if isinstance(batches, torch.Tensor):
        batches = [batches]
    out: list[torch.Tensor] = []
    warnings: list[str] = []
    for batch in batches:
        if not isinstance(batch, torch.Tensor):
            raise invalid("images", type(batch).__name__, "IMAGE tensors [B, H, W, C]")
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        if batch.ndim != 4:
            raise invalid("images", f"shape {tuple(batch.shape)}", "[B, H, W, C] (ComfyUI IMAGE)")
        for image in batch:
            index = len(out)
            height, width = image.shape[0], image.shape[1]
            if min(height, width) < MIN_SIDE:
                raise invalid(f"images[{index}]", f"{width}x{height}", f"at least {MIN_SIDE} px on each side")
            if height * width > MAX_PIXELS:
                raise invalid(f"images[{index}]", f"{width}x{height}", f"at most {MAX_PIXELS // 2**20} megapixels")
            image = _as_rgb(image.float(), index, warnings)
            finite = torch.isfinite(image)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                warnings.append(f"image {index}: {bad} NaN/inf values replaced by 0")
                image = torch.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
            out.append(image.clamp(0.0, 1.0))
    if not out:
        raise invalid("images", "an empty batch", "at least one image")
    return ImageSet(out, warnings)
