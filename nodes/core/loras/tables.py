"""``presets/loras.yaml``: how families, triggers, strengths and recommendations are read (cached by mtime)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..base.data import PRESETS_DIR, read_yaml

PATH = PRESETS_DIR / "loras.yaml"


@dataclass(frozen=True)
class Probe:
    family: str
    layout: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class LoraTables:
    raw: dict[str, Any]
    probes: tuple[Probe, ...]
    shape_patterns: tuple[re.Pattern[str], ...]

    @property
    def families(self) -> list[str]:
        return list(self.raw["families"])

    def confidence(self, source: str) -> float:
        return float(self.raw["confidence"][source])

    @property
    def recommend(self) -> dict[str, Any]:
        return dict(self.raw["recommend"])


@lru_cache(maxsize=4)
def _load(mtime_ns: int) -> LoraTables:
    raw = read_yaml(PATH)
    probes = tuple(Probe(p["family"], tuple(p.get("layout", [p["family"]])),
                         tuple(re.compile(x) for x in p["patterns"])) for p in raw["key_probes"])
    shapes = tuple(re.compile(x) for x in raw["shape_probes"]["patterns"])
    return LoraTables(raw, probes, shapes)


def lora_tables() -> LoraTables:
    return _load(PATH.stat().st_mtime_ns)
