"""What a storyboard is, and the chaining rules that say which image each frame starts from.

A storyboard is a list of clips, each with a start-frame and an end-frame prompt, and an optional
reference image. Chaining:

- clip 1's start frame starts from the reference (text-to-image when there is none);
- every later clip's start frame starts from the reference blended with the previous clip's end
  frame, except every ``reanchor_every``-th clip, which starts from the reference alone;
- every end frame starts from the reference blended with its own clip's start frame.

A source that failed is left out (the reference alone, or text-to-image when nothing is left): see
``chaining.py``, which both the runner and the ComfyUI graph follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..base.errors import invalid
from ..base.validation import parse_model
from ..quality.tables import load_tables

Role = Literal["start", "end"]
REFERENCE, PREVIOUS_END, OWN_START = "reference", "previous_end", "own_start"
MAX_CLIPS = 64


class Clip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Annotated[str, Field(min_length=1, max_length=4000)]
    end: Annotated[str, Field(min_length=1, max_length=4000)]
    name: Annotated[str, Field(max_length=80)] = ""


class Storyboard(BaseModel):
    """Clips in order; the prompts are what the user wrote (enhancement happens per frame)."""

    model_config = ConfigDict(extra="forbid")
    clips: Annotated[list[Clip], Field(min_length=1, max_length=MAX_CLIPS)]
    negative: Annotated[str, Field(max_length=4000)] = ""
    style: Annotated[str, Field(max_length=1000)] = ""

    @classmethod
    def parse(cls, data: Any) -> Storyboard:
        return parse_model(cls, data, 'a JSON object {"clips": [{"start": "...", "end": "..."}, ...]}')

    @classmethod
    def from_text(cls, text: str) -> Storyboard:
        """JSON, or one clip per line as ``start prompt | end prompt`` (blank lines and # comments ignored)."""
        import json

        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                return cls.parse(json.loads(stripped))
            except ValueError as exc:
                raise invalid("storyboard", stripped[:60], "valid JSON or lines 'start | end'", str(exc)) from None
        clips = []
        for number, line in enumerate(stripped.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.count("|") != 1:
                raise invalid(f"storyboard line {number}", line[:80], "'start prompt | end prompt'")
            start, end = (part.strip() for part in line.split("|"))
            clips.append({"start": start, "end": end})
        return cls.parse({"clips": clips})


class ChainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variations: Annotated[int, Field(ge=1, le=16)] = 4
    denoise: Annotated[float, Field(ge=0.05, le=1.0)] = 0.6
    anchor: Annotated[float, Field(ge=0.0, le=1.0)] = 0.35
    color_match: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7
    reanchor_every: Annotated[int, Field(ge=0, le=MAX_CLIPS)] = 4
    threshold: Annotated[float, Field(ge=0.0, le=100.0)] = 30.0
    retries: Annotated[int, Field(ge=0, le=3)] = 1
    scorers: Annotated[str, Field(max_length=200)] = "auto"
    continuity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4  # its weight against quality in frame selection


def chain_settings(level: int, overrides: dict[str, Any] | None = None) -> ChainSettings:
    """The settings of a quality level (presets/storyboard.yaml), then the caller's overrides."""
    merged = {**load_tables().chain_level(level), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    return parse_model(ChainSettings, merged, "storyboard settings")


@dataclass(frozen=True)
class FrameSpec:
    index: int          # 0-based position in the storyboard
    clip: int           # 1-based clip number
    role: Role
    prompt: str
    sources: tuple[str, ...]  # what the frame starts from: reference / previous_end / own_start (empty: txt2img)

    @property
    def name(self) -> str:
        return f"clip_{self.clip:03d}_{self.role}"

    @property
    def filename(self) -> str:
        return f"{self.name}.png"

    def source_index(self, source: str) -> int | None:
        """The frame index a chained source refers to."""
        return {PREVIOUS_END: self.index - 1, OWN_START: self.index - 1}.get(source)


def frames(storyboard: Storyboard, has_reference: bool, reanchor_every: int) -> list[FrameSpec]:
    """Every frame in order with the images it starts from (see the module's chaining rules)."""
    ref = (REFERENCE,) if has_reference else ()
    out: list[FrameSpec] = []
    style = f", {storyboard.style}" if storyboard.style else ""
    for number, clip in enumerate(storyboard.clips, 1):
        reanchor = number > 1 and reanchor_every > 0 and (number - 1) % reanchor_every == 0 and has_reference
        start_sources = ref if number == 1 or reanchor else (*ref, PREVIOUS_END)
        out.append(FrameSpec(len(out), number, "start", clip.start + style, start_sources))
        out.append(FrameSpec(len(out), number, "end", clip.end + style, (*ref, OWN_START)))
    return out


def frame_seed(seed: int, index: int, attempt: int) -> int:
    """Deterministic and distinct per frame and attempt (the same in the ComfyUI graph)."""
    return (seed + index * 1000 + attempt * 100) % 2**64


__all__ = ["Clip", "Storyboard", "ChainSettings", "chain_settings", "FrameSpec", "frames",
           "REFERENCE", "PREVIOUS_END", "OWN_START", "frame_seed"]
