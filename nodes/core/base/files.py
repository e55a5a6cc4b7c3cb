"""Files, safely: atomic writes (readers see the old file or the new one, never a part) with the mode the
umask gives (0644 by default, not mkstemp's 0600), failures named by a path the user knows and the errno,
stale temporaries of an interrupted write cleaned, and only regular files read (never a FIFO or a link)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
from pathlib import Path

from .errors import AtelierError

TEMP_SUFFIX = ".tmp"
STALE_S = 600  # a temporary older than this was left by a write that died (kill -9, power loss)


class StorageError(AtelierError):
    """Atelier's data could not be written or read: the cause is named (a path relative to the data folder and the
    errno), never a server path."""

    status = 503


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


FILE_MODE = 0o666 & ~_umask()


def storage_error(exc: OSError, shown: str, action: str = "write") -> StorageError:
    code = errno.errorcode.get(exc.errno or 0, "error")
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    return StorageError(f"cannot {action} {shown}: {why.lower()} ({code})", field="storage", value=shown,
                        accepted="a writable data folder with free space")


def atomic_write_text(path: Path, text: str, shown: str | None = None) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never a part."""
    atomic_write_bytes(path, text.encode("utf-8"), shown)


def atomic_write_bytes(path: Path, data: bytes, shown: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename). A failure is a
    StorageError naming ``shown`` (default: the file's name) and the errno."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise storage_error(exc, shown or path.name) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise storage_error(exc, shown or path.name) from None
        raise


def clean_stale_temporaries(folder: Path, older_than_s: float = STALE_S) -> int:
    """Remove ``.<name>.*.tmp`` files an interrupted write left behind; returns how many."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
            try:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than_s:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
    return removed


def regular(path: str | Path) -> os.stat_result | None:
    """The file's status when it is a regular file (not a FIFO, a device, a folder or a link), else None."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return None
    return info if stat.S_ISREG(info.st_mode) else None
