"""Regression fixtures: each is a generation config and what Atelier made of it, its canonical parameters and
their reproducibility hash. ``run`` recomputes every fixture of a folder with the shipped tables (built-in tiers,
families, pipelines, optimiser rules; nothing of a user's presets or calibration), and reports what changed as a
readable diff of key paths; ``update`` writes the new expectations.

A fixture is a YAML (or JSON) file:

    kind: preset          # preset | optimise | pipeline | generation
    config: {...}         # what the kind takes (below)
    expected: {parameters: {...}, hash: <sha256>}   # written by ``atelier regress --update``

- ``preset``: ``{preset, template}``: the Quality Preset's parameters for a function template (as
  ``POST /atelier/presets/{id}/apply``; the estimate and wording are not part of it).
- ``optimise``: ``{prompt, family, constraints, width, height, batch_size}``: the tier, parameters and cuts the
  optimiser chooses for a prompt under constraints (Smart Plan, ``POST /atelier/intelligence/optimize``).
- ``pipeline``: ``{name, run}``: the ComfyUI graph a pipeline compiles to at a tier.
- ``generation``: ``{parameters, prompt}``: a record's hashed parameters (the hash a record gets).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..base.data import PRESETS_DIR, parse_yaml
from ..base.diffs import key_diff
from ..base.errors import AtelierError, invalid
from ..base.files import atomic_write_text
from ..intelligence.analysis import analyse
from ..intelligence.optimise import Constraints, optimise
from ..quality.service import QualityService
from ..quality.tables import load_tables
from ..records.hashing import canonical, repro_hash
from ..storyboard.pipelines import PipelineRun, compile_pipeline, plan_run

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FIXTURES = 500
MAX_DIFF_LINES = 200


def _preset(service: QualityService, config: dict[str, Any]) -> Any:
    return service.apply("default", str(config["preset"]), config["template"])


def _optimise(service: QualityService, config: dict[str, Any]) -> Any:
    chosen = optimise(service, "default", str(config["family"]), Constraints.parse(config.get("constraints")),
                      analyse(str(config.get("prompt", ""))), int(config.get("width", 0)),
                      int(config.get("height", 0)), int(config.get("batch_size", 1)))
    return {"tier": chosen.tier, "parameters": chosen.params, "cuts": chosen.cuts}


def _pipeline(service: QualityService, config: dict[str, Any]) -> Any:
    run = PipelineRun.parse(config["run"])
    plan = plan_run(str(config["name"]), run, service.tier("default", run.tier), service.tables, service.estimator)
    return compile_pipeline(run, plan)


def _generation(service: QualityService, config: dict[str, Any]) -> Any:
    return {**dict(config.get("parameters") or {}), "prompt": str(config.get("prompt", ""))}


KINDS: dict[str, Callable[[QualityService, dict[str, Any]], Any]] = {
    "preset": _preset, "optimise": _optimise, "pipeline": _pipeline, "generation": _generation}


def compute(service: QualityService, kind: str, config: Any) -> dict[str, Any]:
    """A config's canonical parameters and hash, as Atelier makes them now."""
    if kind not in KINDS:
        raise invalid("kind", kind, sorted(KINDS))
    if not isinstance(config, dict):
        raise invalid("config", type(config).__name__, "a mapping")
    made = KINDS[kind](service, config)
    return {"parameters": canonical(made), "hash": repro_hash(made if isinstance(made, dict) else {"value": made})}


@dataclass
class Outcome:
    name: str
    status: str  # same, changed, new (no expectation yet), updated, error
    diff: list[str] = field(default_factory=list)
    hash_before: str | None = None
    hash_now: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "diff": self.diff, "hash_before": self.hash_before,
                "hash_now": self.hash_now, "error": self.error}


def fixtures(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise invalid("fixtures", folder.name, "a folder of regression fixtures (YAML or JSON)", "no such folder")
    found = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if len(found) > MAX_FIXTURES:
        raise invalid("fixtures", len(found), f"at most {MAX_FIXTURES} fixtures in a folder")
    return found


def check(path: Path, service: QualityService, update: bool) -> Outcome:
    """One fixture recomputed: same, changed (with its diff), new; with ``update`` its expectation rewritten."""
    try:
        source = path.read_text()
        data = parse_yaml(source)
        if not isinstance(data, dict) or "kind" not in data or "config" not in data:
            raise invalid("fixture", path.name, "a mapping with kind, config and (once updated) expected")
        now = compute(service, str(data["kind"]), data["config"])
    except (AtelierError, KeyError, ValueError, TypeError, OSError, yaml.YAMLError) as exc:
        return Outcome(path.stem, "error", error=getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
    expected = data.get("expected") or {}
    before = expected.get("hash")
    lines = key_diff(expected.get("parameters"), now["parameters"], limit=MAX_DIFF_LINES) if expected else []
    status = "new" if not expected else ("same" if before == now["hash"] and not lines else "changed")
    if update and status != "same":
        data["expected"] = now
        header = "".join(itertools.takewhile(lambda line: line.startswith("#"), source.splitlines(keepends=True)))
        text = (json.dumps(data, indent=2, sort_keys=False) + "\n" if path.suffix == ".json"
                else header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110))
        atomic_write_text(path, text)
        status = "updated"
    return Outcome(path.stem, status, lines, before, now["hash"])


def run(folder: Path, update: bool = False, presets_dir: Path = PRESETS_DIR) -> list[Outcome]:
    """Every fixture of ``folder``, recomputed with the tables of ``presets_dir`` (the shipped ones by default;
    a fresh, empty preset and calibration store, so a user's own presets and measured runs never move the
    expectations)."""
    paths = fixtures(folder)
    tables = load_tables(presets_dir)
    with tempfile.TemporaryDirectory(prefix="atelier-regress-") as tmp:
        service = QualityService(Path(tmp) / "users", Path(tmp) / "data", tables=tables)
        return [check(p, service, update) for p in paths]
