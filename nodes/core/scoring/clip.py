"""CLIP backbones for the model-based scorers, and image preprocessing in torch.

Preprocessing works on ComfyUI IMAGE tensors directly (no PIL round-trip), reproducing the
reference transforms exactly: shortest side to 224 with the reference's bicubic resize (Pillow's for
open_clip and OpenAI, PyTorch's uint8 kernel for Hugging Face's processors: ``resample.py``) and
torchvision's rounding (``int(size * long / short)``), a centre crop whose offset is
``int(round((n - 224) / 2))`` (torchvision, open_clip, OpenAI) or ``(n - 224) // 2`` (Hugging Face's
CLIPImageProcessor), or a letterbox (longest side 224, black padding: HPSv2), then OpenAI's mean/std.

Two formats of CLIP load: open_clip (a folder with ``open_clip_config.json``, or a weights
file plus an architecture name) and Hugging Face transformers (a folder with ``config.json``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .resample import resize

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TEXT_CACHE_SIZE = 1024


def _normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - m) / s


def _by_size(images: list[torch.Tensor]) -> dict[tuple[int, int], list[int]]:
    """Image indices grouped by size: each group is resized as one batch."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault((int(image.shape[0]), int(image.shape[1])), []).append(i)
    return groups


def _batched(images: list[torch.Tensor], one: Callable[[torch.Tensor, int, int], torch.Tensor]) -> torch.Tensor:
    """``one(batch [B, 3, H, W], H, W)`` per size group, reassembled in the images' order."""
    out: list[torch.Tensor | None] = [None] * len(images)
    for (height, width), indices in _by_size(images).items():
        batch = torch.stack([images[i][..., :3] for i in indices]).permute(0, 3, 1, 2).float()
        for i, result in zip(indices, one(batch, height, width), strict=True):
            out[i] = result
    return torch.stack([o for o in out if o is not None])


def center_crop(images: list[torch.Tensor], size: int = 224, crop: str = "round",
                mean: Sequence[float] = OPENAI_MEAN, std: Sequence[float] = OPENAI_STD,
                resampler: str = "pil") -> torch.Tensor:
    """[H, W, 3] images -> [B, 3, size, size]: shortest side to ``size`` (``resampler``: the reference's
    resize, ``resample.py``), centre crop (offset rounded or floored), normalise."""
    def one(batch: torch.Tensor, height: int, width: int) -> torch.Tensor:
        if height <= width:
            new_h, new_w = size, int(size * width / height)
        else:
            new_h, new_w = int(size * height / width), size
        x = resize(batch, new_h, new_w, resampler)
        if crop == "round":
            top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        else:
            top, left = (new_h - size) // 2, (new_w - size) // 2
        return x[..., top:top + size, left:left + size]

    return _normalise(_batched(images, one), mean, std)


def letterbox(images: list[torch.Tensor], size: int = 224, mean: Sequence[float] = OPENAI_MEAN,
              std: Sequence[float] = OPENAI_STD, resampler: str = "pil") -> torch.Tensor:
    """Longest side to ``size`` keeping the aspect ratio, then black padding to a square (HPSv2)."""
    def one(batch: torch.Tensor, height: int, width: int) -> torch.Tensor:
        scale = size / max(height, width)
        new_h, new_w = round(height * scale), round(width * scale)
        x = resize(batch, new_h, new_w, resampler)
        pad_h, pad_w = size - new_h, size - new_w
        return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)

    return _normalise(_batched(images, one), mean, std)


@dataclass
class Backbone:
    """A loaded CLIP model: normalised image and text embeddings, and its logit scale."""

    id: str
    model: torch.nn.Module
    encode_image_fn: Callable[[torch.Tensor], torch.Tensor]
    encode_text_fn: Callable[[list[str]], torch.Tensor]
    logit_scale: float
    image_size: int
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD
    resampler: str = "pil"  # its reference's resize: PIL (open_clip, OpenAI) or torch (Hugging Face processors)
    _texts: OrderedDict[str, torch.Tensor] = field(default_factory=OrderedDict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def preprocess(self, images: list[torch.Tensor], mode: str = "round") -> torch.Tensor:
        """``round``/``floor``: centre crop with that offset rounding; ``letterbox``: pad to square."""
        if mode == "letterbox":
            pixels = letterbox(images, self.image_size, self.mean, self.std, self.resampler)
        else:
            pixels = center_crop(images, self.image_size, mode, self.mean, self.std, self.resampler)
        return pixels.to(self.device, self.dtype)

    @torch.inference_mode()
    def image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encode_image_fn(pixels).float(), dim=-1)

    @torch.inference_mode()
    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """Normalised text embeddings, cached per prompt (the model is fixed per backbone)."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._texts))
        if missing:
            encoded = F.normalize(self.encode_text_fn(missing).float(), dim=-1).cpu()
            for prompt, embedding in zip(missing, encoded, strict=True):
                self._texts[prompt] = embedding
        for prompt in prompts:
            self._texts.move_to_end(prompt)
        out = torch.stack([self._texts[p] for p in prompts]).to(self.device)
        while len(self._texts) > TEXT_CACHE_SIZE:
            self._texts.popitem(last=False)
        return out


def _features(output: Any) -> torch.Tensor:
    """transformers >= 5 returns an output object from get_*_features; older versions a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected CLIP feature output {type(output).__name__}")


def load_open_clip(path: Path, arch: str | None) -> Backbone:
    """A folder with open_clip_config.json, or a weights file of the architecture ``arch``."""
    import open_clip

    if path.is_dir():
        if not any(any(path.glob(pattern)) for pattern in ("*.safetensors", "*.bin", "*.pth")):
            # open_clip would warn and go on with random weights: refuse instead
            raise FileNotFoundError(f"{path} has open_clip_config.json but no weights (.safetensors/.bin/.pth)")
        name = f"local-dir:{path}"
        model = open_clip.create_model(name, device="cpu")
        tokenizer = open_clip.get_tokenizer(name)
    else:
        if not arch:
            raise ValueError(f"{path.name}: an open_clip weights file needs an architecture name")
        model = open_clip.create_model(arch, pretrained=str(path), device="cpu")
        tokenizer = open_clip.get_tokenizer(arch)
    model.eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}

    def encode_text(prompts: list[str]) -> torch.Tensor:
        return model.encode_text(tokenizer(prompts).to(next(model.parameters()).device))

    return Backbone(id=f"open_clip:{path}", model=model, encode_image_fn=model.encode_image,
                    encode_text_fn=encode_text, logit_scale=float(model.logit_scale.detach().exp()), image_size=int(size),
                    mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)))


def load_transformers_clip(path: Path) -> Backbone:
    """A Hugging Face CLIPModel folder (config.json, weights, tokenizer files), offline only."""
    from transformers import CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
    tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True)
    max_length = model.config.text_config.max_position_embeddings

    def encode_image(pixels: torch.Tensor) -> torch.Tensor:
        return _features(model.get_image_features(pixel_values=pixels))

    def encode_text(prompts: list[str]) -> torch.Tensor:
        tokens = tokenizer(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        tokens = {k: v.to(next(model.parameters()).device) for k, v in tokens.items()}
        return _features(model.get_text_features(**tokens))

    return Backbone(id=f"transformers:{path}", model=model, encode_image_fn=encode_image, encode_text_fn=encode_text,
                    logit_scale=float(model.logit_scale.detach().exp()), image_size=int(model.config.vision_config.image_size),
                    resampler="torch")


def load_backbone(path: Path, arch: str | None = None) -> Backbone:
    if path.is_dir() and (path / "open_clip_config.json").exists():
        return load_open_clip(path, arch)
    if path.is_dir() and (path / "config.json").exists():
        return load_transformers_clip(path)
    if path.is_file():
        return load_open_clip(path, arch)
    raise ValueError(f"{path}: neither an open_clip folder (open_clip_config.json), a transformers folder "
                     f"(config.json) nor a weights file")
