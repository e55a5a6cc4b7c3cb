"""A quality plan in words, the same wherever it shows: the Quality Preset node and the tier picker's plan."""

from __future__ import annotations

from typing import Any


def summary_text(display_name: str, level: int, family: dict[str, str], p: dict[str, Any], e: dict[str, Any],
                 warnings: list[str]) -> str:
    """A plan in words: preset and family; sampling and size; time, VRAM and cost; warnings."""
    hires = f" -> hires {p['hires_width']}x{p['hires_height']} ({p['hires_steps']} steps)" if p["hires_enabled"] else ""
    if p.get("refinement"):
        hires += f" -> refine ({p['refine_steps']} steps)"
    lines = [
        f"{display_name} (level {level}) on {family['family']} [{family['source']}]",
        f"{p['steps']} steps, cfg {p['cfg']}, {p['sampler_name']}/{p['scheduler']}, "
        f"{p['width']}x{p['height']} x{p['batch_size']}{hires}",
        f"~{e['time_s']['expected']:.1f}s ({e['time_s']['min']:.1f}-{e['time_s']['max']:.1f}), "
        f"{e['vram_gb']:.1f} GB VRAM, ${e['cost_usd']:.4f}" + (" [calibrated]" if e["calibrated"] else " [prior]"),
    ]
    lines.extend(f"warning: {w}" for w in warnings)
    return "\n".join(lines)
