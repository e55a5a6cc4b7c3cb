""""Why this image": one card that gathers, from a generation record, every decision that shaped its images —
the plan (tier and parameters, with their reasons), the LoRAs (why, at what strength, how many modules matched,
which were left out), the prompt as given against the prompt that ran (enhancement and trigger words as a word
diff), the variations' scores and ranks (which one was chosen), the content-rating clamp of the social
context, and the reproducibility hash with the identical earlier runs.

Every section is optional: a record made by Record Generation has a graph and maybe a plan, scores and a social
context; one made by Save With Explanation has the explanation. A section that the record cannot tell is left
out, never invented.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from .record import GenerationRecord

ENHANCE_NODE = "AtelierPromptEnhance"
WORD = re.compile(r"[^\s,]+")
MAX_VARIATIONS = 64
PLAN_KEYS = ("checkpoint", "tier", "family", "steps", "cfg", "sampler", "scheduler", "width", "height", "batch_size",
             "hires_enabled", "hires_scale", "hires_steps", "hires_denoise", "refinement", "refine_steps")


def why(record: GenerationRecord, identical: list[str]) -> dict[str, Any]:
    """The card for ``record``; ``identical`` are the ids of the user's earlier records with its hash."""
    parameters = _dict(record.parameters)
    explanation = _dict(parameters.get("explanation"))
    card: dict[str, Any] = {"id": record.id, "status": record.status, "operation_type": record.operation_type,
                            "hash": {"repro_hash": record.repro_hash, "identical_earlier": identical[:20],
                                     "identical_count": len(identical)}}
    if explanation.get("summary"):
        card["summary"] = str(explanation["summary"])
    plan = _plan(parameters, explanation)
    if plan:
        card["plan"] = plan
    loras = _loras(explanation)
    if loras:
        card["loras"] = loras
    prompt = _prompt(record, parameters, explanation)
    if prompt:
        card["prompt"] = prompt
    variations = _variations(_dict(record.scores))
    if variations:
        card["variations"] = variations
    rating = _rating(parameters.get("social"))
    if rating:
        card["rating"] = rating
    images = parameters.get("images")
    if isinstance(images, list):
        card["images"] = [str(i) for i in images[:MAX_VARIATIONS]]
    return card


def _plan(parameters: dict[str, Any], explanation: dict[str, Any]) -> dict[str, Any] | None:
    """From the explanation (Smart Plan), else the Quality Preset's plan the record kept."""
    if isinstance(explanation.get("parameters"), dict) and explanation["parameters"]:
        values = explanation["parameters"]
        performance = _dict(explanation.get("performance"))
        out: dict[str, Any] = {"source": "Smart Plan", "mode": explanation.get("mode"),
                               "parameters": {k: values[k] for k in PLAN_KEYS if k in values},
                               "reasons": [str(r) for r in _list(explanation.get("parameter_reasons"))][:20],
                               "cuts": [str(c) for c in _list(performance.get("cuts"))][:20],
                               "differences": [str(d) for d in _list(explanation.get("differences"))][:20]}
        expected = _dict(_dict(performance.get("estimate")).get("time_s")).get("expected")
        if _number(expected):
            out["estimated_s"] = expected
        if _number(performance.get("measured_s")):
            out["measured_s"] = performance["measured_s"]
        return out
    quality = parameters.get("quality")
    if isinstance(quality, dict) and isinstance(quality.get("params"), dict):
        values = {"tier": quality.get("preset"), "family": quality.get("family"), **quality["params"]}
        return {"source": "Quality Preset", "parameters": {k: values[k] for k in PLAN_KEYS if k in values},
                "reasons": [], "cuts": [], "differences": []}
    plan = parameters.get("plan")
    if isinstance(plan, dict) and isinstance(plan.get("stages"), list):  # a pipeline run: its stages
        return {"source": "pipeline", "parameters": {"tier": plan.get("tier"), "family": plan.get("family")},
                "stages": [{"id": str(s.get("id")), "runs": s.get("runs"),
                            "passes": [str(p) for p in _list(s.get("passes"))][:8],
                            "expected_s": s.get("expected_s") if _number(s.get("expected_s")) else None}
                           for s in plan["stages"][:20] if isinstance(s, dict)],
                "reasons": [], "cuts": [], "differences": []}
    return None


def _loras(explanation: dict[str, Any]) -> dict[str, Any] | None:
    used = [x for x in _list(explanation.get("loras")) if isinstance(x, dict)]
    filtered = [x for x in _list(explanation.get("loras_filtered")) if isinstance(x, dict)]
    if not used and not filtered:
        return None
    keep = ("name", "title", "strength", "reason", "family", "triggers", "matched", "modules", "report", "warning")
    return {"used": [{k: x[k] for k in keep if k in x} for x in used[:8]],
            "left_out": [{"name": str(x.get("name", "")), "reason": str(x.get("reason", ""))} for x in filtered[:20]]}


def _prompt(record: GenerationRecord, parameters: dict[str, Any],
            explanation: dict[str, Any]) -> dict[str, Any] | None:
    """The prompt as given and as it ran: the Prompt Enhance node's input against the recorded prompt, or the
    analysed prompt against the one with the LoRAs' trigger words."""
    given, used, by = None, None, ""
    graph = _dict(parameters.get("graph"))
    for node in graph.values():
        if isinstance(node, dict) and node.get("class_type") == ENHANCE_NODE:
            original = _dict(node.get("inputs")).get("prompt")
            if isinstance(original, str) and original.strip():
                given, used, by = original, record.prompt_text, "Prompt Enhance"
                break
    if given is None and explanation:
        analysed = _dict(explanation.get("analysis")).get("prompt")
        if isinstance(analysed, str) and analysed:
            given, used, by = analysed, str(explanation.get("prompt_used") or analysed), "LoRA trigger words"
    if given is None or not used:
        return None
    added, removed = _word_diff(given, used)
    return {"given": given, "used": used, "changed_by": by if given != used else "", "added": added,
            "removed": removed}


def _word_diff(before: str, after: str) -> tuple[list[str], list[str]]:
    a, b = WORD.findall(before), WORD.findall(after)
    added: list[str] = []
    removed: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            removed.append(" ".join(a[i1:i2]))
        if op in ("replace", "insert"):
            added.append(" ".join(b[j1:j2]))
    return added[:50], removed[:50]


def _variations(scores: dict[str, Any]) -> dict[str, Any] | None:
    overall = scores.get("overall")
    if not isinstance(overall, list) or not overall:
        return None
    values: list[float | None] = [float(v) if _number(v) else None for v in overall[:MAX_VARIATIONS]]
    known = {i: v for i, v in enumerate(values) if v is not None}
    order = sorted(known, key=lambda i: (-known[i], i))
    ranks = {i: r + 1 for r, i in enumerate(order)}
    metrics = _dict(scores.get("metrics"))
    rows = []
    for i, value in enumerate(values):
        per = {name: m[i] for name, m in metrics.items() if isinstance(m, list) and i < len(m) and _number(m[i])}
        rows.append({"index": i, "overall": value, "rank": ranks.get(i), "metrics": per})
    return {"count": len(values), "chosen": order[0] if order else None, "items": rows,
            "weights": _dict(scores.get("weights"))}


def _rating(social: Any) -> dict[str, Any] | None:
    """The social context's ceiling (the band's rating, lowered by the world's or the user's maximum) and the
    rating asked for against the one applied."""
    if not isinstance(social, dict) or not social.get("rating"):
        return None
    ceiling = social.get("rating")
    requested = social.get("requested_rating")
    applied = social.get("allowed_rating") or ceiling
    clamped_by = [str(c) for c in _list(social.get("clamped_by"))]
    return {"world": social.get("world_id"), "npc": social.get("npc_id"), "tier": social.get("tier"),
            "band": social.get("band"), "band_rating": social.get("band_rating") or ceiling, "ceiling": ceiling,
            "clamped_by": clamped_by, "requested": requested, "applied": applied,
            "clamped": bool(clamped_by) or (requested is not None and requested != applied)}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
