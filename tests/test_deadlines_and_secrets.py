"""A dead LLM server never holds a request past its deadline, and keys never leave: one deadline per
enhancement, no retry of a call that timed out, a circuit breaker per endpoint, the work stops when the client
leaves; keys and URL credentials are redacted from everything an upstream server says, and chosen by name."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import pytest
from aiohttp import web
from atelier.nodes.core.enhance.loop import DEFAULT_DEADLINE_S, MAX_DEADLINE_S, EnhanceRequest
from llm_servers import is_critic


class Stalled:
    """A loopback server that accepts connections and never answers; it counts them and sees them close."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def closed_by_peer(self, index: int, wait_s: float) -> bool:
        conn = self.accepted[index]
        conn.settimeout(wait_s)
        try:
            while conn.recv(65536):  # the request arrives, then nothing until the peer closes
                pass
            return True
        except (socket.timeout, OSError):
            return False

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def stalled():
    server = Stalled()
    yield server
    server.close()


def _configure(settings: Any, endpoints: dict[str, Any]) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "llm.json").write_text(json.dumps({"endpoints": endpoints}))


def test_the_deadline_is_documented_and_bounded(server) -> None:
    assert DEFAULT_DEADLINE_S <= 30 and MAX_DEADLINE_S == 120 and EnhanceRequest(prompt="x").timeout_s == 30
    status, body = server.post("/atelier/enhance", {"prompt": "a fox", "timeout_s": 600})
    assert status == 400 and body["field"] == "timeout_s"


def test_a_stalled_endpoint_answers_with_the_fallback_within_the_deadline(server, settings, stalled) -> None:
    _configure(settings, {"stalled": {"backend": "ollama", "url": stalled.url, "model": "m"}})
    started = time.monotonic()
    status, body = server.post("/atelier/enhance", {"prompt": "a fox", "endpoint": "stalled", "timeout_s": 2})
    elapsed = time.monotonic() - started
    assert status == 200 and elapsed < 2 + 1, elapsed  # the deadline + 1 s
    assert body["score"] >= 85 and any("deadline (2 s)" in f for f in body["fallbacks"])
    assert len(stalled.accepted) == 1  # the call that timed out was not repeated
    started = time.monotonic()
    status, again = server.post("/atelier/enhance", {"prompt": "a hare", "endpoint": "stalled", "timeout_s": 2})
    assert status == 200 and time.monotonic() - started < 1.0  # the circuit is open: straight to the fallback
    assert any("circuit open" in f for f in again["fallbacks"]) and len(stalled.accepted) == 1
    print(f"\nstalled endpoint: answered in {elapsed:.2f} s with a 2 s deadline")


def test_the_work_stops_when_the_client_leaves(server, settings, stalled) -> None:
    _configure(settings, {"stalled": {"backend": "ollama", "url": stalled.url, "model": "m"}})
    body = json.dumps({"prompt": "a fox", "endpoint": "stalled", "timeout_s": 60}).encode()
    host, port = server.base.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    client.sendall(b"POST /atelier/enhance HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    deadline = time.monotonic() + 10
    while not stalled.accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stalled.accepted, "the enhancement never called the endpoint"
    client.close()  # the client leaves long before its 60 s deadline
    assert stalled.closed_by_peer(0, wait_s=5)  # Atelier cancelled its call


def test_an_echoed_key_never_reaches_the_answer_or_the_trace(server, settings, llm_server) -> None:
    def echo(body: dict[str, Any], request: web.Request) -> web.Response:
        return web.json_response({"error": f"invalid credentials {request.headers.get('Authorization')}"},
                                 status=401)

    url = llm_server(echo)
    _configure(settings, {"studio": {"backend": "openai", "url": url, "model": "m", "api_key": "sk-super-secret-1"}})
    status, body = server.post("/atelier/enhance", {"prompt": "a fox", "endpoint": "studio", "keep_trace": True})
    assert status == 200 and any("HTTP 401" in f for f in body["fallbacks"])
    text = json.dumps(body)
    assert "sk-super-secret-1" not in text and "[redacted]" in text
    assert "sk-super-secret-1" not in (settings.output_dir / body["trace_file"]).read_text()


def test_keys_are_chosen_by_endpoint_name_and_credentials_never_shown(server, settings, llm_server) -> None:
    seen: list[str | None] = []

    def reply(body: dict[str, Any], request: web.Request) -> str:
        seen.append(request.headers.get("Authorization"))
        return json.dumps({"score": 95, "feedback": "ok", "checks": []}) if is_critic(body) else "a fox"

    url = llm_server(reply)
    secret_url = url.replace("http://", "http://me:hunter2@") + "/?api-key=QUERYKEY123"
    _configure(settings, {"one": {"backend": "openai", "url": url, "model": "m", "api_key": "key-one-1111"},
                          "two": {"backend": "openai", "url": url, "model": "m", "api_key": "key-two-2222"},
                          "creds": {"backend": "openai", "url": secret_url, "model": "m"}})
    assert server.post("/atelier/enhance", {"prompt": "a fox", "endpoint": "one", "seed": 1})[0] == 200
    assert server.post("/atelier/enhance", {"prompt": "a fox", "endpoint": "two", "seed": 2})[0] == 200
    assert seen and {seen[0], seen[-1]} == {"Bearer key-one-1111", "Bearer key-two-2222"}
    listed = json.dumps(server.get("/atelier/enhance/endpoints")[1])
    assert "hunter2" not in listed and "me:" not in listed and "QUERYKEY123" not in listed
    status, body = server.post("/atelier/enhance", {"prompt": "a wolf", "endpoint": "creds", "seed": 3})
    assert status == 200 and "hunter2" not in json.dumps(body) and "QUERYKEY123" not in json.dumps(body)


@pytest.fixture
def llm_server():
    from llm_servers import ScriptedLLM

    servers: list[ScriptedLLM] = []

    def make(reply: Any) -> str:
        one = ScriptedLLM(reply)
        servers.append(one)
        return one.start()

    yield make
    for one in servers:
        one.stop()


def test_the_loop_itself_stops_at_the_deadline(stalled) -> None:
    """The Enhancer the node and the route share: a dead server costs one deadline, never more."""
    from atelier.nodes.core.enhance.loop import Enhancer
    from atelier.nodes.remote.llm import http_backends

    started = time.monotonic()
    result = asyncio.run(Enhancer(http_backends(lambda name: None)).run(EnhanceRequest(
        prompt="a fox", backend="ollama", model="m", endpoint=stalled.url, timeout_s=1.5)))
    assert time.monotonic() - started < 1.5 + 1 and result.score >= 85 and result.prompt != "a fox"
