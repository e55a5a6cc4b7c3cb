"""The saved storyboards under one folder, for the storyboard viewer.

A storyboard is a folder holding ``manifest.json`` (written by Storyboard Save under
``output/atelier/storyboards/`` or by ``python -m atelier curate --out DIR``). The library lists the
folders directly under its root, and the root itself when it holds a manifest, so ``--storyboards
atelier_demo`` shows curate's output. Ids are folder names; a file is served only when the manifest
names it as a frame (or it is the run's ``reference.png``), so no request can read outside a storyboard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..base.errors import NotFound
from ..base.ids import folder_id, is_folder_id
from .manifest import MANIFEST

EXTRA_FILES = ("reference.png",)


class StoryboardLibrary:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _folders(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        if (self.root / MANIFEST).is_file() and is_folder_id(self.root.name):
            found[self.root.name] = self.root
        if self.root.is_dir():
            for child in self.root.iterdir():
                if is_folder_id(child.name) and (child / MANIFEST).is_file():
                    found.setdefault(child.name, child)
        return found

    def _read(self, folder: Path) -> dict[str, Any] | None:
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) and isinstance(manifest.get("frames"), list) else None

    def list(self) -> list[dict[str, Any]]:
        """Every readable storyboard, newest first: id, status, tier, clip/frame counts, failed clips."""
        items = []
        for sid, folder in self._folders().items():
            manifest = self._read(folder)
            if manifest is None:
                continue
            frames = manifest["frames"]
            items.append({
                "id": sid, "status": manifest.get("status", "unknown"), "tier": manifest.get("tier", ""),
                "created_at": manifest.get("created_at", 0), "clips": len(manifest.get("clips", [])),
                "frames": len(frames), "failed_clips": manifest.get("failed_clips", []),
                "kept": sum(1 for f in frames if isinstance(f, dict) and f.get("status") == "ok")})
        return sorted(items, key=lambda item: (-float(item["created_at"] or 0), item["id"]))

    def _folder(self, storyboard_id: str) -> Path:
        folder_id("storyboard", storyboard_id)
        folder = self._folders().get(storyboard_id)
        if folder is None:
            raise NotFound(f"no storyboard {storyboard_id!r} under {self.root}", field="storyboard",
                           value=storyboard_id)
        return folder

    def get(self, storyboard_id: str) -> dict[str, Any]:
        """The manifest, with ``id`` and the files that can be fetched (``files``)."""
        folder = self._folder(storyboard_id)
        manifest = self._read(folder)
        if manifest is None:
            raise NotFound(f"storyboard {storyboard_id!r} has no readable {MANIFEST}", field="storyboard",
                           value=storyboard_id)
        files = [f["file"] for f in manifest["frames"] if isinstance(f, dict) and f.get("file")]
        files += [name for name in EXTRA_FILES if (folder / name).is_file()]
        return {**manifest, "id": storyboard_id, "files": files}

    def file(self, storyboard_id: str, name: str) -> Path:
        """The path of a file the storyboard's manifest names; anything else is a 404."""
        manifest = self.get(storyboard_id)
        if not is_folder_id(name) or name not in manifest["files"]:
            raise NotFound(f"storyboard {storyboard_id!r} has no file {name!r}", field="file", value=name)
        path = self._folder(storyboard_id) / name
        if not path.is_file():
            raise NotFound(f"{name!r} is named by the manifest but missing from {path.parent}",
                           field="file", value=name)
        return path
