"""The storyboard's manifest and files: ``clip_001_start.png``, ``clip_001_end.png``, … and ``manifest.json``.

The manifest lists the clips, every frame's prompt as generated, the scores of every variation of
every attempt, the chosen one, warnings and the failed clips. Files are written atomically.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import torch

from ..base.files import atomic_write_bytes, atomic_write_text
from .frames import FrameResult
from .spec import ChainSettings, Storyboard

MANIFEST = "manifest.json"


def build_manifest(storyboard: Storyboard, settings: ChainSettings, frames: list[FrameResult],
                   tier: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    failed_clips = sorted({f.clip for f in frames if not f.ok})
    warnings = [f"{f.name}: {w}" for f in frames for w in f.warnings]
    warnings += [f"{f.name} failed: {f.error}" for f in frames if not f.ok]
    return {
        "version": 1, "created_at": time.time(), "tier": tier,
        "status": "completed_with_failures" if failed_clips else "completed",
        "clips": [c.model_dump() for c in storyboard.clips], "negative": storyboard.negative,
        "settings": settings.model_dump(), "frames": [f.to_dict() for f in frames],
        "failed_clips": failed_clips, "warnings": warnings, **(extra or {}),
    }


def png_bytes(image: torch.Tensor, text: dict[str, str] | None = None) -> bytes:
    """An image [H, W, C] (or [1, H, W, C]) in 0..1 as PNG bytes (with optional text chunks)."""
    from PIL import Image, PngImagePlugin

    if image.ndim == 4:
        image = image[0]
    array = (image[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    picture = Image.frombytes("RGB", (array.shape[1], array.shape[0]), bytes(array.contiguous().untyped_storage()))
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def write_storyboard(folder: Path, frames: list[FrameResult], images: list[torch.Tensor | None],
                     manifest: dict[str, Any]) -> Path:
    """Write each kept frame as ``clip_NNN_role.png`` and the manifest; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame, image in zip(frames, images, strict=True):
        if frame.ok and image is not None:
            frame.file = f"{frame.name}.png"
            atomic_write_bytes(folder / frame.file, png_bytes(image, {"atelier:frame": frame.name,
                                                                      "atelier:prompt": frame.prompt}))
    manifest["frames"] = [f.to_dict() for f in frames]
    path = folder / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2))
    return path
