"""Where a running Atelier keeps and finds things, decided once by its host.

Inside ComfyUI (``nodes/comfy/runtime.py``): custom presets in ComfyUI's user directory
(``<user>/atelier/presets``), data in ``<user directory>/atelier/``, outputs in ComfyUI's output folder,
scorer models in its model folders. Outside it (``atelier serve``, the CLI): ``ATELIER_HOME``
(default ``~/.atelier``) holds ``users/``, ``data/``, ``output/`` and ``models/``.

Environment variables are read here, and only here: ``ATELIER_HOME``, ``ATELIER_DATABASE_URL``,
``ATELIER_GPU_HOURLY_USD``, ``ATELIER_LLM_CONFIG``, ``ATELIER_TRUSTED_USER_HEADER``, ``ATELIER_DEVICE``,
``ATELIER_LORAS`` (LoRA folders outside ComfyUI, separated like PATH), ``HF_HUB_CACHE``/``HF_HOME``;
for scale-out ``ATELIER_DISTRIBUTED`` (1: pipelines and batches go to the job queue unless a request says
otherwise), ``ATELIER_SHARED_OUTPUT`` (where workers put the images) and ``ATELIER_STALLED_AFTER_S``;
``ATELIER_OPERATORS`` (comma-separated users who may read everyone's safety log).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

from ..core.base.errors import invalid

SCORER_FOLDERS = ("scorers", "aesthetic", "clip_vision")


@dataclass(frozen=True)
class Settings:
    users_dir: Path                 # <users_dir>/<user>/atelier/presets: custom presets
    data_dir: Path                  # calibration.sqlite, records.sqlite, llm.json, social.yaml, worlds/
    output_dir: Path                # traces (atelier/traces) and ComfyUI's saved storyboards
    storyboards_dir: Path           # the storyboard viewer's library
    model_folders: dict[str, list[Path]] = field(default_factory=dict)  # scorers, aesthetic, clip_vision
    hf_cache: Path | None = None    # read offline, never written
    device: str = "reference"
    database_url: str | None = None  # None: SQLite in data_dir
    usd_per_gpu_hour: float | None = None  # None: the estimator table's rate
    llm_config: Path | None = None   # None: data_dir/llm.json
    trusted_user_header: str | None = None  # a header a trusted reverse proxy sets to the user's name
    lora_folders: tuple[Path, ...] = ()  # ComfyUI's loras folders (extra_model_paths too), or ATELIER_LORAS
    distributed: bool = False          # scale-out: pipelines and batches go to the job queue by default
    shared_output: Path | None = None  # scale-out: where workers put the images (None: output_dir/atelier/shared)
    stalled_after_s: float = 20.0      # scale-out: a worker silent this long is dead; its jobs run elsewhere
    operators: tuple[str, ...] = ()    # users who may read every user's safety log (ATELIER_OPERATORS)

    @property
    def shared_dir(self) -> Path:
        return self.shared_output or self.output_dir / "atelier" / "shared"

    @property
    def llm_config_file(self) -> Path:
        return self.llm_config or self.data_dir / "llm.json"

    @property
    def records_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'records.sqlite'}"

    @property
    def traces_dir(self) -> Path:
        return self.output_dir / "atelier" / "traces"

    def with_storyboards(self, folder: Path) -> Settings:
        return replace(self, storyboards_dir=folder)

    def with_loras(self, folders: list[Path]) -> Settings:
        return replace(self, lora_folders=tuple(folders))

    @classmethod
    def standalone(cls, home: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Atelier outside ComfyUI: everything under ``home`` (``ATELIER_HOME``, default ``~/.atelier``)."""
        env = os.environ if environ is None else environ
        home = home or Path(env.get("ATELIER_HOME") or Path.home() / ".atelier")
        output = home / "output"
        return cls(users_dir=home / "users", data_dir=home / "data", output_dir=output,
                   storyboards_dir=output / "storyboards",
                   model_folders={kind: [home / "models" / kind] for kind in SCORER_FOLDERS},
                   hf_cache=hf_cache(env), device=env.get("ATELIER_DEVICE", "reference"),
                   lora_folders=tuple(Path(p) for p in env.get("ATELIER_LORAS", "").split(os.pathsep) if p)
                   or (home / "models" / "loras",), **from_environment(env))

    @classmethod
    def comfyui(cls, user_dir: Path, output_dir: Path, model_folders: dict[str, list[Path]], device: str,
                environ: Mapping[str, str] | None = None, lora_folders: tuple[Path, ...] = ()) -> Settings:
        """Atelier inside ComfyUI: its user directory, output folder and model folders."""
        env = os.environ if environ is None else environ
        return cls(users_dir=user_dir, data_dir=user_dir / "atelier", output_dir=output_dir,
                   storyboards_dir=output_dir / "atelier" / "storyboards", model_folders=model_folders,
                   hf_cache=hf_cache(env), device=device, lora_folders=lora_folders, **from_environment(env))


class FromEnvironment(TypedDict):
    database_url: str | None
    usd_per_gpu_hour: float | None
    llm_config: Path | None
    trusted_user_header: str | None
    distributed: bool
    shared_output: Path | None
    stalled_after_s: float
    operators: tuple[str, ...]


def from_environment(env: Mapping[str, str]) -> FromEnvironment:
    """The settings every host takes from the environment (database, cost rate, LLM config)."""
    rate = env.get("ATELIER_GPU_HOURLY_USD")
    try:
        usd = float(rate) if rate else None
    except ValueError:
        raise invalid("ATELIER_GPU_HOURLY_USD", rate, "a number of US dollars per GPU hour") from None
    distributed = env.get("ATELIER_DISTRIBUTED", "0").strip().lower()
    if distributed not in ("0", "1", "true", "false", ""):
        raise invalid("ATELIER_DISTRIBUTED", distributed, "1 or 0")
    try:
        stalled = float(env.get("ATELIER_STALLED_AFTER_S") or 20.0)
    except ValueError:
        stalled = -1.0
    if not 2.0 <= stalled <= 3600.0:
        raise invalid("ATELIER_STALLED_AFTER_S", env.get("ATELIER_STALLED_AFTER_S"), "seconds, 2-3600")
    return {"database_url": env.get("ATELIER_DATABASE_URL") or None, "usd_per_gpu_hour": usd,
            "distributed": distributed in ("1", "true"), "stalled_after_s": stalled,
            "operators": tuple(u.strip() for u in env.get("ATELIER_OPERATORS", "").split(",") if u.strip()),
            "shared_output": Path(env["ATELIER_SHARED_OUTPUT"]) if env.get("ATELIER_SHARED_OUTPUT") else None,
            "trusted_user_header": env.get("ATELIER_TRUSTED_USER_HEADER") or None,
            "llm_config": Path(env["ATELIER_LLM_CONFIG"]) if env.get("ATELIER_LLM_CONFIG") else None}


def hf_cache(env: Mapping[str, str]) -> Path:
    """The local Hugging Face hub cache (read offline, never written)."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    return Path(env.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
