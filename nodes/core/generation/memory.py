"""Choosing how a diffusers model sits in accelerator memory under ``max_vram_gb``, from the estimate.

The estimate's VRAM (``estimator.yaml``: resident weights + activations at the planned size) is compared with
the budget; each strategy keeps a documented share of it resident (``presets/diffusers.yaml`` ``memory``):
none (everything on the device), model CPU offload (one component at a time), group offload (groups of
layers streamed), sequential offload (one layer at a time: the least memory, the slowest). The first
strategy whose share fits is chosen; none fits: sequential, with a warning. On a CPU there is no accelerator
memory to manage: the choice is recorded as what would run, and ``none`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STRATEGIES = ("none", "model_cpu_offload", "group_offload", "sequential_cpu_offload")


@dataclass(frozen=True)
class MemoryChoice:
    strategy: str  # what runs
    chosen: str  # what the budget asked for (differs from strategy on a CPU)
    reason: str


def choose(estimate_gb: float, budget_gb: float | None, shares: dict[str, float], accelerator: bool) -> MemoryChoice:
    if budget_gb is None:
        chosen, why = "none", "no VRAM limit"
    else:
        chosen = next((s for s in STRATEGIES if estimate_gb * float(shares[s]) <= budget_gb), STRATEGIES[-1])
        need = estimate_gb * float(shares[chosen])
        why = (f"~{estimate_gb:.1f} GB estimated, {budget_gb:g} GB allowed: {chosen.replace('_', ' ')} keeps "
               f"~{need:.1f} GB resident")
        if need > budget_gb:
            why += " (still over: the least memory Atelier can do)"
    if not accelerator:
        return MemoryChoice("none", chosen, f"{why}; on the CPU nothing is offloaded")
    return MemoryChoice(chosen, chosen, why)


def describe(choice: MemoryChoice) -> dict[str, Any]:
    return {"strategy": choice.strategy, "chosen": choice.chosen, "reason": choice.reason}
