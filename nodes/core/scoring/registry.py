"""The scorers, in one explicit registry: their names, how each maps to 0..100, its default weight, and
the model manager the model-based ones load from.

``SCORER_NAMES`` is the one list of built-in scorers (nodes, routes, CLI and the web panel read it);
``builtin.builtin_scorers(models)`` is the registry a host builds once with its model folders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base.errors import invalid

if TYPE_CHECKING:  # the registry itself needs no torch: the lists route reads its names
    import torch

    from .models import ModelManager

SCORER_NAMES = ("technical", "clip_score", "aesthetic", "pickscore", "hpsv2")
AUTO = "auto"  # technical, plus every model scorer whose weights are found
DEFAULT_SCORERS = (AUTO,)
MODEL_FREE = ("technical",)

Memo = dict[Any, Any]
# (images, prompts, memo, models) -> (raw scores, details per image); the memo is shared by the scorers of
# one call, so scorers on one backbone share its image forward.
ScoreFn = Callable[[list["torch.Tensor"], list[str], Memo, "ModelManager | None"],
                   tuple[list[float], list[dict[str, float]]]]


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    score: ScoreFn
    normalise: Callable[[float], float]
    default_weight: float
    needs_prompt: bool
    models: tuple[str, ...] = ()  # model keys it loads (presets/scorers.yaml): all must be found


@dataclass(frozen=True)
class Resolved:
    """The scorers a request names, ``auto`` expanded: those that run, and those skipped with the reason."""

    names: list[str]
    skipped: dict[str, str]


class Scorers:
    """Scorers by name, with the models they load from (``None``: only model-free scorers can score)."""

    def __init__(self, specs: Iterable[ScorerSpec], models: ModelManager | None = None) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.models = models

    def __getitem__(self, name: str) -> ScorerSpec:
        return self.specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def names(self) -> list[str]:
        return list(self.specs)

    def with_models(self, models: ModelManager | None) -> Scorers:
        """The same scorers, loading from other models (e.g. those a Scorer Models node chose)."""
        return Scorers(self.specs.values(), models)

    def with_scorer(self, spec: ScorerSpec) -> Scorers:
        return Scorers([*self.specs.values(), spec], self.models)

    def parse(self, value: str | Sequence[str] | None) -> list[str]:
        """``"technical, clip_score"`` or a list: the named scorers in order; ``auto`` (the default) is technical
        and every model scorer whose weights are found (``resolve`` says which were skipped and why)."""
        return self.resolve(value).names

    def resolve(self, value: str | Sequence[str] | None) -> Resolved:
        names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value or []) if n.strip()]
        names = names or list(DEFAULT_SCORERS)
        for name in names:
            if name != AUTO and name not in self.specs:
                raise invalid("scorers", name, [AUTO, *sorted(self.specs)])
        chosen: list[str] = []
        skipped: dict[str, str] = {}
        for name in names:
            if name != AUTO:
                chosen.append(name)
                continue
            for spec in self.specs.values():
                missing = self.missing(spec.name)
                if missing is None:
                    chosen.append(spec.name)
                else:
                    skipped[spec.name] = missing
        chosen = list(dict.fromkeys(chosen))
        return Resolved(chosen, {k: v for k, v in skipped.items() if k not in chosen})

    def missing(self, name: str) -> str | None:
        """Why scorer ``name`` cannot run here (its weights are not found), or None. Loads nothing."""
        spec = self.specs[name]
        if not spec.models:
            return None
        if self.models is None:
            return "no model folders are configured"
        from .models import ModelMissing, locate  # torch is imported only when a model scorer is asked about

        for key in spec.models:
            try:
                locate(key, self.models.folders)
            except ModelMissing as exc:
                return exc.message
        return None

    def needs_models(self, value: str | Sequence[str] | None) -> bool:
        return any(name not in MODEL_FREE for name in self.parse(value))

    def weights(self, value: str | dict[str, Any] | None, scorers: list[str]) -> dict[str, float]:
        """``"technical=1, clip_score=0.5"`` or a JSON object; unnamed scorers keep their defaults."""
        weights = {name: self.specs[name].default_weight for name in scorers}
        if value is None or (isinstance(value, str) and not value.strip()):
            return weights
        given = _given_weights(value)
        for name, raw in given.items():
            if name not in self.specs:
                raise invalid("weights", name, sorted(self.specs))
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


def _given_weights(value: str | dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, str):
        return dict(value)
    text = value.strip()
    if text.startswith("{"):
        try:
            given = json.loads(text)
        except ValueError as exc:
            raise invalid("weights", text, 'a JSON object or "name=weight, ..."', str(exc)) from None
        if not isinstance(given, dict):
            raise invalid("weights", text, 'a JSON object or "name=weight, ..."')
        return given
    out: dict[str, Any] = {}
    for part in text.split(","):
        name, sep, number = part.partition("=")
        if not sep:
            raise invalid("weights", part.strip(), '"name=weight, ..."')
        out[name.strip()] = number.strip()
    return out
