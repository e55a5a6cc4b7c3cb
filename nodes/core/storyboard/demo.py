"""Images Atelier makes itself, so the main job runs with no model: small procedural landscapes.

Each prompt picks a palette (its words, hashed), each seed a layout and a quality: some variations
come out blurred, noisy or badly exposed, as real samplers' do, so the technical scorer has real
differences to rank. An init image is blended in by ``1 - denoise``, as img2img would keep it.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

SIZE = 256
WARM = {"dusk", "sunset", "fire", "warm", "autumn", "desert", "golden", "lantern", "candle"}
COLD = {"night", "storm", "winter", "snow", "sea", "ocean", "rain", "moon", "fog", "ice"}


def _palette(prompt: str) -> torch.Tensor:
    words = {w.strip(".,;:!?()").lower() for w in prompt.split()}
    digest = hashlib.sha256(" ".join(sorted(words)).encode()).digest()
    base = torch.tensor([b / 255 for b in digest[:12]]).view(4, 3)
    if words & WARM:
        base = base * 0.5 + torch.tensor([0.9, 0.5, 0.25]) * 0.5
    if words & COLD:
        base = base * 0.5 + torch.tensor([0.2, 0.35, 0.6]) * 0.5
    return base.clamp(0.05, 0.95)


def _scene(palette: torch.Tensor, generator: torch.Generator, size: int) -> torch.Tensor:
    y = torch.linspace(0, 1, size).view(size, 1, 1)
    x = torch.linspace(0, 1, size).view(1, size, 1)
    sky = palette[0] * (1 - y) + palette[1] * y
    cx, cy, radius = (0.2 + 0.6 * torch.rand(3, generator=generator)) * torch.tensor([1.0, 0.5, 0.15])
    sun = (((x - cx) ** 2 + (y - cy) ** 2).sqrt() < radius + 0.03).float()
    image = sky * (1 - sun) + palette[2] * sun
    for layer in range(2):
        phase, freq = torch.rand(2, generator=generator) * torch.tensor([6.28, 6.0]) + torch.tensor([0.0, 2.0])
        ridge = 0.55 + 0.12 * layer + 0.08 * torch.sin(x * freq + phase) + 0.03 * torch.sin(x * 17 + phase * 3)
        hill = (y > ridge).float()
        shade = palette[3] * (0.75 - 0.25 * layer)
        image = image * (1 - hill) + shade * hill
    return image.expand(size, size, 3).clone()


def demo_generate(prompt: str, negative: str, init: torch.Tensor | None, denoise: float, seed: int,
                  count: int, size: int = SIZE) -> torch.Tensor:
    """``count`` images [count, size, size, 3] in 0..1 for a prompt (deterministic in the seed)."""
    del negative  # the demo renderer has nothing to avoid
    palette = _palette(prompt)
    out = []
    for index in range(count):
        generator = torch.Generator().manual_seed((seed * 7919 + index) % 2**63)
        image = _scene(palette, generator, size)
        blur, noise, exposure = torch.rand(3, generator=generator).tolist()
        if blur > 0.5:  # an out-of-focus variation
            k = 1 + 2 * int(blur * 4)
            image = F.avg_pool2d(image.permute(2, 0, 1).unsqueeze(0), k, 1, k // 2,
                                 count_include_pad=False)[0].permute(1, 2, 0)
        image = image + torch.randn(image.shape, generator=generator) * (0.005 + 0.07 * noise ** 2)
        image = image * (0.55 + 0.9 * exposure) if exposure < 0.2 or exposure > 0.85 else image
        if init is not None:
            base = init[0, ..., :3]
            if base.shape[:2] != image.shape[:2]:
                base = F.interpolate(base.permute(2, 0, 1).unsqueeze(0), size=image.shape[:2], mode="bilinear",
                                     align_corners=False)[0].permute(1, 2, 0)
            keep = max(0.0, min(1.0, 1.0 - denoise))
            image = base * keep + image * (1 - keep)
        out.append(image.clamp(0, 1))
    return torch.stack(out)


def demo_reference(prompt: str, seed: int, size: int = SIZE) -> torch.Tensor:
    """A clean reference image [1, size, size, 3] for a storyboard."""
    generator = torch.Generator().manual_seed(seed % 2**63)
    return _scene(_palette(prompt), generator, size).unsqueeze(0)


__all__ = ["demo_generate", "demo_reference", "SIZE"]
