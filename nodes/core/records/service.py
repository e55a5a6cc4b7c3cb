"""The records facade for the routes, the record nodes and the pipelines.

The host names the database: SQLite in Atelier's data folder (``records.sqlite``) unless
``ATELIER_DATABASE_URL`` names another SQLAlchemy URL (e.g. PostgreSQL shared by many workers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.errors import AtelierError, Conflict, invalid
from ..base.jsonsafe import dig
from ..base.validation import parse_model
from ..quality.estimate import Estimator
from ..quality.runs import history_duration
from .comfy import ComfyUI
from .hashing import graph_parameters, run_hash
from .record import GenerationRecord
from .store import RecordStore, render, with_addition

if TYPE_CHECKING:
    from ..quality.plan import QualityPlan
    from ..scoring.scores import ScoreResult


class GenerationConfig(BaseModel):
    """What a client asks to record: the operation, its parameters and its prompt (inline or versioned)."""

    model_config = ConfigDict(extra="forbid")
    operation_type: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
    workspace: Annotated[str, Field(min_length=1, max_length=128)] = "default"
    parameters: dict[str, Any] = Field(default_factory=dict)
    prompt: Annotated[str, Field(max_length=20000)] | None = None
    prompt_family: Annotated[str, Field(max_length=128)] | None = None
    prompt_version: Annotated[int, Field(ge=1)] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    # appended to the prompt as rendered (what a social context adds; a versioned prompt keeps its version)
    prompt_addition: Annotated[str, Field(max_length=2000)] | None = None

    @classmethod
    def parse(cls, data: Any) -> GenerationConfig:
        config = parse_model(cls, data, "a JSON object with operation_type and parameters")
        if config.prompt is not None and config.prompt_family is not None:
            raise invalid("prompt_family", config.prompt_family, "either prompt or prompt_family, not both")
        return config


class RecordService:
    """Records in the database at ``url``; ``comfy`` is the ComfyUI generations are queued on (None: a
    server without one, where generations are only recorded)."""

    def __init__(self, url: str, comfy: ComfyUI | None = None) -> None:
        self.store = RecordStore(url)
        self.comfy = comfy
        self.submitter = Submitter(self, comfy)
        # (user, kind, source, asked, applied, why): refused prompt-variable values go to the safety log
        self.report: Callable[[str, str, str, str, str, str], None] | None = None

    def _refused(self, user: str, exc: AtelierError) -> None:
        if self.report is not None and str(exc.field or "").startswith("variables."):
            self.report(user, "variable_refused", "records", f"{exc.field} = {str(exc.value)[:80]}", "refused (4xx)",
                        exc.message)

    def _prompt(self, user: str, config: GenerationConfig) -> str:
        if config.prompt_family:
            template = self.store.prompt_version(user, config.prompt_family, config.prompt_version).template
        else:
            template = config.prompt or ""
        return with_addition(render(template, config.variables), config.prompt_addition)

    def validate(self, user: str, body: Any, graph: dict[str, Any] | None = None) -> dict[str, Any]:
        """Checks a config (prompt variables included) without writing; names ``user``'s identical earlier runs
        (the same config on the same ``graph``, when one is given)."""
        config = GenerationConfig.parse(body)
        try:
            text = self._prompt(user, config)
        except AtelierError as exc:
            self._refused(user, exc)
            raise
        digest = run_hash(config.parameters, text, graph)
        return {"valid": True, "prompt": text, "repro_hash": digest,
                "identical": self.store.identical(digest, user=user)}

    def create(self, user: str, body: Any, status: str = "pending", comfy_prompt_id: str | None = None,
               started_at: float | None = None, finished_at: float | None = None,
               graph: dict[str, Any] | None = None) -> GenerationRecord:
        config = GenerationConfig.parse(body)
        try:
            record = self.store.create(config.operation_type, user, config.parameters, config.workspace,
                                       config.prompt, config.prompt_family, config.prompt_version, config.variables,
                                       status=status, started_at=started_at, finished_at=finished_at, graph=graph,
                                       prompt_addition=config.prompt_addition)
        except AtelierError as exc:
            self._refused(user, exc)
            raise
        if comfy_prompt_id:
            record = self.store.set_status(record.id, record.status, comfy_prompt_id=comfy_prompt_id)
        return record


def calibrate_from_record(estimator: Estimator, record: GenerationRecord, item: dict[str, Any], device: str) -> bool:
    """A completed record whose parameters carry a quality plan (family, category, params) teaches the
    estimator its duration, measured by ComfyUI's execution events in its history ``item``. The same
    checks as the history observer apply (no cached sampler, no model loaded from disk), and the prompt
    id dedups the two."""
    quality = dig(record.parameters, "quality")
    if record.status != "completed" or not isinstance(quality, dict) or \
            not {"family", "category", "params"} <= quality.keys():
        return False
    seconds, _ = history_duration(item)
    if seconds is None:
        return False
    try:
        return estimator.record_run(quality["category"], quality["params"], quality["family"], seconds,
                                    device=device, run_id=record.comfy_prompt_id)
    except (AtelierError, KeyError, TypeError, ValueError):
        return False


class QueueError(AtelierError):
    """ComfyUI refused the graph (its validation errors are in ``value``); ``record_id``: the record the
    submitter marked failed for it."""

    status = 400
    record_id: str | None = None


class Submitter:
    """Records a generation and puts its graph on ComfyUI's queue; cancels it again. Without a ComfyUI a
    generation is only recorded."""

    def __init__(self, service: RecordService, comfy: ComfyUI | None = None) -> None:
        self.service = service
        self.comfy = comfy

    async def submit(self, user: str, body: Any, client_id: str | None = None) -> GenerationRecord:
        """Record the config; queue its ``graph`` (ComfyUI sends its events to ``client_id``'s websocket)."""
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, "a generation config with an API-format graph")
        body = dict(body)
        graph = body.pop("graph", None)
        if graph is not None and (not isinstance(graph, dict) or not graph):
            raise invalid("graph", type(graph).__name__, "an API-format graph: {node id: {class_type, inputs}}")
        if graph is not None and self.comfy is None:
            raise invalid("graph", "(a graph)", "no graph here: this server has no ComfyUI queue")
        record = await asyncio.to_thread(self.service.create, user, body, graph=graph)
        if graph is None:
            return record
        assert self.comfy is not None
        try:
            prompt_id = await self.comfy.queue(graph, client_id)
        except QueueError as exc:
            self.service.store.set_status(record.id, "failed", error=exc.message)
            exc.record_id = record.id
            raise
        return self.service.store.set_status(record.id, "queued", comfy_prompt_id=prompt_id)

    async def cancel(self, record_id: str, user: str | None = None) -> GenerationRecord:
        """Take ``user``'s record off ComfyUI's queue, or interrupt it when it runs."""
        record = self.service.store.get(record_id, user)
        if record.status not in ("pending", "queued", "running"):
            raise Conflict(f"record {record_id} is {record.status}; only pending, queued or running ones "
                           f"can be cancelled", field="status", value=record.status)
        if record.comfy_prompt_id and self.comfy is not None:
            await self.comfy.cancel(record.comfy_prompt_id)
        return self.service.store.set_status(record_id, "cancelled")


def graph_of(prompt: Any) -> dict[str, Any] | None:
    """The API-format graph a node's run came from (its hidden PROMPT), kept with the record: the record can be
    replayed, and its nodes lead to it (``RecordStore.produced_by``)."""
    return prompt if isinstance(prompt, dict) and prompt else None


SOCIAL_KEYS = ("world_id", "npc_id", "tier", "band", "band_rating", "rating", "clamped_by", "requested_rating",
               "allowed_rating")
SCORE_KEYS = ("overall", "metrics", "normalised", "weights")


def node_parameters(graph: dict[str, Any] | None, plan: QualityPlan | None = None,
                    social: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the Record Generation node records: the graph, the quality plan and the social context."""
    parameters: dict[str, Any] = {"graph": graph_parameters(graph)}
    if plan is not None:
        parameters["quality"] = {"preset": plan.preset.id, "params": plan.params, "family": plan.family.family,
                                 "category": plan.template.category}
    if social:
        parameters["social"] = {k: social.get(k) for k in SOCIAL_KEYS}
    return parameters


def node_scores(scores: ScoreResult) -> dict[str, Any]:
    body = scores.to_dict()
    return {k: body.get(k) for k in SCORE_KEYS}


def node_text(record: GenerationRecord, earlier: list[str]) -> str:
    return f"record {record.id}\nhash {record.repro_hash[:16]}; identical earlier runs: {len(earlier)}"


__all__ = ["RecordService", "Submitter", "QueueError", "calibrate_from_record", "graph_parameters",
           "node_parameters", "node_scores", "node_text"]
