"""The header of a .safetensors file, read without its tensors, and why a file is not one.

The format: a little-endian u64 ``N``, then ``N`` bytes of JSON: ``__metadata__`` (str -> str) and, for
every tensor, ``{"dtype", "shape", "data_offsets": [begin, end]}`` relative to the byte after the header.
Tensor names, shapes and the training metadata are all in the header; no tensor byte is read here.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
MAGIC = {b"PK\x03\x04": "a zip archive (a PyTorch pickle checkpoint)", b"\x80\x02": "a Python pickle",
         b"\x80\x04": "a Python pickle", b"GGUF": "a GGUF file", b"<!DO": "an HTML page", b"<htm": "an HTML page",
         b"versio": "a Git LFS pointer"}


@dataclass(frozen=True)
class Header:
    """A parsed header: tensors (name -> {dtype, shape, data_offsets}), metadata, and where data starts."""

    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str]
    header_bytes: bytes = field(repr=False)
    data_start: int
    size: int

    def shape(self, name: str) -> tuple[int, ...] | None:
        entry = self.tensors.get(name)
        shape = entry.get("shape") if entry else None
        return tuple(int(x) for x in shape) if isinstance(shape, list) else None


class NotSafetensors(ValueError):
    """A file that is not a readable safetensors file; the message says why, in words."""


def _what_it_is(head: bytes) -> str:
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            return what
    return "not a safetensors file"


def read_header(path: str | Path, max_header: int = MAX_HEADER_BYTES) -> Header:
    """The header of ``path``; ``NotSafetensors`` with the reason when it is not readable as one."""
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as handle:
            return _read(handle, size, max_header)
    except OSError as exc:
        raise NotSafetensors(f"cannot read the file: {exc.strerror or type(exc).__name__}") from None


def _read(handle: BinaryIO, size: int, max_header: int) -> Header:
    head = handle.read(8)
    if len(head) < 8:
        raise NotSafetensors(f"truncated: {size} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", head)
    what = _what_it_is(head)

    def refuse(reason: str) -> NotSafetensors:  # another known format under a .safetensors name says so
        return NotSafetensors(what if what != "not a safetensors file" else reason)

    if length < 2:
        raise refuse(f"{what} (header length {length})")
    if length > max_header:
        raise refuse(f"header of {length} bytes is over the {max_header} byte limit")
    if 8 + length > size:
        raise refuse(f"the header says {length} bytes but the file has {size - 8} after the length "
                     "(truncated, or not a safetensors file)")
    raw = handle.read(length)
    if not raw.lstrip().startswith(b"{"):
        raise refuse(what)
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotSafetensors(f"the header is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(parsed, dict):
        raise NotSafetensors("the header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise NotSafetensors("__metadata__ is not a JSON object")
    data_size = size - 8 - length
    tensors: dict[str, dict[str, Any]] = {}
    for name, entry in parsed.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(x, int) for x in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise NotSafetensors(f"tensor {name[:80]!r} points outside the file (truncated?)")
        tensors[name] = entry
    return Header(tensors, {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
                  raw, 8 + length, size)


def header_or_none(path: str | Path) -> dict[str, Any] | None:
    """The header as one JSON object (tensors and ``__metadata__``), or None when the file is not one."""
    try:
        header = read_header(path)
    except NotSafetensors:
        return None
    return {**header.tensors, "__metadata__": header.metadata}
