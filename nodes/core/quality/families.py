"""Model-family detection: from safetensors metadata, tensor names, or the file name.

Only the safetensors header (a length and a JSON document) is read; no weights are loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.safetensors import header_or_none
from .tables import Tables, load_tables


@dataclass(frozen=True)
class Detection:
    family: str
    source: str  # "metadata", "tensors", "name", "default" or "chosen"
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return {"family": self.family, "source": self.source, "evidence": self.evidence}


def read_safetensors_header(path: str | Path) -> dict[str, Any] | None:
    """The JSON header of a .safetensors file, or None when it is not one."""
    return header_or_none(path)


def _name_tokens(name: str) -> list[str]:
    stem = Path(name).name.lower()
    stem = re.sub(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$", "", stem)
    return re.sub(r"[^a-z0-9.]+", " ", stem).split()


def _matches_name(tokens: list[str], pattern: str) -> bool:
    """Pattern words appear in order; the last may be a prefix ("flux" matches "flux1")."""
    want = re.sub(r"[^a-z0-9.]+", " ", pattern.lower()).split()
    size = len(want)
    for start in range(len(tokens) - size + 1):
        window = tokens[start:start + size]
        if window[:-1] == want[:-1] and window[-1].startswith(want[-1]):
            return True
    return False


def detect_family(checkpoint: str | None = None, header: dict[str, Any] | None = None,
                  tables: Tables | None = None) -> Detection:
    """Family of a checkpoint, by metadata first, then tensor names, then its file name."""
    tables = tables or load_tables()
    table = tables.families
    if header:
        metadata = header.get("__metadata__") or {}
        arch = str(metadata.get("modelspec.architecture", "")).lower()
        if arch:
            for name, fam in table.families.items():
                if any(arch == a or arch.startswith(a + "/") for a in fam.match.architectures):
                    return Detection(name, "metadata", f"modelspec.architecture={arch}")
        keys = [k for k in header if k != "__metadata__"]
        for signature in table.tensor_signatures:
            if all(any(k.startswith(p) for k in keys) for p in signature.prefixes):
                base = signature.family
                refined = _refine_by_name(checkpoint, base, tables) if checkpoint else None
                if refined:
                    return Detection(refined, "name", f"{signature.prefixes[0]}* tensors and file name")
                return Detection(base, "tensors", f"tensor names {signature.prefixes[0]}*")
    if checkpoint:
        tokens = _name_tokens(checkpoint)
        for name, fam in table.families.items():
            for pattern in fam.match.names:
                if _matches_name(tokens, pattern):
                    return Detection(name, "name", f"{pattern!r} in {Path(checkpoint).name!r}")
    return Detection(table.default_family, "default", "no metadata or name matched")


def _refine_by_name(checkpoint: str, base: str, tables: Tables) -> str | None:
    """A distilled variant of ``base`` named in the file name (tensor layout is the same)."""
    tokens = _name_tokens(checkpoint)
    base_of = tables.families.families[base].base
    for name, fam in tables.families.families.items():
        if fam.base == base_of and name != base and fam.distilled:
            if any(_matches_name(tokens, p) for p in fam.match.names):
                return name
    return None


def detect_file(path: str | Path, tables: Tables | None = None) -> Detection:
    return detect_family(str(path), read_safetensors_header(path), tables)
