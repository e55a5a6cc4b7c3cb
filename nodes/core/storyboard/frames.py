"""One frame's outcome: which variations are usable, the one kept, retry or fail; and colour matching.

A variation is unusable when the sampler produced non-finite values (NaN/inf) or a blank image;
a frame whose variations are all unusable has failed this attempt. It is tried again (``retries`` times,
with new seeds), then marked failed and the storyboard goes on. When scoring fails (a scorer's model is
missing or broken), the frame keeps its first usable variation, ``unscored``, with a warning: the
images are fine, only the choice among them could not be made.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from ..scoring import ranking
from ..scoring.continuity import continuity
from ..scoring.images import collect
from ..scoring.registry import Scorers
from ..scoring.scores import score_variations
from .spec import FrameSpec

Status = Literal["ok", "below_threshold", "unscored", "failed"]
BLANK_STD = 1e-4


def unusable(image: torch.Tensor) -> str | None:
    """Why a generated image [H, W, C] cannot be kept, or None."""
    if not bool(torch.isfinite(image).all()):
        return "the sampler produced NaN/inf values"
    if float(image.float().std()) < BLANK_STD:
        return "a blank image"
    return None


@dataclass
class Attempt:
    seed: int
    scores: list[float | None]          # overall score per variation (None: unusable)
    problems: list[str | None]
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    details: list[dict[str, float]] = field(default_factory=list)  # per variation: each scorer's 0-100 score
    files: list[str] = field(default_factory=list)  # per variation: its thumbnail, where the run keeps them
    scorers: list[str] = field(default_factory=list)  # the scorers that ran
    skipped: dict[str, str] = field(default_factory=dict)  # scorers that did not run, and why
    unscored: bool = False  # scoring failed: the first usable variation was kept
    continuity: list[float | None] = field(default_factory=list)  # per variation, 0..100 (None: not compared)
    continuity_method: str = ""


@dataclass
class FrameResult:
    name: str
    clip: int
    role: str
    prompt: str                         # as generated (enhanced)
    sources: list[str]                  # what it actually started from
    status: Status = "failed"
    chosen: int | None = None           # index of the kept variation in the last attempt
    best_score: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    file: str | None = None
    passes: list[str] = field(default_factory=list)  # the sampling passes that made it (ComfyUI)
    continuity: float | None = None  # the kept variation's continuity with the reference and previous frame

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The frame's report, as Frame Select sends it to the nodes after it."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameResult:
        return cls(**{**data, "attempts": [Attempt(**a) for a in data.get("attempts", [])]})

    @classmethod
    def from_json(cls, text: str) -> FrameResult:
        return cls.from_dict(json.loads(text))


def judge_attempt(images: torch.Tensor, prompt: str, seed: int, scorers: str, threshold: float,
                  registry: Scorers | None = None, anchors: list[torch.Tensor] | None = None,
                  continuity_weight: float = 0.0) -> tuple[Attempt, int | None, bool]:
    """Score one attempt's variations: (attempt, index kept or None if it failed, below threshold).

    With ``anchors`` (the reference and the previous frame) and a ``continuity_weight``, each variation's
    continuity (``scoring/continuity.py``) is weighed with its quality: the kept one is the best of
    ``(1 - w) quality + w continuity``; the threshold still applies to quality."""
    problems = [unusable(image) for image in images]
    usable = [i for i, p in enumerate(problems) if p is None]
    attempt = Attempt(seed, [None] * len(problems), problems)
    if not usable:
        attempt.error = f"every variation failed: {problems[0]}"
        return attempt, None, False
    try:
        result = score_variations(collect(images[usable]), prompt, scorers, registry=registry)
    except Exception as exc:  # a scorer's own bug: the images are fine, keep the first usable one
        attempt.unscored = True
        attempt.warnings = [f"scoring failed ({exc}); kept the first usable variation"]
        return attempt, usable[0], False
    attempt.warnings = list(result.warnings)
    attempt.scorers, attempt.skipped = list(result.weights), dict(result.skipped)
    if result.failed:
        attempt.unscored = True
        attempt.warnings.append("scoring failed (" + "; ".join(result.warnings or ["no overall score"])
                                + "); kept the first usable variation")
        return attempt, usable[0], False
    attempt.details = [{} for _ in problems]
    for position, index in enumerate(usable):
        attempt.scores[index] = result.overall[position]
        attempt.details[index] = {name: values[position] for name, values in result.normalised.items()}
    ranked = result.to_dict()
    if anchors and continuity_weight > 0:
        found = continuity([images[i] for i in usable], anchors, registry.models if registry else None)
        attempt.continuity = [None] * len(problems)
        attempt.continuity_method = found.method
        for position, index in enumerate(usable):
            attempt.continuity[index] = found.scores[position]
            attempt.details[index]["continuity"] = found.scores[position]
        ranked["overall"] = [round((1 - continuity_weight) * q + continuity_weight * c, 3)
                             for q, c in zip(result.overall, found.scores, strict=True)]
    selection = ranking.select(ranked, len(usable), 1, threshold)
    below = result.overall[selection.best_index] < threshold
    return attempt, usable[selection.best_index], below


def conclude(frame: FrameResult, attempt: Attempt, chosen: int | None, below: bool, threshold: float) -> None:
    """Add an attempt's outcome to the frame."""
    frame.attempts.append(attempt)
    if chosen is None:
        frame.status, frame.error = "failed", attempt.error
        return
    frame.chosen, frame.best_score, frame.error = chosen, attempt.scores[chosen], None
    frame.continuity = attempt.continuity[chosen] if attempt.continuity else None
    if attempt.unscored:
        frame.status = "unscored"
        frame.warnings.extend(attempt.warnings[-1:])
        return
    frame.status = "below_threshold" if below else "ok"
    if below:
        frame.warnings.append(f"best score {frame.best_score:.2f} is below the threshold {threshold:g}")


def continuity_anchors(reference: torch.Tensor | None, previous: torch.Tensor | None) -> list[torch.Tensor]:
    """What a frame's variations should be consistent with: the reference and the previous frame's kept
    image (a failed previous frame is left out: None)."""
    return [image[0] for image in (reference, previous) if image is not None]


def new_frame(spec: FrameSpec, prompt: str, sources: tuple[str, ...]) -> FrameResult:
    return FrameResult(spec.name, spec.clip, spec.role, prompt, list(sources))


def color_match(image: torch.Tensor, reference: torch.Tensor, strength: float) -> torch.Tensor:
    """Pull each channel's mean and spread of ``image`` [B,H,W,C] towards ``reference``'s (Reinhard-style
    transfer in RGB), by ``strength`` (0 = unchanged, 1 = full transfer)."""
    if strength <= 0:
        return image
    ref = reference[..., :3].float()
    img = image[..., :3].float()
    ref_mean, ref_std = ref.mean(dim=(0, 1, 2)), ref.std(dim=(0, 1, 2)).clamp_min(1e-4)
    mean = img.mean(dim=(1, 2), keepdim=True)
    std = img.std(dim=(1, 2), keepdim=True).clamp_min(1e-4)
    matched = (img - mean) / std * ref_std + ref_mean
    out = (img + strength * (matched - img)).clamp(0.0, 1.0)
    return torch.cat([out, image[..., 3:]], dim=-1) if image.shape[-1] > 3 else out


def blend(first: torch.Tensor, second: torch.Tensor, weight_second: float) -> torch.Tensor:
    """``first`` mixed with ``second`` (resized to it) at ``weight_second``."""
    if second.shape[1:3] != first.shape[1:3]:
        second = torch.nn.functional.interpolate(second.movedim(-1, 1), size=first.shape[1:3], mode="bilinear",
                                                 align_corners=False).movedim(1, -1)
    return first * (1.0 - weight_second) + second[: first.shape[0]].expand_as(first) * weight_second
