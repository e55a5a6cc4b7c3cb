"""The offline evaluation of learned scorer weights (issue 16): simulated users whose hidden taste is a weighting
of the scorers rate 20 images; then, over sets of 4 variations, how often the learned weights pick the user's
favourite against the default weights (tests/learning_sim.py; the model: nodes/core/learning/model.py).

    python bench/bench_learning.py [--users 100] [--seed 0]

Targets: learned >= defaults + 20 points for varied tastes; no worse than the defaults for a default taste.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import learning_sim  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    learned, default, same_learned, same_default = learning_sim.population(args.users, args.seed)
    seconds = time.perf_counter() - started
    print(f"{args.users} simulated users per group, 20 ratings each, 400 sets of 4 variations each ({seconds:.1f} s)")
    print(f"varied tastes:  learned picks the favourite {learned:6.1%}, defaults {default:6.1%}  "
          f"({100 * (learned - default):+.1f} points; target >= +20)")
    print(f"default taste:  learned picks the favourite {same_learned:6.1%}, defaults {same_default:6.1%}  "
          f"({100 * (same_learned - same_default):+.1f} points; target: no worse)")


if __name__ == "__main__":
    main()
