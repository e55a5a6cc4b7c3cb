"""The one place that talks to ComfyUI's runtime, through its public modules only: its user directory,
output folder and model folders (``folder_paths``), its device and memory management
(``comfy.model_management``, ``comfy.model_patcher``), its sampler names, and its server (routes, event
loop, the prompt being executed, the requesting user).

From these it builds the process's one ``Atelier`` context (``atelier()``), which every node asks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..core.base.errors import AtelierError
from ..core.quality.families import read_safetensors_header
from ..core.quality.schema import register_comfy_names
from ..core.validation.rules import check_node, refusal
from ..host import Atelier, Settings, wiring

log = logging.getLogger("atelier")
NO_CHECKPOINT = "(none)"
SCORER_FOLDERS = ("scorers", "aesthetic")  # registered by Atelier under ComfyUI's models folder
MODEL_KINDS = (*SCORER_FOLDERS, "clip_vision")

_lock = threading.RLock()
_atelier: Atelier | None = None
_tasks: set[asyncio.Task[None]] = set()


def atelier() -> Atelier:
    """The Atelier of this ComfyUI process, built on first use from ComfyUI's folders and device."""
    global _atelier
    with _lock:
        if _atelier is None:
            register_runtime_names()
            server = prompt_server()
            comfy = (lambda: wiring.comfyui(*loopback(server))) if server is not None else None
            _atelier = Atelier(settings(), comfy=comfy, prepare_model=prepare_model(),
                               checkpoint_header=checkpoint_header)
        return _atelier


def settings() -> Settings:
    import folder_paths

    return Settings.comfyui(Path(folder_paths.get_user_directory()), Path(folder_paths.get_output_directory()),
                            register_model_folders(), device_name(),
                            lora_folders=tuple(Path(p) for p in folder_paths.get_folder_paths("loras")))


def device_name() -> str:
    """ComfyUI's torch device (e.g. ``cuda:0 NVIDIA H100 : cudaMallocAsync``)."""
    try:
        import comfy.model_management as mm

        return str(mm.get_torch_device_name(mm.get_torch_device()))
    except Exception:  # ComfyUI could not name it; estimates fall back to the prior
        return os.environ.get("ATELIER_DEVICE", "unknown")


def register_runtime_names() -> None:
    """Accept the sampler and scheduler names of the running ComfyUI, which may be newer than the table's."""
    try:
        import comfy.samplers as samplers
    except ImportError:
        return
    register_comfy_names(list(samplers.KSampler.SAMPLERS), list(samplers.KSampler.SCHEDULERS))


def sampler_lists() -> tuple[list[str], list[str]]:
    """The running ComfyUI's names: a socket of this exact type links into KSampler."""
    import comfy.samplers as samplers  # the only source of KSampler's combo type

    return list(samplers.KSampler.SAMPLERS), list(samplers.KSampler.SCHEDULERS)


def checkpoints() -> list[str]:
    import folder_paths

    return [NO_CHECKPOINT, *folder_paths.get_filename_list("checkpoints")]


def checkpoint_header(checkpoint: str | None) -> dict[str, Any] | None:
    """The safetensors header of a checkpoint in ComfyUI's checkpoints folders, if any."""
    if not checkpoint or checkpoint == NO_CHECKPOINT:
        return None
    import folder_paths

    path = folder_paths.get_full_path("checkpoints", checkpoint)
    return read_safetensors_header(Path(path)) if path else None


def register_model_folders() -> dict[str, list[Path]]:
    """Register models/scorers and models/aesthetic with ComfyUI (extra_model_paths.yaml may add more) and
    return every folder the scorers search, clip_vision included."""
    import folder_paths

    for kind in SCORER_FOLDERS:
        if kind not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.models_dir, kind), is_default=True)
    return {kind: [Path(p) for p in folder_paths.get_folder_paths(kind)] for kind in MODEL_KINDS}


def model_files(kinds: tuple[str, ...]) -> list[str]:
    """Every file ComfyUI lists in these model folders."""
    import folder_paths

    register_model_folders()
    return sorted({name for kind in kinds for name in folder_paths.get_filename_list(kind)})


def model_path(kinds: tuple[str, ...], name: str) -> str | None:
    import folder_paths

    return next((path for kind in kinds if (path := folder_paths.get_full_path(kind, name))), None)


def output_directory() -> Path:
    import folder_paths

    return Path(folder_paths.get_output_directory())


def prepare_model() -> Any:
    """Before each use of a scorer model: hand it to ComfyUI's memory management (it may evict it for the
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


def prompt_server() -> Any:
    """ComfyUI's running PromptServer, or None before its server exists."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)


def loopback(server: Any) -> tuple[str, bool]:
    """ComfyUI's own address as seen from this process (a wildcard listen address is loopback), and
    whether to verify TLS (not for a loopback certificate)."""
    address = str(getattr(server, "address", "") or "127.0.0.1")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address, address)
    host = f"[{host}]" if ":" in host else host
    try:
        from comfy.cli_args import args

        scheme = "https" if getattr(args, "tls_keyfile", None) else "http"
    except ImportError:
        scheme = "http"
    port = getattr(server, "port", 8188)
    return f"{scheme}://{host}:{port}", scheme == "http"


def queuing_user() -> str | None:
    """The user who queued the running prompt: ``default`` when ComfyUI runs for one user; None with
    ``--multi-user``, where ComfyUI 0.3.64 does not keep who queued a prompt (its ``POST /prompt`` reads the
    ``comfy-user`` header for its user files only, and nothing of it reaches the prompt or the nodes)."""
    try:
        from comfy.cli_args import args
    except ImportError:
        return "default"
    return None if getattr(args, "multi_user", False) else "default"


def validate_node(node: Any, kind: str, inputs: dict[str, Any], user: str | None) -> bool | str:
    """A node's ``validate_inputs``: ComfyUI refuses the prompt before anything runs, with this text on the node,
    when a validation rule says error (the same rules as the health badges; warnings only show there).

    ComfyUI 0.3.64 skips its own min/max checks for the inputs a ``validate_inputs`` names, so those are checked
    here against the node's schema (it checks no V3 combo, named or not: their values are the rules' and the
    nodes' to check). A linked input arrives as None and is checked when the node runs."""
    types = node.INPUT_TYPES(include_hidden=False)
    for name, value in inputs.items():
        spec = types.get("required", {}).get(name) or types.get("optional", {}).get(name)
        info = spec[1] if spec and len(spec) > 1 and isinstance(spec[1], dict) else {}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if info.get("min") is not None and value < info["min"]:
                return f"{name}: {value} is below the minimum {info['min']}"
            if info.get("max") is not None and value > info["max"]:
                return f"{name}: {value} is above the maximum {info['max']}"
    try:
        return refusal(check_node(atelier().rules, user, kind, inputs)) or True
    except AtelierError as exc:
        return exc.message  # e.g. an owner that is not a user id


def current_prompt_id() -> str | None:
    """The prompt ComfyUI is executing (set by its worker before running a prompt)."""
    return getattr(prompt_server(), "last_prompt_id", None)


def register_server(server: Any) -> None:
    """Mount Atelier's routes on ComfyUI's server and follow its queue and history (records, calibration)."""
    register_model_folders()

    def user_of(request: Any) -> str:
        return str(server.user_manager.get_request_user_id(request))

    wiring.mount_routes(server.routes, atelier(), user_of)  # ComfyUI mirrors them under /api when it starts
    observe_events(server, atelier().node_timings.observe)
    loop = getattr(server, "loop", None)
    if loop is not None:
        task = loop.create_task(_follow(server))
        _tasks.add(task)  # keep a reference: the loop holds tasks weakly
    log.info("Atelier: routes under /atelier (and /api/atelier)")


def observe_events(server: Any, observe: Any) -> bool:
    """Tell ``observe(event, data)`` every event ComfyUI's server sends (its execution events give the records
    per-node timings, whichever client queued the prompt: ComfyUI sends them to that client's websocket only, and
    neither its history nor a hook of 0.3.64 has them). ``send_sync`` is wrapped, not replaced: the event goes on
    as before, and an observer's failure never reaches ComfyUI. Without a ``send_sync``, no timings."""
    send = getattr(server, "send_sync", None)
    if send is None or getattr(send, "atelier_observed", False):
        return False

    def send_sync(event: Any, data: Any, sid: Any = None) -> Any:
        try:
            if isinstance(event, str):
                observe(event, data)
        except Exception:  # timings are a nicety; the event must go out
            log.debug("Atelier: observing ComfyUI's %s event failed", event, exc_info=True)
        return send(event, data, sid)

    send_sync.atelier_observed = True  # type: ignore[attr-defined]
    server.send_sync = send_sync
    return True


async def _follow(server: Any) -> None:
    """Once ComfyUI's server listens (its address is known then), follow its queue and history."""
    while getattr(server, "port", None) is None:
        await asyncio.sleep(0.5)
    await atelier().follower().run()


def apply_lora(model: Any, clip: Any, path: Path, name: str, strength: float) -> tuple[Any, Any, Any]:
    """A LoRA applied with ComfyUI's own loader (``comfy.sd.load_lora_for_models``), and how many of its modules
    patched a weight of the model or the text encoder (read from the patchers' patch lists)."""
    import comfy.sd
    from safetensors.torch import load_file

    from ..core.loras.apply import ApplyReport
    from ..core.loras.library import module_names

    state = load_file(str(path))
    modules = module_names(list(state))

    def counts(patcher: Any) -> dict[str, int]:
        return {k: len(v) for k, v in getattr(patcher, "patches", {}).items()} if patcher is not None else {}

    before_model, before_clip = counts(model), counts(getattr(clip, "patcher", None))
    new_model, new_clip = comfy.sd.load_lora_for_models(model, clip, state, strength, strength)
    after_model, after_clip = counts(new_model), counts(getattr(new_clip, "patcher", None))
    patched = sum(1 for k, n in after_model.items() if n > before_model.get(k, 0)) + sum(
        1 for k, n in after_clip.items() if n > before_clip.get(k, 0))
    report = ApplyReport(name, strength, strength, len(modules), min(patched, len(modules)))
    if report.warning:
        log.warning("Atelier: %s", report.warning)
    return new_model, new_clip, report


def save_pngs(images: Any, prefix: str, chunks: dict[str, str], explanation: Any) -> list[dict[str, Any]]:
    """Images saved as ComfyUI's Save Image does (its numbering and folders), plus the explanation as the PNG
    text chunk ``atelier_explanation`` and a ``<image>.atelier.json`` sidecar."""
    import folder_paths
    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from ..core.base.files import atomic_write_text
    from ..core.intelligence.explain import PNG_KEY, SIDECAR_SUFFIX

    output = folder_paths.get_output_directory()
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, output, images[0].shape[1], images[0].shape[0])
    saved = []
    text = explanation.to_json() if explanation is not None else None
    for index, image in enumerate(images):
        array = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
        info = PngInfo()
        for key, value in chunks.items():
            info.add_text(key, value)
        if text is not None:
            info.add_text(PNG_KEY, text)
        name = f"{filename.replace('%batch_num%', str(index))}_{counter:05}_.png"
        path = Path(folder) / name
        Image.fromarray(array).save(path, pnginfo=info, compress_level=4)
        if text is not None:
            atomic_write_text(path.with_suffix(SIDECAR_SUFFIX), text, name)
        saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
        counter += 1
    return saved
