"""Simulated users for the offline evaluation of learned scorer weights (tests/test_learning.py, and
bench/bench_learning.py prints the rates).

A user's hidden taste is a weighting of the scorers (a Dirichlet draw, or the defaults). Images are random
normalised score vectors (20..90 per scorer). The user rates 20 images: the rating follows their taste with
noise. Then, over many sets of 4 variations, the user's favourite (their taste's best) is compared with what
the learned weights pick and what the default weights pick.
"""

from __future__ import annotations

import numpy as np
from atelier.nodes.core.learning.model import Sample, learn_weights

SCORERS = ["technical", "clip_score", "aesthetic", "pickscore"]
DEFAULTS = {name: 1.0 for name in SCORERS}


def rate(taste: np.ndarray, scores: np.ndarray, rng: np.random.Generator, noise: float = 0.04) -> int:
    utility = float(taste @ scores) / 100.0 + rng.normal(0, noise)
    return int(np.clip(round(3 + (utility - 0.55) / 0.07), 1, 5))


def evaluate(taste: np.ndarray, rng: np.random.Generator, ratings: int = 20, trials: int = 400) -> tuple[float, float]:
    """(rate at which the learned weights pick the favourite of 4, rate for the default weights)."""
    samples = []
    for _ in range(ratings):
        scores = rng.uniform(20, 90, len(SCORERS))
        samples.append(Sample(dict(zip(SCORERS, scores.tolist(), strict=True)), rate(taste, scores, rng)))
    learned = learn_weights(samples, DEFAULTS).weights
    w = np.array([learned[k] for k in SCORERS])
    w0 = np.array([DEFAULTS[k] for k in SCORERS])
    hits = hits0 = 0
    for _ in range(trials):
        variations = rng.uniform(20, 90, (4, len(SCORERS)))
        favourite = int(np.argmax(variations @ taste))
        hits += int(np.argmax(variations @ w)) == favourite
        hits0 += int(np.argmax(variations @ w0)) == favourite
    return hits / trials, hits0 / trials


def population(users: int, seed: int = 0, concentration: float = 0.5) -> tuple[float, float, float, float]:
    """Mean (learned, default) pick rates over ``users`` random tastes, and over ``users`` users whose taste
    is the default weights."""
    rng = np.random.default_rng(seed)
    varied = [evaluate(rng.dirichlet([concentration] * len(SCORERS)), rng) for _ in range(users)]
    default_taste = np.array([DEFAULTS[k] for k in SCORERS]) / len(SCORERS)
    same = [evaluate(default_taste, rng) for _ in range(users)]
    return (float(np.mean([v[0] for v in varied])), float(np.mean([v[1] for v in varied])),
            float(np.mean([v[0] for v in same])), float(np.mean([v[1] for v in same])))
