"""The YAML tables in ``presets/``: tiers, model families, pipelines, use cases, priors, storyboard chaining.

Loaded once per process (``load_tables``) and validated; a broken shipped table is a bug
and fails loudly with the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..base.data import PRESETS_DIR, read_yaml
from ..base.errors import invalid
from ..base.validation import validation_error
from .schema import (
    FamiliesTable,
    PipelinesTable,
    Preset,
    TierSpec,
    UseCaseSpec,
    register_comfy_names,
)

LEVELS = (1, 2, 3, 4)


def _validated(model: Any, data: Any, source: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = validation_error(exc)
        raise RuntimeError(f"{source}: {error.message}") from exc


@dataclass(frozen=True)
class Tables:
    tiers: dict[str, Preset]
    aliases: dict[str, str]
    families: FamiliesTable
    pipelines: PipelinesTable
    use_cases: dict[str, UseCaseSpec]
    estimator: dict[str, Any]
    chaining: dict[str, Any]  # storyboard.yaml: frames per level (variations, img2img denoise, anchor, ...)
    default_tier: str     # what a new node, request or command starts from
    reference_tier: str   # what comparisons are measured against

    def tier_id(self, name: str) -> str | None:
        """Canonical built-in id for a tier name or alias (case-insensitive), else None."""
        key = name.strip().lower()
        if key in self.tiers:
            return key
        return self.aliases.get(key)

    def builtin_for_level(self, level: int) -> Preset:
        return next(p for p in self.tiers.values() if p.level == level)

    def chain_level(self, level: int) -> dict[str, Any]:
        """A level's storyboard settings (defaults, then the level's): variations, denoise, anchor, ..."""
        levels = {int(k): v for k, v in self.chaining["levels"].items()}
        if level not in levels:
            raise invalid("level", level, sorted(levels))
        return {**self.chaining["defaults"], **levels[level]}

    def family(self, name: str) -> Any:
        try:
            return self.families.families[name]
        except KeyError:
            raise invalid("model_family", name, ["auto", *self.families.families]) from None


@lru_cache(maxsize=4)
def load_tables(presets_dir: Path = PRESETS_DIR) -> Tables:
    names = read_yaml(presets_dir / "comfyui_names.yaml")
    register_comfy_names(names["samplers"], names["schedulers"])

    tiers_file = presets_dir / "tiers.yaml"
    tiers_table = read_yaml(tiers_file)
    tiers: dict[str, Preset] = {}
    aliases: dict[str, str] = {}
    for tier_id, raw in tiers_table["tiers"].items():
        spec: TierSpec = _validated(TierSpec, raw, tiers_file)
        tiers[tier_id] = Preset(id=tier_id, builtin=True, lineage=(tier_id,),
                                **spec.model_dump(exclude={"aliases"}), aliases=spec.aliases)
        for alias in spec.aliases:
            aliases[alias] = tier_id
    if sorted(t.level for t in tiers.values()) != list(LEVELS):
        raise RuntimeError(f"{tiers_file}: expected one tier per level {list(LEVELS)}")
    tiers = dict(sorted(tiers.items(), key=lambda item: item[1].level))  # draft, standard, high, ultra
    for key in ("default", "reference"):
        if tiers_table.get(key) not in tiers:
            raise RuntimeError(f"{tiers_file}: {key} must name a tier ({', '.join(tiers)})")

    families_file = presets_dir / "families.yaml"
    families: FamiliesTable = _validated(FamiliesTable, read_yaml(families_file), families_file)
    for name, fam in families.families.items():
        for level_map in (fam.samplers, fam.schedulers):
            if set(level_map) != {1, 2, 3, 4}:
                raise RuntimeError(f"{families_file}: {name} needs samplers/schedulers for levels 1-4")

    pipelines_file = presets_dir / "pipelines.yaml"
    pipelines: PipelinesTable = _validated(PipelinesTable, read_yaml(pipelines_file), pipelines_file)
    for name, pipe in pipelines.pipelines.items():
        for stage in pipe.stages:
            if stage.task_type not in pipelines.task_types:
                raise RuntimeError(f"{pipelines_file}: {name}.{stage.id} has unknown task type {stage.task_type}")

    use_file = presets_dir / "use_cases.yaml"
    use_cases = {name: _validated(UseCaseSpec, raw, use_file)
                 for name, raw in read_yaml(use_file)["use_cases"].items()}

    estimator = read_yaml(presets_dir / "estimator.yaml")
    chaining = read_yaml(presets_dir / "storyboard.yaml")
    if sorted(int(k) for k in chaining["levels"]) != list(LEVELS):
        raise RuntimeError(f"{presets_dir / 'storyboard.yaml'}: expected settings for levels {list(LEVELS)}")
    return Tables(tiers=tiers, aliases=aliases, families=families, pipelines=pipelines,
                  use_cases=use_cases, estimator=estimator, chaining=chaining, default_tier=tiers_table["default"],
                  reference_tier=tiers_table["reference"])
