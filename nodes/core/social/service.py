"""The social-context facade for the node and the route, with the server-side rating maxima.

``user/atelier/social.yaml`` (the ComfyUI user directory's ``atelier`` folder)::

    default_max_rating: mature_implied   # every user, unless named below
    users: {alice: sfw}

A request's own ``max_rating`` can only lower these; nothing a client sends raises them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.data import read_yaml
from ..base.errors import invalid
from .context import ContextRequest, build_context, enforce, validate, worlds


class SocialService:
    def __init__(self, config_dir: Path | None = None) -> None:
        self.config_dir = config_dir

    def _config(self) -> dict[str, Any]:
        path = self.config_dir / "social.yaml" if self.config_dir else None
        if path is None or not path.is_file():
            return {}
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise invalid("social.yaml", str(path), "a mapping with default_max_rating and users")
        return data

    def worlds(self) -> dict[str, Any]:
        return worlds(self.config_dir / "worlds" if self.config_dir else None)

    def ratings(self) -> list[str]:
        """Every content rating of the worlds, in their order (the default world's first)."""
        found = self.worlds()
        ordered = [found.pop("default")] if "default" in found else []
        return list(dict.fromkeys(r for world in [*ordered, *found.values()] for r in world.ratings))

    def user_max(self, user: str) -> str | None:
        """The server's maximum rating for ``user`` (None: only the world's maximum applies)."""
        config = self._config()
        return (config.get("users") or {}).get(user, config.get("default_max_rating"))

    def build(self, user: str, body: Any) -> dict[str, Any]:
        request = ContextRequest.parse(body)
        world_list = self.worlds()
        context = build_context(request, self.user_max(user), world_list)
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
