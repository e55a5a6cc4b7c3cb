"""The saved storyboards under one folder, for the storyboard viewer.

A storyboard is a folder holding ``manifest.json`` (written by Storyboard Save under
``output/atelier/storyboards/`` or by ``python -m atelier curate --out DIR``). The library lists the
folders directly under its root, and the root itself when it holds a manifest, so ``--storyboards
atelier_demo`` shows curate's output.

A storyboard belongs to the user its manifest names (``owner``; ``default`` when it names none): another
user's is not found. Ids are folder names; only real folders and regular files whose resolved path stays
inside the root count (a symbolic link is never followed), and a file is served only when the manifest names
it as a frame (or it is the run's ``reference.png``). Errors never show the server's paths.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ..base.errors import NotFound
from ..base.ids import folder_id, is_folder_id
from .manifest import MANIFEST

EXTRA_FILES = ("reference.png",)
MAX_MANIFEST = 16 * 1024 * 1024
DEFAULT_OWNER = "default"


def owner_of(manifest: dict[str, Any]) -> str:
    owner = manifest.get("owner")
    return owner if isinstance(owner, str) and owner else DEFAULT_OWNER


def _regular(path: Path) -> bool:
    """A regular file, not through a symbolic link (lstat: a link is not followed)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def _real_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


class StoryboardLibrary:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _folders(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        if is_folder_id(self.root.name) and _regular(self.root / MANIFEST):
            found[self.root.name] = self.root
        try:
            children = list(os.scandir(self.root))
        except OSError:
            return found
        for child in children:
            path = Path(child.path)
            if is_folder_id(child.name) and _real_folder(path) and _regular(path / MANIFEST):
                found.setdefault(child.name, path)
        return found

    def _read(self, folder: Path) -> dict[str, Any] | None:
        path = folder / MANIFEST
        try:
            if not _regular(path) or path.stat().st_size > MAX_MANIFEST:
                return None
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        return manifest if isinstance(manifest, dict) and isinstance(manifest.get("frames"), list) else None

    def _mine(self, user: str) -> dict[str, tuple[Path, dict[str, Any]]]:
        out: dict[str, tuple[Path, dict[str, Any]]] = {}
        for sid, folder in self._folders().items():
            manifest = self._read(folder)
            if manifest is not None and owner_of(manifest) == user:
                out[sid] = (folder, manifest)
        return out

    def list(self, user: str = DEFAULT_OWNER) -> list[dict[str, Any]]:
        """``user``'s readable storyboards, newest first: id, status, tier, clip/frame counts, failed clips."""
        items = []
        for sid, (_, manifest) in self._mine(user).items():
            frames = manifest["frames"]
            created = manifest.get("created_at", 0)
            items.append({
                "id": sid, "status": manifest.get("status", "unknown"), "tier": manifest.get("tier", ""),
                "created_at": created if isinstance(created, (int, float)) else 0,
                "clips": len(manifest.get("clips") or []), "frames": len(frames),
                "failed_clips": manifest.get("failed_clips", []),
                "kept": sum(1 for f in frames if isinstance(f, dict) and f.get("status") not in (None, "failed"))})
        return sorted(items, key=lambda item: (-float(item["created_at"] or 0), item["id"]))

    def _one(self, user: str, storyboard_id: str) -> tuple[Path, dict[str, Any]]:
        folder_id("storyboard", storyboard_id)
        found = self._mine(user).get(storyboard_id)
        if found is None:
            raise NotFound(f"no storyboard {storyboard_id!r}", field="storyboard", value=storyboard_id)
        return found

    def get(self, storyboard_id: str, user: str = DEFAULT_OWNER) -> dict[str, Any]:
        """The manifest, with ``id`` and the files that can be fetched (``files``)."""
        folder, manifest = self._one(user, storyboard_id)
        files = [f["file"] for f in manifest["frames"] if isinstance(f, dict) and isinstance(f.get("file"), str)]
        files += [name for name in EXTRA_FILES if _regular(folder / name)]
        return {**manifest, "id": storyboard_id, "files": files}

    def file(self, storyboard_id: str, name: str, user: str = DEFAULT_OWNER) -> Path:
        """A regular file inside the storyboard's folder that its manifest names; anything else is a 404."""
        manifest = self.get(storyboard_id, user)
        folder, _ = self._one(user, storyboard_id)
        missing = NotFound(f"storyboard {storyboard_id!r} has no file {str(name)[:80]!r}", field="file",
                           value=str(name)[:80])
        if not is_folder_id(name) or name not in manifest["files"]:
            raise missing
        path = folder / name
        if not _regular(path) or folder.resolve() not in path.resolve().parents:
            raise missing
        return path
