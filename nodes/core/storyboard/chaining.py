"""The chaining rule, in one place: what a storyboard frame starts from, once the frames before it have
succeeded or failed, and how its start image is made.

``frames()`` (spec.py) plans each frame's sources; ``frame_start`` decides what the frame actually starts
from: the planned sources without those of failed frames. Both paths use it: the runner (the command
line's main job) after each frame, and the ComfyUI graph, where Frame Start decides at run time from the
previous frame's report and expands into text-to-image or image-to-image sampling. ``sources`` in a
frame's report always means what it started from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .frames import blend, color_match
from .spec import REFERENCE, ChainSettings, FrameSpec

Mode = Literal["txt2img", "img2img"]


@dataclass(frozen=True)
class Start:
    """What one frame starts from."""

    sources: tuple[str, ...]  # used: reference / previous_end / own_start; empty: text to image
    chained: int | None       # the index of the frame whose image it chains from, or None

    @property
    def reference(self) -> bool:
        return REFERENCE in self.sources

    @property
    def mode(self) -> Mode:
        return "img2img" if self.sources else "txt2img"


def frame_start(spec: FrameSpec, failed: set[int]) -> Start:
    """The frame's planned sources without those whose frame failed (the reference alone, or text to image
    when nothing is left)."""
    sources = tuple(s for s in spec.sources if spec.source_index(s) not in failed)
    chained = next((index for s in sources if (index := spec.source_index(s)) is not None), None)
    return Start(sources, chained)


def start_image(start: Start, chained: torch.Tensor | None, reference: torch.Tensor | None,
                settings: ChainSettings) -> torch.Tensor | None:
    """The image a frame starts from: the chained frame blended with the reference (the reference's weight is
    ``anchor``) and colour-matched to it; the reference alone; the chained frame alone; or None (text to image)."""
    previous = chained if start.chained is not None else None
    ref = reference if start.reference else None
    if previous is None:
        return ref
    if ref is None:
        return previous
    return color_match(blend(previous, ref, settings.anchor), ref, settings.color_match)
