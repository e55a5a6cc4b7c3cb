"""The storyboard's manifest and files: ``clip_001_start.png``, ``clip_001_end.png``, … and ``manifest.json``.

The manifest lists the clips, every frame's prompt as generated, the scores of every variation of
every attempt, the chosen one, warnings and the failed clips. Files are written atomically.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..base.files import atomic_write_bytes, atomic_write_text
from .frames import FrameResult
from .spec import ChainSettings, Storyboard

MANIFEST = "manifest.json"


@dataclass
class StoryboardManifest:
    """A storyboard run: its clips, settings and every frame's outcome (``manifest.json``)."""

    tier: str
    clips: list[dict[str, Any]]
    negative: str
    settings: dict[str, Any]
    frames: list[FrameResult]
    owner: str = "default"               # the user it belongs to (the viewer shows it to them only)
    created_at: float = field(default_factory=time.time)
    comfy_prompt_id: str | None = None   # made by a ComfyUI prompt
    generator: str | None = None         # made outside ComfyUI (the demo renderer)
    seed: int | None = None
    duration_s: float | None = None
    version: int = 1

    @property
    def failed_clips(self) -> list[int]:
        return sorted({f.clip for f in self.frames if not f.ok})

    @property
    def status(self) -> str:
        return "completed_with_failures" if self.failed_clips else "completed"

    @property
    def continuity(self) -> dict[str, float | None]:
        """Each clip's continuity figure: the mean of its kept frames' (0..100; None: nothing compared)."""
        figures: dict[str, list[float]] = {}
        for frame in self.frames:
            values = figures.setdefault(str(frame.clip), [])
            if frame.continuity is not None:
                values.append(frame.continuity)
        return {clip: round(sum(v) / len(v), 2) if v else None for clip, v in figures.items()}

    @property
    def scoring(self) -> dict[str, Any]:
        """Which scorers ran and which were skipped (and why), over every attempt."""
        ran: dict[str, None] = {}
        skipped: dict[str, str] = {}
        for attempt in (a for f in self.frames for a in f.attempts):
            ran.update(dict.fromkeys(attempt.scorers))
            skipped.update(attempt.skipped)
        return {"ran": list(ran), "skipped": {k: v for k, v in skipped.items() if k not in ran},
                "unscored_frames": [f.name for f in self.frames if f.status == "unscored"]}

    @property
    def warnings(self) -> list[str]:
        found = [f"{f.name}: {w}" for f in self.frames for w in f.warnings]
        return found + [f"{f.name} failed: {f.error}" for f in self.frames if not f.ok]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": self.version, "created_at": self.created_at, "owner": self.owner, "tier": self.tier,
            "status": self.status,
            "clips": self.clips, "negative": self.negative, "settings": self.settings,
            "frames": [f.to_dict() for f in self.frames], "failed_clips": self.failed_clips,
            "scoring": self.scoring, "continuity": self.continuity, "warnings": self.warnings}
        for key in ("comfy_prompt_id", "generator", "seed", "duration_s"):
            value = getattr(self, key)
            if value is not None or (key == "comfy_prompt_id" and self.generator is None):
                body[key] = value
        return body


def build_manifest(storyboard: Storyboard, settings: ChainSettings, frames: list[FrameResult],
                   tier: str = "", **extra: Any) -> StoryboardManifest:
    return StoryboardManifest(tier, [c.model_dump() for c in storyboard.clips], storyboard.negative,
                              settings.model_dump(), frames, **extra)


def png_bytes(image: torch.Tensor, text: dict[str, str] | None = None) -> bytes:
    """An image [H, W, C] (or [1, H, W, C]) in 0..1 as PNG bytes (with optional text chunks)."""
    from PIL import Image, PngImagePlugin

    if image.ndim == 4:
        image = image[0]
    array = (image[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().contiguous()
    picture = Image.fromarray(array.numpy())  # one copy through numpy, as ComfyUI's SaveImage does
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def write_storyboard(folder: Path, manifest: StoryboardManifest, images: list[torch.Tensor | None]) -> Path:
    """Write each kept frame as ``clip_NNN_role.png``, then the manifest, once; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame, image in zip(manifest.frames, images, strict=True):
        if frame.ok and image is not None:
            frame.file = f"{frame.name}.png"
            atomic_write_bytes(folder / frame.file, png_bytes(image, {"atelier:frame": frame.name,
                                                                      "atelier:prompt": frame.prompt}))
    path = folder / MANIFEST
    atomic_write_text(path, json.dumps(manifest.to_dict(), indent=2))
    return path
