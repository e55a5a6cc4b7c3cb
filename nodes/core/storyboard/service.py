"""Running pipelines on ComfyUI's queue and reporting on them (for the routes).

``run`` builds the pipeline's API graph, records it (operation type = the pipeline) and puts it on
ComfyUI's prompt queue, where ComfyUI validates it; ``status`` answers from ComfyUI's queue and
history (the records' ComfyUI), with the storyboard manifest written by Storyboard Save and the run's
records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..base.errors import NotFound, Unavailable, invalid
from ..quality.pipelines import PipelinePlan
from ..quality.service import QualityService
from ..records.hashing import run_hash
from ..records.record import GenerationRecord
from ..records.service import RecordService, Submitter
from ..scaleout.service import DistributedSubmitter, job_queue
from .distributed import frame_configs
from .library import DEFAULT_OWNER as DEFAULT_USER
from .library import owner_of
from .pipelines import Graph, PipelineRun, comparison_graph, compile_pipeline, plan_run

COMPARISON_FIELDS = ("prompt", "checkpoint", "model_family", "negative", "width", "height", "seed")


def _comparison_answer(record: GenerationRecord, cached: bool) -> dict[str, Any]:
    images = [name for names in record.outputs.values() if isinstance(names, list) for name in names]
    return {"record_id": record.id, "prompt_id": record.comfy_prompt_id, "status": record.status, "cached": cached,
            "image": images[0] if images else None}


def plan_record(plan: PipelinePlan) -> dict[str, Any]:
    """What a run's record keeps of its plan: each stage's runs and sampling passes, the skipped stages, the
    totals (the passes that ran are these: the graph is compiled from the plan)."""
    return {"tier": plan.tier, "family": plan.family.get("family"),
            "stages": [{"id": s.id, "runs": s.runs, "passes": [p.name for p in s.passes],
                        "expected_s": round(s.estimate.time_expected_s, 2)} for s in plan.stages],
            "skipped": [s.id for s in plan.skipped], "totals": plan.totals()}


def wants_distributed(body: Any, default: bool) -> bool:
    """A request's ``distributed`` (taken out of ``body``), else the server's setting."""
    value = body.pop("distributed", None) if isinstance(body, dict) else None
    if value is not None and not isinstance(value, bool):
        raise invalid("distributed", value, "true (the job queue of many workers) or false (this server's ComfyUI)")
    return default if value is None else value


class PipelineService:
    """``output_dir``: ComfyUI's output folder (where Storyboard Save writes under atelier/storyboards);
    ``distributed``: the job queue's submitter, made on first use (scale-out), and whether runs go there by
    default."""

    def __init__(self, records: RecordService, output_dir: Path, quality: QualityService,
                 distributed: Callable[[], DistributedSubmitter] | None = None,
                 distributed_default: bool = False) -> None:
        self.records = records
        self.output_dir = output_dir
        self.quality = quality
        self.distributed = distributed
        self.distributed_default = distributed_default

    def submitter(self, distributed: bool, field: str, value: Any) -> Submitter | DistributedSubmitter:
        """This server's ComfyUI queue, or the job queue when the request (or the server) says distributed."""
        if distributed:
            return job_queue(self.distributed)
        if self.records.comfy is None:
            raise Unavailable("this Atelier server has no ComfyUI queue: run on a ComfyUI server, or with "
                              '"distributed": true on the job queue', field=field, value=value)
        return self.records.submitter

    def plan(self, user: str, name: str, body: Any) -> tuple[PipelineRun, PipelinePlan, Graph]:
        """A run's plan at the user's tier (built-in or their custom preset) and the graph compiled from it."""
        run = PipelineRun.parse(body)
        preset = self.quality.tier(user, run.tier)
        plan = plan_run(name, run, preset, self.quality.tables, self.quality.estimator)
        return run, plan, compile_pipeline(run, plan)

    async def run(self, user: str, name: str, body: Any) -> dict[str, Any]:
        """``body``: the pipeline's parameters, and optionally ``client_id`` (the websocket that gets its events)."""
        client_id = body.pop("client_id", None) if isinstance(body, dict) else None
        if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= 128):
            raise invalid("client_id", client_id, "a websocket client id of 1-128 characters")
        distributed = wants_distributed(body, self.distributed_default)
        run, plan, graph = self.plan(user, name, body)
        submitter = self.submitter(distributed, "name", name)
        preset = plan.preset
        for node in graph.values():
            if node["class_type"] == "AtelierQualityPreset" and not preset.builtin and user != DEFAULT_USER:
                node["inputs"]["tier"] = f"{user}/{preset.id}"  # the node reads other users' presets so
            if node["class_type"] == "AtelierFrameChain":
                node["inputs"]["owner"] = user  # the storyboard and its record are the user's
        if isinstance(submitter, DistributedSubmitter) and any(n["class_type"] == "AtelierFrameChain"
                                                               for n in graph.values()):
            return await self._storyboard_jobs(user, name, run, plan, submitter)
        record = await submitter.submit(user, {
            "operation_type": name, "workspace": "pipelines", "prompt": run.prompt or run.storyboard[:20000],
            "parameters": {"run": run.model_dump(), "quality": {"preset": run.tier},
                           "plan": plan_record(plan)}, "graph": graph}, client_id)
        return {"prompt_id": record.comfy_prompt_id, "record_id": record.id, "pipeline": name,
                "tier": run.tier, "nodes": len(graph), "graph": graph, "plan": plan.to_dict(),
                "distributed": submitter is not self.records.submitter}

    async def _storyboard_jobs(self, user: str, name: str, run: PipelineRun, plan: PipelinePlan,
                               queue: DistributedSubmitter) -> dict[str, Any]:
        """A storyboard on the job queue: a run record, and one job per frame under the storyboard's lock (in
        order, each frame on whichever worker is free); the run's progress is its jobs (``GET /atelier/jobs
        ?group=<record id>``)."""
        parent = await asyncio.to_thread(self.records.create, user, {
            "operation_type": name, "workspace": "pipelines", "prompt": run.prompt or run.storyboard[:20000],
            "parameters": {"run": run.model_dump(), "quality": {"preset": run.tier}, "plan": plan_record(plan),
                           "distributed": True}}, status="running")
        configs = frame_configs(name, run, plan, parent.id)
        frames = await queue.submit_many(user, configs, group_id=parent.id, lock=f"storyboard:{parent.id}")
        await asyncio.to_thread(self.records.store.set_status, parent.id, "running",
                                outputs={"atelier": {"frames": [f.id for f in frames]}})
        return {"prompt_id": None, "record_id": parent.id, "pipeline": name, "tier": run.tier, "distributed": True,
                "jobs": [f.id for f in frames], "frames": len(frames), "plan": plan.to_dict()}

    async def comparison(self, user: str, body: Any) -> dict[str, Any]:
        """Render the tier comparison (the four built-in tiers, one prompt and seed, a labelled grid) for a prompt
        and checkpoint; the same request again answers the queued or finished one (``cached``)."""
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, 'a JSON object {"prompt", "checkpoint", ...}')
        unknown = sorted(set(body) - set(COMPARISON_FIELDS))
        if unknown:
            raise invalid(unknown[0], unknown[0], list(COMPARISON_FIELDS), "the comparison renders the four tiers")
        run = PipelineRun.parse(body)
        params = {"comparison": {k: v for k, v in run.model_dump().items() if k in COMPARISON_FIELDS and k != "prompt"}}
        graph = comparison_graph(run)
        digest = run_hash(params, run.prompt, graph)  # what the record of this render would hash to
        store = self.records.store
        for record_id in reversed(await asyncio.to_thread(store.identical, digest, None, user)):
            earlier = await asyncio.to_thread(store.get, record_id, user)
            if earlier.operation_type == "tier_comparison" and earlier.status in ("queued", "running", "completed"):
                return _comparison_answer(earlier, cached=True)
        if self.records.comfy is None:
            raise Unavailable("this Atelier server has no ComfyUI queue: render comparisons on a ComfyUI server",
                              field="checkpoint", value=run.checkpoint)
        record = await self.records.submitter.submit(user, {
            "operation_type": "tier_comparison", "workspace": "comparisons", "prompt": run.prompt,
            "parameters": params, "graph": graph})
        return _comparison_answer(record, cached=False)

    async def status(self, user: str, prompt_id: str) -> dict[str, Any]:
        """A run of ``user``'s: another user's run is not found. A prompt without records (queued on ComfyUI
        directly) answers from ComfyUI's queue and history, as ComfyUI's own routes would."""
        if not isinstance(prompt_id, str) or not 0 < len(prompt_id) <= 64:
            raise NotFound(f"ComfyUI knows no prompt {str(prompt_id)[:80]!r}", field="prompt_id",
                           value=str(prompt_id)[:80])
        records = await asyncio.to_thread(self.records.store.for_prompt, prompt_id, user)
        others = [] if records else await asyncio.to_thread(self.records.store.for_prompt, prompt_id, None)
        if others:  # another user's run
            raise NotFound(f"ComfyUI knows no prompt {prompt_id!r}", field="prompt_id", value=prompt_id)
        comfy = self.records.comfy
        item = await comfy.history(prompt_id) if comfy else None
        if item is not None:
            state = (item.get("status") or {}).get("status_str") or "unknown"
            status = {"success": "completed", "error": "failed"}.get(state, state)
        else:
            running, pending = await comfy.queue_ids() if comfy else ([], [])
            status = "running" if prompt_id in running else "queued" if prompt_id in pending else None
            if status is None and not records:
                raise NotFound(f"ComfyUI knows no prompt {prompt_id!r}", field="prompt_id", value=prompt_id)
            status = status or records[-1].status
        outputs = (item or {}).get("outputs") or {}
        return {"prompt_id": prompt_id, "status": status, "outputs": outputs,
                "manifests": self._manifests(outputs, user), "records": [r.to_dict() for r in records]}

    def _manifests(self, outputs: dict[str, Any], user: str) -> list[dict[str, Any]]:
        """The manifest.json of every storyboard of ``user``'s a prompt saved (found from its saved frames)."""
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        root = self.output_dir.resolve()
        for output in outputs.values():
            if not isinstance(output, dict):
                continue
            for sub in [str(s) for s in output.get("storyboard", [])]:
                if not sub.startswith("atelier/storyboards/") or sub in seen:
                    continue
                seen.add(sub)
                path = (root / sub / "manifest.json").resolve()
                if root in path.parents and path.is_file():
                    manifest = json.loads(path.read_text(encoding="utf-8"))
                    if isinstance(manifest, dict) and owner_of(manifest) == user:
                        found.append({"folder": sub, **manifest})
        return found
