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

A scorer that fails is left out with a warning; if none works the result is marked failed and
selection falls back to the first image.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..base.errors import AtelierError, invalid
from . import technical
from .images import ImageSet

# (images, prompts, memo) -> (raw scores, details per image); memo is shared by the scorers of one
# call, so scorers on one backbone share its image forward.
log = logging.getLogger("atelier")
ScoreFn = Callable[[list[torch.Tensor], list[str], dict[Any, Any]], tuple[list[float], list[dict[str, float]]]]


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    score: ScoreFn
    normalise: Callable[[float], float]
    default_weight: float
    needs_prompt: bool


def _technical(images: list[torch.Tensor], prompts: list[str],
               memo: dict[Any, Any]) -> tuple[list[float], list[dict[str, float]]]:
    results = [technical.score_image(image) for image in images]
    return [score for score, _ in results], [details for _, details in results]


SCORERS: dict[str, ScorerSpec] = {
    "technical": ScorerSpec("technical", _technical, lambda x: x, 1.0, needs_prompt=False),
}
DEFAULT_SCORERS = ("technical",)


def register(spec: ScorerSpec) -> None:
    """Make a scorer available (the model-based scorers register themselves when loadable)."""
    SCORERS[spec.name] = spec


def parse_scorers(value: str | Sequence[str] | None) -> list[str]:
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value or []) if n.strip()]
    names = names or list(DEFAULT_SCORERS)
    for name in names:
        if name not in SCORERS:
            raise invalid("scorers", name, sorted(SCORERS))
    return list(dict.fromkeys(names))


def parse_weights(value: str | dict[str, Any] | None, scorers: list[str]) -> dict[str, float]:
    """``"technical=1, clip_score=0.5"`` or a JSON object; unnamed scorers keep their defaults."""
    weights = {name: SCORERS[name].default_weight for name in scorers}
    if value is None or (isinstance(value, str) and not value.strip()):
        return weights
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                given = json.loads(text)
            except ValueError as exc:
                raise invalid("weights", text, 'a JSON object or "name=weight, ..."', str(exc)) from None
        else:
            given = {}
            for part in text.split(","):
                name, sep, number = part.partition("=")
                if not sep:
                    raise invalid("weights", part.strip(), '"name=weight, ..."')
                given[name.strip()] = number.strip()
    else:
        given = dict(value)
    for name, raw in given.items():
        if name not in SCORERS:
            raise invalid("weights", name, sorted(SCORERS))
        try:
            weight = float(raw)
        except (TypeError, ValueError):
            raise invalid(f"weights.{name}", raw, "a number >= 0") from None
        if not math.isfinite(weight) or weight < 0:
            raise invalid(f"weights.{name}", raw, "a number >= 0")
        if name in weights:
            weights[name] = weight
    if not any(weights.values()):
        raise invalid("weights", given, "at least one weight above 0")
    return weights


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

    @property
    def failed(self) -> bool:
        return len(self.overall) != self.count

    def to_dict(self) -> dict[str, Any]:
        """The SCORES value between nodes (JSON-ready)."""
        return {"count": self.count, "metrics": self.metrics, "normalised": self.normalised,
                "overall": self.overall, "weights": self.weights, "details": self.details,
                "warnings": self.warnings, "failed": self.failed}


def score_variations(images: ImageSet, prompts: Sequence[str] | str | None = None,
                     scorers: str | Sequence[str] | None = None,
                     weights: str | dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> ScoreResult:
    """Score every image with every scorer; one failing scorer never fails the whole.

    ``context`` is shared with the scorers (e.g. ``{"manager": ...}`` for explicitly chosen models)."""
    names = parse_scorers(scorers)
    chosen = parse_weights(weights, names)
    texts = expand_prompts(prompts, len(images))
    result = ScoreResult(count=len(images), warnings=list(images.warnings))
    details: list[dict[str, float]] = [{} for _ in range(len(images))]
    memo: dict[Any, Any] = dict(context or {})
    for name in names:
        spec = SCORERS[name]
        if spec.needs_prompt and not any(texts):
            result.warnings.append(f"{name} needs a prompt; left out")
            continue
        try:
            raw, extra = spec.score(images.images, texts, memo)
            if len(raw) != len(images) or not all(math.isfinite(v) for v in raw):
                raise ValueError(f"returned {len(raw)} scores for {len(images)} images or a non-finite value")
        except Exception as exc:  # a scorer runs third-party model code: its failure must not fail the rest
            log.warning("Atelier scorer %s failed", name, exc_info=not isinstance(exc, AtelierError))
            result.warnings.append(f"scorer {name} failed and was left out: {exc}")
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
