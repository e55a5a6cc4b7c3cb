"""The rules, each with a code, a severity, the field it is about and a message that says what is accepted.

| code | severity | when |
|---|---|---|
| ``unknown_tier`` | error | the tier (or preset) is not one of the user's |
| ``tier_assumption`` | warning | the model family changes what the tier asks (distilled: fixed steps, no hires…) |
| ``family_mismatch`` | warning | the declared model family is not the one the checkpoint's name or metadata says |
| ``unknown_lora`` | error | a LoRA named is not in the user's library |
| ``lora_family`` | error | a LoRA is of another family than the checkpoint |
| ``unknown_scorer`` | error | a scorer name Atelier does not have |
| ``scorer_missing`` | warning | a chosen scorer's model weights are not found (it is left out of the score) |
| ``no_plan_fits`` | error | no plan meets the time/VRAM budget (the cheapest plan is named) |
| ``rating_clamped`` | warning | the requested content rating is above the user's maximum and will be lowered |
| ``rating_above_max`` | error | … and the enforcement is ``reject`` |
| ``missing_variable`` | error | the prompt uses a ``{{variable}}`` that has no value |
| ``storyboard_too_long`` | error | more clips than ``MAX_CLIPS`` (64) |
| ``storyboard_invalid`` | error | a storyboard that does not parse |
| ``invalid_value`` | error | a value a rule reads is not of the kind it accepts (a size that is not a whole number in range, a checkpoint or family that is not a name, constraints that do not parse) |

A rule that cannot be checked here (no LoRA library, no social configuration) is skipped, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..base.errors import AtelierError, Forbidden
from ..base.secrets import without_paths
from ..intelligence.analysis import analyse
from ..intelligence.optimise import Constraints, NoPlanFits, optimise
from ..quality.families import detect_family
from ..quality.plan import split_option
from ..quality.service import QualityService
from ..records.store import render
from ..scoring.registry import Scorers
from ..social.service import SocialService
from ..storyboard.spec import MAX_CLIPS, Storyboard

CODES = ("unknown_tier", "tier_assumption", "family_mismatch", "unknown_lora", "lora_family", "unknown_scorer",
         "scorer_missing", "no_plan_fits", "rating_clamped", "rating_above_max", "missing_variable",
         "storyboard_too_long", "storyboard_invalid", "invalid_value")
TEXTS = ("tier", "checkpoint", "model_family", "checkpoint_family", "prompt")  # read as names or text
SIZES = {"width": (0, 16384), "height": (0, 16384), "batch_size": (1, 4096)}  # read as whole numbers

# the family of a LoRA (by its card) for a user, or None when the library does not have it
LoraFamily = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Issue:
    code: str
    severity: str  # error | warning
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _error(code: str, field: str, message: str) -> Issue:
    return Issue(code, "error", field, message)


def _warning(code: str, field: str, message: str) -> Issue:
    return Issue(code, "warning", field, message)


class Rules:
    """The checks, over the services that know the answers (``loras``, ``scorers`` and ``social`` may be None:
    their rules are skipped)."""

    def __init__(self, quality: QualityService, loras: LoraFamily | None = None, scorers: Scorers | None = None,
                 social: SocialService | None = None) -> None:
        self.quality = quality
        self.loras = loras
        self.scorers = scorers
        self.social = social

    # --- one rule each ---------------------------------------------------------------------------
    def tier(self, user: str, tier: str | None, family: str | None, checkpoint: str | None,
             field: str = "tier") -> list[Issue]:
        out: list[Issue] = []
        if tier is None:
            return out
        try:
            preset = self.quality.tier(user, tier, field=field)
        except AtelierError as exc:
            return [_error("unknown_tier", field, exc.message)]
        declared = family if family and family != "auto" else None
        if checkpoint:
            detected = detect_family(checkpoint, None, self.quality.tables)
            if declared and detected.source != "default" and detected.family != declared:
                out.append(_warning("family_mismatch", "model_family",
                                    f"model_family is {declared} but {checkpoint} looks like {detected.family} "
                                    f"({detected.evidence}); the tier is shaped for the family given"))
        template = {"category": "image", "model_family": declared or "auto", "checkpoint": checkpoint}
        try:
            applied = self.quality.apply(user, tier, template)
        except AtelierError:
            return out
        for warning in applied["parameters"]["_quality_preset"].get("warnings", []):
            out.append(_warning("tier_assumption", field, f"{preset.id} on this family: {warning}"))
        return out

    def loras_(self, user: str, loras: list[str], family: str | None, checkpoint: str | None,
               field: str = "loras") -> list[Issue]:
        if self.loras is None or not loras:
            return []
        base = self._base(family, checkpoint)
        out = []
        for name in loras:
            of = self.loras(user, name)
            if of is None:
                out.append(_error("unknown_lora", f"{field}.{name}", f"{name} is not in your LoRA library"))
            elif base is not None and of not in ("unknown", base):
                out.append(_error("lora_family", f"{field}.{name}",
                                  f"{name} is a {of} LoRA; the checkpoint is {base}: accepted, a {base} LoRA"))
        return out

    def scorers_(self, names: list[str], field: str = "scorers") -> list[Issue]:
        if self.scorers is None:
            return []
        out = []
        for name in names:
            if name not in self.scorers.specs:
                out.append(_error("unknown_scorer", field, f"no scorer {name!r}: accepted, "
                                                           f"{', '.join(sorted(self.scorers.specs))}"))
                continue
            why = self.scorers.missing(name)
            if why:
                out.append(_warning("scorer_missing", field,
                                    f"{name} cannot score here ({without_paths(why)}); it is left out"))
        return out

    def budget(self, user: str, constraints: Any, family: str | None, checkpoint: str | None, prompt: str,
               width: int = 0, height: int = 0, batch_size: int = 1) -> list[Issue]:
        if not constraints:
            return []
        try:
            parsed = Constraints.parse(constraints)
            name = family if family and family != "auto" else detect_family(checkpoint, None, self.quality.tables).family
            optimise(self.quality, user, name, parsed, analyse(prompt), width, height, batch_size)
        except NoPlanFits as exc:
            return [_error("no_plan_fits", "constraints", exc.message)]
        except AtelierError as exc:
            return [_error("invalid_value", exc.field or "constraints", exc.message)]
        except (TypeError, ValueError) as exc:  # a value the planner refused (e.g. pydantic's range check)
            return [_error("invalid_value", "constraints", f"the budget cannot be planned: {str(exc)[:200]}")]
        return []

    def rating(self, user: str | None, social: Any, authenticated: bool = False) -> list[Issue]:
        if self.social is None or not isinstance(social, dict) or not social.get("requested_rating"):
            return []
        try:
            context = self.social.build(user, social, authenticated, log=False)
        except Forbidden as exc:
            return [_error("rating_above_max", "social.requested_rating", exc.message)]
        except AtelierError as exc:
            return [_error("rating_above_max", exc.field or "social", exc.message)]
        asked, allowed = social["requested_rating"], context.get("allowed_rating")
        if allowed is not None and allowed != asked:
            return [_warning("rating_clamped", "social.requested_rating",
                             f"{asked} is above what applies here; {allowed} will be used")]
        return []

    def variables(self, prompt: str | None, variables: dict[str, Any]) -> list[Issue]:
        if not prompt:
            return []
        try:
            render(prompt, variables)
        except AtelierError as exc:
            if exc.field == "variables":
                return [_error("missing_variable", f"variables.{exc.value}", exc.message)]
        return []

    def storyboard(self, text: Any, field: str = "storyboard") -> list[Issue]:
        if not isinstance(text, str) or not text.strip():
            return []
        clips = [line for line in text.splitlines() if line.strip()] if not text.lstrip().startswith("{") else None
        if clips is not None and len(clips) > MAX_CLIPS:
            return [_error("storyboard_too_long", field, f"{len(clips)} clips; at most {MAX_CLIPS} in one storyboard "
                                                         f"(split it, or run several)")]
        try:
            Storyboard.from_text(text)
        except AtelierError as exc:
            code = "storyboard_too_long" if "at most" in exc.message and "clips" in exc.message else \
                "storyboard_invalid"
            return [_error(code, field, exc.message)]
        return []

    def _base(self, family: str | None, checkpoint: str | None) -> str | None:
        tables = self.quality.tables
        if family and family != "auto" and family in tables.families.families:
            return tables.family(family).base
        if checkpoint:
            return tables.family(detect_family(checkpoint, None, tables).family).base
        return None


def _names(value: Any) -> list[str]:
    """LoRA or scorer names from a list of names, of {"name"} objects, or a comma-separated string."""
    if isinstance(value, str):
        parts = [v.strip() for line in value.splitlines() for v in line.split(",")]
        return [v.rsplit(":", 1)[0].strip() for v in parts if v and v != "auto"]
    if isinstance(value, list):
        return [str(v.get("name")) if isinstance(v, dict) else str(v) for v in value if v]
    return []


def check_config(rules: Rules, user: str, parameters: dict[str, Any], prompt: str | None,
                 authenticated: bool = False) -> list[Issue]:
    """A generation config's issues, from the parameters it declares (``checkpoint``, ``model_family``, ``tier``
    or ``quality.preset``, ``loras``, ``scorers``, ``constraints``, ``social``, ``storyboard``) and its rendered
    prompt (the prompt's variables are the records' check: ``missing_variable``)."""
    p, out = typed(parameters)
    quality: dict[str, Any] = p["quality"] if isinstance(p.get("quality"), dict) else {}
    tier = p.get("tier") or quality.get("preset")
    family, checkpoint = p.get("model_family"), p.get("checkpoint")
    out += rules.tier(user, str(tier) if tier else None, family, checkpoint)
    out += rules.loras_(user, _names(p.get("loras")), family, checkpoint)
    out += rules.scorers_(_names(p.get("scorers")))
    out += rules.budget(user, p.get("constraints"), family, checkpoint, prompt or "", p.get("width") or 0,
                        p.get("height") or 0, p.get("batch_size") or 1)
    out += rules.rating(user, p.get("social"), authenticated)
    out += rules.storyboard(p.get("storyboard"))
    return out


def check_graph(rules: Rules, user: str, graph: dict[str, Any], authenticated: bool = False) -> dict[str, list[Issue]]:
    """Every Atelier node's issues in an API-format graph (literal inputs only; a linked input is checked when
    it runs), by node id; nodes without issues are listed with none."""
    checkpoints = {nid: n["inputs"].get("ckpt_name") for nid, n in graph.items()
                   if isinstance(n, dict) and n.get("class_type") == "CheckpointLoaderSimple"
                   and isinstance(n.get("inputs"), dict)}
    out: dict[str, list[Issue]] = {}
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not str(node.get("class_type", "")).startswith("Atelier"):
            continue
        inputs: dict[str, Any] = node["inputs"] if isinstance(node.get("inputs"), dict) else {}
        literal = {k: v for k, v in inputs.items() if not isinstance(v, list)}
        out[str(node_id)] = check_node(rules, user, str(node["class_type"]), literal,
                                       _linked_checkpoint(inputs, checkpoints), authenticated)
    return out


def check_node(rules: Rules, user: str | None, kind: str, literal: dict[str, Any],
               linked_checkpoint: str | None = None, authenticated: bool = False) -> list[Issue]:
    """One Atelier node's issues from its literal inputs (a linked input is absent, or None as ComfyUI's
    ``validate_inputs`` passes it, and checked when the node runs); ``linked_checkpoint`` is the checkpoint of
    the loader its model comes from, when the graph says. ``user`` None: who queued is not known (the social
    rule takes the strictest maximum; the others read the default user's presets and library). The graph's badges
    and the nodes' own refusal before a run both come from here."""
    who = user or "default"
    literal, issues = typed({k: v for k, v in literal.items() if v is not None})
    checkpoint = literal.get("checkpoint") or (linked_checkpoint if isinstance(linked_checkpoint, str) else None)
    if checkpoint == "(none)":
        checkpoint = None
    family = literal.get("model_family") or literal.get("checkpoint_family")
    if kind == "AtelierQualityPreset" and isinstance(literal.get("tier"), str):
        owner, tier = split_option(literal["tier"])  # the node's options: a tier, or another user's "user/preset"
        issues += rules.tier(owner, tier, family, checkpoint)
    if kind == "AtelierSmartPlan" and isinstance(literal.get("tier"), str) and literal.get("mode") == "MANUAL":
        issues += rules.tier(who, literal["tier"], family, checkpoint)
    if kind == "AtelierSmartPlan" and "prompt" in literal and (literal.get("max_time_s") or literal.get("max_vram_gb")):
        # (a linked prompt decides the content type, hence the size: the budget is checked when the node runs)
        constraints = {k: v for k, v in (("max_time_s", literal.get("max_time_s")),
                                         ("max_vram_gb", literal.get("max_vram_gb")),
                                         ("priority", literal.get("priority"))) if v}
        issues += rules.budget(who, constraints, family, checkpoint, str(literal.get("prompt", "")),
                               literal.get("width") or 0, literal.get("height") or 0, literal.get("batch_size") or 1)
    if kind == "AtelierLoraRecommend" and isinstance(literal.get("loras"), str) and literal["loras"].strip() \
            and literal.get("mode") != "AUTO":
        issues += rules.loras_(who, _names(literal["loras"]), family, checkpoint)
    if kind in ("AtelierVariationScore", "AtelierFrameChain") and isinstance(literal.get("scorers"), str):
        issues += rules.scorers_(_names(literal["scorers"]))
    if kind == "AtelierFrameChain":
        issues += rules.storyboard(literal.get("storyboard"))
    if kind == "AtelierSocialContext":
        body: dict[str, Any] = {k: literal[k] for k in ("affinity", "trust", "chemistry", "tension", "npc_id")
                                if k in literal}
        body.update(world_id=literal.get("world", "default"), requested_rating=literal.get("requested_rating"),
                    enforcement=literal.get("enforcement", "clamp"))
        if literal.get("max_rating") not in (None, "(server maximum)"):
            body["max_rating"] = literal["max_rating"]
        issues += rules.rating(user, body, authenticated)
    return issues


def typed(values: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """The values the rules read, of the kinds they accept (sizes as whole numbers in range, names as text);
    each other one is an ``invalid_value`` issue and left out, so the rules never see it."""
    out, issues = dict(values), []
    for name in TEXTS:
        if out.get(name) is not None and not isinstance(out[name], str):
            issues.append(_error("invalid_value", name, f"{name}={_shown(out.pop(name))} is not accepted; "
                                                        f"accepted: a name (text)"))
    for name, (lo, hi) in SIZES.items():
        value = out.get(name)
        if value is None:
            continue
        whole = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
        if whole and lo <= value <= hi:
            out[name] = int(value)
        else:
            issues.append(_error("invalid_value", name, f"{name}={_shown(out.pop(name))} is not accepted; "
                                                        f"accepted: a whole number {lo}-{hi}"))
    return out, issues


def _shown(value: Any) -> str:
    return repr(value)[:80]


def refusal(issues: list[Issue]) -> str | None:
    """What a node says when ComfyUI asks it to validate its inputs: its errors, each with its code and field
    (warnings do not stop a run: the badges show them); None when it may run."""
    errors = [i for i in issues if i.severity == "error"]
    return "; ".join(f"{i.code} ({i.field}): {i.message}" for i in errors) or None


def report(issues: list[Issue]) -> dict[str, Any]:
    """Errors and warnings apart; ``valid`` when there is no error."""
    errors = [i.to_dict() for i in issues if i.severity == "error"]
    return {"valid": not errors, "errors": errors, "warnings": [i.to_dict() for i in issues if i.severity != "error"]}


def graph_report(nodes: dict[str, list[Issue]]) -> dict[str, Any]:
    """Per node its status (ok / warning / error) and issues; the graph's counts."""
    out = {}
    for node_id, issues in nodes.items():
        status = "error" if any(i.severity == "error" for i in issues) else "warning" if issues else "ok"
        out[node_id] = {"status": status, "issues": [i.to_dict() for i in issues]}
    flat = [i for issues in nodes.values() for i in issues]
    return {"nodes": out, "summary": {"nodes": len(out), "errors": sum(i.severity == "error" for i in flat),
                                      "warnings": sum(i.severity == "warning" for i in flat)}}


def missing_variable(field: str, value: Any, message: str) -> Issue:
    return _error("missing_variable", f"{field}.{value}", message)


def _linked_checkpoint(inputs: dict[str, Any], checkpoints: dict[str, Any]) -> str | None:
    """The checkpoint of the loader a node's ``model`` input comes from, when it is linked straight to one."""
    for name in ("model", "clip"):
        link = inputs.get(name)
        if isinstance(link, list) and link and str(link[0]) in checkpoints:
            value = checkpoints[str(link[0])]
            return value if isinstance(value, str) else None
    return None
