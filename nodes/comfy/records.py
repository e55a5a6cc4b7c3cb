"""ComfyUI V3 output node that records a generation (adapter over ``nodes.records``)."""

from __future__ import annotations

import time
from typing import Any

from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from . import runtime
from .quality import QualityPresetType
from .scoring import ScoresType
from .social import SocialContextType


def graph_parameters(prompt: dict[str, Any] | None) -> dict[str, Any]:
    """The queued graph as canonical parameters: every node's type and inputs, by node id."""
    return {str(node_id): {"class_type": node.get("class_type"), "inputs": node.get("inputs", {})}
            for node_id, node in (prompt or {}).items() if isinstance(node, dict)}


class RecordGeneration(io.ComfyNode):
    """Persists this run: canonical parameters, prompt, preset, social context, scores; ComfyUI's history
    then moves the record to completed or failed with its outputs."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierRecordGeneration",
            display_name="Record Generation",
            category="Atelier/Records",
            description="Records the run in Atelier's generation records (user/atelier/records.sqlite): the graph's "
                        "parameters, prompt, quality preset, social context and scores, with a reproducibility hash "
                        "that finds identical earlier runs. Status follows ComfyUI's execution.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images", optional=True, tooltip="Links the node after the images it records"),
                io.String.Input("operation_type", default="image_generation"),
                io.String.Input("workspace", default="default"),
                io.String.Input("prompt", multiline=True, default="", optional=True),
                QualityPresetType.Input("quality_preset", optional=True),
                SocialContextType.Input("social_context", optional=True),
                ScoresType.Input("scores", optional=True),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt],
        )

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> str:
        return str(time.time_ns())  # every run is a new record (nothing is downstream of this node)

    @classmethod
    def execute(cls, operation_type: str, workspace: str, images: Any = None, prompt: str = "",
                quality_preset: dict[str, Any] | None = None, social_context: dict[str, Any] | None = None,
                scores: dict[str, Any] | None = None) -> io.NodeOutput:
        parameters: dict[str, Any] = {"graph": graph_parameters(cls.hidden.prompt)}
        if quality_preset:
            parameters["quality"] = {"preset": quality_preset["preset"]["id"], "params": quality_preset["params"],
                                     "family": quality_preset["family"]["family"],
                                     "category": quality_preset["template"]["category"]}
        if social_context:
            parameters["social"] = {k: social_context.get(k) for k in ("world_id", "npc_id", "tier", "band", "rating")}
        service = runtime.atelier().records
        try:
            record = service.create("default", {"operation_type": operation_type, "workspace": workspace,
                                                "parameters": parameters, "prompt": prompt or ""},
                                    status="running", comfy_prompt_id=runtime.current_prompt_id())
            if scores:
                service.store.set_status(record["id"], "running", scores={
                    k: scores.get(k) for k in ("overall", "metrics", "weights")})
        except AtelierError as exc:
            raise node_error(exc) from None
        earlier = service.store.identical(record["repro_hash"], exclude=record["id"])
        text = f"record {record['id']}\nhash {record['repro_hash'][:16]}; identical earlier runs: {len(earlier)}"
        return io.NodeOutput(ui=ui.PreviewText(text))
