"""Processes for scale-out tests and the scale bench: fake ComfyUI servers (``fake_comfy.py``) and real
``atelier worker`` processes on a real PostgreSQL, each a process so that it can be killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.05) -> Any:
    """``check()``'s first truthy answer within ``timeout_s``; an AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def http_json(url: str, body: Any = None, timeout_s: float = 5.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read() or b"null")


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    url: str = ""
    log: Path | None = None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup (what a crash or an OOM kill does)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log and self.log.exists() else ""


@dataclass
class Cluster:
    """Fake ComfyUIs and workers started for one test; everything is stopped at the end."""

    database_url: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def comfy(self, seconds: float = 0.5, mode: str = "ok", port: int | None = None) -> Proc:
        port = port or free_port()
        log = self.root / f"comfy-{port}.log"
        process = subprocess.Popen([sys.executable, str(HERE / "fake_comfy.py"), "--port", str(port), "--seconds",
                                    str(seconds), "--mode", mode], stdout=log.open("wb"), stderr=subprocess.STDOUT)
        proc = Proc(process, f"http://127.0.0.1:{port}", log)
        self.procs.append(proc)
        wait_until(lambda: _answers(proc.url), 20, f"the fake ComfyUI on {port}")
        return proc

    def worker(self, comfy_url: str, name: str, heartbeat_s: float = 0.3, stalled_after_s: float = 1.5,
               concurrency: int = 2, wait: bool = True) -> Proc:
        log = self.root / f"worker-{name}.log"
        argv = [sys.executable, "-m", "atelier", "worker", "--comfy", comfy_url, "--database", self.database_url,
                "--shared", str(self.shared), "--name", name, "--heartbeat-s", str(heartbeat_s),
                "--stalled-after-s", str(stalled_after_s), "--poll-s", "0.2", "--concurrency", str(concurrency)]
        env = {**os.environ, "ATELIER_HOME": str(self.root / "home"), **self.env}
        process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=self.root)
        proc = Proc(process, comfy_url, log)
        self.procs.append(proc)
        if wait:
            wait_until(lambda: "taking jobs" in proc.output() or process.poll() is not None, 60,
                       f"worker {name} to start")
            assert process.poll() is None, proc.output()
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def _answers(url: str) -> bool:
    try:
        http_json(url + "/queue", timeout_s=1)
        return True
    except OSError:
        return False


def stats(url: str) -> dict[str, Any]:
    return dict(http_json(url + "/fake/stats"))


@contextmanager
def cluster(database_url: str, root: Path) -> Iterator[Cluster]:
    made = Cluster(database_url, root)
    (root / "home").mkdir(parents=True, exist_ok=True)
    try:
        yield made
    finally:
        made.close()


def graph(seed: int = 0) -> dict[str, Any]:
    """A small API-format graph (the fake ComfyUI runs any graph; the real one would validate it)."""
    return {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"atelier_{seed}"}}}
