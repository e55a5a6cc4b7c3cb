"""Prompt-enhancement latency: the rule backend's loop, and the loop's own overhead around a backend.

    python bench/bench_enhance.py [--rounds 500]

- rule loop: p50/p99 per iteration over varied prompts (target < 5 ms per iteration), no cache.
- overhead: the same loop around an instant backend (writer and critic return at once), so what is
  measured is the loop itself (tracing, fallbacks bookkeeping, negative prompt), against the bare
  backend calls measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from atelier.nodes.core.enhance.loop import Backends, Enhancer, EnhanceRequest
from atelier.nodes.core.enhance.rules import Critique
from stats import pct

PROMPTS = [
    "a red fox in the snow", "Here is the prompt: a castle, a castle, (dragon:2.5), day, night, ((sunset",
    "portrait of an old fisherman", "a lighthouse on a cliff at dusk, oil painting",
    "cyberpunk street market at night, neon, rain, crowded, highly detailed, cinematic, wide shot",
]
FAMILIES = ["sd15", "sdxl", "flux_dev", "sd3"]



async def rule_loop(rounds: int) -> tuple[list[float], list[float]]:
    per_iteration, totals = [], []
    for i in range(rounds):
        request = EnhanceRequest(prompt=PROMPTS[i % len(PROMPTS)], model_family=FAMILIES[i % len(FAMILIES)],
                                 seed=i, threshold=100, iterations=4)
        enhancer = Enhancer()  # no cache between rounds
        start = time.perf_counter()
        result = await enhancer.run(request)
        elapsed = (time.perf_counter() - start) * 1000
        totals.append(elapsed)
        per_iteration.append(elapsed / max(1, result.iterations))
    return per_iteration, totals


async def overhead(rounds: int) -> tuple[float, float]:
    async def writer(prompt, critique, request, style):  # noqa: ANN001, ANN202
        return prompt + ", more"

    async def critic(prompt, request, style):  # noqa: ANN001, ANN202
        return Critique(10.0)

    backends = Backends(writers={"rule": writer}, critics={"rule": critic})
    loop_ms, bare_ms = [], []
    for i in range(rounds):
        request = EnhanceRequest(prompt=f"a fox {i}", iterations=4)
        start = time.perf_counter()
        await Enhancer(backends).run(request)
        loop_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        text = request.prompt
        await critic(text, request, None)
        for _ in range(4):
            text = await writer(text, None, request, None)
            await critic(text, request, None)
        bare_ms.append((time.perf_counter() - start) * 1000)
    return statistics.median(loop_ms), statistics.median(bare_ms)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    per_iteration, totals = asyncio.run(rule_loop(args.rounds))
    print(f"rule backend, {args.rounds} loops over {len(PROMPTS)} prompts x {len(FAMILIES)} families (no cache)")
    print(f"  per iteration: p50 {statistics.median(per_iteration):.3f} ms, p99 {pct(per_iteration, 0.99):.3f} ms"
          f"  (target < 5 ms)")
    print(f"  whole loop:    p50 {statistics.median(totals):.3f} ms, p99 {pct(totals, 0.99):.3f} ms")
    loop, bare = asyncio.run(overhead(args.rounds))
    print(f"loop overhead around an instant backend (4 iterations): loop {loop:.3f} ms vs bare backend calls "
          f"{bare:.3f} ms -> overhead {loop - bare:.3f} ms per enhancement ({(loop - bare) / 4:.3f} ms per iteration)")


if __name__ == "__main__":
    main()
