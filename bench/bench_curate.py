"""The Quickstart's main job, timed: ``python -m atelier curate`` as a user runs it (a fresh process, imports
included), the pipeline alone in this process, and PNG encoding against the per-pixel reference it replaced.

    python bench/bench_curate.py [--runs 3]

Target: the Quickstart's curate in at most 5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from atelier.nodes.core.storyboard.curate import DEFAULT_STORYBOARD, curate
from atelier.nodes.core.storyboard.manifest import png_bytes
from atelier.nodes.core.storyboard.spec import Storyboard, chain_settings
from PIL import Image


def reference_png(image: torch.Tensor) -> bytes:
    """The encoding curate used before: bytes from the tensor's storage, one element at a time."""
    import io

    array = (image[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    picture = Image.frombytes("RGB", (array.shape[1], array.shape[0]), bytes(array.contiguous().untyped_storage()))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def timed(fn, runs: int) -> float:  # noqa: ANN001
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        values.append(time.perf_counter() - started)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="atelier-bench-curate-"))

    def cli(n: list[int] = [0]) -> None:  # noqa: B006 - a counter
        n[0] += 1
        subprocess.run([sys.executable, "-m", "atelier", "curate", "--out", str(root / f"cli{n[0]}")], check=True,
                       capture_output=True, env={"ATELIER_HOME": str(root / "home"), "PATH": ""}, cwd=root)

    board = Storyboard.from_text(DEFAULT_STORYBOARD.read_text(encoding="utf-8"))

    def pipeline(n: list[int] = [0]) -> None:  # noqa: B006 - a counter
        n[0] += 1
        curate(board, chain_settings(2), root / f"in{n[0]}", "standard")

    for size in (256, 1024):
        image = torch.rand(1, size, size, 3)
        ours, ref = timed(lambda image=image: png_bytes(image), args.runs), timed(lambda image=image: reference_png(image), 1)
        print(f"PNG encode {size}x{size}: {ours * 1000:8.1f} ms   reference (per element) {ref * 1000:8.1f} ms   "
              f"{ref / ours:6.1f}x faster")
    inside = timed(pipeline, args.runs)
    whole = timed(cli, args.runs)
    print(f"curate, the pipeline in this process:     {inside:6.2f} s (median of {args.runs})")
    print(f"curate, the Quickstart command (cold):    {whole:6.2f} s (median of {args.runs}; target <= 5 s)")


if __name__ == "__main__":
    main()
