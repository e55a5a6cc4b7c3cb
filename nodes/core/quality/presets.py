"""The preset library: built-in tiers plus each user's custom presets, with inheritance.

A custom preset ``extends`` a built-in or another custom preset (any depth). Resolution
walks the chain to its built-in root and merges each function type's overrides on top,
root first; cycles and unknown parents are errors. Built-ins are read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..base.errors import Conflict, InvalidInput, NotFound, ReadOnly, invalid
from ..base.ids import is_preset_id
from ..base.validation import validation_error
from .schema import PARAM_MODELS, CustomPresetSpec, Multipliers, Preset
from .store import PresetStore, Problem, StoredSpec
from .tables import Tables, load_tables

MAX_DEPTH = 32
Lookup = Callable[[str], StoredSpec | None]
RESOLVED_CACHE_SIZE = 256  # resolved presets kept (LRU); the specs of every preset stay cached
PARTS: dict[str, Any] = {**PARAM_MODELS, "multipliers": Multipliers}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of a nested mapping ({"image": {"steps": 3}} -> image.steps)."""
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.extend(_paths(value, path + ".") if isinstance(value, dict) else [path])
    return out


class PresetLibrary:
    def __init__(self, store: PresetStore, tables: Tables | None = None) -> None:
        self.store = store
        self.tables = tables or load_tables()
        self._resolved: OrderedDict[tuple[str, str], tuple[tuple[Any, ...], Preset]] = OrderedDict()
        self._lock = threading.Lock()
        self._dumps: dict[tuple[str, str], dict[str, Any]] = {}

    # --- reading -----------------------------------------------------------------------------
    def builtin(self, name: str) -> Preset | None:
        tier = self.tables.tier_id(name)
        return self.tables.tiers[tier] if tier else None

    def get(self, user: str, preset_id: str) -> Preset:
        """A built-in tier (name or alias) or one of ``user``'s custom presets, resolved."""
        found = self.builtin(preset_id) if isinstance(preset_id, str) else None
        if found:
            return found
        if not is_preset_id(preset_id) or self.store.get(user, preset_id) is None:
            accepted = [*self.tables.tiers, *self._ids(user)]
            shown = str(preset_id)[:80]
            raise NotFound(f"no preset {shown!r}; known: {', '.join(accepted)}",
                           field="preset", value=shown, accepted=accepted)
        return self._resolve(user, preset_id, lambda i: self.store.get(user, i))

    def _ids(self, user: str) -> list[str]:
        return sorted(self.store.load(user)[0])

    def list_all(self, user: str) -> tuple[list[Preset], list[Problem]]:
        """Built-ins then the user's presets (by level, then id); unresolvable ones as problems."""
        specs, problems = self.store.load(user)
        custom: list[Preset] = []
        for preset_id in sorted(specs):
            try:
                custom.append(self._resolve(user, preset_id, specs.get))
            except InvalidInput as exc:
                problems.append(Problem(f"{preset_id}.yaml", exc.message))
        custom.sort(key=lambda p: (p.level, p.id))
        return [*self.tables.tiers.values(), *custom], problems

    # --- resolution --------------------------------------------------------------------------
    def _chain(self, preset_id: str, lookup: Lookup, known: Callable[[], list[str]]) -> list[StoredSpec]:
        """``preset_id``'s custom presets up to (not including) its built-in root, leaf first."""
        chain: list[StoredSpec] = []
        seen: list[str] = []
        current = preset_id
        while self.tables.tier_id(current) is None:
            if current in seen:
                loop = " -> ".join([*seen, current])
                raise InvalidInput(f"preset {preset_id!r} has an inheritance cycle: {loop}",
                                   field="extends", value=chain[-1].spec.extends)
            stored = lookup(current)
            if stored is None:
                child = seen[-1] if seen else preset_id
                raise invalid("extends", current, [*self.tables.tiers, *known()],
                              f"preset {child!r} extends an unknown preset")
            if len(chain) >= MAX_DEPTH:
                raise invalid("extends", current, f"at most {MAX_DEPTH} levels of inheritance")
            seen.append(current)
            chain.append(stored)
            current = stored.spec.extends
        return chain

    def _resolve(self, user: str, preset_id: str, lookup: Lookup) -> Preset:
        chain = self._chain(preset_id, lookup, lambda: self._ids(user))
        key = tuple((s.spec.id, s.spec.revision, s.stamp) for s in chain)
        with self._lock:
            cached = self._resolved.get((user, preset_id))
            if cached and cached[0] == key:
                self._resolved.move_to_end((user, preset_id))
                return cached[1]
        preset = self.merge(chain[-1].spec.extends, [s.spec for s in reversed(chain)], owner=user)
        with self._lock:
            self._resolved[(user, preset_id)] = (key, preset)
            while len(self._resolved) > RESOLVED_CACHE_SIZE:
                self._resolved.popitem(last=False)
        return preset

    def merge(self, root: str, specs_root_first: list[CustomPresetSpec], owner: str) -> Preset:
        """The built-in ``root`` with each spec's overrides applied in order; validated.

        Only function types that some spec overrides are merged and validated; the others are
        the built-in's own (immutable) parameter objects, shared: cheap in time and memory.
        """
        base = self.tables.tiers[self.tables.tier_id(root) or root]
        merged: dict[str, dict[str, Any]] = {}
        overridden: set[str] = set()
        level, description = base.level, base.description
        for spec in specs_root_first:
            overrides = spec.overrides()
            for part, values in overrides.items():
                merged[part] = deep_merge(merged[part], values) if part in merged else values
            overridden.update(_paths(overrides))
            level = spec.level if spec.level is not None else level
            description = spec.description or description
        parts: dict[str, Any] = {part: getattr(base, part) for part in PARTS}
        for part, values in merged.items():
            model = PARTS[part]
            try:
                parts[part] = model.model_validate(deep_merge(self._base_dump(base.id, part), values))
            except ValidationError as exc:
                raise validation_error(exc, part) from None
        leaf = specs_root_first[-1]
        return Preset.model_construct(
            id=leaf.id, display_name=leaf.display_name or leaf.id, level=level, description=description,
            builtin=False, extends=leaf.extends, owner=owner, revision=leaf.revision, aliases=(),
            lineage=tuple(s.id for s in reversed(specs_root_first)) + (base.id,),
            overridden=tuple(sorted(overridden)), **parts)

    def _base_dump(self, tier: str, part: str) -> dict[str, Any]:
        key = (tier, part)
        dump = self._dumps.get(key)
        if dump is None:
            dump = self._dumps[key] = getattr(self.tables.tiers[tier], part).model_dump()
        return dump

    # --- writing -----------------------------------------------------------------------------
    def _parse_body(self, body: Any, preset_id: str | None = None) -> CustomPresetSpec:
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, "a JSON object with id, extends and overrides")
        if preset_id is not None:
            body = {**body, "id": body.get("id", preset_id)}
            if body["id"] != preset_id:
                raise invalid("id", body["id"], preset_id, "the body's id must match the URL (renaming is not supported)")
        body = {"extends": self.tables.default_tier,
                **{k: v for k, v in body.items() if k not in ("builtin", "owner", "lineage", "aliases")}}
        try:
            spec = CustomPresetSpec.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        if self.tables.tier_id(spec.id):
            raise Conflict(f"{spec.id!r} is a built-in tier name; choose another id",
                           field="id", value=spec.id)
        return spec

    def _check(self, user: str, spec: CustomPresetSpec) -> Preset:
        """Resolve ``spec`` as if saved, so bad parents, cycles and ranges are refused."""
        specs, _ = self.store.load(user)
        specs = {**specs, spec.id: StoredSpec(spec, (0, 0, 0))}
        chain = self._chain(spec.id, specs.get, lambda: sorted(specs))
        return self.merge(chain[-1].spec.extends, [s.spec for s in reversed(chain)], owner=user)

    def validate(self, user: str, body: Any, preset_id: str | None = None) -> Preset:
        """The preset ``body`` would make (create, or update ``preset_id``), resolved but not saved."""
        if preset_id is not None and self.builtin(preset_id):
            raise ReadOnly(f"{preset_id!r} is a built-in tier and cannot be changed", field="id", value=preset_id)
        spec = self._parse_body(body, preset_id)
        if preset_id is None and self.store.get(user, spec.id, fresh=True) is not None:
            raise Conflict(f"a custom preset {spec.id!r} already exists; choose another id",
                           field="id", value=spec.id)
        return self._check(user, spec)

    def create(self, user: str, body: Any) -> Preset:
        spec = self._parse_body(body)
        with self.store.locked(user):
            self._check(user, spec)
            saved = self.store.write(user, spec, create=True)
        return self.get(user, saved.id)

    def update(self, user: str, preset_id: str, body: Any, expected_revision: int | None = None) -> Preset:
        if self.builtin(preset_id):
            raise ReadOnly(f"{preset_id!r} is a built-in tier and cannot be changed; "
                           f"create a custom preset that extends it", field="id", value=preset_id)
        spec = self._parse_body(body, preset_id)
        if expected_revision is None and isinstance(body, dict) and "revision" in body:
            expected_revision = spec.revision
        with self.store.locked(user):
            if self.store.get(user, preset_id, fresh=True) is None:
                raise NotFound(f"no custom preset {preset_id!r}", field="id", value=preset_id)
            self._check(user, spec)
            self.store.write(user, spec, create=False, expected_revision=expected_revision)
        return self.get(user, preset_id)

    def delete(self, user: str, preset_id: str) -> None:
        if not is_preset_id(preset_id) and not self.builtin(preset_id):
            raise NotFound(f"no custom preset {str(preset_id)[:80]!r}", field="id", value=str(preset_id)[:80])
        if self.builtin(preset_id):
            raise ReadOnly(f"{preset_id!r} is a built-in tier and cannot be deleted",
                           field="id", value=preset_id)
        with self.store.locked(user):
            specs, _ = self.store.load(user)
            if preset_id not in specs:
                raise NotFound(f"no custom preset {preset_id!r}", field="id", value=preset_id)
            children = sorted(i for i, s in specs.items() if s.spec.extends == preset_id)
            if children:
                raise Conflict(f"preset {preset_id!r} is extended by {', '.join(children)}; "
                               f"delete or re-parent those first", field="id", value=preset_id)
            self.store.delete(user, preset_id)
        with self._lock:
            self._resolved.pop((user, preset_id), None)
