"""Test images made at test time: a procedural scene and the defects a scorer must notice."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scene(height: int = 256, width: int = 320, seed: int = 0) -> torch.Tensor:
    """A colourful, sharp, well-exposed [H, W, 3] image: gradients, discs and a fine pattern."""
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([0.25 + 0.5 * xx, 0.3 + 0.4 * yy, 0.55 - 0.3 * xx * yy], -1)
    for _ in range(12):
        cx, cy, r = torch.rand(3, generator=generator)
        colour = torch.rand(3, generator=generator) * 0.8 + 0.1
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.05 + 0.12 * r) ** 2] = colour
    stripes = torch.sin(xx * 80) * torch.sin(yy * 60) > 0.6
    image[stripes] = image[stripes] * 0.6
    return image.clamp(0, 1)


def blurred(image: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    size = int(sigma * 3) * 2 + 1
    x = torch.arange(size) - size // 2
    kernel = torch.exp(-(x**2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    t = image.permute(2, 0, 1).unsqueeze(1)
    t = F.conv2d(F.pad(t, (size // 2, size // 2, 0, 0), mode="reflect"), kernel.view(1, 1, 1, size))
    t = F.conv2d(F.pad(t, (0, 0, size // 2, size // 2), mode="reflect"), kernel.view(1, 1, size, 1))
    return t.squeeze(1).permute(1, 2, 0)


def noisy(image: torch.Tensor, sigma: float = 0.08, seed: int = 1) -> torch.Tensor:
    return (image + torch.randn(image.shape, generator=torch.Generator().manual_seed(seed)) * sigma).clamp(0, 1)


def clipped(image: torch.Tensor, gain: float = 2.2) -> torch.Tensor:
    return (image * gain).clamp(0, 1)


def washed_out(image: torch.Tensor) -> torch.Tensor:
    grey = image.mean(-1, keepdim=True)
    return (0.5 + (grey - 0.5) * 0.35 + (image - grey) * 0.15).clamp(0, 1)


def variants(image: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"sharp": image, "blurred": blurred(image), "noisy": noisy(image), "clipped": clipped(image),
            "washed_out": washed_out(image)}
