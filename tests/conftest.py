"""Shared fixtures: a service on temporary folders, and a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torchvision_shim
from aiohttp import web
from atelier.nodes.core.quality.service import QualityService
from atelier.nodes.host import Atelier, Settings, wiring

TORCHVISION = torchvision_shim.install()
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"  # browser tests save theirs here
OBJECT_INFO = REPO.parent / "shared" / "comfyui" / "object_info.json"


@pytest.fixture
def service(settings: Settings) -> QualityService:
    """The quality service on the test's folders (the same the ``atelier`` context and ``server`` use)."""
    return QualityService(settings.users_dir, settings.data_dir)


@pytest.fixture(scope="session")
def postgres_admin() -> Any:
    """A throwaway PostgreSQL server's admin URL (see tests/postgres.py), started once."""
    from postgres import postgres_server

    try:
        import psycopg  # noqa: F401
    except ImportError:
        psycopg = None
    with postgres_server() as url:
        if url is None or psycopg is None:
            why = "psycopg is not installed" if psycopg is None else "no PostgreSQL here (Debian's postgresql)"
            if os.environ.get("ATELIER_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"ATELIER_REQUIRE_POSTGRES=1 but {why}")
            pytest.skip(why)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh records database: a SQLite file, and a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        from atelier.nodes.core.records.store import sqlite_url

        return sqlite_url(tmp_path / "records.sqlite")
    from postgres import fresh_database

    return fresh_database(request.getfixturevalue("postgres_admin"))


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    if not OBJECT_INFO.exists():
        pytest.skip(f"{OBJECT_INFO} (ComfyUI 0.3.64's /object_info) is not beside the checkout")
    return json.loads(OBJECT_INFO.read_text())


CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")


def _chromium() -> str | None:
    explicit = os.environ.get("ATELIER_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _unavailable(why: str) -> None:
    if os.environ.get("ATELIER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ATELIER_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium through Playwright's sync API, for one test module. Module scope on purpose: while it is
    open, Playwright runs an event loop in this thread, so ``asyncio.run`` in later modules would fail."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    executable = _chromium()
    if executable is None:
        _unavailable("no Chromium here (Debian's chromium package)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


class Client:
    """A tiny blocking HTTP client (urllib), usable from many threads at once."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode(errors="replace")

    def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Atelier's folders for one test, as ``atelier serve`` lays them out under ATELIER_HOME."""
    return Settings.standalone(tmp_path / "home", environ={})


@pytest.fixture
def atelier(settings: Settings, service: QualityService) -> Atelier:
    """The host's context on the test's folders (its quality service is the ``service`` fixture's)."""
    context = Atelier(settings)
    context._made["quality"] = service
    return context


@pytest.fixture
def fake_comfyui() -> Iterator[Any]:
    """A stand-in for ComfyUI's HTTP API on loopback (tests/fake_comfyui.py)."""
    from fake_comfyui import FakeComfyUI

    with FakeComfyUI() as comfy:
        yield comfy


@pytest.fixture
def on_comfyui(settings: Settings, service: QualityService, fake_comfyui: Any) -> Atelier:
    """The host's context as inside ComfyUI: generations queued on (and followed from) the stand-in ComfyUI
    through Atelier's one ComfyUI client."""
    context = Atelier(settings, comfy=lambda: wiring.comfyui(fake_comfyui.url))
    context._made["quality"] = service
    return context


@pytest.fixture
def enhance_service(atelier: Atelier):
    return atelier.enhance


@pytest.fixture
def social_service(atelier: Atelier):
    return atelier.social


@pytest.fixture
def record_service(atelier: Atelier):
    return atelier.records


@pytest.fixture
def pipeline_service(atelier: Atelier):
    return atelier.pipelines


@pytest.fixture
def storyboard_root(settings: Settings) -> Path:
    """Where the server's storyboard viewer looks (ComfyUI's output/atelier/storyboards)."""
    settings.storyboards_dir.mkdir(parents=True)
    return settings.storyboards_dir


def serve_app(app: web.Application) -> Iterator[Client]:
    """An aiohttp app on a real server, 127.0.0.1 on a free port, in its own thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "server did not start"
    yield Client(f"http://127.0.0.1:{state['port']}")
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def server(atelier: Atelier, storyboard_root: Path) -> Iterator[Client]:
    """Atelier's routes (as ``atelier serve`` mounts them) on a real aiohttp server on loopback."""
    yield from serve_app(wiring.app(atelier))
