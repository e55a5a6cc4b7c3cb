"""mypy (every module, the ComfyUI and HTTP adapters included: 0 errors) and ruff (clean) over the pack."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        if os.environ.get("ATELIER_CI"):
            pytest.fail(f"{name} is not installed (the test extra brings it)")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")


def test_mypy_finds_no_error_in_any_module() -> None:
    _tool("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(REPO / ".mypy_cache")],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_is_clean() -> None:
    _tool("ruff")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]
