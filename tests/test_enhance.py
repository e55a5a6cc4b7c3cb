"""Prompt enhancement: the rubric, the rule writer, the loop, and the LLM backends against real HTTP
servers on 127.0.0.1 that speak Ollama's and the OpenAI protocols."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web
from atelier.nodes.core.base.errors import InvalidInput
from atelier.nodes.core.enhance import rules
from atelier.nodes.core.enhance.config import key_for
from atelier.nodes.core.enhance.loop import Enhancer, EnhanceRequest
from atelier.nodes.remote.llm import http_backends
from llm_servers import ScriptedLLM, is_critic

GOOD_CRITIQUE = json.dumps({"score": 91, "feedback": "good", "checks": []})
POOR_CRITIQUE = json.dumps({"score": 40, "feedback": "too bare", "checks": [
    {"id": "missing_style", "message": "no medium", "fix": "add one"}]})


def judged(body) -> str:
    """A scripted critic: the bare original is poor, anything longer is good."""
    prompt = body["messages"][-1]["content"]
    return POOR_CRITIQUE if prompt.strip() in ("a fox", "castle") else GOOD_CRITIQUE


def run(request: EnhanceRequest, enhancer: Enhancer | None = None):
    return asyncio.run((enhancer or Enhancer(http_backends(lambda url: key_for(url, None)))).run(request))


@pytest.fixture
def llm():
    servers: list[ScriptedLLM] = []

    def make(reply):
        server = ScriptedLLM(reply)
        servers.append(server)
        return server, server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.mark.parametrize(("prompt", "check"), [
    ("a castle, a castle, oil painting, dusk light, wide shot, highly detailed", "duplicate"),
    ("a beach at day, night sky, oil painting, dusk light, wide shot, highly detailed", "contradiction"),
    ("a (castle:2.5), oil painting, dusk light, wide shot, highly detailed", "weights"),
    ("a (castle:big), oil painting, dusk light, wide shot, highly detailed", "weights"),
    ("a ((castle, oil painting, dusk light, wide shot, highly detailed", "brackets"),
    ("Here is your prompt: a castle, oil painting, dusk light, wide shot, highly detailed", "meta_text"),
    ("<think>hmm</think> a castle, oil painting, dusk light, wide shot, highly detailed", "meta_text"),
    ("castle", "length"),
    (", ".join(["a castle on a hill with towers"] * 3 + [f"tag{i}" for i in range(60)]), "length"),
    ("a castle on a hill, dusk light, wide shot, highly detailed", "missing_style"),
    ("a castle on a hill, oil painting, wide shot, highly detailed", "missing_lighting"),
    ("a castle on a hill, oil painting, dusk light, highly detailed", "missing_composition"),
    ("a castle on a hill, oil painting, dusk light, wide shot", "missing_detail"),
])
def test_rubric_trips_each_check(prompt: str, check: str) -> None:
    result = rules.critique(prompt, rules.style_for("sdxl"))
    assert check in [c.id for c in result.checks], result.to_dict()
    assert result.score < 100 and all(c.fix for c in result.checks)


def test_a_good_prompt_passes_the_rubric() -> None:
    result = rules.critique("portrait of a knight, oil painting, dramatic lighting, close-up, highly detailed",
                            rules.style_for("sd15"))
    assert result.score == 100 and not result.checks


def test_rule_writer_fixes_what_the_critic_finds_and_writes_for_the_family() -> None:
    messy = "Here is the prompt: a castle, a castle, (dragon:2.5), day, night, ((sunset"
    fixed = rules.rewrite(messy, rules.style_for("sdxl"), seed=1)
    assert rules.critique(fixed, rules.style_for("sdxl")).score == 100
    assert "(dragon:1.5)" in fixed and fixed.count("castle") == 1 and "night" not in fixed and "Here" not in fixed
    pony = rules.rewrite("a fox", rules.style_for("sdxl", "ponyDiffusionV6XL.safetensors"), seed=1)
    assert pony.startswith("score_9, score_8_up, score_7_up, a fox")
    flux = rules.rewrite("a red fox in the snow", rules.style_for("flux_dev"), seed=1)
    assert flux.startswith("A red fox in the snow. ") and flux.endswith(".") and ", " in flux
    long = rules.rewrite(", ".join(f"tag number {i}" for i in range(40)), rules.style_for("sd15"), seed=1)
    assert rules.count_tokens(long) <= 75  # stays within one CLIP chunk
    assert rules.rewrite("a fox", rules.style_for("sd15"), seed=1) == rules.rewrite("a fox", rules.style_for("sd15"), seed=1)


def test_the_rule_loop_is_deterministic_traced_and_cached() -> None:
    enhancer = Enhancer()
    request = EnhanceRequest(prompt="a red fox, a red fox, in the snow", negative="ugly", seed=5)
    first = run(request, enhancer)
    assert first.score >= 85 and first.iterations == 1 and not first.cached
    assert [(s.role, s.iteration) for s in first.trace] == [("critic", 0), ("writer", 1), ("critic", 1)]
    assert first.original == "a red fox, a red fox, in the snow" and "threshold 85" in first.summary
    assert first.negative.startswith("ugly, lowres")
    again = run(request, enhancer)
    assert again.cached and again.prompt == first.prompt
    assert run(request, Enhancer()).prompt == first.prompt  # same inputs and seed, same result
    other = {run(request.model_copy(update={"seed": s}), Enhancer()).prompt for s in range(8)}
    assert len(other) > 1  # the seed decides the additions


def test_the_loop_stops_at_the_iteration_limit_and_keeps_the_best() -> None:
    request = EnhanceRequest(prompt="castle", threshold=100, iterations=2)
    result = run(request, Enhancer())
    assert result.iterations <= 2 and result.score == max(s.score for s in result.trace if s.score is not None)


def test_bad_requests_name_the_field() -> None:
    for body, field in [({}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": "x", "iterations": 9}, "iterations"),
                        ({"prompt": "x", "backend": "gpt"}, "backend"), ({"prompt": "x", "threshold": 101}, "threshold"),
                        ({"prompt": "x", "api_key": "sk-123"}, "api_key")]:
        with pytest.raises(InvalidInput) as exc:
            EnhanceRequest.parse(body)
        assert exc.value.field == field, body


def test_ollama_backend_speaks_the_native_protocol(llm) -> None:
    def reply(body, request):
        if not body["messages"]:
            return ""  # the release call
        if is_critic(body):
            return "<think>let me judge</think>" + judged(body)
        return "<think>thinking about foxes</think>Sure! Here is the prompt: a red fox, snow, oil painting, soft light"

    server, url = llm(reply)
    result = run(EnhanceRequest(prompt="a fox", backend="ollama", model="qwen3", endpoint=url, seed=7, temperature=0.3))
    assert result.prompt == "a red fox, snow, oil painting, soft light" and result.score == 91
    assert not result.fallbacks
    path, body, _ = server.requests[0]
    assert path == "/api/chat" and body["stream"] is False and body["model"] == "qwen3"
    assert body["options"]["seed"] == 7 and body["options"]["temperature"] == 0.3
    assert body["keep_alive"] == "5m" and body["format"]["required"] == ["score", "feedback", "checks"]
    assert server.requests[-1][1] == {"model": "qwen3", "messages": [], "keep_alive": 0}  # VRAM freed at the end


def test_openai_backend_with_lm_studio_refusing_json_schema(llm) -> None:
    def reply(body, request):
        if "response_format" in body:
            return web.json_response({"error": "'response_format.type' must be 'json_schema' or 'text'"}, status=400)
        if is_critic(body):
            return "The verdict:\n```json\n" + judged(body) + "\n```"
        return "Prompt: a red fox in the snow, watercolor, golden hour, close-up, highly detailed"

    server, url = llm(reply)
    import os

    os.environ["ATELIER_OPENAI_API_KEY"] = "sk-test-123"
    try:
        result = run(EnhanceRequest(prompt="a fox", backend="openai", model="local", endpoint=url))
    finally:
        del os.environ["ATELIER_OPENAI_API_KEY"]
    assert result.prompt.startswith("a red fox in the snow, watercolor") and result.score == 91
    assert server.requests[0][2]["Authorization"] == "Bearer sk-test-123"
    assert any("response_format" not in body for _, body, _ in server.requests)
    assert "sk-test-123" not in json.dumps(result.to_dict())  # never in results or traces


def test_slow_server_hits_the_deadline_and_falls_back_to_rule(llm) -> None:
    async def slow(body, request):
        await asyncio.sleep(3)
        return "too late"

    server, url = llm(slow)
    result = run(EnhanceRequest(prompt="a fox", backend="ollama", model="m", endpoint=url, timeout_s=0.3,
                                release_after=False))
    assert result.score >= 85  # the rule backend finished the job
    notes = " ".join(result.fallbacks)
    assert f"ollama critic at {url} gave no answer within the enhancement's deadline (0.3 s)" in notes
    assert len(server.requests) == 1  # a call that timed out is not repeated; the deadline had passed after it


def test_malformed_json_and_server_errors_fall_back(llm) -> None:
    calls = {"n": 0}

    def reply(body, request):
        calls["n"] += 1
        if is_critic(body):
            return "score: ninety, looks fine {not json"
        if calls["n"] <= 2:
            return web.Response(status=503, text="overloaded")
        return "a fox in a snowy forest, oil painting, moonlight, wide shot, intricate details"

    server, url = llm(reply)
    result = run(EnhanceRequest(prompt="a fox", backend="openai", model="m", endpoint=url))
    assert any("openai critic failed" in f and "JSON" in f for f in result.fallbacks)
    writers = [s for s in result.trace if s.role == "writer" and not s.note]
    assert writers and writers[0].backend == "openai"  # the 503s were retried, then it answered


def test_unreachable_server_names_the_url_and_the_original_survives(llm) -> None:
    result = run(EnhanceRequest(prompt="a fox", backend="ollama", model="m", endpoint="http://127.0.0.1:9",
                                timeout_s=1, release_after=False))
    assert result.prompt and result.score > 0
    assert any("http://127.0.0.1:9/api/chat" in f for f in result.fallbacks)
    assert any("circuit open" in f for f in result.fallbacks)  # after the first failure, no more waiting


def test_enhance_route_validates_and_answers(server, enhance_service, tmp_path) -> None:
    status, body = server.post("/atelier/enhance", {"prompt": "a red fox", "model_family": "flux_dev", "seed": 2})
    assert status == 200 and body["prompt"].startswith("A red fox") and body["score"] >= 85
    assert body["trace"][0]["role"] == "critic" and body["negative"]
    assert server.post("/api/atelier/enhance", {"prompt": "a red fox"})[0] == 200
    for bad, field in [({"prompt": ""}, "prompt"), ({"prompt": "x", "iterations": 0}, "iterations"),
                       ({"prompt": "x", "endpoint": "nowhere"}, "endpoint"),
                       ({"prompt": "x", "api_key": "sk-1"}, "api_key"), ([1, 2], "body")]:
        status, answer = server.post("/atelier/enhance", bad)
        assert status == 400 and answer["field"] == field, (bad, answer)
        assert "sk-1" not in json.dumps(answer)
    assert server.post("/atelier/enhance", raw=b"{nope")[0] == 400
    assert server.get("/atelier/enhance/endpoints") == (200, {"endpoints": []})


def test_configured_endpoints_supply_url_model_and_key(llm, tmp_path, monkeypatch) -> None:
    from atelier.nodes.host import Atelier, Settings

    def reply(body, request):
        return judged(body) if is_critic(body) else "a fox in the snow, oil painting, moonlight, wide shot, detailed"

    server, url = llm(reply)
    data = tmp_path / "home" / "data"
    data.mkdir(parents=True)
    (data / "llm.json").write_text(json.dumps({"endpoints": {"studio": {
        "backend": "openai", "url": url, "model": "qwen3-8b", "api_key_env": "STUDIO_KEY"}}}))
    monkeypatch.setenv("STUDIO_KEY", "sk-from-env")
    settings = Settings.standalone(tmp_path / "home", environ={})
    service = Atelier(settings).enhance  # as the host builds it: named endpoints, HTTP backends, keys
    assert service.endpoint_names() == ["(backend default)", "studio"]
    assert service.endpoints() == [{"name": "studio", "backend": "openai", "url": url, "model": "qwen3-8b"}]
    result = asyncio.run(service.enhance({"prompt": "a fox", "endpoint": "studio"}, keep_trace=True))
    assert result["score"] == 91 and not result["fallbacks"]
    _, body, headers = server.requests[0]
    assert body["model"] == "qwen3-8b" and headers["Authorization"] == "Bearer sk-from-env"
    assert result["trace_file"].startswith("atelier/traces/")  # from the output folder: no server path
    trace_file = settings.output_dir / result["trace_file"]
    assert trace_file.parent == settings.traces_dir and "sk-from-env" not in trace_file.read_text()
    with pytest.raises(InvalidInput) as wrong:
        service.request({"prompt": "x", "endpoint": "studio", "backend": "ollama"})
    assert wrong.value.field == "backend"


def test_trace_files_are_removed_unless_kept(tmp_path) -> None:
    from atelier.nodes.core.enhance.service import EnhanceService

    service = EnhanceService(tmp_path / "data" / "llm.json", tmp_path / "traces")
    gone = asyncio.run(service.enhance({"prompt": "a bare castle"}))
    assert gone["trace_file"] is None and not list((tmp_path / "traces").glob("*.json"))
    kept = asyncio.run(service.enhance({"prompt": "a quiet harbour", "seed": 4}, keep_trace=True))
    saved = json.loads((tmp_path / "traces" / Path(kept["trace_file"]).name).read_text())
    assert saved["prompt"] == kept["prompt"] and saved["trace"][0]["iteration"] == 0


def test_cli_enhances_and_plans_with_the_enhanced_prompt(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "ATELIER_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "atelier", "enhance", "a castle, a castle, (dragon:3)",
                          "--family", "sdxl"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "(dragon:1.5)" in out.stdout and "failed: weights, duplicate" in out.stdout
    plan = subprocess.run([sys.executable, "-m", "atelier", "plan", "shot_generation", "--prompt", "a harbour"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert plan.returncode == 0 and "shot: a harbour" in plan.stdout and "cinematic film still" in plan.stdout


def test_transformers_backend_runs_a_local_model_deterministically(tmp_path) -> None:
    pytest.importorskip("transformers")
    from tiny_models import tiny_causal_lm

    folder = tiny_causal_lm(tmp_path / "tiny-lm")
    request = EnhanceRequest(prompt="a fox", backend="transformers", model=str(folder), seed=11, iterations=1,
                             temperature=0.9)
    first, second = run(request, Enhancer(http_backends(lambda url: key_for(url, None)))), run(request, Enhancer(http_backends(lambda url: key_for(url, None))))
    writer = next(s for s in first.trace if s.role == "writer")
    assert writer.backend == "transformers" and not writer.note and writer.text  # the local model wrote
    assert first.prompt == second.prompt  # same seed, same result
    assert any("transformers critic failed" in f for f in first.fallbacks)  # a random model writes no JSON
    missing = run(request.model_copy(update={"model": str(tmp_path / "absent")}), Enhancer(http_backends(lambda url: key_for(url, None))))
    assert any("no such model folder" in f for f in missing.fallbacks) and missing.score >= 85
