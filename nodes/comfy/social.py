"""ComfyUI V3 node for social context (adapter over ``core.social``)."""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.social.service import SERVER_MAXIMUM, node_body, node_text
from . import runtime

SocialContextType = io.Custom("SOCIAL_CONTEXT")


class SocialContext(io.ComfyNode):
    """Relationship values -> tier, intimacy band and a content rating clamped by the world and user maxima."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        social = runtime.atelier().social
        worlds, ratings = list(social.worlds()) or ["default"], social.ratings()
        value = {"default": 0, "min": 0, "max": 100, "step": 1, "display_mode": io.NumberDisplay.slider}
        return io.Schema(
            node_id="AtelierSocialContext",
            display_name="Social Context",
            category="Atelier/Social",
            description="Builds the social context of a scene: relationship tier, intimacy band and the content "
                        "rating it allows, clamped by the world's and the user's (server-side) maximum. A requested "
                        "rating above it is clamped, or refused with enforcement=reject.",
            inputs=[
                io.Int.Input("affinity", **value), io.Int.Input("trust", **value),
                io.Int.Input("chemistry", **value), io.Int.Input("tension", **value),
                io.String.Input("npc_id", default=""),
                io.Combo.Input("world", options=worlds, default=worlds[0]),
                io.Combo.Input("max_rating", options=[SERVER_MAXIMUM, *ratings], default=SERVER_MAXIMUM,
                               tooltip="Can only lower the maximum the server allows for this user"),
                io.Combo.Input("requested_rating", options=ratings, default=ratings[0]),
                io.Combo.Input("enforcement", options=["clamp", "reject"], default="clamp"),
            ],
            outputs=[
                SocialContextType.Output("social_context", display_name="SOCIAL_CONTEXT"),
                io.String.Output("rating"),
                io.String.Output("prompt_addition"),
                io.String.Output("negative_addition"),
            ],
        )

    @classmethod
    def validate_inputs(cls, affinity: int | None = None, trust: int | None = None, chemistry: int | None = None,
                        tension: int | None = None, npc_id: str | None = None, world: str | None = None,
                        max_rating: str | None = None, requested_rating: str | None = None,
                        enforcement: str | None = None) -> bool | str:
        """With enforcement=reject, a rating above what applies to the queuing user is refused before anything
        runs (clamp lowers it when the node runs, and the badge says so)."""
        return runtime.validate_node(cls, "AtelierSocialContext", {
            "affinity": affinity, "trust": trust, "chemistry": chemistry, "tension": tension, "npc_id": npc_id,
            "world": world, "max_rating": max_rating, "requested_rating": requested_rating,
            "enforcement": enforcement}, runtime.queuing_user())

    @classmethod
    def execute(cls, affinity: int, trust: int, chemistry: int, tension: int, npc_id: str, world: str,
                max_rating: str, requested_rating: str, enforcement: str) -> io.NodeOutput:
        values = {"affinity": affinity, "trust": trust, "chemistry": chemistry, "tension": tension, "npc_id": npc_id}
        try:
            context = runtime.atelier().social.build(runtime.queuing_user(), node_body(
                values, world, max_rating, requested_rating, enforcement), source="node")
        except AtelierError as exc:
            raise node_error(exc) from None
        return io.NodeOutput(context, context["allowed_rating"], context["prompt_addition"],
                             context["negative_addition"], ui=ui.PreviewText(node_text(context)))
