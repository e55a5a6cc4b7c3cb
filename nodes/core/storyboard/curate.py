"""The main job on embedded defaults: a storyboard enhanced, generated, scored, chained and reported.

``python -m atelier curate`` runs the shipped storyboard (presets/storyboards/lighthouse.json) with
the offline rule-based enhancement, the technical scorer and images Atelier renders itself, and writes
the frames, ``manifest.json`` and ``report.html``. Inside ComfyUI the same storyboard runs on real
models through the Frame Chain node.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..base.data import PRESETS_DIR
from ..base.errors import invalid
from ..base.files import atomic_write_bytes
from ..scoring.registry import Scorers
from .demo import demo_generate, demo_reference
from .frames import Attempt, FrameResult
from .manifest import build_manifest, png_bytes, write_storyboard
from .report import write_report
from .runner import StoryboardRunner
from .spec import ChainSettings, FrameSpec, Storyboard

DEFAULT_STORYBOARD = PRESETS_DIR / "storyboards" / "lighthouse.json"


def rule_enhancer(model_family: str = "sd15") -> Callable[[str], str]:
    """The offline writer/critic loop (rule backend), as a plain function."""
    from ..enhance.service import EnhanceService

    service = EnhanceService()

    def enhance(prompt: str) -> str:
        return str(asyncio.run(service.enhance({"prompt": prompt, "model_family": model_family}))["prompt"])

    return enhance


THUMBNAIL = 128  # px, the longest side of a variation's picture in the report
VARIATIONS = "variations"
WRITTEN = ("manifest.json", "report.html", "reference.png")


def prepare_output(out_dir: Path, force: bool = False) -> None:
    """Check the destination before any work: a folder that can be written, not already holding a storyboard
    (unless ``force``: then the previous run's files, and only those, are removed)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise invalid("--out", str(out_dir), "a folder (this is a file)")
    previous = out_dir / "manifest.json"
    if previous.exists():
        if not force:
            raise invalid("--out", str(out_dir), "a new or empty folder, or --force to replace the run in it",
                          "it already holds a storyboard")
        _remove_previous_run(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise invalid("--out", str(out_dir), "a folder that can be written", exc.strerror or str(exc)) from None


def _remove_previous_run(out_dir: Path) -> None:
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
        frames = [f.get("file") for f in manifest.get("frames", []) if isinstance(f, dict)]
    except (OSError, ValueError, AttributeError):
        frames = []
    for name in [*WRITTEN, *[f for f in frames if isinstance(f, str) and "/" not in f]]:
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / VARIATIONS, ignore_errors=True)


def _thumbnail(image: torch.Tensor) -> torch.Tensor:
    """[H, W, C] -> at most THUMBNAIL px on the longest side, for the report."""
    height, width = image.shape[0], image.shape[1]
    scale = THUMBNAIL / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image.permute(2, 0, 1).unsqueeze(0).float(), size=size, mode="area")[0].permute(1, 2, 0)


def keep_variations(out_dir: Path) -> Callable[[FrameSpec, torch.Tensor, Attempt], None]:
    """Save every variation of every attempt as a thumbnail under ``variations/`` (the report shows them)."""
    counts: dict[str, int] = {}

    def keep(spec: FrameSpec, images: torch.Tensor, attempt: Attempt) -> None:
        number = counts.get(spec.name, 0)
        counts[spec.name] = number + 1
        attempt.files = []
        for index, image in enumerate(images):
            name = f"{VARIATIONS}/{spec.name}_a{number}_v{index}.png"
            picture = torch.nan_to_num(_thumbnail(image[..., :3]), nan=0.0, posinf=1.0, neginf=0.0)
            atomic_write_bytes(out_dir / name, png_bytes(picture))
            attempt.files.append(name)

    return keep


def curate(storyboard: Storyboard, settings: ChainSettings, out_dir: Path, tier: str, seed: int = 0,
           enhance: Callable[[str], str] | None = None,
           progress: Callable[[FrameSpec, FrameResult], None] | None = None,
           registry: Scorers | None = None, owner: str = "default", force: bool = False) -> dict[str, Any]:
    """Run the storyboard on the demo renderer; returns the manifest (paths under ``files``)."""
    prepare_output(out_dir, force)
    started = time.perf_counter()
    reference = demo_reference(storyboard.clips[0].start, seed)
    runner = StoryboardRunner(demo_generate, settings, enhance, registry, progress=progress,
                              variations=keep_variations(out_dir))
    frames, images = runner.run(storyboard, reference, seed)
    manifest = build_manifest(storyboard, settings, frames, tier, generator="atelier demo renderer", seed=seed,
                              duration_s=round(time.perf_counter() - started, 3), owner=owner)
    atomic_write_bytes(out_dir / "reference.png", png_bytes(reference[0]))
    path = write_storyboard(out_dir, manifest, images)
    written = manifest.to_dict()
    report = write_report(out_dir, written, reference="reference.png")
    return {**written, "files": {"manifest": str(path), "report": str(report), "folder": str(out_dir)}}
