"""Tier recommendations by use case, and side-by-side comparison of presets.

Trade-offs are computed from the applied parameters and estimates of each preset on the
same template, so they stay true when tables or calibration change.
"""

from __future__ import annotations

import re
from typing import Any

from ..base.errors import invalid
from .apply import Applied, FunctionTemplate, apply_preset
from .estimate import Estimate, Estimator
from .schema import Preset
from .tables import Tables


def _ratio(value: float, reference: float) -> float:
    return round(value / reference, 2) if reference else 0.0


def differences(applied: dict[str, Any], reference: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Parameters whose value differs from the reference's: {name: {"value", "reference"}}."""
    return {k: {"value": v, "reference": reference.get(k)} for k, v in applied.items() if reference.get(k) != v}


def trade_off(estimate: Estimate, reference: Estimate, params: dict[str, Any],
              reference_params: dict[str, Any], reference_tier: str) -> dict[str, Any]:
    changed = differences(params, reference_params)
    time_ratio = _ratio(estimate.time_expected_s, reference.time_expected_s)
    vram_delta = round(estimate.vram_gb - reference.vram_gb, 2)
    notes = [f"{time_ratio}x the time of {reference_tier}"]
    if vram_delta:
        notes.append(f"{vram_delta:+.1f} GB VRAM")
    for key in ("steps", "sampler_name", "width", "hires_enabled", "refinement"):
        if key in changed:
            notes.append(f"{key} {changed[key]['reference']} -> {changed[key]['value']}")
    return {"time_ratio": time_ratio, "cost_ratio": _ratio(estimate.cost_usd, reference.cost_usd),
            "vram_delta_gb": vram_delta, "changed": changed, "summary": "; ".join(notes)}


def evaluate(presets: list[Preset], template: FunctionTemplate, tables: Tables,
             estimator: Estimator) -> list[tuple[Preset, Applied, Estimate]]:
    out = []
    for preset in presets:
        applied = apply_preset(preset, template, tables)
        out.append((preset, applied, estimator.estimate(template.category, applied.params, applied.family.family)))
    return out


def compare(presets: list[Preset], template: FunctionTemplate, tables: Tables,
            estimator: Estimator) -> dict[str, Any]:
    """Each preset's parameters and estimate side by side, with its trade-off against the reference tier
    (``vs_standard``: the reference is the table's, standard as shipped)."""
    reference = tables.reference_tier
    rows = evaluate([tables.tiers[reference], *presets], template, tables, estimator)
    _, ref_applied, ref_estimate = rows[0]
    columns: list[dict[str, Any]] = []
    for preset, applied, estimate in rows[1:]:
        columns.append({"preset": preset.summary(), "family": applied.family.to_dict(),
                        "parameters": applied.params, "estimate": estimate.to_dict(),
                        "multipliers": preset.multipliers.model_dump(),
                        "vs_standard": trade_off(estimate, ref_estimate, applied.params, ref_applied.params,
                                                 reference),
                        "warnings": applied.warnings})
    keys = list(rows[0][1].params)
    varying = [k for k in keys if len({repr(c["parameters"].get(k)) for c in columns}) > 1]
    return {"template": template.model_dump(), "reference": reference, "presets": columns,
            "differing_parameters": varying}


MATCH_CONFIDENCE = (0.6, 0.75, 0.85)  # a known use case's confidence times this, for 1, 2, 3+ matched words
UNMATCHED_CONFIDENCE = 0.3
MAX_USE_CASE = 200


def match_use_case(text: str, tables: Tables) -> tuple[str | None, list[str], float]:
    """(use case, the words that matched, confidence factor) for free text: a known use case's name is itself
    (factor 1); otherwise the use case sharing the most of its ``words`` (whole words or phrases) with the text,
    ties to the earlier one in ``use_cases.yaml``; none shared: (None, [], 0)."""
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    if key in tables.use_cases:
        return key, [], 1.0
    lowered = " ".join(re.findall(r"[a-z0-9]+", text.lower()))
    best: tuple[str | None, list[str]] = (None, [])
    for name, spec in tables.use_cases.items():
        hits = [w for w in (name.replace("_", " "), *spec.words) if re.search(rf"\b{re.escape(w.lower())}\b", lowered)]
        if len(hits) > len(best[1]):
            best = (name, hits)
    if best[0] is None:
        return None, [], 0.0
    return best[0], best[1], MATCH_CONFIDENCE[min(len(best[1]), 3) - 1]


LEARNED_CONFIDENCE = 0.8


def recommend(use_case: str, template: FunctionTemplate, tables: Tables, estimator: Estimator,
              learned: tuple[str, str] | None = None) -> dict[str, Any]:
    """A tier for a use case: one of ``use_cases.yaml``, or any text, mapped by ``match_use_case`` (a lower
    confidence and the words that matched; nothing matched: the reference tier, said so). ``learned``: the tier
    the user's own runs for this use case settled on, and why; it wins, at ``LEARNED_CONFIDENCE``."""
    if not isinstance(use_case, str) or not 0 < len(use_case.strip()) <= MAX_USE_CASE:
        raise invalid("use_case", use_case, f"a use case ({', '.join(tables.use_cases)}) or any text of 1-"
                                            f"{MAX_USE_CASE} characters")
    name, words, factor = match_use_case(use_case, tables)
    if name is None:
        reference = tables.reference_tier
        spec = tables.use_cases.get(next((n for n, u in tables.use_cases.items() if u.tier == reference), ""))
        from .schema import UseCaseSpec

        spec = UseCaseSpec(tier=reference, confidence=UNMATCHED_CONFIDENCE,
                           why=f"'{use_case.strip()}' names none of the known use cases "
                               f"({', '.join(tables.use_cases)}); {reference}, the reference tier, balances time "
                               "and quality", alternatives=spec.alternatives if spec else ())
        confidence, reasoning, matched = spec.confidence, spec.why, None
    else:
        spec = tables.use_cases[name]
        confidence = round(spec.confidence * factor, 3)
        reasoning = spec.why if factor == 1.0 else (
            f"'{use_case.strip()}' read as {name.replace('_', ' ')} (matched {', '.join(repr(w) for w in words)}): "
            f"{spec.why}")
        matched = name
    if learned is not None and learned[0] in tables.tiers and learned[0] != spec.tier:
        from .schema import UseCaseSpec

        others = tuple(dict.fromkeys(t for t in (spec.tier, *spec.alternatives) if t != learned[0]))
        reasoning = f"learned: {learned[1]} (recommended {spec.tier}: {reasoning})"
        confidence = max(confidence, LEARNED_CONFIDENCE)
        spec = UseCaseSpec(tier=learned[0], confidence=confidence, why=reasoning, alternatives=others)
    chosen = tables.tiers[spec.tier]
    reference = tables.reference_tier
    rows = evaluate([tables.tiers[reference], chosen,
                     *(tables.tiers[a] for a in spec.alternatives)], template, tables, estimator)
    _, ref_applied, ref_estimate = rows[0]
    _, applied, estimate = rows[1]
    alternatives = []
    for preset, alt_applied, alt_estimate in rows[2:]:
        direction = "faster" if alt_estimate.time_expected_s < estimate.time_expected_s else "higher quality"
        alternatives.append({
            "tier": preset.id, "direction": direction,
            "time_ratio_vs_recommended": _ratio(alt_estimate.time_expected_s, estimate.time_expected_s),
            "estimate": alt_estimate.to_dict(),
            "vs_standard": trade_off(alt_estimate, ref_estimate, alt_applied.params, ref_applied.params, reference)})
    return {"use_case": use_case, "matched_use_case": matched, "matched_words": words, "tier": chosen.id,
            "learned": learned is not None and chosen.id == learned[0],
            "confidence": confidence, "reasoning": reasoning, "parameters": applied.params,
            "estimate": estimate.to_dict(),
            "trade_offs": trade_off(estimate, ref_estimate, applied.params, ref_applied.params, reference),
            "alternatives": alternatives}
