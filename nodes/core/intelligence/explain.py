"""The explanation that travels with a generation: why these LoRAs, why these parameters, what it was expected
to cost and (after the run) what it cost.

It is one JSON value (``EXPLANATION`` between nodes). The Save node embeds it in the PNG as the text chunk
``atelier_explanation`` (beside ComfyUI's ``prompt`` and ``workflow`` chunks) and writes it as a JSON sidecar
``<image>.atelier.json``; the record stores it under ``explanation``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..base.jsonsafe import dumps

PNG_KEY = "atelier_explanation"
SIDECAR_SUFFIX = ".atelier.json"
MODES = ("AUTO", "ASSISTED", "MANUAL")
VERSION = 1


@dataclass
class Explanation:
    mode: str
    summary: str = ""
    analysis: dict[str, Any] = field(default_factory=dict)
    loras: list[dict[str, Any]] = field(default_factory=list)  # applied: name, strength, reason, matched keys
    loras_filtered: list[dict[str, str]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_reasons: list[str] = field(default_factory=list)
    performance: dict[str, Any] = field(default_factory=dict)  # estimate, cuts, measured_s
    differences: list[str] = field(default_factory=list)  # MANUAL / edited ASSISTED: where the user differs
    warnings: list[str] = field(default_factory=list)
    accepted: dict[str, Any] = field(default_factory=dict)  # ASSISTED: what the user accepted on the canvas
    prompt_used: str = ""  # the prompt that ran (with the LoRAs' trigger words), when it differs
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Explanation:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def with_loras(self, applied: list[dict[str, Any]], filtered: list[dict[str, str]],
                   warnings: list[str], prompt_used: str = "") -> Explanation:
        data = self.to_dict()
        data.update(loras=applied, loras_filtered=filtered, warnings=[*self.warnings, *warnings],
                    prompt_used=prompt_used if prompt_used != self.analysis.get("prompt") else "")
        out = Explanation.of(data)
        out.summary = out.compose_summary()
        return out

    def with_measured(self, seconds: float) -> Explanation:
        data = self.to_dict()
        data["performance"] = {**self.performance, "measured_s": round(seconds, 3)}
        return Explanation.of(data)

    def compose_summary(self) -> str:
        p = self.parameters
        loras = ", ".join(f"{x['name']} @{x['strength']:g}" for x in self.loras) or "no LoRA"
        estimate = (self.performance.get("estimate") or {}).get("time_s", {}).get("expected")
        parts = [f"{self.mode}: {self.analysis.get('summary', '')}".strip(" :"),
                 f"{p.get('tier', '?')} tier, {p.get('steps', '?')} steps, {p.get('width', '?')}x{p.get('height', '?')}"
                 + (f", ~{estimate:.1f} s" if isinstance(estimate, (int, float)) else ""),
                 f"LoRAs: {loras}"]
        if self.performance.get("cuts"):
            parts.append("to fit the budget: " + "; ".join(self.performance["cuts"][-3:]))
        return ". ".join(parts) + "."

    def text(self) -> str:
        """What the nodes show: the summary, then one line per decision."""
        lines = [self.summary or self.compose_summary()]
        lines += [f"- {r}" for r in self.parameter_reasons]
        lines += [f"- LoRA {x['name']}: {x.get('reason', '')}" + (f" [{x['report']}]" if x.get("report") else "")
                  for x in self.loras]
        lines += [f"- not used: {x['name']}: {x['reason']}" for x in self.loras_filtered[:5]]
        lines += [f"- you chose: {d}" for d in self.differences]
        lines += [f"! {w}" for w in self.warnings]
        if "measured_s" in self.performance:
            lines.append(f"- measured: {self.performance['measured_s']:.2f} s")
        return "\n".join(lines)


def parse(value: Any) -> Explanation | None:
    """An explanation from a node input or a PNG chunk (a dict, a JSON string, or nothing)."""
    if isinstance(value, Explanation):
        return value
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return Explanation.of(value) if isinstance(value, dict) and "mode" in value else None
