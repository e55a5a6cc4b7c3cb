"""Intelligent generation, one service for every adapter (routes, nodes, CLI, and the Python API next):
prompt analysis -> LoRA recommendation from the user's library -> parameters under constraints -> explanation.

``decide`` is the whole first half in one call: what the Smart Plan node, the routes and the API run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.errors import invalid
from ..base.validation import parse_model
from ..loras.family import UNKNOWN
from ..loras.library import LoraCard, LoraLibrary
from ..loras.recommend import Index, Preferences, Recommendations, Similarity, recommend
from ..quality.families import detect_family
from ..quality.service import QualityService
from .analysis import Analysis, analyse, refine
from .explain import MODES, Explanation
from .optimise import Constraints, Optimised, optimise

if TYPE_CHECKING:
    from ..enhance.service import EnhanceService

MAX_TEXT = 20_000
LIST_LIMIT = 500


class DecideRequest(BaseModel):
    """A request to analyse, recommend and plan (the routes' body; the nodes build the same)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    negative: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    family: Annotated[str | None, Field(max_length=64)] = None  # checkpoint family or LoRA family
    checkpoint: Annotated[str | None, Field(max_length=500)] = None
    mode: str = "AUTO"
    constraints: Constraints = Field(default_factory=Constraints)
    preferences: Preferences = Field(default_factory=Preferences)
    width: Annotated[int, Field(ge=0, le=16384)] = 0
    height: Annotated[int, Field(ge=0, le=16384)] = 0
    batch_size: Annotated[int, Field(ge=1, le=256)] = 1
    native_resolution: Annotated[int | None, Field(ge=64, le=4096)] = None  # the model's own (a diffusers folder)
    operation_type: Annotated[str, Field(min_length=1, max_length=64)] = "image_generation"  # whose tier is learned
    rating: Annotated[str | None, Field(max_length=64)] = None  # the social context's rating ceiling
    world: Annotated[str, Field(max_length=64)] = "default"
    tier: Annotated[str | None, Field(max_length=160)] = None  # MANUAL: the user's tier
    loras: Annotated[tuple[tuple[str, float], ...] | None, Field(max_length=8)] = None  # the user's LoRAs
    llm_endpoint: Annotated[str | None, Field(max_length=128)] = None  # refines the analysis
    llm_timeout_s: Annotated[float, Field(gt=0.0, le=120.0)] = 10.0

    @classmethod
    def parse(cls, data: Any) -> DecideRequest:
        request = parse_model(cls, data, "a JSON object with at least a prompt")
        if request.mode not in MODES:
            raise invalid("mode", request.mode, list(MODES))
        return request


@dataclass
class Decision:
    analysis: Analysis
    recommendations: Recommendations
    plan: Optimised
    family: str  # the checkpoint family the plan is for
    base: str  # the LoRA family it takes
    explanation: Explanation
    loras: list[tuple[LoraCard, float, str]]  # what to apply: card, strength, why

    def to_dict(self) -> dict[str, Any]:
        return {"analysis": self.analysis.to_dict(), "recommendations": self.recommendations.to_dict(),
                "plan": self.plan.to_dict(), "family": self.family, "lora_family": self.base,
                "explanation": self.explanation.to_dict()}


class IntelligenceService:
    def __init__(self, quality: QualityService, library: LoraLibrary,
                 ratings_of: Callable[[str], Sequence[str] | None] = lambda world: None,
                 similarity: Callable[[], Similarity | None] = lambda: None,
                 header_of: Callable[[str | None], dict[str, Any] | None] = lambda name: None,
                 enhance: EnhanceService | None = None,
                 priors_of: Callable[[str], dict[str, tuple[float, str]]] = lambda user: {},
                 tier_of: Callable[[str, str], tuple[str, str] | None] = lambda user, pipeline: None) -> None:
        self.quality = quality
        self.enhance = enhance
        self.library = library
        self.ratings_of = ratings_of
        self.similarity = similarity
        self.header_of = header_of
        self.priors_of = priors_of
        self.tier_of = tier_of
        self._index: tuple[tuple[str, ...], Index] | None = None

    # ---- families ----------------------------------------------------------------------------------------
    def family_names(self) -> dict[str, str]:
        return dict(self.library.tables.raw["display_names"])

    def resolve_family(self, family: str | None, checkpoint: str | None) -> tuple[str, str]:
        """(checkpoint family, LoRA family): a checkpoint family's base, or a LoRA family as given."""
        tables = self.quality.tables
        if family and family != "auto":
            if family in tables.families.families:
                return family, tables.family(family).base
            if family in self.library.tables.families:
                checkpoint_family = next((n for n, f in tables.families.families.items()
                                          if f.base == family and not f.distilled), None)
                if checkpoint_family is None:
                    raise invalid("family", family, sorted(tables.families.families),
                                  "no checkpoint family of Atelier runs this LoRA family")
                return checkpoint_family, family
            raise invalid("family", family, ["auto", *tables.families.families, *self.library.tables.families])
        detection = detect_family(checkpoint, self.header_of(checkpoint), tables)
        return detection.family, tables.family(detection.family).base

    # ---- the library -------------------------------------------------------------------------------------
    def library_view(self, user: str, query: dict[str, str]) -> dict[str, Any]:
        """The cards with filters (family, kind, q: words in name/title/triggers/tags), and the problems."""
        scan = self.library.scan(user)
        family, kind, text = query.get("family"), query.get("kind"), (query.get("q") or "").lower()[:200]
        if family and family not in (*self.library.tables.families, UNKNOWN):
            raise invalid("family", family, [*self.library.tables.families, UNKNOWN])
        cards = [c for c in scan.cards if (not family or c.family.family == family)
                 and (not kind or c.kind == kind)
                 and (not text or text in " ".join([c.name, c.title, *c.triggers, *c.tags]).lower())]
        try:
            limit = min(LIST_LIMIT, max(1, int(query.get("limit", LIST_LIMIT))))
        except ValueError:
            raise invalid("limit", query.get("limit"), f"an integer 1-{LIST_LIMIT}") from None
        out = scan.to_dict(with_cards=False)
        out.update(cards=[c.to_dict() for c in cards[:limit]], matching=len(cards),
                   families=self.family_names(), kinds=list(self.library.tables.raw["kinds"]))
        return out

    def _index_for(self, cards: list[LoraCard]) -> Index:
        key = tuple(c.hash + c.family.family for c in cards)
        if self._index is None or self._index[0] != key:
            self._index = (key, Index.build(cards, self.library.tables))
        return self._index[1]

    # ---- the pipeline ------------------------------------------------------------------------------------
    def recommend_loras(self, user: str, analysis: Analysis, base: str, preferences: Preferences,
                        rating: str | None, world: str) -> Recommendations:
        cards = self.library.scan(user).cards
        ceiling = None
        if rating:
            ratings = self.ratings_of(world)
            if not ratings:
                raise invalid("world", world, "a world of the social context")
            if rating not in ratings:
                raise invalid("rating", rating, list(ratings))
            ceiling = (rating, ratings)
        similarity = self.similarity()
        return recommend(cards, analysis.prompt, analysis.terms, base, preferences, ceiling, similarity,
                         self._index_for(cards), self.family_names(), self.library.tables, self.priors_of(user))

    async def analyse(self, body: Any) -> Analysis:
        """The rule analysis, refined by the configured LLM endpoint when one is named (its deadline; the rule
        analysis with a note when it fails)."""
        request = body if isinstance(body, DecideRequest) else DecideRequest.parse(body)
        analysis = analyse(request.prompt, request.negative)
        if not request.llm_endpoint:
            return analysis
        if self.enhance is None or self.enhance.enhancer.backends.chats is None:
            analysis.notes.append("no LLM backends here; the rule analysis is used")
            return analysis
        llm_request = self.enhance.request({"prompt": request.prompt, "endpoint": request.llm_endpoint,
                                            "timeout_s": request.llm_timeout_s})
        try:
            chat = self.enhance.enhancer.backends.chats(llm_request.backend, llm_request)
        except Exception as exc:  # no client for this backend here
            analysis.notes.append(f"LLM refinement unavailable ({str(exc)[:120]}); the rule analysis is used")
            return analysis
        return await refine(analysis, chat, llm_request, request.llm_timeout_s)

    async def decide_async(self, user: str, body: Any) -> Decision:
        request = body if isinstance(body, DecideRequest) else DecideRequest.parse(body)
        return self.decide(user, request, await self.analyse(request))

    def decide(self, user: str, body: Any, analysis: Analysis | None = None) -> Decision:
        request = body if isinstance(body, DecideRequest) else DecideRequest.parse(body)
        started = time.perf_counter()
        analysis = analysis or analyse(request.prompt, request.negative)
        family, base = self.resolve_family(request.family, request.checkpoint)
        recommendations = self.recommend_loras(user, analysis, base, request.preferences, request.rating,
                                               request.world)
        learned = None if request.mode == "MANUAL" or request.tier else self.tier_of(user, request.operation_type)
        recommended = optimise(self.quality, user, family, request.constraints, analysis, request.width,
                               request.height, request.batch_size, request.checkpoint, request.native_resolution,
                               learned)
        plan, differences = recommended, list[str]()
        if request.mode == "MANUAL" or request.tier:
            plan, differences = self._manual(user, request, family, recommended)
        loras = [(r.card, r.strength, r.reason) for r in recommendations.chosen]
        if request.loras is not None:
            chosen = self._users_loras(user, request.loras)
            differences += lora_differences({c.name: st for c, st, _ in loras}, {c.name: st for c, st, _ in chosen})
            loras = chosen
        explanation = Explanation(
            mode=request.mode, analysis={**analysis.to_dict(), "summary": analysis.summary()},
            loras=[{"name": c.name, "title": c.title, "strength": s, "reason": why, "family": c.family.family,
                    "triggers": c.triggers[:3]} for c, s, why in loras],
            loras_filtered=recommendations.filtered[:20],
            parameters={"tier": plan.tier, "family": family, **plan.params,
                        **({"checkpoint": request.checkpoint} if request.checkpoint else {})},
            parameter_reasons=plan.reasons,
            performance={"estimate": plan.estimate.to_dict(), "cuts": plan.cuts,
                         "constraints": request.constraints.model_dump(),
                         "decided_in_ms": round((time.perf_counter() - started) * 1000, 1)},
            differences=differences, warnings=[*plan.warnings, *analysis.notes])
        explanation.summary = explanation.compose_summary()
        return Decision(analysis, recommendations, plan, family, base, explanation, loras)

    def _manual(self, user: str, request: DecideRequest, family: str,
                recommended: Optimised) -> tuple[Optimised, list[str]]:
        """The user's tier and size, as given (no cuts); where they differ from the recommendation."""
        from ..quality.plan import split_option
        from .optimise import shaped_params

        tier = request.tier or recommended.tier
        owner, preset_id = split_option(tier)
        preset = self.quality.library.get(owner if owner != "default" else user, preset_id)
        template = recommended.template.model_copy(update={"width": request.width or recommended.template.width,
                                                           "height": request.height or recommended.template.height})
        params, _, warnings = shaped_params(self.quality, preset, template, family, None)
        estimate = self.quality.estimator.estimate("image", params, family)
        plan = Optimised(preset.id, preset, template, params, estimate, request.constraints,
                         [f"{preset.id}: chosen by you"], [], warnings)
        differences = []
        if plan.tier != recommended.tier:
            differences.append(f"tier {plan.tier} (recommended {recommended.tier})")
        for key in ("steps", "cfg", "width", "height", "hires_enabled", "refinement"):
            if plan.params.get(key) != recommended.params.get(key):
                differences.append(f"{key} {plan.params.get(key)} (recommended {recommended.params.get(key)})")
        over = request.constraints.over(estimate)
        if over:
            plan.warnings.append("your choice is over the constraints: " + "; ".join(over))
        return plan, differences

    def _users_loras(self, user: str, chosen: tuple[tuple[str, float], ...]) -> list[tuple[LoraCard, float, str]]:
        out = []
        for name, strength in chosen:
            if not -4.0 <= float(strength) <= 4.0:
                raise invalid("loras.strength", strength, "-4 to 4")
            card = self.library.by_name(user, name)
            out.append((card, float(strength), "chosen by you"))
        return out


def lora_differences(recommended: dict[str, float], chosen: dict[str, float]) -> list[str]:
    """Where the LoRAs chosen (name -> strength) differ from those recommended, in words."""
    out = [f"LoRA {n} @{s:g} (not recommended)" for n, s in chosen.items() if n not in recommended]
    out += [f"left out the recommended LoRA {n}" for n in recommended if n not in chosen]
    out += [f"LoRA {n} @{chosen[n]:g} (recommended @{recommended[n]:g})" for n in chosen
            if n in recommended and chosen[n] != recommended[n]]
    return out
