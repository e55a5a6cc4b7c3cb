"""ComfyUI V3 output node that records a generation (adapter over ``core.records``)."""

from __future__ import annotations

import time
from typing import Any

from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.base.ids import user_id
from ..core.quality.plan import QualityPlan
from ..core.records.service import graph_of, node_parameters, node_scores, node_text
from ..core.scoring.scores import ScoreResult
from . import runtime
from .quality import QualityPresetType
from .scoring import ScoresType
from .social import SocialContextType


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
                io.String.Input("owner", default="", optional=True,
                                tooltip="The user the record belongs to (empty: default); not authentication"),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt],
        )

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> str:
        return str(time.time_ns())  # every run is a new record (nothing is downstream of this node)

    @classmethod
    def execute(cls, operation_type: str, workspace: str, images: Any = None, prompt: str = "",
                quality_preset: QualityPlan | None = None, social_context: dict[str, Any] | None = None,
                scores: ScoreResult | None = None, owner: str = "") -> io.NodeOutput:
        service = runtime.atelier().records
        try:
            user = user_id(owner or None)
            record = service.create(user, {
                "operation_type": operation_type, "workspace": workspace, "prompt": prompt or "",
                "parameters": node_parameters(cls.hidden.prompt, quality_preset, social_context)},
                status="running", comfy_prompt_id=runtime.current_prompt_id(), graph=graph_of(cls.hidden.prompt))
            if scores:
                service.store.set_status(record.id, "running", scores=node_scores(scores))
        except AtelierError as exc:
            raise node_error(exc) from None
        earlier = service.store.identical(record.repro_hash, exclude=record.id, user=user)
        return io.NodeOutput(ui=ui.PreviewText(node_text(record, earlier)))
