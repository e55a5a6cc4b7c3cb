"""Social context: relationship values -> relationship tier -> intimacy level and band -> content rating,
clamped by the world's maximum and the user's (server-side) maximum: the lower wins.

A client (or ComfyUI's unauthenticated ``comfy-user`` header) can only lower a user's maximum, never
raise it: the server's configuration decides. Raw values are kept in the context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..base.data import PRESETS_DIR, read_yaml
from ..base.errors import Forbidden, InvalidInput, invalid
from ..base.validation import parse_model, validation_error

VALUES = ("affinity", "trust", "chemistry", "tension")
Value = Annotated[float, Field(ge=0.0, le=100.0)]


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    min: dict[str, Value] = Field(default_factory=dict)
    max: dict[str, Value] = Field(default_factory=dict)


class PromptAddition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    positive: str = ""
    negative: str = ""


class World(BaseModel):
    """A world schema (``presets/worlds/*.yaml``), validated for consistency."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    display_name: str = ""
    max_rating: str
    ratings: tuple[str, ...]
    relationship_tiers: tuple[Tier, ...]
    intimacy_levels: dict[str, int]
    tension_penalty: dict[str, float] = Field(default_factory=lambda: {"threshold": 101.0, "levels": 0.0})
    bands: tuple[str, ...]
    band_ratings: dict[str, str]
    prompt_additions: dict[str, PromptAddition]

    @model_validator(mode="after")
    def _consistent(self) -> World:
        if self.max_rating not in self.ratings:
            raise ValueError(f"max_rating {self.max_rating!r} is not one of ratings {list(self.ratings)}")
        for tier in self.relationship_tiers:
            if tier.id not in self.intimacy_levels:
                raise ValueError(f"tier {tier.id!r} has no intimacy level")
            for key in (*tier.min, *tier.max):
                if key not in VALUES:
                    raise ValueError(f"tier {tier.id!r}: unknown value {key!r}; known: {list(VALUES)}")
        for level in self.intimacy_levels.values():
            if not 0 <= level < len(self.bands):
                raise ValueError(f"intimacy level {level} has no band (bands: {list(self.bands)})")
        for band in self.bands:
            if self.band_ratings.get(band) not in self.ratings:
                raise ValueError(f"band {band!r} maps to no known rating")
        return self

    def rank(self, rating: str) -> int:
        return self.ratings.index(rating)


def world_dirs(extra: Path | None = None) -> list[Path]:
    return [PRESETS_DIR / "worlds", *([extra] if extra else [])]


@lru_cache(maxsize=32)
def _load_world(path: Path, mtime_ns: int) -> World:
    try:
        return World.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise InvalidInput(f"world schema {path.name}: {validation_error(exc).message}", field="world",
                           value=path.stem) from None


def worlds(extra: Path | None = None) -> dict[str, World]:
    found: dict[str, World] = {}
    for folder in world_dirs(extra):
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            world = _load_world(path, path.stat().st_mtime_ns)
            found[world.id] = world
    return found


class ContextRequest(BaseModel):
    """What a client sends to build a context."""

    model_config = ConfigDict(extra="forbid")
    affinity: Value = 0.0
    trust: Value = 0.0
    chemistry: Value = 0.0
    tension: Value = 0.0
    npc_id: Annotated[str, Field(max_length=200)] = ""
    world_id: Annotated[str, Field(max_length=100)] = "default"
    max_rating: str | None = None        # the client's own ceiling: it can only lower the user's maximum
    requested_rating: str | None = None  # checked by ``enforce``
    enforcement: Literal["clamp", "reject"] = "clamp"

    @classmethod
    def parse(cls, data: Any) -> ContextRequest:
        return parse_model(cls, data, "a JSON object with affinity, trust, chemistry, tension")


@dataclass
class SocialContext:
    world_id: str
    npc_id: str
    values: dict[str, float]
    tier: str
    intimacy_level: int
    band: str
    band_rating: str
    rating: str
    clamped_by: list[str]
    prompt_addition: str
    negative_addition: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _applies(tier: Tier, values: dict[str, float]) -> bool:
    return all(values[k] >= v for k, v in tier.min.items()) and all(values[k] <= v for k, v in tier.max.items())


def build_context(request: ContextRequest, user_max_rating: str | None, world_list: dict[str, World]) -> SocialContext:
    """The context of a relationship; ``user_max_rating`` is the server's setting for the user."""
    world = world_list.get(request.world_id)
    if world is None:
        raise invalid("world_id", request.world_id, sorted(world_list))
    for name, value in (("max_rating", request.max_rating), ("requested_rating", request.requested_rating)):
        if value is not None and value not in world.ratings:
            raise invalid(name, value, list(world.ratings))
    values = {k: float(getattr(request, k)) for k in VALUES}
    tier = [t for t in world.relationship_tiers if _applies(t, values)]
    chosen = tier[-1].id if tier else world.relationship_tiers[0].id
    level = world.intimacy_levels[chosen]
    warnings: list[str] = []
    penalty = world.tension_penalty
    if values["tension"] >= penalty.get("threshold", 101) and level > 0:
        level = max(0, level - int(penalty.get("levels", 0)))
        warnings.append(f"tension {values['tension']:g} lowers the intimacy level to {level}")
    band = world.bands[level]
    band_rating = world.band_ratings[band]
    rating = band_rating
    clamped_by: list[str] = []
    ceilings = [("world", world.max_rating), ("user", user_max_rating), ("request", request.max_rating)]
    for source, ceiling in ceilings:
        if ceiling is None:
            continue
        if ceiling not in world.ratings:
            raise invalid(f"{source} max_rating", ceiling, list(world.ratings))
        if world.rank(ceiling) < world.rank(rating):
            rating = ceiling
            clamped_by.append(source)
    if clamped_by:
        warnings.append(f"rating {band_rating} clamped to {rating} by the {' and '.join(clamped_by)} maximum")
    addition = world.prompt_additions.get(rating, PromptAddition())
    return SocialContext(world.id, request.npc_id, values, chosen, level, band, band_rating, rating, clamped_by,
                         addition.positive, addition.negative, warnings)


def enforce(context: SocialContext, requested: str, world: World, mode: str = "clamp") -> str:
    """The rating a generation may use: ``clamp`` lowers a too-high request, ``reject`` refuses it."""
    if requested not in world.ratings:
        raise invalid("requested_rating", requested, list(world.ratings))
    if world.rank(requested) <= world.rank(context.rating):
        return requested
    if mode == "reject":
        raise Forbidden(f"requested rating {requested!r} exceeds the allowed {context.rating!r} "
                           f"(tier {context.tier}, clamped by {', '.join(context.clamped_by) or 'the band'})",
                           field="requested_rating", value=requested, accepted=list(
                               world.ratings[: world.rank(context.rating) + 1]))
    return context.rating


def validate(request: ContextRequest, world: World) -> dict[str, list[str]]:
    """Errors and warnings against the world's constraints, without building the context."""
    errors: list[str] = []
    warnings: list[str] = []
    if request.max_rating and request.max_rating not in world.ratings:
        errors.append(f"max_rating {request.max_rating!r} is not one of {list(world.ratings)}")
    if request.chemistry > 50 and request.trust < 20:
        warnings.append("high chemistry with little trust: the tiers that need trust will not apply")
    if request.tension >= world.tension_penalty.get("threshold", 101):
        warnings.append(f"tension {request.tension:g} lowers intimacy")
    return {"errors": errors, "warnings": warnings}
