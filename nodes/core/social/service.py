"""The social-context facade for the node and the route, with the server-side rating maxima.

``user/atelier/social.yaml`` (the ComfyUI user directory's ``atelier`` folder)::

    default_max_rating: mature_implied   # users a trusted proxy authenticated, unless named below
    users: {alice: sfw, bob: restricted}

A user named under ``users`` gets that maximum. Any other user gets ``default_max_rating`` only when a trusted
reverse proxy names the user (``ATELIER_TRUSTED_USER_HEADER``); otherwise the user name is a claim anyone can
make (ComfyUI's ``comfy-user`` header), so an unlisted or unknown user gets the strictest maximum configured.
A request's own ``max_rating`` can only lower these; nothing a client sends raises them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..base.data import read_yaml
from ..base.errors import Forbidden, invalid
from .context import ContextRequest, World, build_context, enforce, validate, worlds

# (user, kind, source, asked, applied, why): the safety log, when the host gives one
Report = Callable[[str, str, str, str, str, str], None]
UNKNOWN_USER = "(unknown)"  # who the log names when the user who queued a prompt cannot be known


class SocialService:
    def __init__(self, config_dir: Path | None = None, report: Report | None = None) -> None:
        self.config_dir = config_dir
        self.report = report

    def _config(self) -> dict[str, Any]:
        path = self.config_dir / "social.yaml" if self.config_dir else None
        if path is None or not path.is_file():
            return {}
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise invalid("social.yaml", type(data).__name__, "a mapping with default_max_rating and users")
        return data

    def worlds(self) -> dict[str, Any]:
        return worlds(self.config_dir / "worlds" if self.config_dir else None)

    def ratings(self) -> list[str]:
        """Every content rating of the worlds, in their order (the default world's first)."""
        found = self.worlds()
        ordered = [found.pop("default")] if "default" in found else []
        return list(dict.fromkeys(r for world in [*ordered, *found.values()] for r in world.ratings))

    def user_max(self, user: str | None, world: World, authenticated: bool = False) -> str | None:
        """The server's maximum rating for ``user`` in ``world`` (None: only the world's maximum applies). An
        unknown user (None: who queued a prompt is not known) gets the strictest maximum configured."""
        config = self._config()
        users = config.get("users") or {}
        if not isinstance(users, dict):
            raise invalid("social.yaml users", type(users).__name__, "a mapping of user names to ratings")
        if user is None:
            authenticated = False
        elif user in users:
            return str(users[user])
        default = config.get("default_max_rating")
        if authenticated:
            return None if default is None else str(default)
        configured = [str(r) for r in [default, *users.values()] if r is not None]
        known = [r for r in configured if r in world.ratings]
        if len(known) != len(configured):
            unknown = next(r for r in configured if r not in world.ratings)
            raise invalid("social.yaml rating", unknown, list(world.ratings))
        return min(known, key=world.rank) if known else None

    def build(self, user: str | None, body: Any, authenticated: bool = False, source: str = "route",
              log: bool = True) -> dict[str, Any]:
        """``authenticated``: a trusted proxy named the user (else the user name is only a claim); ``user`` None:
        the user cannot be known (the strictest maximum applies, and the context says so). A clamped or rejected
        rating goes to the safety log (``source`` says where it was asked), unless ``log`` is False: a validation
        asks what would happen, and nothing was clamped or refused yet."""
        request = ContextRequest.parse(body)
        world_list = self.worlds()
        world_of = world_list.get(request.world_id)
        if world_of is None:
            raise invalid("world_id", request.world_id, sorted(world_list))
        user_max = self.user_max(user, world_of, authenticated)
        context = build_context(request, user_max, world_list)
        out = context.to_dict()
        if user is None:
            out["warnings"] = [*out["warnings"], "who queued this prompt is not known (ComfyUI does not keep it with "
                               f"the prompt): the strictest maximum applies ({user_max or world_of.max_rating})"]
        world = world_list[request.world_id]
        if request.requested_rating:
            out["requested_rating"] = request.requested_rating
            asked = f"rating {request.requested_rating} (npc {request.npc_id or '-'}, world {request.world_id})"
            why = (f"tier {context.tier}, band {context.band}: the allowed rating is {context.rating}"
                   + (f", lowered by the {' and '.join(context.clamped_by)} maximum" if context.clamped_by else ""))
            try:
                out["allowed_rating"] = enforce(context, request.requested_rating, world, request.enforcement)
            except Forbidden:
                if log:
                    self._report(user, "rating_rejected", source, asked, "refused (403)", why)
                raise
            if out["allowed_rating"] != request.requested_rating and log:
                self._report(user, "rating_clamped", source, asked, f"rating {out['allowed_rating']}", why)
        out["validation"] = validate(request, world)
        return out

    def _report(self, user: str | None, kind: str, source: str, asked: str, applied: str, why: str) -> None:
        if self.report is not None:
            self.report(user or UNKNOWN_USER, kind, source, asked, applied, why)


SERVER_MAXIMUM = "(server maximum)"  # the node's max_rating choice that keeps the server's


def node_body(values: dict[str, Any], world: str, max_rating: str, requested_rating: str,
              enforcement: str) -> dict[str, Any]:
    """The Social Context node's widgets as a request (the server maximum unless a lower one is chosen)."""
    body = {**values, "world_id": world, "requested_rating": requested_rating, "enforcement": enforcement}
    if max_rating != SERVER_MAXIMUM:
        body["max_rating"] = max_rating
    return body


def node_text(context: dict[str, Any]) -> str:
    return (f"{context['tier']} · intimacy {context['band']} · rating {context['allowed_rating']}"
            + "".join(f"\nwarning: {w}" for w in context["warnings"]))


def apply_context(body: dict[str, Any], context: dict[str, Any], rendered: str) -> dict[str, Any]:
    """A generation config under a built social context: the rating's prompt addition goes after its prompt as
    rendered (``prompt_addition``: an inline prompt and a versioned one alike) and into the graph's text inputs
    equal to that prompt, its negative parameter gets the negative addition, and its parameters keep the context
    (``social``: world, npc, tier, band, the rating asked and the one applied, which maximum lowered it, the
    additions). ``rendered``: the config's prompt as it will be recorded, without the addition."""
    out = dict(body)
    parameters = out.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid("parameters", type(parameters).__name__, "a JSON object")
    parameters = dict(parameters or {})
    addition, negative = context.get("prompt_addition") or "", context.get("negative_addition") or ""
    if addition:
        given = out.get("prompt_addition")
        out["prompt_addition"] = f"{given}, {addition}" if isinstance(given, str) and given else addition
        graph, full = out.get("graph"), f"{rendered}, {addition}" if rendered else addition
        if isinstance(graph, dict):
            templates = {rendered, out.get("prompt")} - {None, ""}
            out["graph"] = {k: ({**v, "inputs": {**v["inputs"], "text": full}}
                                if isinstance(v, dict) and isinstance(v.get("inputs"), dict)
                                and v["inputs"].get("text") in templates else v) for k, v in graph.items()}
    if negative and isinstance(parameters.get("negative"), str):
        parameters["negative"] = f"{parameters['negative']}, {negative}" if parameters["negative"] else negative
    parameters["social"] = {k: context.get(k) for k in ("world_id", "npc_id", "tier", "band", "rating",
                                                        "requested_rating", "allowed_rating", "clamped_by",
                                                        "prompt_addition", "negative_addition")}
    out["parameters"] = parameters
    return out
