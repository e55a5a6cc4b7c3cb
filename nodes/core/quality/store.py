"""Custom presets of each user, one YAML file each, under ``<users dir>/<user>/atelier/presets``.

Files are written in YAML's JSON-compatible flow style, which loads with the C JSON parser
(about 10x faster than PyYAML); block-style YAML written by hand loads too. Writes are atomic
(temp file + rename) and serialised per user across threads and
processes (a lock file), so concurrent creates of one id give exactly one winner and an
update based on a stale revision is refused. Reads are cached by file mtime and size, and
a malformed file is reported and skipped while the others load.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import ValidationError

from ..base.data import YAMLError, parse_yaml
from ..base.errors import Conflict, NotFound
from ..base.files import atomic_write_text, clean_stale_temporaries, regular, storage_error
from ..base.ids import is_preset_id, user_id
from ..base.validation import validation_error
from .schema import CustomPresetSpec

SUFFIX = ".yaml"


@dataclass(frozen=True)
class StoredSpec:
    spec: CustomPresetSpec
    stamp: tuple[int, int, int]  # (mtime_ns, size, inode): every atomic write makes a new inode


@dataclass(frozen=True)
class Problem:
    file: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "error": self.error}


class PresetStore:
    """``default_extends``: the parent of a preset file that names none (the default tier)."""

    def __init__(self, users_dir: Path, default_extends: str) -> None:
        self.users_dir = Path(users_dir)
        self.default_extends = default_extends
        self._cache: dict[str, tuple[tuple[int, int, int], StoredSpec | Problem]] = {}
        self._cache_lock = threading.Lock()
        self._user_locks: dict[str, threading.Lock] = {}
        self._cleaned: set[Path] = set()

    # --- paths -------------------------------------------------------------------------------
    def folder(self, user: str) -> Path:
        return self.users_dir / user_id(user) / "atelier" / "presets"

    def users(self) -> list[str]:
        """Users that have a presets folder."""
        if not self.users_dir.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(self.users_dir)
                      if entry.is_dir() and (Path(entry.path) / "atelier" / "presets").is_dir())

    # --- reading -----------------------------------------------------------------------------
    def load(self, user: str) -> tuple[dict[str, StoredSpec], list[Problem]]:
        """Every readable preset of ``user`` by id, and the files that could not be read."""
        folder = self.folder(user)
        specs: dict[str, StoredSpec] = {}
        problems: list[Problem] = []
        if folder not in self._cleaned:  # once per folder: what a write killed mid-way left behind
            self._cleaned.add(folder)
            clean_stale_temporaries(folder)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return specs, problems
        except OSError as exc:
            return specs, [Problem("presets", f"the presets folder cannot be read ({errno_name(exc)})")]
        for entry in entries:
            if not entry.name.endswith(SUFFIX) or entry.name.startswith("."):
                continue
            info = regular(entry.path)  # never open a FIFO, a device or a link (loops, outside targets)
            if info is None:
                problems.append(Problem(entry.name, "not a regular file; skipped"))
                continue
            result = self._read(entry.path, info)
            if isinstance(result, Problem):
                problems.append(result)
            else:
                specs[result.spec.id] = result
        problems.sort(key=lambda p: p.file)
        return specs, problems

    def get(self, user: str, preset_id: str, fresh: bool = False) -> StoredSpec | None:
        """One preset; ``fresh`` bypasses the cache (writers decide on what is on disk). An id that is not a
        preset id names no file: None, without touching the disk."""
        if not is_preset_id(preset_id):
            return None
        path = self.folder(user) / f"{preset_id}{SUFFIX}"
        info = regular(path)
        if info is None:
            return None
        result = self._parse(str(path), _stamp(info)) if fresh else self._read(str(path), info)
        return None if isinstance(result, Problem) else result

    def _read(self, path: str, stat: os.stat_result) -> StoredSpec | Problem:
        stamp = _stamp(stat)
        with self._cache_lock:
            cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        result = self._parse(path, stamp)
        with self._cache_lock:
            self._cache[path] = (stamp, result)
        return result

    def _parse(self, path: str, stamp: tuple[int, int, int]) -> StoredSpec | Problem:
        name = os.path.basename(path)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            data = _load_text(text)
        except (OSError, UnicodeDecodeError, YAMLError) as exc:
            return Problem(name, f"cannot read YAML: {exc}".splitlines()[0])
        if not isinstance(data, dict):
            return Problem(name, "expected a mapping of preset fields")
        try:
            spec = CustomPresetSpec.model_validate({"extends": self.default_extends, **data})
        except ValidationError as exc:
            return Problem(name, validation_error(exc).message)
        if f"{spec.id}{SUFFIX}" != name:
            return Problem(name, f"id {spec.id!r} does not match the file name")
        return StoredSpec(spec, stamp)

    # --- writing -----------------------------------------------------------------------------
    @contextmanager
    def locked(self, user: str) -> Iterator[None]:
        """Serialise writers of one user: threads of this process and other processes."""
        folder = self.folder(user)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"presets/{user}/") from None
        with self._cache_lock:
            thread_lock = self._user_locks.setdefault(user, threading.Lock())
        with thread_lock:
            lock = FileLock(str(folder / ".lock"), timeout=30)
            try:
                lock.acquire()
            except OSError as exc:  # the lock file cannot be made (a read-only folder)
                raise storage_error(exc, f"presets/{user}/") from None
            try:
                yield
            finally:
                lock.release()

    def write(self, user: str, spec: CustomPresetSpec, *, create: bool,
              expected_revision: int | None = None) -> CustomPresetSpec:
        """Write ``spec`` (caller holds ``locked(user)``); returns it with its new revision."""
        path = self.folder(user) / f"{spec.id}{SUFFIX}"
        current = self.get(user, spec.id, fresh=True)
        if create and path.exists():
            raise Conflict(f"preset {spec.id!r} already exists", field="id", value=spec.id)
        if not create and current is None:
            raise NotFound(f"no custom preset {spec.id!r}", field="id", value=spec.id)
        revision = current.spec.revision if current else 0
        if expected_revision is not None and current and expected_revision != revision:
            raise Conflict(f"preset {spec.id!r} changed meanwhile: it is at revision {revision}, "
                           f"the update was based on {expected_revision}; reload and retry",
                           field="revision", value=expected_revision, accepted=revision)
        saved = spec.model_copy(update={"revision": revision + 1 if current else 1})
        atomic_write_text(path, dump_spec(saved), shown=f"presets/{user}/{path.name}")
        return saved

    def delete(self, user: str, preset_id: str) -> None:
        path = self.folder(user) / f"{preset_id}{SUFFIX}"
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(f"no custom preset {preset_id!r}", field="id", value=preset_id) from None
        except OSError as exc:
            raise storage_error(exc, f"presets/{user}/{path.name}", "delete") from None
        with self._cache_lock:
            self._cache.pop(str(path), None)


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "error")


def _stamp(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _load_text(text: str) -> object:
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # flow-style YAML that is not JSON: let YAML read it
    return parse_yaml(text)


def dump_spec(spec: CustomPresetSpec) -> str:
    """YAML in its JSON-compatible flow style: human-readable, and fast to load."""
    body: dict[str, Any] = {"id": spec.id, "extends": spec.extends, "revision": spec.revision}
    for key in ("display_name", "description", "level"):
        value = getattr(spec, key)
        if value not in (None, ""):
            body[key] = value
    body.update(spec.overrides())
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"
