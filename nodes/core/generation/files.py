"""Writing a generation to disk: the PNG with its metadata and explanation in text chunks, and a JSON sidecar.

Chunks: ``parameters`` (the A1111 line many tools read), ``atelier_metadata`` (the metadata as JSON) and
``atelier_explanation`` (the explanation, as Save With Explanation writes it). The sidecar
``<name>.atelier.json`` holds both. Both files are written atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base.errors import invalid
from ..base.jsonsafe import dumps
from ..intelligence.explain import PNG_KEY, SIDECAR_SUFFIX

if TYPE_CHECKING:
    from .types import GenerationMetadata, GenerationResult

METADATA_KEY = "atelier_metadata"


def a1111_parameters(meta: GenerationMetadata) -> str:
    loras = "".join(f" <lora:{Path(x['name']).stem}:{x['strength']:g}>" for x in meta.loras_used)
    return (f"{meta.prompt}{loras}\nNegative prompt: {meta.negative_prompt}\n"
            f"Steps: {meta.steps}, Sampler: {meta.sampler}, Schedule type: {meta.scheduler}, CFG scale: {meta.cfg:g}, "
            f"Seed: {meta.seed}, Size: {meta.width}x{meta.height}, Model: {Path(meta.base_model).name}")


def _atomic(path: Path, write: Any) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600: an image is meant to be read
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_result(result: GenerationResult, path: str | os.PathLike[str]) -> Path:
    from PIL.PngImagePlugin import PngInfo

    target = Path(path)
    if target.suffix.lower() != ".png":
        raise invalid("path", str(path), "a file name ending in .png")
    if not target.parent.is_dir():
        raise invalid("path", str(path), "a file in an existing folder")
    info = PngInfo()
    info.add_text("parameters", a1111_parameters(result.metadata))
    info.add_text(METADATA_KEY, dumps({"id": result.id, **result.metadata.to_dict()}))
    info.add_text(PNG_KEY, dumps(result.explanation))
    _atomic(target, lambda tmp: result.image.save(tmp, format="PNG", pnginfo=info))
    sidecar = target.with_name(target.stem + SIDECAR_SUFFIX)
    body = {"id": result.id, "metadata": result.metadata.to_dict(), "explanation": result.explanation}
    _atomic(sidecar, lambda tmp: Path(tmp).write_text(dumps(body, indent=2)))
    return target
