"""What Atelier learns from a user's feedback, and how (documented, explainable, per user).

Scorer weights (for the overall score of best-of-N):
    Each rated image gives its normalised scores x (0..1 per scorer) and a rating r (1..5). With X the scores
    and y = (r - 3) / 2, both centred, the taste direction is the ridge least-squares fit
    b = (XᵀX + ridge·I)⁻¹ Xᵀy, negatives clipped to 0 and normalised to sum 1 (all zero: nothing learned).
    The weights used are the blend c·b + (1 - c)·w0 of that direction with the default weights w0 (normalised).
    c is chosen among ``blends`` by leave-one-out: each rating is predicted (a line through the overall score)
    from the others, and the c with the least squared error wins; within ``tie`` of the best, the smallest c
    (the defaults) wins. So a user whose taste is the defaults keeps them, and a user whose ratings clearly
    follow other scorers gets their taste. Below ``min_ratings`` rated images nothing is learned.

LoRA priors (for recommendations):
    prior = (mean rating of the images that used the LoRA - 3) / 2 · n / (n + prior_ratings), in -1..1; the
    recommendation score of a LoRA that already matches the prompt moves by ``score_weight`` · prior, and its
    reason says so ("ranked up: you rated 4 images using it 4.5 on average").

Preferred tier per pipeline (operation type):
    Each tier's ratings shrunk towards neutral: (sum + 3·prior_ratings) / (n + prior_ratings). With at least
    ``min_ratings`` ratings in the pipeline, the tier with the highest shrunk mean (ties: the cheaper tier) is
    preferred when it has at least two ratings; the optimiser then starts from it instead of the priority's
    start tier (still stepping down to fit the budget), and says why.

Use cases (free text included):
    The tiers of the user's runs that named the use case (a record's ``use_case`` parameter, compared lowercased
    with spaces collapsed): when one tier has at least ``min_runs`` runs and ``share`` of them, the recommendation
    for that use case is that tier, and says so ("you ran 'youtube thumbnail' at high 4 of 5 times").

Never over an explicit choice: weights given by the caller and LoRAs chosen by the caller are used as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..base.data import PRESETS_DIR, read_yaml
from ..base.errors import invalid


@lru_cache(maxsize=1)
def learning_tables() -> dict[str, Any]:
    data = read_yaml(PRESETS_DIR / "learning.yaml")
    if not isinstance(data, dict) or data.get("version") != 1:
        raise invalid("learning.yaml version", data.get("version") if isinstance(data, dict) else data, 1)
    return data


@dataclass
class Sample:
    scores: dict[str, float]  # normalised 0..100 per scorer
    rating: int


@dataclass
class LearnedWeights:
    weights: dict[str, float]  # to use (sum 1)
    learned: dict[str, float]  # the fitted taste direction (sum 1), empty when nothing was learned
    ratings: int
    confidence: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"weights": {k: round(v, 4) for k, v in self.weights.items()},
                "learned": {k: round(v, 4) for k, v in self.learned.items()}, "ratings": self.ratings,
                "confidence": round(self.confidence, 3), "reason": self.reason}


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    total = sum(max(0.0, w) for w in weights.values())
    if total <= 0:
        return {k: 1.0 / len(weights) for k in weights}
    return {k: max(0.0, w) / total for k, w in weights.items()}


def learn_weights(samples: list[Sample], defaults: dict[str, float]) -> LearnedWeights:
    """The weights for the scorers in ``defaults`` from ``samples`` (see the module docstring)."""
    import numpy as np

    table = learning_tables()["weights"]
    names = list(defaults)
    base = _normalised(defaults)
    usable = [s for s in samples[-int(table["max_samples"]):] if all(n in s.scores for n in names)]
    n = len(usable)
    if n < int(table["min_ratings"]) or not names:
        return LearnedWeights(base, {}, n, 0.0,
                              f"default weights: {n} rated image(s) with these scores, {table['min_ratings']} needed")
    x = np.array([[s.scores[k] / 100.0 for k in names] for s in usable], dtype=float)
    y = np.array([(s.rating - 3) / 2.0 for s in usable], dtype=float)
    ridge = float(table["ridge"])
    w0 = np.array([base[k] for k in names])
    direction = _direction(x, y, ridge)
    if direction is None:
        return LearnedWeights(base, {}, n, 0.0, f"default weights: your {n} ratings follow none of these scorers")
    blends = [float(c) for c in table["blends"]]
    errors = {c: _loo_error(x, y, ridge, w0, c) for c in blends}
    best = min(errors.values())
    confidence = min(c for c in blends if errors[c] <= best * (1 + float(table["tie"])))
    learned = {k: float(v) for k, v in zip(names, direction, strict=True)}
    weights = {k: confidence * learned[k] + (1 - confidence) * base[k] for k in names}
    top = sorted(learned, key=lambda k: -learned[k])
    if confidence == 0:
        reason = f"default weights: your {n} ratings are predicted as well by them as by a learned taste"
    else:
        reason = (f"learned from your {n} ratings: they follow {top[0]} ({learned[top[0]]:.0%} of your taste)"
                  + (f" then {top[1]} ({learned[top[1]]:.0%})" if len(top) > 1 and learned[top[1]] > 0 else "")
                  + f"; {confidence:.0%} learned, {1 - confidence:.0%} defaults")
    return LearnedWeights(weights, learned, n, confidence, reason)


def _direction(x: Any, y: Any, ridge: float) -> Any:
    """The taste direction: ridge least squares on centred data, negatives clipped, sum 1 (None: nothing)."""
    import numpy as np

    xc, yc = x - x.mean(axis=0), y - y.mean()
    fit = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)
    clipped = np.clip(fit, 0.0, None)
    return clipped / clipped.sum() if clipped.sum() > 0 else None


def _loo_error(x: Any, y: Any, ridge: float, w0: Any, blend: float) -> float:
    """Leave-one-out squared error of predicting a rating from the blended weights' overall score (a line
    fitted on the other ratings)."""
    import numpy as np

    total = 0.0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        direction = _direction(x[keep], y[keep], ridge)
        w = w0 if direction is None else blend * direction + (1 - blend) * w0
        score = x @ w
        a, b = np.polyfit(score[keep], y[keep], 1) if np.ptp(score[keep]) > 0 else (0.0, float(y[keep].mean()))
        total += float((a * score[i] + b - y[i]) ** 2)
    return total


@dataclass
class LoraPrior:
    name: str
    ratings: int
    mean: float
    prior: float  # -1..1 after shrinkage
    reason: str


@dataclass
class LoraPriors:
    priors: dict[str, LoraPrior] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {name: {"ratings": p.ratings, "mean": round(p.mean, 2), "prior": round(p.prior, 3), "reason": p.reason}
                for name, p in sorted(self.priors.items())}


def learn_lora_priors(used: list[tuple[list[str], int]]) -> LoraPriors:
    """``used``: (the LoRA names an image used, its rating) for the user's rated images."""
    table = learning_tables()["loras"]
    by_name: dict[str, list[int]] = {}
    for names, rating in used:
        for name in dict.fromkeys(names):
            by_name.setdefault(name, []).append(rating)
    out: dict[str, LoraPrior] = {}
    for name, ratings in by_name.items():
        n = len(ratings)
        if n < int(table["min_ratings"]):
            continue
        mean = sum(ratings) / n
        prior = (mean - 3) / 2 * n / (n + float(table["prior_ratings"]))
        if prior == 0:
            continue
        direction = "up" if prior > 0 else "down"
        out[name] = LoraPrior(name, n, mean, prior,
                              f"ranked {direction}: you rated {n} images using it {mean:.1f} on average")
    return LoraPriors(out)


def score_shift(prior: LoraPrior) -> float:
    return float(learning_tables()["loras"]["score_weight"]) * prior.prior


@dataclass
class PreferredTier:
    tier: str
    reason: str
    means: dict[str, tuple[int, float]]  # tier -> (ratings, mean)

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "reason": self.reason,
                "tiers": {t: {"ratings": n, "mean": round(m, 2)} for t, (n, m) in self.means.items()}}


def learn_preferred_tier(rated: list[tuple[str, int]], order: list[str]) -> PreferredTier | None:
    """``rated``: (tier, rating) of the user's rated runs of one pipeline; ``order``: the tiers, cheapest first."""
    table = learning_tables()["tiers"]
    if len(rated) < int(table["min_ratings"]):
        return None
    k = float(table["prior_ratings"])
    by_tier: dict[str, list[int]] = {}
    for tier, rating in rated:
        by_tier.setdefault(tier, []).append(rating)
    means = {t: (len(r), sum(r) / len(r)) for t, r in by_tier.items()}
    shrunk = {t: (sum(r) + 3 * k) / (len(r) + k) for t, r in by_tier.items()}
    rank = {t: i for i, t in enumerate(order)}
    best = min(shrunk, key=lambda t: (-shrunk[t], rank.get(t, len(order))))
    if means[best][0] < 2 or shrunk[best] <= 3:
        return None
    others = sorted((t for t in means if t != best), key=lambda t: -means[t][1])
    reason = (f"you rated your {best} runs {means[best][1]:.1f} on average ({means[best][0]} ratings)"
              + (f", {others[0]}'s {means[others[0]][1]:.1f} ({means[others[0]][0]})" if others else ""))
    return PreferredTier(best, reason, means)


def use_case_key(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())[:200]


def learn_use_case_tier(tiers: list[str], use_case: str) -> tuple[str, str] | None:
    """(tier, why) from the tiers of the user's runs for one use case, or None."""
    table = learning_tables()["use_cases"]
    if not tiers:
        return None
    counts: dict[str, int] = {}
    for tier in tiers:
        counts[tier] = counts.get(tier, 0) + 1
    best = max(counts, key=lambda t: (counts[t], -tiers[::-1].index(t)))
    if counts[best] < int(table["min_runs"]) or counts[best] / len(tiers) < float(table["share"]):
        return None
    return best, f"you ran '{use_case}' at {best} {counts[best]} of {len(tiers)} times"
