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

from pathlib import Path
from typing import Any

from ..base.data import read_yaml
from ..base.errors import invalid
from .context import ContextRequest, World, build_context, enforce, validate, worlds


class SocialService:
    def __init__(self, config_dir: Path | None = None) -> None:
        self.config_dir = config_dir

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

    def user_max(self, user: str, world: World, authenticated: bool = False) -> str | None:
        """The server's maximum rating for ``user`` in ``world`` (None: only the world's maximum applies)."""
        config = self._config()
        users = config.get("users") or {}
        if not isinstance(users, dict):
            raise invalid("social.yaml users", type(users).__name__, "a mapping of user names to ratings")
        if user in users:
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

    def build(self, user: str, body: Any, authenticated: bool = False) -> dict[str, Any]:
        """``authenticated``: a trusted proxy named the user (else the user name is only a claim)."""
        request = ContextRequest.parse(body)
        world_list = self.worlds()
        world_of = world_list.get(request.world_id)
        if world_of is None:
            raise invalid("world_id", request.world_id, sorted(world_list))
        context = build_context(request, self.user_max(user, world_of, authenticated), world_list)
        out = context.to_dict()
        world = world_list[request.world_id]
        if request.requested_rating:
            out["requested_rating"] = request.requested_rating
            out["allowed_rating"] = enforce(context, request.requested_rating, world, request.enforcement)
        out["validation"] = validate(request, world)
        return out


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
