"""A real ComfyUI with this checkout installed, for the tools and benchmarks that need one.

``comfyui()`` starts ``main.py --cpu`` from ``COMFYUI_DIR`` (with ``COMFYUI_PYTHON``) on a free loopback
port, in a temporary base directory whose custom_nodes/atelier links to this checkout; with
``checkpoint=True`` it also places the tiny random SD1.5 checkpoint the integration suite builds
(``tests/comfyui/make_checkpoint.py``, cached in ``ATELIER_TEST_CACHE``). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = "atelier_tiny_sd15_v2.safetensors"  # the integration suite's (tests/test_comfyui_integration.py)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _place_checkpoint(base: Path, comfy_dir: Path, python: str) -> None:
    cache = Path(os.environ.get("ATELIER_TEST_CACHE") or base)
    cache.mkdir(parents=True, exist_ok=True)
    built = cache / CHECKPOINT
    if not built.exists():
        subprocess.run([python, str(REPO / "tests" / "comfyui" / "make_checkpoint.py"), str(comfy_dir), str(built)],
                       check=True, cwd=comfy_dir, timeout=600)
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    if built.parent != checkpoints:
        (checkpoints / CHECKPOINT).symlink_to(built)


@contextmanager
def comfyui(checkpoint: bool = False) -> Iterator[tuple[str, Path]]:
    """(its URL, its base directory) while it runs; stopped and removed afterwards."""
    if "COMFYUI_DIR" not in os.environ:
        raise SystemExit("set COMFYUI_DIR (and COMFYUI_PYTHON) to a ComfyUI checkout")
    comfy_dir = Path(os.environ["COMFYUI_DIR"])
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    base = Path(tempfile.mkdtemp(prefix="atelier-comfyui-"))
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "atelier").symlink_to(REPO, target_is_directory=True)
    if checkpoint:
        _place_checkpoint(base, comfy_dir, python)
    port = _free_port()
    with open(base / "comfyui.log", "w") as log:
        process = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                                    "--base-directory", str(base), "--disable-auto-launch"],
                                   cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"ComfyUI exited: {(base / 'comfyui.log').read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/system_stats", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("ComfyUI did not start within 180 s") from None
                    time.sleep(0.5)
            yield url, base
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            shutil.rmtree(base, ignore_errors=True)


def call(url: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
    """A JSON request to ComfyUI (GET, or POST with ``body``): (status, parsed answer)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def run_prompt(url: str, graph: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Queue ``graph`` and wait for its history entry (ComfyUI's record of the run)."""
    status, body = call(url, "/prompt", {"prompt": graph})
    if status != 200:
        raise RuntimeError(f"ComfyUI refused the graph: {body}")
    prompt_id = body["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, history = call(url, f"/history/{prompt_id}")
        item = history.get(prompt_id) if status == 200 and isinstance(history, dict) else None
        if item and item["status"].get("status_str") in ("success", "error"):
            return item
        time.sleep(0.2)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")


def execution_seconds(item: dict[str, Any]) -> float:
    """How long ComfyUI executed a prompt, from its own execution events (not the queue wait)."""
    stamps = {kind: data.get("timestamp") for kind, data in item["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0
