"""The diffusers backend of the Python API (``pip install "atelier[diffusers]"``): a local diffusers folder or one
checkpoint file, never a download (``local_files_only``).

A job runs the plan's passes as ComfyUI's Quality Sampler does: the base pass at the planned size; the hires
pass (latents upscaled nearest-exact, as LatentUpscale, then image-to-image from them at the hires denoise for
the hires steps); the refinement pass at the final size. ComfyUI runs ``steps`` steps whatever the denoise,
diffusers runs ``steps × strength``: the image-to-image passes ask for ``ceil(steps / denoise)`` so the same
number of steps runs. Samplers and schedulers are ComfyUI's names mapped by ``presets/generation.yaml``.

LoRAs load with ``load_lora_weights`` and ``set_adapters`` at their strengths, and are unloaded when the next
job uses another set; each one's matched modules are counted from the layers PEFT patched, against the
modules its file holds (read from the header). A LoRA that matched nothing is a warning, never a silent no-op.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.base.errors import InvalidInput, NotFound, invalid
from ..core.base.safetensors import header_or_none
from ..core.generation.backend import Job, ModelInfo, Output
from ..core.generation.memory import STRATEGIES
from ..core.generation.tables import generation_tables
from ..core.loras.library import module_names
from ..core.quality.families import detect_family
from ..core.quality.service import QualityService

log = logging.getLogger("atelier")
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".sft")
CROSS_ATTENTION = {768: "sd15", 1024: "sd2", 2048: "sdxl"}
PIPELINE_FAMILY = {"StableDiffusionPipeline": None, "StableDiffusionXLPipeline": "sdxl"}
ADAPTER = re.compile(r"[^A-Za-z0-9_]")


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise InvalidInput('the diffusers backend needs the diffusers extra: pip install "atelier[diffusers]" '
                           f"({exc})", field="backend", value="diffusers",
                           accepted=["diffusers (with the extra installed)", "comfyui"]) from None
    return diffusers


class DiffusersBackend:
    name = "diffusers"

    def __init__(self, quality: QualityService, lora_path: Callable[[str], Path], default_models: list[Path],
                 device: str | None = None, dtype: str | None = None, model_config: str | None = None) -> None:
        self.quality = quality
        self.lora_path = lora_path
        self.default_models = default_models
        self.device_name = device
        self.dtype_name = dtype
        self.model_config = model_config
        self.pipe: Any = None
        self.img2img: Any = None
        self.info: ModelInfo | None = None
        self._path: Path | None = None
        self._family: str | None = None
        self._base_scheduler: dict[str, Any] = {}
        self._loras: tuple[tuple[str, float], ...] = ()
        self._reports: list[dict[str, Any]] = []
        self._scheduler: tuple[str, str] | None = None
        self._memory: str | None = None

    # ---- the model ---------------------------------------------------------------------------------------
    @property
    def accelerator(self) -> bool:
        return bool(self.device().type != "cpu")

    def device(self) -> Any:
        import torch

        if self.device_name:
            return torch.device(self.device_name)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def dtype(self) -> Any:
        import torch

        name = self.dtype_name or ("float16" if self.device().type == "cuda" else "float32")
        return getattr(torch, name)

    def resolve(self, model: str | None) -> Path:
        if model is None:
            for folder in self.default_models:
                found = _first_model(folder)
                if found is not None:
                    return found
            raise NotFound("no model given and none found: pass PipelineConfig(base_model=<a diffusers folder or a "
                           "checkpoint file>) or put one in " + " or ".join(str(f) for f in self.default_models),
                           field="base_model", value=None)
        path = Path(model).expanduser()
        if path.is_dir() and (path / "model_index.json").is_file():
            return path
        if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
            return path
        raise invalid("base_model", model, "a local diffusers folder (with model_index.json) or a checkpoint file "
                      f"({', '.join(CHECKPOINT_SUFFIXES)}); nothing is downloaded",
                      "not found" if not path.exists() else "not a model")

    def load(self, model: str | None, family: str | None) -> ModelInfo:
        diffusers = _import_diffusers()
        path = self.resolve(model)
        tables = generation_tables()["diffusers"]
        families = self.quality.tables.families.families
        if family is not None and family not in families:
            raise invalid("model_family", family, sorted(families))
        if path.is_dir():
            index = json.loads((path / "model_index.json").read_text())
            class_name = str(index.get("_class_name", ""))
            told, evidence = _folder_family(path, class_name)
            family = family or told
            cls = getattr(diffusers, class_name, None)
            if cls is None or family is None:
                raise invalid("base_model", path.name, f"a diffusers folder of {sorted(tables['pipelines'])}",
                              f"its pipeline is {class_name or 'not named'}")
            self.pipe = cls.from_pretrained(str(path), local_files_only=True, dtype=self.dtype())
        else:
            detection = detect_family(path.name, header_or_none(path), self.quality.tables)
            family = family or detection.family
            evidence = f"{detection.source}: {detection.evidence}"
            class_name = tables["pipelines"].get(families[family].base if family in families else family)
            if class_name is None:
                raise invalid("model_family", family, sorted(tables["pipelines"]),
                              "the diffusers backend runs these families from a single file")
            cls = getattr(diffusers, class_name)
            kwargs: dict[str, Any] = {"local_files_only": True, "dtype": self.dtype()}
            if self.model_config:
                kwargs["config"] = self.model_config
            try:
                self.pipe = cls.from_single_file(str(path), **kwargs)
            except (OSError, ValueError) as exc:
                raise invalid("base_model", path.name, "a checkpoint whose configuration is local (the Hugging Face "
                              "cache, or PipelineConfig(model_config=<a diffusers folder>))",
                              str(exc)[:200]) from None
        self.pipe.set_progress_bar_config(desc="Atelier", leave=False)
        self._path, self._family = path, family
        self._base_scheduler = dict(self.pipe.scheduler.config)  # every job's scheduler starts from the model's
        self._scheduler = None
        self.img2img = diffusers.AutoPipelineForImage2Image.from_pipe(self.pipe)
        self.img2img.set_progress_bar_config(desc="Atelier (img2img)", leave=False)
        self._memory = None
        self.info = ModelInfo(path.name, family, type(self.pipe).__name__, evidence, _native(self.pipe))
        return self.info

    # ---- one job -----------------------------------------------------------------------------------------
    def run(self, job: Job) -> list[Output]:
        import torch

        if self.pipe is None or self.info is None:
            raise RuntimeError("load a model first")
        notes = self._place(job.memory_strategy)
        notes += self._use_scheduler(job.params.sampler, job.params.scheduler)
        self._use_loras(job)
        device = self.device()
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        images: list[Any] = []
        started = time.perf_counter()
        groups = [list(job.seeds)] if job.batched else [[s] for s in job.seeds]
        for group in groups:
            generators = [torch.Generator("cpu").manual_seed(s) for s in group]
            images += self._passes(job, generators)
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated(device) / 1e9 if cuda else None
        share = seconds / len(job.seeds)
        return [Output(image, seed, share, peak, [dict(r) for r in self._reports], self._memory or "none",
                       list(notes)) for image, seed in zip(images, job.seeds, strict=True)]

    def _passes(self, job: Job, generators: list[Any]) -> list[Any]:
        import torch

        p = job.params
        extra = p.hires or p.refine
        common = {"prompt": job.prompt, "negative_prompt": job.negative_prompt or None,
                  "guidance_scale": p.guidance_scale, "generator": generators,
                  "num_images_per_prompt": len(generators)}
        result = self.pipe(**common, num_inference_steps=p.num_steps, width=p.width, height=p.height,
                           output_type="latent" if extra else "pil")
        if not extra:
            return list(result.images)
        latents = result.images
        stages: list[tuple[dict[str, Any], tuple[int, int] | None]] = []
        if p.hires:
            stages.append((p.hires, (int(p.hires["height"]) // 8, int(p.hires["width"]) // 8)))
        if p.refine:
            stages.append((p.refine, None))
        for index, (stage, size) in enumerate(stages):
            if size is not None:
                latents = torch.nn.functional.interpolate(latents, size=size, mode="nearest-exact")
            denoise = float(stage["denoise"])
            last = index == len(stages) - 1
            count = len(generators)  # one prompt per latent: the image-to-image pass takes the batch as prompts
            batch = {**common, "prompt": [job.prompt] * count, "num_images_per_prompt": 1,
                     "negative_prompt": [job.negative_prompt] * count if job.negative_prompt else None}
            result = self.img2img(**batch, image=latents, strength=denoise,
                                  num_inference_steps=img2img_steps(int(stage["steps"]), denoise),
                                  output_type="pil" if last else "latent")
            latents = result.images
        return list(latents)

    def _place(self, strategy: str) -> list[str]:
        """Puts the model on the device under ``strategy``. Strategies only escalate for a loaded model (a job
        that fits in less keeps the stricter one); leaving one offload strategy for another reloads the model,
        as diffusers cannot switch hooks in place."""
        if strategy not in STRATEGIES:
            raise invalid("memory_strategy", strategy, list(STRATEGIES))
        if self._memory == strategy:
            return []
        device = self.device()
        notes: list[str] = []
        if self._memory is not None and device.type != "cpu":
            if STRATEGIES.index(strategy) < STRATEGIES.index(self._memory):
                return [f"memory: {self._memory.replace('_', ' ')} kept from an earlier job of this model"]
            if self._memory != "none":
                self._reload()
                notes.append(f"memory: the model was reloaded to move to {strategy.replace('_', ' ')}")
        if strategy == "none" or device.type == "cpu":
            self.pipe.to(device)
        elif strategy == "model_cpu_offload":
            self.pipe.enable_model_cpu_offload(device=device)
        elif strategy == "group_offload":
            self.pipe.enable_group_offload(onload_device=device, offload_type="block_level", num_blocks_per_group=1)
        else:
            self.pipe.enable_sequential_cpu_offload(device=device)
        self._memory = strategy if device.type != "cpu" else "none"
        return notes

    def _reload(self) -> None:
        self._loras, self._reports = (), []  # a fresh pipeline: LoRAs and scheduler are applied again
        self.load(str(self._path), self._family)

    def _use_scheduler(self, sampler: str, scheduler: str) -> list[str]:
        if self._scheduler == (sampler, scheduler):
            return []
        diffusers = _import_diffusers()
        tables = generation_tables()["diffusers"]
        notes = []
        entry = tables["samplers"].get(sampler)
        if entry is None:
            notes.append(f"sampler {sampler} has no diffusers equivalent here: Euler ran")
            entry = tables["samplers"]["euler"]
        options = {k: v for k, v in entry.items() if k != "class"}
        options.update(tables["schedulers"].get(scheduler, {}))
        if scheduler not in tables["schedulers"]:
            notes.append(f"scheduler {scheduler} has no diffusers equivalent here: its default spacing ran")
        cls = getattr(diffusers, entry["class"])
        accepted = set(inspect.signature(cls.__init__).parameters)  # through register_to_config's wrapper
        dropped = sorted(set(options) - accepted)
        if dropped:
            notes.append(f"{entry['class']} takes no {', '.join(dropped)}")
        try:
            made = cls.from_config(self._base_scheduler, **{k: v for k, v in options.items() if k in accepted})
        except (ImportError, ValueError) as exc:  # e.g. beta sigmas need scipy
            notes.append(f"{sampler}/{scheduler} could not run here ({str(exc)[:120]}): Euler ran")
            made = diffusers.EulerDiscreteScheduler.from_config(self._base_scheduler)
        self.pipe.scheduler = made
        self.img2img.scheduler = made
        self._scheduler = (sampler, scheduler)
        return notes

    def _use_loras(self, job: Job) -> None:
        wanted = tuple((x.name, float(x.strength)) for x in job.loras)
        if wanted == self._loras:
            return
        if self._loras:
            self.pipe.unload_lora_weights()
        self._loras, self._reports = (), []
        names, weights = [], []
        for index, (name, strength) in enumerate(wanted):
            adapter = f"a{index}_{ADAPTER.sub('_', Path(name).stem)[:40]}"
            path = self.lora_path(name)
            header = header_or_none(path)
            modules = len(module_names([k for k in header if k != "__metadata__"])) if header is not None else 0
            before = _patched(self.pipe, adapter)
            try:
                self.pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=adapter)
            except (ValueError, RuntimeError, KeyError) as exc:
                self._reports.append({"name": name, "strength": strength, "matched": 0, "modules": modules,
                                      "warning": f"LoRA {name} could not be applied: {str(exc)[:160]}"})
                continue
            matched = _patched(self.pipe, adapter) - before
            report: dict[str, Any] = {"name": name, "strength": strength, "matched": matched, "modules": modules,
                                      "report": f"{matched} of {modules} modules matched"}
            if matched == 0:
                report["warning"] = f"LoRA {name} matched none of the model's modules (another family?)"
            self._reports.append(report)
            names.append(adapter)
            weights.append(strength)
        if names:
            self.pipe.set_adapters(names, adapter_weights=weights)
        self._loras = wanted

    def close(self) -> None:
        self.pipe = self.img2img = None
        self._loras, self._reports = (), []


def img2img_steps(steps: int, denoise: float) -> int:
    """The steps to ask diffusers' image-to-image for, so that ``steps`` run (it runs int(N × strength)),
    as ComfyUI's KSampler runs ``steps`` at any denoise."""
    total = max(1, math.ceil(steps / denoise))
    while int(total * denoise) < steps:
        total += 1
    return total


def _native(pipe: Any) -> int | None:
    """The side the model was trained at: its UNet's sample size times the VAE's scale factor."""
    unet = getattr(pipe, "unet", None)
    sample = getattr(getattr(unet, "config", None), "sample_size", None)
    scale = getattr(pipe, "vae_scale_factor", 8)
    if isinstance(sample, int) and isinstance(scale, int) and 64 <= sample * scale <= 4096:
        return sample * scale
    return None


def _patched(pipe: Any, adapter: str) -> int:
    """How many layers of the pipeline's models carry this adapter (PEFT's LoRA layers)."""
    count = 0
    for component in (getattr(pipe, n, None) for n in ("unet", "transformer", "text_encoder", "text_encoder_2")):
        if component is None:
            continue
        for module in component.modules():
            lora_a = getattr(module, "lora_A", None)
            if lora_a is not None and adapter in lora_a:
                count += 1
    return count


def _folder_family(path: Path, class_name: str) -> tuple[str | None, str]:
    if PIPELINE_FAMILY.get(class_name):
        return PIPELINE_FAMILY[class_name], f"pipeline {class_name}"
    config = path / "unet" / "config.json"
    if config.is_file():
        width = json.loads(config.read_text()).get("cross_attention_dim")
        if isinstance(width, list):
            width = width[0] if width else None
        if width in CROSS_ATTENTION:
            return CROSS_ATTENTION[width], f"unet cross-attention width {width}"
        return "sd15", f"unet cross-attention width {width}: not a known family, run as SD1.5"
    return None, f"pipeline {class_name}"


def _first_model(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and (entry / "model_index.json").is_file():
            return entry
        if entry.is_file() and entry.suffix.lower() in CHECKPOINT_SUFFIXES:
            return entry
    return None
