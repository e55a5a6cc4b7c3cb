"""``pip install .`` (not only ``-e``) ships every package and data file: the wheel is built, installed into a
fresh virtual environment, and its main job and its server run from outside the repository."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with Atelier's wheel installed; its dependencies (torch, pydantic, …) are
    this environment's, seen through a .pth file, so nothing is downloaded."""
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(REPO)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((root / "dist").glob("atelier-*.whl"))
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_the_installed_wheel_runs_the_main_job_and_the_server_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ATELIER_HOME": str(tmp_path / "home"), "PYTHONPATH": ""}
    where = subprocess.run([str(installed), "-c", "import atelier, pathlib; print(pathlib.Path(atelier.__file__).parent)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout.strip()
    package = Path(where)
    assert str(package).startswith(str(installed.parents[1])), package  # the installed copy, not the checkout
    for data in ("presets/tiers.yaml", "presets/worlds/default.yaml", "presets/storyboards/lighthouse.json",
                 "nodes/core/records/migrations/env.py", "nodes/core/records/migrations/versions/0001_records.py",
                 "workflows/atelier_storyboard.json", "workflows/api/atelier_storyboard.json",
                 "web/js/atelier_panel.js", "web/js/panel/panel.js", "web/ui/index.html", "web/ui/atelier.css"):
        assert (package / data).is_file(), data
    packages = {p.parent.relative_to(REPO) for p in (REPO / "nodes").rglob("__init__.py")}
    for folder in packages:
        assert (package / folder / "__init__.py").is_file(), folder

    out = tmp_path / "demo"
    curate = subprocess.run([str(installed), "-m", "atelier", "curate", "--out", str(out), "--tier", "draft"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert curate.returncode == 0, curate.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["frames"]) == 6 and (out / "report.html").is_file()

    port = _free_port()
    server = subprocess.Popen([str(installed), "-m", "atelier", "serve", "--port", str(port), "--storyboards", str(out)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/atelier/lists", timeout=5)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate(timeout=5)
                time.sleep(0.3)

        def get(path: str) -> bytes:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                assert response.status == 200, path
                return response.read()

        assert b'<main id="atelier"' in get("/atelier/ui/")
        assert b"export function mountPanel" in get("/atelier/ui/js/panel/panel.js")
        assert json.loads(get("/atelier/lists"))["default_tier"] == "standard"
        assert json.loads(get("/atelier/generations"))["items"] == []  # the records' migrations ran
        assert [s["id"] for s in json.loads(get("/atelier/storyboards"))["storyboards"]] == ["demo"]
        assert get("/atelier/storyboards/demo/files/clip_001_start.png").startswith(b"\x89PNG")
    finally:
        server.terminate()
        server.wait(10)
