"""Atelier's process-wide state, wired to ComfyUI when it runs inside it.

Inside ComfyUI: custom presets live in ComfyUI's user directory (``<user>/atelier/presets``),
calibration data in ``<user directory>/atelier/``, the device name comes from ComfyUI's model
management and users from its user manager. Outside ComfyUI (CLI, tests): ``ATELIER_HOME``
(default ``~/.atelier``) holds the same layout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..core.base.errors import AtelierError
from ..core.quality import plan as planning
from ..core.quality.families import read_safetensors_header
from ..core.quality.runs import PlannedRun, RunObserver
from ..core.quality.schema import register_comfy_names
from ..core.quality.service import QualityService
from ..core.records.service import calibrate_from_record

log = logging.getLogger("atelier")
HISTORY_POLL_S = 2.0
HISTORY_WINDOW = 64  # most recent prompts looked at per poll
NO_CHECKPOINT = "(none)"

_lock = threading.RLock()
_singletons: dict[str, Any] = {}
_service: QualityService | None = None
_observer: RunObserver | None = None
_models: Any = None
SCORER_FOLDERS = ("scorers", "aesthetic")  # registered by Atelier under ComfyUI's models folder


def _comfy_user_directory() -> Path | None:
    try:
        import folder_paths  # ComfyUI's public module
    except ImportError:
        return None
    return Path(folder_paths.get_user_directory())


def _lazy(name: str, factory: Any) -> Any:
    """One instance per process of each service, made on first use."""
    with _lock:
        if name not in _singletons:
            _singletons[name] = factory()
        return _singletons[name]


def atelier_home() -> Path:
    return Path(os.environ.get("ATELIER_HOME") or Path.home() / ".atelier")


def users_directory() -> Path:
    return _comfy_user_directory() or atelier_home() / "users"


def device_name() -> str:
    """ComfyUI's torch device (e.g. ``cuda:0 NVIDIA H100 : cudaMallocAsync``) or ``reference``."""
    try:
        import comfy.model_management as mm
    except ImportError:
        return os.environ.get("ATELIER_DEVICE", "reference")
    try:
        return str(mm.get_torch_device_name(mm.get_torch_device()))
    except Exception:  # ComfyUI could not name it; estimates fall back to the prior
        return "unknown"


def register_runtime_names() -> None:
    """Accept the sampler and scheduler names of the running ComfyUI, which may be newer."""
    try:
        import comfy.samplers as samplers
    except ImportError:
        return
    register_comfy_names(list(samplers.KSampler.SAMPLERS), list(samplers.KSampler.SCHEDULERS))


def service() -> QualityService:
    global _service, _observer
    with _lock:
        if _service is None:
            register_runtime_names()
            users = users_directory()
            _service = QualityService(users, users / "atelier", device=device_name())
            _observer = RunObserver(_service.estimator, plan_from_inputs)
        return _service


def observer() -> RunObserver:
    service()
    assert _observer is not None
    return _observer


def checkpoint_header(checkpoint: str | None) -> dict[str, Any] | None:
    """The safetensors header of a checkpoint in ComfyUI's checkpoints folders, if any."""
    if not checkpoint or checkpoint == NO_CHECKPOINT:
        return None
    try:
        import folder_paths
    except ImportError:
        return None
    path = folder_paths.get_full_path("checkpoints", checkpoint)
    return read_safetensors_header(Path(path)) if path else None


def plan_from_inputs(inputs: dict[str, Any]) -> PlannedRun | None:
    """The plan of a Quality Preset node from its inputs as recorded in a prompt (None if linked)."""
    names = ("tier", "model_family", "checkpoint", "width", "height", "batch_size")
    if any(isinstance(inputs.get(n), list) for n in names) or not isinstance(inputs.get("tier"), str):
        return None
    checkpoint = inputs.get("checkpoint")
    try:
        plan = planning.build_plan(service(), inputs["tier"], inputs.get("model_family", "auto"), checkpoint,
                                   checkpoint_header(checkpoint), int(inputs.get("width", 0)),
                                   int(inputs.get("height", 0)), int(inputs.get("batch_size", 1)))
    except (AtelierError, TypeError, ValueError):
        return None
    return PlannedRun("image", plan["family"]["family"], plan["params"], plan["device"])


def request_user(prompt_server: Any):  # noqa: ANN201
    def resolve(request: Any) -> str:
        return prompt_server.user_manager.get_request_user_id(request)
    return resolve


def hf_cache_dir() -> Path:
    """The local Hugging Face hub cache (read offline, never written)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def register_model_folders() -> dict[str, list[Path]]:
    """Register models/scorers and models/aesthetic with ComfyUI (extra_model_paths.yaml may add
    more) and return every folder the scorers search, clip_vision included."""
    try:
        import folder_paths
    except ImportError:
        home = atelier_home() / "models"
        return {kind: [home / kind] for kind in (*SCORER_FOLDERS, "clip_vision")}
    for kind in SCORER_FOLDERS:
        if kind not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.models_dir, kind), is_default=True)
    return {kind: [Path(p) for p in folder_paths.get_folder_paths(kind)] for kind in (*SCORER_FOLDERS, "clip_vision")}


def _comfy_prepare() -> Any:
    """Before each use: hand the model to ComfyUI's memory management (it may evict it for the
    diffusion model), on ComfyUI's device, fp16/bf16 on a GPU and fp32 on the CPU."""
    try:
        import comfy.model_management as mm
        import comfy.model_patcher as model_patcher
        import torch
    except ImportError:
        return None
    patchers: dict[int, Any] = {}

    class Holder(torch.nn.Module):
        """ModelPatcher assigns ``model.device``; transformers models make it read-only."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

    def prepare(module: Any) -> None:
        patcher = patchers.get(id(module))
        if patcher is None:
            device = mm.get_torch_device()
            if device.type != "cpu":
                dtype = torch.bfloat16 if mm.should_use_bf16(device) else (
                    torch.float16 if mm.should_use_fp16(device) else torch.float32)
                module.to(dtype=dtype)
            patcher = model_patcher.ModelPatcher(Holder(module), load_device=device,
                                                 offload_device=mm.unet_offload_device())
            patchers[id(module)] = patcher
        mm.load_models_gpu([patcher])

    return prepare


def scoring_models() -> Any:
    """The scorers' model manager (models stay loaded between executions)."""
    global _models
    with _lock:
        if _models is None:
            from ..core.scoring import model_scorers
            from ..core.scoring.models import ModelFolders, ModelManager

            _models = ModelManager(ModelFolders(register_model_folders(), hf_cache_dir()), _comfy_prepare())
            model_scorers.configure(_models)
        return _models


def output_directory() -> Path:
    try:
        import folder_paths
    except ImportError:
        return atelier_home() / "output"
    return Path(folder_paths.get_output_directory())


def enhance_service() -> Any:
    """Prompt enhancement: LLM endpoints from <user dir>/atelier/llm.json, traces in output/atelier/traces."""
    from ..core.enhance.service import EnhanceService

    return _lazy("enhance", lambda: EnhanceService(users_directory() / "atelier",
                                                   output_directory() / "atelier" / "traces"))


def social_service() -> Any:
    """Social context: worlds in presets/worlds and <user dir>/atelier/worlds, maxima in <user dir>/atelier/social.yaml."""
    from ..core.social.service import SocialService

    return _lazy("social", lambda: SocialService(users_directory() / "atelier"))


def record_service() -> Any:
    """Generation records in <user dir>/atelier/records.sqlite (or ATELIER_DATABASE_URL)."""
    from ..core.records.service import RecordService

    return _lazy("records", lambda: RecordService(users_directory() / "atelier", *_comfy_queue()))


def pipeline_service() -> Any:
    """Pipelines queued on this ComfyUI, reported from its queue and history."""
    from ..core.storyboard.service import PipelineService

    def check_tier(user: str, tier: str) -> Any:
        return service().tier(user, tier)

    return _lazy("pipelines", lambda: PipelineService(record_service(), output_directory(), check_tier,
                                                      *_comfy_history()))


def storyboard_library() -> Any:
    """The storyboards Storyboard Save wrote under output/atelier/storyboards (the viewer's list)."""
    from ..core.storyboard.library import StoryboardLibrary

    return _lazy("storyboards", lambda: StoryboardLibrary(output_directory() / "atelier" / "storyboards"))


def _prompt_server() -> Any:
    """ComfyUI's running PromptServer, or None outside ComfyUI (CLI, tests)."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)


def _queue_ids(server: Any) -> tuple[list[str], list[str]]:
    """The prompt ids ComfyUI is running and has queued (what /queue serves)."""
    running, pending = server.prompt_queue.get_current_queue_volatile()
    return [str(e[1]) for e in running], [str(e[1]) for e in pending]


def _comfy_history() -> tuple[Any, Any]:
    """ComfyUI's history of one prompt and the ids it is running and has queued (what /history and /queue serve)."""
    server = _prompt_server()
    if server is None:
        return None, None

    def history(prompt_id: str) -> dict[str, Any] | None:
        return server.prompt_queue.get_history(prompt_id=prompt_id).get(prompt_id)

    return history, lambda: _queue_ids(server)


def _comfy_queue() -> tuple[Any, Any]:
    """Queue and cancel through ComfyUI's own HTTP API on loopback (POST /prompt, /queue, /interrupt)."""
    server = _prompt_server()
    if server is None:
        return None, None
    import aiohttp

    from ..core.records.service import QueueError

    def base() -> str:
        return f"http://127.0.0.1:{server.port}"

    async def queue(graph: dict[str, Any], client_id: str | None = None) -> str:
        payload = {"prompt": graph, **({"client_id": client_id} if client_id else {})}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.post(f"{base()}/prompt", json=payload) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    errors = body.get("node_errors") or body.get("error")
                    raise QueueError(f"ComfyUI refused the graph: {body.get('error', {}).get('message', body)}",
                                     field="graph", value=errors)
                return str(body["prompt_id"])

    async def cancel(prompt_id: str) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.get(f"{base()}/queue") as response:
                running = [item[1] for item in (await response.json()).get("queue_running", [])]
            if prompt_id in running:
                await session.post(f"{base()}/interrupt", json={"prompt_id": prompt_id})
            else:
                await session.post(f"{base()}/queue", json={"delete": [prompt_id]})

    return queue, cancel


def current_prompt_id() -> str | None:
    """The prompt ComfyUI is executing (set by its worker before running a prompt)."""
    return getattr(_prompt_server(), "last_prompt_id", None)


_finished: OrderedDict[str, None] = OrderedDict()


def _finish_records(prompt_id: str, item: dict[str, Any]) -> None:
    """Move the records of a finished prompt to completed/failed once, timed by ComfyUI's execution
    events; completed records planned by a Quality Preset teach the estimator their duration."""
    if prompt_id in _finished or (item.get("status") or {}).get("status_str") not in ("success", "error"):
        return
    _finished[prompt_id] = None
    while len(_finished) > 4096:
        _finished.popitem(last=False)
    store = record_service().store
    for record_id in store.finish_from_history(prompt_id, item):
        calibrate_from_record(service().estimator, store.get(record_id), item, device_name())


def _mark_running(prompt_server: Any) -> None:
    """Records of the prompt ComfyUI is executing become running (its /queue data)."""
    running, _ = _queue_ids(prompt_server)
    store = record_service().store
    for prompt_id in running:
        store.mark_running(prompt_id)


def register_server(prompt_server: Any) -> None:
    """Mount Atelier's routes on ComfyUI's server and start learning from finished prompts."""
    from aiohttp.web import RouteDef

    from ..server.routes import build_routes

    register_model_folders()
    for route in build_routes(service, request_user(prompt_server), enhance=enhance_service, social=social_service,
                              records=record_service, pipelines=pipeline_service,
                              storyboards=storyboard_library):
        if isinstance(route, RouteDef):  # ComfyUI mirrors these under /api when it starts
            prompt_server.routes.route(route.method, route.path, **route.kwargs)(route.handler)
    loop = getattr(prompt_server, "loop", None)
    if loop is not None:
        loop.create_task(_poll_history(prompt_server))
    log.info("Atelier: routes under /atelier (and /api/atelier)")


async def _poll_history(prompt_server: Any) -> None:
    """Follow ComfyUI's queue and history: records move to running, then completed or failed; the
    durations of finished prompts with a Quality Preset node feed the estimator."""
    while True:
        await asyncio.sleep(HISTORY_POLL_S)
        try:
            watcher = observer()
            _mark_running(prompt_server)
            history = prompt_server.prompt_queue.get_history(max_items=HISTORY_WINDOW)
            for prompt_id, item in history.items():
                _finish_records(prompt_id, item)
                outcome = watcher.ingest(prompt_id, item)
                if outcome.startswith(("recorded", "skipped")):
                    log.debug("Atelier calibration %s: %s", prompt_id, outcome)
        except Exception:  # keep polling; a bad history entry must not stop learning
            log.exception("Atelier: reading ComfyUI history for calibration failed")
