"""The main job on embedded defaults: a storyboard enhanced, generated, scored, chained and reported.

``python -m atelier curate`` runs the shipped storyboard (presets/storyboards/lighthouse.json) with
the offline rule-based enhancement, the technical scorer and images Atelier renders itself, and writes
the frames, ``manifest.json`` and ``report.html``. Inside ComfyUI the same storyboard runs on real
models through the Frame Chain node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..base.data import PRESETS_DIR
from ..base.files import atomic_write_bytes
from ..scoring.registry import Scorers
from .demo import demo_generate, demo_reference
from .frames import FrameResult
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


def curate(storyboard: Storyboard, settings: ChainSettings, out_dir: Path, tier: str, seed: int = 0,
           enhance: Callable[[str], str] | None = None,
           progress: Callable[[FrameSpec, FrameResult], None] | None = None,
           registry: Scorers | None = None, owner: str = "default") -> dict[str, Any]:
    """Run the storyboard on the demo renderer; returns the manifest (paths under ``files``)."""
    started = time.perf_counter()
    reference = demo_reference(storyboard.clips[0].start, seed)
    runner = StoryboardRunner(demo_generate, settings, enhance, registry, progress=progress)
    frames, images = runner.run(storyboard, reference, seed)
    manifest = build_manifest(storyboard, settings, frames, tier, generator="atelier demo renderer", seed=seed,
                              duration_s=round(time.perf_counter() - started, 3), owner=owner)
    atomic_write_bytes(out_dir / "reference.png", png_bytes(reference[0]))
    path = write_storyboard(out_dir, manifest, images)
    written = manifest.to_dict()
    report = write_report(out_dir, written)
    return {**written, "files": {"manifest": str(path), "report": str(report), "folder": str(out_dir)}}
