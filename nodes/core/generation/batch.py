"""Batch strategies: the images of a batch as backend jobs, ordered to switch as little as possible.

- SEED_VARIATION: the same parameters and LoRAs, seeds ``base + i`` (or random seeds, recorded).
- PARAM_VARIATION: the caller's ``param_grid``, else ``generation.yaml`` ``batch.param_grid`` (step factors and
  cfg offsets around the plan), one seed for all (more images than variations: the next round, the next seed).
- LORA_VARIATION: every recommended LoRA, each alone, none, then all at ``lora_strength_factors``; one seed (the
  next round, the next seed).

Jobs are sorted by LoRA set, then parameters, then seed (the model is one per pipeline), so LoRAs are loaded
once per set and a backend's cache of the last parameters holds. With ``parallel_generation`` the seeds of one
LoRA set and parameter set become one batched job.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from .backend import Job
from .tables import generation_tables
from .types import BatchConfig, GenerationParams, LoRAChoice, VariationStrategy

SEED_LIMIT = 2**63


def random_seed() -> int:
    return random.SystemRandom().randrange(SEED_LIMIT)


def seeds_for(config: BatchConfig, count: int) -> list[int]:
    base = config.base_seed if config.base_seed is not None else random_seed()
    if VariationStrategy(config.variation_strategy) is VariationStrategy.SEED_VARIATION:
        if config.base_seed is None:
            return [base, *(random_seed() for _ in range(count - 1))]
        return [(base + i) % SEED_LIMIT for i in range(count)]
    return [base] * count


def param_variants(params: GenerationParams, config: BatchConfig, count: int) -> list[GenerationParams]:
    if config.param_grid:
        grid = config.param_grid
        out = []
        for i in range(count):
            edit = grid[i % len(grid)]
            out.append(replace(params, **edit).follow_size(params).validate())
        return out
    offsets = generation_tables()["batch"]["param_grid"]
    out = []
    for i in range(count):
        offset = offsets[i % len(offsets)]
        steps = max(1, round(params.num_steps * float(offset["steps"])))
        cfg = max(1.0, round(params.guidance_scale + float(offset["cfg"]), 2))
        out.append(replace(params, num_steps=steps, guidance_scale=cfg))
    return out


def lora_variants(loras: list[LoRAChoice], count: int) -> list[list[LoRAChoice]]:
    factors = [float(f) for f in generation_tables()["batch"]["lora_strength_factors"]]
    options: list[list[LoRAChoice]] = [list(loras)]
    if len(loras) > 1:
        options += [[x] for x in loras]
    options.append([])
    options += [[replace(x, strength=round(x.strength * f, 3)) for x in loras] for f in factors if loras]
    return [options[i % len(options)] for i in range(count)]


def _lora_key(loras: list[LoRAChoice]) -> tuple[Any, ...]:
    return tuple(sorted((x.name, x.strength) for x in loras))


def _param_key(params: GenerationParams) -> tuple[Any, ...]:
    return (params.width, params.height, params.sampler, params.scheduler, params.num_steps, params.guidance_scale)


def plan_jobs(prompt: str, negative: str, params: GenerationParams, loras: list[LoRAChoice], config: BatchConfig,
              memory_strategy: str = "none", max_batch: int | None = None) -> tuple[list[Job], list[int]]:
    """(jobs in the order they run, the image index each seed of each job produces, in the same order).
    ``max_batch``: at most this many seeds in one batched call (what fits the VRAM budget)."""
    count = config.num_images
    seeds = seeds_for(config, count)
    every_params = [params] * count
    every_loras = [list(loras)] * count
    strategy = VariationStrategy(config.variation_strategy)
    cycle = count
    if strategy is VariationStrategy.PARAM_VARIATION:
        every_params = param_variants(params, config, count)
        cycle = len(config.param_grid or generation_tables()["batch"]["param_grid"])
    elif strategy is VariationStrategy.LORA_VARIATION:
        every_loras = lora_variants(loras, count)
        cycle = len({_lora_key(x) for x in every_loras})
    if strategy is not VariationStrategy.SEED_VARIATION:  # the next round of the same variations: the next seed
        seeds = [(s + i // max(1, cycle)) % SEED_LIMIT for i, s in enumerate(seeds)]
    order = sorted(range(count), key=lambda i: (_lora_key(every_loras[i]), _param_key(every_params[i]), seeds[i], i))
    jobs: list[Job] = []
    produced: list[int] = []
    for i in order:
        last = jobs[-1] if jobs else None
        same = (last is not None and config.parallel_generation and last.params == every_params[i]
                and _lora_key(last.loras) == _lora_key(every_loras[i])
                and (max_batch is None or len(last.seeds) < max_batch))
        if same and last is not None:
            last.seeds.append(seeds[i])
            last.batched = True
        else:
            jobs.append(Job(prompt, negative, every_params[i], every_loras[i], [seeds[i]], memory_strategy))
        produced.append(i)
    return jobs, produced
