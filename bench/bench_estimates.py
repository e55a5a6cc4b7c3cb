"""Estimates proven on real runs: a real ComfyUI calibrates from 5 runs, then predicts held-out runs at every
tier (hires fix and refinement passes included) and several sizes.

    COMFYUI_DIR=/path/ComfyUI COMFYUI_PYTHON=/path/python ATELIER_TEST_CACHE=/tmp/cache python bench/bench_estimates.py
    python bench/bench_estimates.py --url http://127.0.0.1:8188 --checkpoint my.safetensors --family sd15

Started from ``COMFYUI_DIR`` it uses the tiny random SD1.5 checkpoint of the integration suite (built once,
cached in ``ATELIER_TEST_CACHE``). Every run is the shipped txt2img workflow (Quality Preset → Quality
Sampler: exactly the passes the tier plans). Times are ComfyUI's own execution time (its execution_start and
execution_success events), not the wall time around the queue, so a loaded machine's queue does not count.
Before each held-out run the estimate is read from ``POST /atelier/estimate`` (what the picker and the
node show); the run then teaches the estimator too, as in real use.

Prints per tier the estimate, the median measured time and the error, and the overall median error.
Targets: median error <= 10 %, every tier <= 15 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from comfyui_server import CHECKPOINT, call, comfyui, execution_seconds, run_prompt  # noqa: E402

TIERS = ("draft", "standard", "high", "ultra")
CALIBRATION = [("draft", 128), ("ultra", 64), ("standard", 64), ("high", 96), ("draft", 64)]  # sizes x steps apart
HELD_OUT_SIZES = (80, 112)
REPEATS = 3
POLL_MARGIN_S = 3.0  # Atelier reads ComfyUI's history every 2 s
TARGET_MEDIAN, TARGET_TIER = 0.10, 0.15


def graph(checkpoint: str, family: str, tier: str, side: int, seed: int) -> dict[str, Any]:
    """The shipped txt2img workflow (API twin) at ``tier`` and ``side`` x ``side``."""
    nodes = json.loads((REPO / "workflows" / "api" / "atelier_quality_txt2img.json").read_text())
    for node in nodes.values():
        inputs = node["inputs"]
        if node["class_type"] == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = checkpoint
        elif node["class_type"] == "AtelierQualityPreset":
            inputs.update(tier=tier, checkpoint=checkpoint, model_family=family, width=side, height=side)
        elif node["class_type"] == "AtelierQualitySampler":
            inputs["seed"] = seed
    return nodes


def estimate(url: str, checkpoint: str, family: str, tier: str, side: int) -> dict[str, Any]:
    status, body = call(url, "/atelier/estimate", {"preset": tier, "template": {
        "model_family": family, "checkpoint": checkpoint, "width": side, "height": side, "batch_size": 1}})
    if status != 200:
        raise RuntimeError(f"estimate refused: {body}")
    return dict(body["estimate"])


def samples(url: str) -> int:
    return sum(e["samples"] for e in call(url, "/atelier/estimate/calibration")[1]["entries"])


def bench(url: str, checkpoint: str, family: str) -> int:
    seed = 1000
    run_prompt(url, graph(checkpoint, family, "draft", 64, seed))  # warm-up: loading the checkpoint is not a run
    time.sleep(POLL_MARGIN_S)
    before = samples(url)
    print(f"calibration: {len(CALIBRATION)} runs")
    for tier, side in CALIBRATION:
        seed += 1
        item = run_prompt(url, graph(checkpoint, family, tier, side, seed))
        print(f"  {tier:<9} {side:>4} px  {execution_seconds(item):7.2f} s")
    time.sleep(POLL_MARGIN_S)
    learned = samples(url) - before
    print(f"  learned {learned} run(s); fit: {call(url, '/atelier/estimate/calibration')[1]['entries']}")

    rows: list[tuple[str, int, float, float, bool]] = []
    for tier in TIERS:
        for side in HELD_OUT_SIZES:
            for _ in range(REPEATS):
                seed += 1
                expected = estimate(url, checkpoint, family, tier, side)
                item = run_prompt(url, graph(checkpoint, family, tier, side, seed))
                rows.append((tier, side, expected["time_s"]["expected"], execution_seconds(item), expected["calibrated"]))
            time.sleep(0.1)

    print(f"\nheld-out runs: {len(TIERS)} tiers x {len(HELD_OUT_SIZES)} sizes x {REPEATS}")
    print(f"{'tier':<9} {'size':>5} {'passes':<28} {'estimate':>9} {'measured':>9} {'error':>7}")
    errors: dict[str, list[float]] = {}
    all_errors: list[float] = []
    for tier in TIERS:
        for side in HELD_OUT_SIZES:
            group = [r for r in rows if r[0] == tier and r[1] == side]
            predicted = statistics.median(r[2] for r in group)
            measured = statistics.median(r[3] for r in group)
            error = abs(predicted / measured - 1)
            errors.setdefault(tier, []).append(error)
            all_errors.append(error)
            passes = {"draft": "base", "standard": "base", "high": "base+hires", "ultra": "base+hires+refine"}[tier]
            calibrated = "" if all(r[4] for r in group) else " (prior)"
            print(f"{tier:<9} {side:>4}px {passes:<28} {predicted:8.2f}s {measured:8.2f}s {error:6.1%}{calibrated}")
    print()
    worst = 0.0
    for tier in TIERS:
        tier_error = statistics.median(errors[tier])
        worst = max(worst, tier_error)
        print(f"{tier:<9} median error {tier_error:6.1%}")
    overall = statistics.median(all_errors)
    print(f"overall   median error {overall:6.1%}  (target <= {TARGET_MEDIAN:.0%}; every tier <= {TARGET_TIER:.0%}: "
          f"worst {worst:.1%})")
    return 0 if overall <= TARGET_MEDIAN and worst <= TARGET_TIER else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running ComfyUI with Atelier (default: start one from COMFYUI_DIR)")
    parser.add_argument("--checkpoint", default=CHECKPOINT, help="a checkpoint that ComfyUI has (with --url)")
    parser.add_argument("--family", default="sd15", help="its model family")
    args = parser.parse_args()
    server = nullcontext((args.url, None)) if args.url else comfyui(checkpoint=True)
    with server as (url, _):
        return bench(url, args.checkpoint, args.family)


if __name__ == "__main__":
    sys.exit(main())
