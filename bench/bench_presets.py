"""Benchmarks of the preset system (issue 2's targets), with references measured in the same run.

    python bench/bench_presets.py [--presets 1000] [--rounds 2000]

Prints, for each measure, Atelier's figure, the story's limit and the target, and the ratio to a
reference measured here: the same work done naively (no resolution cache; PyYAML's pure-Python
loader; every preset re-read from disk).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml
from atelier.nodes.core.base import data as data_module
from atelier.nodes.core.quality import presets as presets_module
from atelier.nodes.core.quality import tables as tables_module
from atelier.nodes.core.quality.apply import FunctionTemplate, check_compatibility
from atelier.nodes.core.quality.presets import PresetLibrary
from atelier.nodes.core.quality.schema import CustomPresetSpec
from atelier.nodes.core.quality.service import QualityService
from atelier.nodes.core.quality.store import PresetStore, dump_spec

TEMPLATE = {"category": "image", "model_family": "sdxl", "inputs": ["steps", "cfg", "sampler_name", "width"]}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def write_presets(users: Path, count: int) -> None:
    folder = PresetStore(users, tables_module.load_tables().default_tier).folder("bench")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        parent = "high" if i < 10 else f"p{i % 10:04d}"  # two-level chains
        spec = CustomPresetSpec(id=f"p{i:04d}", extends=parent, revision=1, description=f"preset {i}",
                                image={"steps": 20 + i % 30, "hires_fix": {"scale": 1.5}}, text={"temperature": 0.5})
        (folder / f"{spec.id}.yaml").write_text(dump_spec(spec))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    users = root / "users"
    write_presets(users, args.presets)
    service = QualityService(users, root / "data")
    tables = service.tables
    rows: list[tuple[str, str, str, str, str]] = []

    # apply: a custom preset (two-level chain) on a template, with estimate and compatibility
    service.apply("bench", "p0123", TEMPLATE)
    p50, p99 = percentiles(timed(lambda: service.apply("bench", "p0123", TEMPLATE), args.rounds))

    def naive_apply() -> None:  # resolve from disk every time, no cache
        fresh = QualityService(users, None)
        fresh.apply("bench", "p0123", TEMPLATE)
    n50, _ = percentiles(timed(naive_apply, max(20, args.rounds // 100)))
    rows.append(("apply p50 / p99", f"{p50:.3f} / {p99:.3f} ms", "< 100 ms", "< 1 ms", f"{n50 / p50:.0f}x faster than uncached"))

    # compatibility check
    preset = service.library.get("bench", "p0123")
    template = FunctionTemplate.parse(TEMPLATE)
    c50, c99 = percentiles(timed(lambda: check_compatibility(preset, template, tables, 8.0), args.rounds * 5))
    rows.append(("compatibility p50 / p99", f"{c50:.4f} / {c99:.4f} ms", "< 50 ms", "< 0.5 ms", ""))

    # loading all presets of one user, cold (new store and library; files on disk, OS cache warm)
    def load_cold() -> None:
        library = PresetLibrary(PresetStore(users, tables_module.load_tables().default_tier), tables)
        presets, problems = library.list_all("bench")
        assert len(presets) == args.presets + 4 and not problems
    load_cold()
    loads = timed(load_cold, 5)

    def load_naive() -> None:  # pure-Python YAML, then the same validation
        folder = PresetStore(users, tables_module.load_tables().default_tier).folder("bench")
        for path in sorted(folder.glob("*.yaml")):
            CustomPresetSpec.model_validate(yaml.load(path.read_text(), Loader=yaml.SafeLoader))  # noqa: S506
    naive_loads = timed(load_naive, 3)
    rows.append((f"load {args.presets} presets (parse+resolve)", f"{min(loads):.1f} ms (median {statistics.median(loads):.1f})",
                 "-", "< 100 ms", f"{statistics.median(naive_loads) / statistics.median(loads):.1f}x faster than pure-Python YAML (parse only)"))

    # memory of the preset system after listing every preset (all parsed, the LRU of resolved full)
    def memory(resolved_cache: int) -> tuple[float, int]:
        presets_module.RESOLVED_CACHE_SIZE = resolved_cache
        gc.collect()
        tracemalloc.start()
        snapshot_before = tracemalloc.take_snapshot()
        library = PresetLibrary(PresetStore(users, tables_module.load_tables().default_tier), tables)
        presets, _ = library.list_all("bench")
        count = len(presets)
        del presets
        gc.collect()
        used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snapshot_before, "filename"))
        tracemalloc.stop()
        del library
        return used, count
    default_cache = presets_module.RESOLVED_CACHE_SIZE
    used, count = memory(default_cache)
    everything, _ = memory(10 ** 9)
    presets_module.RESOLVED_CACHE_SIZE = default_cache
    rows.append((f"memory with {args.presets} presets", f"{used / 1e6:.2f} MB", "< 10 MB", "< 5 MB",
                 f"{everything / 1e6:.2f} MB if all {count} stay resolved"))

    print(f"Atelier preset benchmarks ({args.presets} presets, CSafeLoader={data_module._Loader is getattr(yaml, 'CSafeLoader', None)})")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<28} {'story':<9} {'target':<9} reference")
    for name, value, story, target, ref in rows:
        print(f"{name:<{width}}  {value:<28} {story:<9} {target:<9} {ref}")


if __name__ == "__main__":
    main()
