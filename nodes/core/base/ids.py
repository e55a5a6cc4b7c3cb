"""Ids that name things on disk (users, presets, storyboards): one pattern per kind, checked at the
boundary, and resolved inside their owner's folder only."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import NotFound, invalid

USER_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PRESET_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # also a pydantic ``pattern``
FOLDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a storyboard folder, a file in it
USER_RULE = "letters, digits, '_', '-', '.' (1-128, no '..')"
FOLDER_RULE = "letters, digits, . _ - (1-128, starting with a letter or digit, no '..')"


def user_id(user: str | None) -> str:
    """A user id usable as a folder name (ComfyUI's user ids); ``None`` or empty is ``default``."""
    user = user or "default"
    if not isinstance(user, str) or not USER_ID.match(user) or ".." in user:
        raise invalid("user", user, USER_RULE)
    return user


_PRESET = re.compile(PRESET_ID)


def is_preset_id(value: object) -> bool:
    """A custom preset's id: lowercase letters, digits, '_' and '-', 1-64 (so never a path)."""
    return isinstance(value, str) and bool(_PRESET.match(value))


def is_folder_id(value: object) -> bool:
    return isinstance(value, str) and bool(FOLDER_ID.match(value)) and ".." not in value


def folder_id(field: str, value: object) -> str:
    """A storyboard id or a file name inside one: a single plain path part, never ``..``."""
    if not is_folder_id(value):
        raise invalid(field, value, FOLDER_RULE)
    assert isinstance(value, str)
    return value


def inside(folder: Path, name: str, field: str) -> Path:
    """``folder / name`` when it is a regular file whose resolved path stays inside ``folder``."""
    root = folder.resolve()
    path = (root / name).resolve()
    if root not in path.parents or not path.is_file():
        raise NotFound(f"no file {name!r} here", field=field, value=name)
    return path
