"""The layout states the architecture, and the code keeps to it: core never imports ComfyUI, aiohttp or an
adapter; the adapters import core; only the host wires adapters together; no capability cycle. Every
module is walked, imports inside functions and under TYPE_CHECKING included (tools/layers.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import layers  # noqa: E402


def test_every_module_keeps_to_the_import_rule() -> None:
    problems, graph = layers.check()
    assert problems == []
    assert len(layers.sources()) > 80
    units = set(graph) | {t for targets in graph.values() for t in targets}
    core = {u for u in units if u.startswith("core")}
    assert {"core.base", "core.quality", "core.scoring", "core.enhance", "core.social", "core.records",
            "core.storyboard"} <= core
    assert graph["core.base"] == set()  # the shared helpers depend on nothing of Atelier
    for adapter in ("comfy", "cli"):
        assert "server" not in graph[adapter] and "remote" not in graph[adapter]
        assert {"comfy", "cli"} - {adapter} & graph[adapter] == set()


@pytest.mark.parametrize(("where", "line", "broken"), [
    ("nodes/core/quality/leak.py", "import aiohttp\n", "core imports aiohttp"),
    ("nodes/core/quality/leak.py", "def f():\n    import folder_paths\n", "core imports folder_paths"),
    ("nodes/core/quality/leak.py", "from ...host import Atelier\n", "core imports host"),
    ("nodes/core/quality/leak.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ...comfy import runtime\n",
     "core imports comfy"),
    ("nodes/comfy/leak.py", "from ..server import build_routes\n", "comfy imports server"),
    ("nodes/cli/leak.py", "from ..comfy import runtime\n", "cli imports comfy"),
    ("nodes/server/leak.py", "from ..remote.comfyui import ComfyClient\n", "server imports remote"),
    ("nodes/core/base/leak.py", "from ..quality import plan\n", "import cycle: core.base -> core.quality"),
])
def test_the_check_finds_what_breaks_the_rule(tmp_path: Path, where: str, line: str, broken: str) -> None:
    copy = tmp_path / "atelier"
    shutil.copytree(REPO / "nodes", copy / "nodes", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / where).write_text(line)
    problems, _ = layers.check(copy)
    assert any(broken in p for p in problems), problems


def test_the_picture_prints_floor_by_floor() -> None:
    out = subprocess.run([sys.executable, str(REPO / "tools" / "layers.py")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    floors = [line.split()[0] for line in out.stdout.splitlines() if line.strip() and not line.startswith(" ")]
    assert floors.index("hosts") < floors.index("composition") < floors.index("adapters") < floors.index("core")
    assert "0 broken import(s)" in out.stdout
