"""Ranking scored variations and choosing the best, with a quality threshold and fallbacks.

Ranking is by overall score, highest first; ties keep the original order (stable). When
scoring failed, the first image is kept with a warning; when the best is below the
threshold, the caller either warns or blocks only the downstream branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..base.errors import invalid

if TYPE_CHECKING:
    from .scores import ScoreResult

DEFAULT_THRESHOLD = 30.0
BELOW_THRESHOLD = ("warn", "block")


@dataclass
class Selection:
    order: list[int]            # every image index, best first
    chosen: list[int]           # the top-k, best first
    best_index: int
    best_score: float | None
    below_threshold: bool
    threshold: float
    warnings: list[str] = field(default_factory=list)

    def report(self, overall: list[float]) -> str:
        lines = []
        for rank, index in enumerate(self.order, 1):
            score = f"{overall[index]:6.2f}" if index < len(overall) else "   n/a"
            mark = " <- chosen" if index in self.chosen else ""
            lines.append(f"#{rank}  image {index}  overall {score}{mark}")
        if self.below_threshold:
            lines.append(f"warning: best score {self.best_score:.2f} is below the threshold {self.threshold:g}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "chosen": self.chosen, "best_index": self.best_index,
                "best_score": self.best_score, "below_threshold": self.below_threshold,
                "threshold": self.threshold, "warnings": self.warnings}


def rank(overall: list[float]) -> list[int]:
    """Indices by score, highest first; equal scores keep their original order."""
    return sorted(range(len(overall)), key=lambda i: (-overall[i], i))


def select(scores: ScoreResult | dict[str, Any] | None, count: int, top_k: int = 1,
           threshold: float = DEFAULT_THRESHOLD) -> Selection:
    """Choose the top-k of ``count`` images from a SCORES value (or its JSON); never raises on bad scores."""
    if not isinstance(scores, dict) and scores is not None:
        scores = scores.to_dict()
    if count < 1:
        raise invalid("images", "an empty batch", "at least one image")
    if top_k < 1:
        raise invalid("top_k", top_k, "1 or more")
    top_k = min(top_k, count)
    overall = scores.get("overall") if isinstance(scores, dict) else None
    warnings = list(scores.get("warnings", [])) if isinstance(scores, dict) else []
    try:
        if not isinstance(overall, list) or len(overall) != count:
            got = len(overall) if isinstance(overall, list) else "no"
            raise ValueError(f"{got} scores for {count} images")
        values = [float(v) for v in overall]
        order = rank(values)
    except (TypeError, ValueError) as exc:
        warnings.append(f"scoring failed ({exc}); kept the first image")
        order = list(range(count))
        return Selection(order, order[:top_k], 0, None, False, threshold, warnings)
    best = order[0]
    below = values[best] < threshold
    return Selection(order, order[:top_k], best, values[best], below, threshold, warnings)
