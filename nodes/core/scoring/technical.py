"""Weight-free technical signals: sharpness, noise, exposure/clipping, colourfulness.

Definitions (luma Y = 0.299 R + 0.587 G + 0.114 B, values 0..1):

- noise: sigma of Gaussian noise by Immerkaer's method at native resolution,
  ``sigma = sqrt(pi/2) / 6 * mean |Y * N|`` with N = [[1,-2,1],[-2,4,-2],[1,-2,1]], the mean
  taken over pixels outside edges (Sobel magnitude below its 90th percentile), since edges are
  not noise.
  Score ``100 / (1 + (sigma / 0.02)^2)``: 100 for clean, 50 at sigma = 0.02 (about 5 levels of 255).
- sharpness: variance of the 4-neighbour Laplacian of Y, on Y area-downscaled to at most
  512 px on the long side (so it does not depend on resolution), minus the part noise explains
  (20 sigma'^2, sigma' measured on the same downscaled Y): noise inflates Laplacian variance.
  Score ``100 (1 - exp(-v / 0.002))``.
- exposure: mean luma m and the clipped fraction c (Y <= 2/255 or Y >= 253/255).
  Score ``100 (1 - ((m - 0.5) / 0.5)^2) (1 - min(1, 4 c))``.
- colourfulness: Hasler & Suesstrunk (2003) on 0..255 RGB,
  ``M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)``, rg = R - G,
  yb = (R + G)/2 - B. Score ``100 min(1, M / 60)`` (60: "highly colourful").

``technical`` = weighted mean of the four scores: sharpness 0.35, noise 0.25, exposure 0.25,
colourfulness 0.15.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .registry import Memo, ScorerSpec

LUMA = (0.299, 0.587, 0.114)
SHARPNESS_SIDE = 512
WEIGHTS = {"sharpness": 0.35, "noise": 0.25, "exposure": 0.25, "colourfulness": 0.15}
NOISE_KERNEL = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)
LAPLACE_KERNEL = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
LAPLACE_NOISE_GAIN = 20.0  # sum of the squared Laplacian taps: Var(L * noise) = 20 sigma^2


def luma(image: torch.Tensor) -> torch.Tensor:
    """[H, W, 3] -> [1, 1, H, W]."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device)
    return (image @ weights).unsqueeze(0).unsqueeze(0)


SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
EDGE_QUANTILE = 0.9
QUANTILE_SAMPLE = 1 << 20  # torch.quantile's input limit is 16M; a strided sample is plenty


def noise_sigma(y: torch.Tensor) -> float:
    response = F.conv2d(y, NOISE_KERNEL.to(y), padding=0).abs().flatten()
    gx = F.conv2d(y, SOBEL_X.to(y), padding=0)
    gy = F.conv2d(y, SOBEL_X.transpose(-1, -2).to(y), padding=0)
    gradient = (gx.abs() + gy.abs()).flatten()
    step = max(1, gradient.numel() // QUANTILE_SAMPLE)
    threshold = torch.quantile(gradient[::step], EDGE_QUANTILE)
    flat = response[gradient <= threshold]
    if flat.numel() == 0:
        flat = response
    return float(flat.mean()) * math.sqrt(math.pi / 2) / 6


def _downscale(y: torch.Tensor, side: int) -> torch.Tensor:
    height, width = y.shape[-2:]
    scale = side / max(height, width)
    if scale >= 1:
        return y
    size = (max(8, round(height * scale)), max(8, round(width * scale)))
    return F.interpolate(y, size=size, mode="area")


def metrics(image: torch.Tensor) -> dict[str, float]:
    """Raw technical measurements of one image [H, W, 3] in 0..1."""
    y = luma(image)
    sigma = noise_sigma(y)
    small = _downscale(y, SHARPNESS_SIDE)
    laplace = F.conv2d(small, LAPLACE_KERNEL.to(small), padding=0)
    small_sigma = noise_sigma(small)
    detail = max(float(laplace.var()) - LAPLACE_NOISE_GAIN * small_sigma**2, 0.0)
    mean_luma = float(y.mean())
    clipped = float(((y <= 2 / 255) | (y >= 253 / 255)).float().mean())
    rgb = image * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))
    return {"noise_sigma": sigma, "laplacian_detail": detail, "mean_luma": mean_luma,
            "clipped_fraction": clipped, "colourfulness_m": colourfulness}


def scores(raw: dict[str, float]) -> dict[str, float]:
    """Each signal on 0..100 (definitions in the module docstring) and their weighted mean."""
    out = {
        "sharpness": 100.0 * (1.0 - math.exp(-raw["laplacian_detail"] / 0.002)),
        "noise": 100.0 / (1.0 + (raw["noise_sigma"] / 0.02) ** 2),
        "exposure": 100.0 * (1.0 - ((raw["mean_luma"] - 0.5) / 0.5) ** 2) * (1.0 - min(1.0, 4.0 * raw["clipped_fraction"])),
        "colourfulness": 100.0 * min(1.0, raw["colourfulness_m"] / 60.0),
    }
    out["technical"] = sum(WEIGHTS[k] * out[k] for k in WEIGHTS) / sum(WEIGHTS.values())
    return out


def score_image(image: torch.Tensor) -> tuple[float, dict[str, float]]:
    """The technical score of one image and every sub-score and raw measurement behind it."""
    raw = metrics(image)
    sub = scores(raw)
    return sub["technical"], {**sub, **raw}


def _score(images: list[torch.Tensor], prompts: list[str], memo: Memo,
           models: object = None) -> tuple[list[float], list[dict[str, float]]]:
    results = [score_image(image) for image in images]
    return [score for score, _ in results], [details for _, details in results]


TECHNICAL = ScorerSpec("technical", _score, lambda x: x, 1.0, needs_prompt=False)
