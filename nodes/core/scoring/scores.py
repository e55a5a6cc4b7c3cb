"""Scoring variations with several scorers and combining them into one overall score.

Every metric keeps its own scale (``metrics``) and is also mapped to 0..100 (``normalised``);
the overall score is the weighted mean of the normalised metrics of the scorers that worked.

Scales and default weights:

| scorer     | raw scale                                 | 0..100 mapping            | weight |
|------------|-------------------------------------------|---------------------------|--------|
| technical  | 0..100 (see ``technical.py``)             | as is                     | 1.0    |
| clip_score | max(100 cos, 0); matching pairs ~20-35    | (x - 15) / 20             | 1.0    |
| aesthetic  | AVA 1..10                                 | (x - 1) / 9               | 1.0    |
| pickscore  | 100 cos (logit scale); ~16-24             | (x - 16) / 8              | 1.0    |
| hpsv2      | raw cosine; ~0.18-0.34                    | (x - 0.18) / 0.16         | 1.0    |

(each mapping is clamped to 0..100; definitions in ``model_scorers.py``)

``auto`` (the default) runs ``technical`` and every model scorer whose weights are found; the others are
``skipped`` with the reason. A scorer that fails is left out with a warning; if none works the result is
marked failed and selection falls back to the first image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import AtelierError, invalid
from .builtin import builtin_scorers
from .images import ImageSet
from .registry import Scorers

log = logging.getLogger("atelier")


def expand_prompts(prompts: Sequence[str | None] | str | None, count: int) -> list[str]:
    """One prompt for every image, or exactly one per image."""
    given: list[str | None] = [prompts] if isinstance(prompts, str) or prompts is None else list(prompts)
    texts = [p or "" for p in given]
    if len(texts) == 1:
        return texts * count
    if len(texts) != count:
        raise invalid("prompt", f"{len(texts)} prompts", f"one prompt, or one per image ({count})")
    return texts


@dataclass
class ScoreResult:
    count: int
    metrics: dict[str, list[float]] = field(default_factory=dict)
    normalised: dict[str, list[float]] = field(default_factory=dict)
    overall: list[float] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    details: list[dict[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # scorer -> why it did not run (``auto``: no weights)

    @property
    def failed(self) -> bool:
        return len(self.overall) != self.count

    def summary(self) -> str:
        """Every image's overall and per-scorer scores, the warnings, and what a failure means for selection."""
        lines = [f"{self.count} image(s); scored by " + (", ".join(f"{k} (weight {v:g})" for k, v in self.weights.items())
                                                          or "no scorer")]
        for i, overall in enumerate(self.overall):
            parts = ", ".join(f"{name} {values[i]:.1f}" for name, values in self.normalised.items())
            lines.append(f"image {i}: overall {overall:.1f} ({parts})")
        lines.extend(f"warning: {w}" for w in self.warnings)
        lines.extend(f"skipped {name}: {why}" for name, why in self.skipped.items())
        if self.failed:
            lines.append("scoring failed: Rank Select will keep the first image")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The SCORES value as JSON (what the node shows and ComfyUI's history keeps)."""
        return {"count": self.count, "metrics": self.metrics, "normalised": self.normalised,
                "overall": self.overall, "weights": self.weights, "details": self.details,
                "warnings": self.warnings, "failed": self.failed, "ran": list(self.weights),
                "skipped": self.skipped}


def score_variations(images: ImageSet, prompts: Sequence[str] | str | None = None,
                     scorers: str | Sequence[str] | None = None,
                     weights: str | dict[str, Any] | None = None, registry: Scorers | None = None) -> ScoreResult:
    """Score every image with every scorer; one failing scorer never fails the whole.

    ``registry`` holds the scorers and the models they load (default: the built-in scorers, without
    model folders: only ``technical`` can score)."""
    registry = registry or builtin_scorers()
    resolved = registry.resolve(scorers)
    names = resolved.names
    chosen = registry.weights(weights, names)
    texts = expand_prompts(prompts, len(images))
    result = ScoreResult(count=len(images), warnings=list(images.warnings), skipped=dict(resolved.skipped))
    details: list[dict[str, float]] = [{} for _ in range(len(images))]
    memo: dict[Any, Any] = {}  # shared by the scorers of this call (one image forward per backbone)
    for name in names:
        spec = registry[name]
        if spec.needs_prompt and not any(texts):
            result.warnings.append(f"{name} needs a prompt; left out")
            continue
        try:
            raw, extra = spec.score(images.images, texts, memo, registry.models)
            if len(raw) != len(images) or not all(math.isfinite(v) for v in raw):
                raise ValueError(f"returned {len(raw)} scores for {len(images)} images or a non-finite value")
        except Exception as exc:  # a scorer runs third-party model code: its failure must not fail the rest
            log.warning("Atelier scorer %s failed", name, exc_info=not isinstance(exc, AtelierError))
            result.warnings.append(f"scorer {name} failed and was left out: {exc}")
            result.skipped[name] = f"failed: {exc}"
            continue
        result.metrics[name] = [round(v, 4) for v in raw]
        result.normalised[name] = [round(min(100.0, max(0.0, spec.normalise(v))), 3) for v in raw]
        for row, more in zip(details, extra, strict=True):
            row.update({f"{name}.{k}" if k != name else k: round(v, 5) for k, v in more.items()})
        result.weights[name] = chosen[name]
    total = sum(result.weights.values())
    if result.normalised and total > 0:
        result.overall = [round(sum(result.weights[n] * result.normalised[n][i] for n in result.normalised) / total, 3)
                          for i in range(len(images))]
    elif result.normalised:
        result.warnings.append("every working scorer has weight 0; no overall score")
    result.details = details
    return result
