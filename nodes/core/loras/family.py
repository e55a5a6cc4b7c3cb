"""A LoRA's family (its base architecture), with a confidence and the evidence that decided it.

The signals and their order are ``presets/loras.yaml``'s: the A1111 sidecar's "sd version", header metadata,
the other sidecars' base model, tensor names, tensor shapes, the file name. The first signal that answers
decides; every signal that answers is kept as evidence, and one that disagrees lowers the confidence. A
LoRA no signal answers for is ``unknown``: listed, never refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.safetensors import Header
from .tables import LoraTables, lora_tables

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Signal:
    source: str  # sidecar_sd_version, metadata, sidecar_base_model, keys, shapes, name
    family: str
    variant: str
    evidence: str


@dataclass(frozen=True)
class FamilyGuess:
    family: str
    variant: str  # within a family: pony, illustrious, noobai ("" when not told)
    confidence: float
    source: str
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "variant": self.variant, "confidence": round(self.confidence, 2),
                "source": self.source, "evidence": list(self.evidence)}

    @classmethod
    def of(cls, data: dict[str, Any]) -> FamilyGuess:
        return cls(str(data["family"]), str(data.get("variant", "")), float(data["confidence"]),
                   str(data["source"]), [str(e) for e in data.get("evidence", [])])


def base_model_family(name: str, tables: LoraTables) -> tuple[str, str] | None:
    """A sidecar's base model name ("SDXL 1.0", "Pony", "Flux.1 D") -> (family, variant)."""
    key = re.sub(r"\s+", " ", name.strip().lower())
    found = tables.raw["base_model_names"].get(key)
    if not found:
        return None
    return str(found[0]), str(found[1]) if len(found) > 1 else ""


def metadata_signals(metadata: dict[str, str], tables: LoraTables) -> list[Signal]:
    """modelspec.architecture, then ss_base_model_version, then ss_v2 (empty strings are missing)."""
    out: list[Signal] = []
    arch = (metadata.get("modelspec.architecture") or metadata.get("architecture") or "").strip().lower()
    if arch:
        base = arch.removesuffix("/lora").split("/")[0]
        table: dict[str, str] = tables.raw["architectures"]
        family = table.get(base) or next((f for a, f in table.items() if base.startswith(a + "-")), None)
        if family:
            out.append(Signal("metadata", family, "", f"modelspec.architecture={arch}"))
    version = (metadata.get("ss_base_model_version") or "").strip().lower()
    if version:
        family = tables.raw["base_model_versions"].get(version) or next(
            (f for p, f in tables.raw["base_model_version_prefixes"].items() if version.startswith(p)), None)
        if family:
            out.append(Signal("metadata", family, "", f"ss_base_model_version={version}"))
    if (metadata.get("ss_v2") or "").strip().lower() == "true":
        out.append(Signal("metadata", "sd2", "", "ss_v2=True"))
    return out


def key_signal(names: Iterable[str], tables: LoraTables) -> tuple[Signal, tuple[str, ...]] | None:
    """The first family whose probe matches a tensor name, and the families its layout may be."""
    names = list(names)
    for probe in tables.probes:
        for pattern in probe.patterns:
            hit = next((n for n in names if pattern.search(n)), None)
            if hit is not None:
                return Signal("keys", probe.family, "", f"tensor {hit}"), probe.layout
    return None


def shape_signal(header: Header, tables: LoraTables) -> Signal | None:
    """The text-encoder width from the input side of a cross-attention or text-encoder LoRA tensor."""
    widths: dict[int, str] = {int(k): v for k, v in tables.raw["shape_probes"]["widths"].items()}
    te1 = te2 = 0
    unet_width = 0
    unet_name = te_name = ""
    for name in header.tensors:
        if not any(p.search(name) for p in tables.shape_patterns):
            continue
        shape = header.shape(name)
        if not shape or len(shape) < 2:
            continue
        width = int(shape[1])
        if name.startswith(("lora_te2_", "text_encoder_2.")):
            te2, te_name = te2 or width, te_name or name
        elif name.startswith(("lora_te_", "lora_te1_", "text_encoder.")):
            te1, te_name = te1 or width, te_name or name
        elif not unet_width:
            unet_width, unet_name = width, name
    if unet_width in widths:
        return Signal("shapes", widths[unet_width], "", f"cross-attention width {unet_width} ({unet_name})")
    total = te1 + te2
    if total in widths:
        return Signal("shapes", widths[total], "", f"text-encoder width {total} ({te_name})")
    return None


def name_signal(file_name: str, families_by_name: dict[str, str]) -> Signal | None:
    """A checkpoint-family word in the file name (families.yaml's patterns), mapped to its base."""
    tokens = re.sub(r"[^a-z0-9.]+", " ", Path(file_name).stem.lower()).split()
    for pattern, family in families_by_name.items():
        want = pattern.split()
        for i in range(len(tokens) - len(want) + 1):
            if tokens[i:i + len(want)] == want or (len(want) == 1 and tokens[i].startswith(want[0])
                                                      and len(want[0]) >= 4):
                return Signal("name", family, "", f"{pattern!r} in the file name")
    return None


def detect(header: Header | None, file_name: str, sidecar: dict[str, Any], families_by_name: dict[str, str],
           override: str | None = None, tables: LoraTables | None = None) -> FamilyGuess:
    """The family of a LoRA from every signal, in ``loras.yaml``'s order."""
    tables = tables or lora_tables()
    signals: list[Signal] = []
    sd_version = str(sidecar.get("sd_version") or "").strip()
    if sd_version and sd_version.lower() != "unknown":
        found = base_model_family(sd_version, tables)
        if found:
            signals.append(Signal("sidecar_sd_version", found[0], found[1], f"A1111 sidecar sd version={sd_version}"))
    metadata = header.metadata if header else {}
    signals += metadata_signals(metadata, tables)
    for key, label in (("civitai_base_model", "Civitai baseModel"), ("manager_base_model", "Lora-Manager base_model")):
        value = str(sidecar.get(key) or "").strip()
        found = base_model_family(value, tables) if value else None
        if found:
            signals.append(Signal("sidecar_base_model", found[0], found[1], f"{label}={value}"))
    layout: tuple[str, ...] = ()
    if header is not None:
        keyed = key_signal(header.tensors, tables)
        if keyed:
            signals.append(keyed[0])
            layout = keyed[1]
        shaped = shape_signal(header, tables)
        if shaped:
            signals.append(shaped)
    named = name_signal(file_name, families_by_name)
    if named:
        signals.append(named)
    return decide(signals, layout, override, tables)


def decide(signals: list[Signal], layout: tuple[str, ...], override: str | None, tables: LoraTables) -> FamilyGuess:
    evidence = [f"{s.source}: {s.evidence} -> {s.family}" for s in signals]
    variant = next((s.variant for s in signals if s.variant), "")
    if override:
        return FamilyGuess(override, variant, tables.confidence("override"), "override",
                           [f"override: set by the user -> {override}", *evidence])
    if not signals:
        return FamilyGuess(UNKNOWN, "", tables.confidence("unknown"), "unknown",
                           ["no metadata, sidecar, known tensor name or shape, or file name told the family"])
    first = signals[0]
    family, source = first.family, first.source
    confidence = tables.confidence(source)
    shapes = next((s for s in signals if s.source == "shapes"), None)
    if source == "keys" and len(layout) > 1:  # the SD1/SD2 layout: the width decides
        family = shapes.family if shapes and shapes.family in layout else layout[0]
        confidence = tables.confidence("keys_and_shapes" if shapes and shapes.family in layout else "keys") * (
            1.0 if shapes else 0.9)
    elif source == "keys" and shapes and shapes.family == family:
        confidence = tables.confidence("keys_and_shapes")
    physical = [s for s in signals if s.source in ("keys", "shapes")]
    if source not in ("keys", "shapes") and physical and all(s.family != family for s in physical):
        if not (len(layout) > 1 and family in layout):
            confidence -= tables.confidence("disagreement_penalty")
            evidence.append(f"disagreement: the tensors say {physical[0].family}, the {source} says {family}")
    return FamilyGuess(family, variant, max(0.0, confidence), source, evidence)


def compatible(lora_family: str, checkpoint_base: str) -> bool:
    return lora_family == checkpoint_base
