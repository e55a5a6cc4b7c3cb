"""Resizing images exactly as the scorers' reference implementations do, in torch, batched.

Two references exist, and a scorer is compared with the one its model was published with:

- ``pil``: Pillow's ``Image.resize(size, BICUBIC)`` on an 8-bit image, which open_clip's and OpenAI's
  transforms call (clip_score, aesthetic, HPSv2). Pillow resamples separably, horizontal pass first, with
  the bicubic kernel a = -0.5 stretched by the scale when downscaling (antialias: support 2 x scale), the
  taps of each output pixel normalised, turned into 22-bit fixed point, and each pass rounded and clamped
  to 8 bits (``libImaging/Resample.c``). ``pil_resize`` reproduces its coefficients, bounds and integer
  arithmetic bit for bit: products of 8-bit values and 22-bit weights summed in int64, ``+ 2^21 >> 22``.
- ``torch``: torchvision's ``resize`` of a uint8 tensor (Hugging Face's CLIP image processor in
  transformers 5, PickScore's reference): PyTorch's uint8 ``interpolate(bicubic, antialias=True)``, which
  is Pillow-like but not Pillow (up to one 8-bit level apart).

Images are quantised to 8 bits first (``round(x * 255)``), as a ComfyUI image becomes a PIL image.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit images
BICUBIC_SUPPORT = 2.0
BICUBIC_A = -0.5


def _bicubic(x: float) -> float:
    x = abs(x)
    if x < 1.0:
        return ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return 0.0


@lru_cache(maxsize=256)
def _taps(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc``: for each output pixel, the input indices
    it reads and their fixed-point weights, padded to one width (index 0, weight 0)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    ss = 1.0 / filterscale
    index = torch.zeros(out_size, ksize, dtype=torch.long)
    weight = torch.zeros(out_size, ksize, dtype=torch.long)
    one = 1 << PRECISION_BITS
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [_bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = sum(taps)
        for x, w in enumerate(taps):
            w = w / total if total != 0.0 else w
            index[xx, x] = x + xmin
            weight[xx, x] = int(-0.5 + w * one) if w < 0 else int(0.5 + w * one)
    return index, weight


SPLIT_BITS = 11  # a 22-bit weight = hi * 2^11 + lo: 8-bit values times either part sum exactly in float32


@lru_cache(maxsize=256)
def _matrices(in_size: int, out_size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed-point weights of a pass as two float32 matrices [in, out] (high and low 11 bits), so that
    BLAS computes Pillow's integer sums exactly: every product and partial sum stays below 2^24."""
    index, weight = _taps(in_size, out_size)
    hi = torch.div(weight, 1 << SPLIT_BITS, rounding_mode="floor")
    lo = weight - hi * (1 << SPLIT_BITS)
    dense_hi = torch.zeros(in_size, out_size, dtype=torch.float32)
    dense_lo = torch.zeros(in_size, out_size, dtype=torch.float32)
    columns = torch.arange(out_size).unsqueeze(1).expand_as(index)
    used = weight != 0
    dense_hi.index_put_((index[used], columns[used]), hi[used].float(), accumulate=True)
    dense_lo.index_put_((index[used], columns[used]), lo[used].float(), accumulate=True)
    bound = 255 * max(float(dense_hi.abs().sum(0).max()), float(dense_lo.sum(0).max()))
    exact = torch.float32 if bound < 2 ** 24 else torch.float64  # a very large reduction: float64 stays exact
    return dense_hi.to(device, exact), dense_lo.to(device, exact)


def _pass(pixels: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """One of Pillow's passes along ``dim`` (-1: horizontal, -2: vertical) of 8-bit values (float32)."""
    hi, lo = _matrices(pixels.shape[dim], size, str(pixels.device))
    moved = pixels.movedim(dim, -1).to(hi.dtype)
    total = (moved @ hi).double() * (1 << SPLIT_BITS) + (moved @ lo).double() + (1 << (PRECISION_BITS - 1))
    return torch.floor(total / (1 << PRECISION_BITS)).clamp(0, 255).float().movedim(-1, dim)


def quantise(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] floats 0..1 -> 8-bit values (as float32), as ``Image.fromarray(round(x * 255))``."""
    return (images.float() * 255.0).round().clamp(0, 255)


def pil_resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pillow's bicubic resize of 8-bit values [B, C, H, W] (float32): horizontal pass, then vertical."""
    if pixels.shape[-1] != width:
        pixels = _pass(pixels, width, -1)
    if pixels.shape[-2] != height:
        pixels = _pass(pixels, height, -2)
    return pixels


def torch_resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """torchvision's resize of a uint8 image [B, C, H, W] (8-bit values as float32): PyTorch's own uint8
    antialiased bicubic kernel (on the CPU; elsewhere float interpolation rounded back to 8 bits)."""
    if tuple(pixels.shape[-2:]) == (height, width):
        return pixels
    if pixels.device.type == "cpu":
        resized = F.interpolate(pixels.to(torch.uint8), size=(height, width), mode="bicubic", antialias=True,
                                align_corners=False)
        return resized.float()
    resized = F.interpolate(pixels, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return resized.clamp(0, 255).round()


RESIZERS = {"pil": pil_resize, "torch": torch_resize}


def resize(images: torch.Tensor, height: int, width: int, method: str = "pil") -> torch.Tensor:
    """[B, C, H, W] floats 0..1 resized as reference ``method`` does: floats 0..1 on the 8-bit grid."""
    return RESIZERS[method](quantise(images), height, width) / 255.0
