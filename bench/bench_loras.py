"""The LoRA library's speed: a library of 1,000 LoRA files built at run time (real SD1.5, SDXL and Flux key
layouts and shapes, kohya metadata, sidecars; tensor data left as sparse holes), then the cold scan (headers
only), the warm rescan (nothing changed) and one recommendation without CLIP.

    python bench/bench_loras.py [--files 1000] [--repeat 20]

Targets (issue 15): cold scan of 1,000 files <= 5 s, warm rescan <= 0.3 s, one recommendation <= 20 ms. The
reference measured in the same run: reading every file's header bytes alone (what a scan cannot avoid).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import lora_files  # noqa: E402
from atelier.nodes.core.intelligence.analysis import analyse  # noqa: E402
from atelier.nodes.core.loras.library import LoraLibrary  # noqa: E402
from atelier.nodes.core.loras.recommend import Index, Preferences, recommend  # noqa: E402
from atelier.nodes.core.quality.tables import load_tables  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    names = {p: f.base for f in load_tables().families.families.values() for p in f.match.names}
    with tempfile.TemporaryDirectory(prefix="atelier-bench-loras-") as tmp:
        root = Path(tmp) / "loras"
        started = time.perf_counter()
        paths = lora_files.library(root, args.files)
        built = time.perf_counter() - started
        header_bytes = 0
        started = time.perf_counter()
        for path in paths:  # the reference: the header bytes of every file, nothing parsed
            with open(path, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header_bytes += len(handle.read(length))
        raw = time.perf_counter() - started
        library = LoraLibrary(lambda: [root], Path(tmp) / "data", Path(tmp) / "users", lambda: names)
        cold = library.scan("bench")
        warm = [library.scan("bench").seconds for _ in range(5)]
        cards = cold.cards
        index = Index.build(cards, library.tables)
        analysis = analyse("a knight in watercolor style, dramatic lighting, castle in the background")
        latencies = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(), index=index)
            latencies.append(time.perf_counter() - started)
        with_index_build = []
        for _ in range(3):
            started = time.perf_counter()
            recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences())
            with_index_build.append(time.perf_counter() - started)
    print(f"library: {len(paths)} files built in {built:.1f} s; {header_bytes / 1e6:.1f} MB of headers "
          f"(mean {header_bytes / len(paths) / 1e3:.0f} kB)")
    print(f"reference: read every header's bytes   {raw:.3f} s")
    print(f"cold scan (parse, hash, cards, cache)  {cold.seconds:.3f} s  ({cold.seconds / raw:.1f}x the reference; "
          f"target <= 5 s)  {len(cold.cards)} cards, {len(cold.problems)} problems")
    print(f"warm rescan (nothing changed)          {statistics.median(warm):.3f} s  (median of 5; target <= 0.3 s)")
    print(f"one recommendation, no CLIP            {statistics.median(latencies) * 1000:.2f} ms  (median of "
          f"{args.repeat}; target <= 20 ms); chose {[r.card.name for r in result.chosen]}")
    print(f"  with the index built for it          {statistics.median(with_index_build) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
