"""Finding and loading the scorers' models: ComfyUI model folders, explicit paths, or the local
Hugging Face cache (offline). Nothing is ever downloaded; a missing model names the folders
searched and the files expected. Loaded models stay loaded (one per path) between calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.data import PRESETS_DIR, read_yaml
from ..base.errors import NotFound
from .clip import Backbone, load_backbone

PrepareHook = Callable[[nn.Module], None]


class ModelMissing(NotFound):
    """A scorer's weights are not where Atelier looks."""


@dataclass
class ModelFolders:
    """Search folders by kind ("scorers", "aesthetic", "clip_vision") and the local HF cache."""

    folders: dict[str, list[Path]] = field(default_factory=dict)
    hf_cache: Path | None = None
    overrides: dict[str, Path] = field(default_factory=dict)  # model key -> explicit path
    archs: dict[str, str] = field(default_factory=dict)  # model key -> open_clip architecture of a weights file


def model_table() -> dict[str, dict[str, Any]]:
    return read_yaml(PRESETS_DIR / "scorers.yaml")["models"]


def _hf_snapshot(cache: Path, repo: str) -> Path | None:
    folder = cache / f"models--{repo.replace('/', '--')}"
    ref = folder / "refs" / "main"
    if ref.is_file():
        snapshot = folder / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted((folder / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return snapshots[-1] if snapshots else None


def model_root(path: Path) -> Path:
    """A weights file inside a transformers or open_clip folder stands for that folder."""
    if path.is_file() and any((path.parent / name).exists() for name in ("config.json", "open_clip_config.json")):
        return path.parent
    return path


def locate(key: str, folders: ModelFolders) -> Path:
    """The file or folder of model ``key`` (clip, aesthetic, pickscore, hpsv2)."""
    if key in folders.overrides:
        path = folders.overrides[key]
        if path.exists():
            return model_root(path)
        raise ModelMissing(f"{key} model: {path} does not exist", field="model", value=str(path))
    spec = model_table()[key]
    searched: list[str] = []
    for name in spec["names"]:
        for kind in spec["folders"]:
            for folder in folders.folders.get(kind, []):
                candidate = Path(folder) / name
                if candidate.exists():
                    return candidate
        if "/" in name and folders.hf_cache is not None:
            snapshot = _hf_snapshot(folders.hf_cache, name)
            if snapshot is not None:
                return snapshot
    for kind in spec["folders"]:
        found = [str(f) for f in folders.folders.get(kind, [])]
        searched.extend(found or [f"<no {kind} folder registered>"])
    cache = f" and the Hugging Face cache {folders.hf_cache}" if folders.hf_cache else ""
    raise ModelMissing(f"{key} model not found: looked for {', '.join(spec['names'])} in {', '.join(searched)}"
                       f"{cache}; place one of them there (nothing is downloaded)",
                       field="model", value=key, accepted=spec["names"])


def aesthetic_head(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """LAION's aesthetic MLP from its state dict: the linear v2 layout or the ReLU variant."""
    linear = sorted(int(k.split(".")[1]) for k in state if k.startswith("layers.") and k.endswith(".weight"))
    shapes = [tuple(state[f"layers.{i}.weight"].shape) for i in linear]
    layers: list[nn.Module] = []
    if linear == [0, 2, 4, 6, 7]:
        dropouts = [0.2, 0.2, 0.1]
        for n, (out_f, in_f) in enumerate(shapes):
            layers.append(nn.Linear(in_f, out_f))
            if n < 3:
                layers.append(nn.Dropout(dropouts[n]))
    elif linear == [0, 3, 6, 9, 11]:
        dropouts = [0.2, 0.2, 0.1]
        for n, (out_f, in_f) in enumerate(shapes):
            layers.append(nn.Linear(in_f, out_f))
            if n < 4:
                layers.append(nn.ReLU())
            if n < 3:
                layers.append(nn.Dropout(dropouts[n]))
    else:
        raise ValueError(f"not a LAION aesthetic MLP state dict (linear layers at {linear}; "
                         f"expected [0, 2, 4, 6, 7] or [0, 3, 6, 9, 11])")
    head = nn.Sequential(*layers)
    renamed = {k.removeprefix("layers."): v for k, v in state.items() if k.startswith("layers.")}
    head.load_state_dict(renamed)
    return head.eval()


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


class ModelManager:
    """Loads each model once and keeps it; ``prepare`` lets ComfyUI place it before each use."""

    def __init__(self, folders: ModelFolders, prepare: PrepareHook | None = None) -> None:
        self.folders = folders
        self.prepare = prepare
        self._backbones: dict[Path, Backbone] = {}
        self._heads: dict[Path, nn.Module] = {}
        self._lock = threading.Lock()

    def backbone(self, key: str) -> Backbone:
        path = locate(key, self.folders)
        with self._lock:
            if path not in self._backbones:
                arch = self.folders.archs.get(key) or model_table()[key].get("arch")
                self._backbones[path] = load_backbone(path, arch)
            backbone = self._backbones[path]
        if self.prepare:
            self.prepare(backbone.model)
        return backbone

    def head(self, key: str = "aesthetic") -> nn.Module:
        path = locate(key, self.folders)
        with self._lock:
            if path not in self._heads:
                self._heads[path] = aesthetic_head(load_state_dict(path))
            head = self._heads[path]
        if self.prepare:
            self.prepare(head)
        return head

    def with_overrides(self, overrides: dict[str, Path]) -> ModelManager:
        """The same loaded models, with some models chosen explicitly (a Scorer Models node)."""
        view = ModelManager(ModelFolders(self.folders.folders, self.folders.hf_cache,
                                         {**self.folders.overrides, **overrides}, self.folders.archs), self.prepare)
        view._backbones, view._heads, view._lock = self._backbones, self._heads, self._lock
        return view
