"""Telemetry: the cost arithmetic (device time x the rate of the device kind), totals per user, workspace and day
with the charts' series, LLM calls with tokens and latency from a real loopback Ollama, each provider's health
and circuit, per user."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aiohttp import web
from atelier.nodes.core.telemetry.report import Rates
from llm_servers import ScriptedLLM, is_critic

DAY = 86_400.0


def endpoints(settings: Any, **specs: dict[str, Any]) -> None:
    """The server's LLM endpoints (``llm.json``)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "llm.json").write_text(json.dumps({"endpoints": specs}))


def enhance_as_the_node(atelier: Any, prompt_id: str, prompt: str) -> None:
    """What a Prompt Enhance node does inside ComfyUI's prompt ``prompt_id``: its LLM calls name that run."""
    import asyncio

    from atelier.nodes.core.telemetry.llm import calling_prompt

    async def run() -> None:
        token = calling_prompt.set(prompt_id)
        try:
            await atelier.enhance.enhance({"prompt": prompt, "endpoint": "local"})
        finally:
            calling_prompt.reset(token)

    asyncio.run(run())


def test_the_cost_is_device_time_times_the_rate_of_its_kind() -> None:
    rates = Rates.load()
    assert rates.rate("NVIDIA H200") == 3.5 and rates.rate("NVIDIA GeForce RTX 4090") == 0.7
    assert rates.rate("cpu") == 0.05 and rates.rate("something new") == rates.default == 0.8
    assert rates.cost(3600, "NVIDIA H100 80GB HBM3") == pytest.approx(2.5)
    assert rates.cost(90, "reference") == pytest.approx(0.02)
    assert Rates.load(override_default=1.2).rate("unknown gpu") == 1.2  # ATELIER_GPU_HOURLY_USD
    assert Rates.load(override_default=1.2).rate("h200") == 3.5  # named kinds keep their rate


def completed(store: Any, user: str, tier: str, seconds: float, best: float, device: str, workspace: str = "default",
              day: float = 0.0) -> Any:
    start = 1_800_000_000.0 + day
    record = store.create("txt2img", user, {"quality": {"preset": tier}, "device": device}, workspace=workspace,
                          prompt=f"a fox {tier} {seconds}", status="completed", started_at=start,
                          finished_at=start + seconds)
    store.set_status(record.id, "completed", scores={"best": best}, finished_at=start + seconds)
    return record


def test_totals_per_day_workspace_and_user_with_series_per_tier(atelier: Any, server: Any) -> None:
    store = atelier.records.store
    r1 = completed(store, "default", "draft", 36.0, 55.0, "NVIDIA H100")
    completed(store, "default", "ultra", 360.0, 82.0, "NVIDIA H100", workspace="posters")
    completed(store, "default", "ultra", 180.0, 78.0, "cpu", day=DAY)
    completed(store, "bob", "draft", 3600.0, 40.0, "NVIDIA H100")
    for record in store.page(limit=10, user="default").items:  # created now: move them to their days
        with store.session.begin() as s:
            from atelier.nodes.core.records.models import Record

            row = s.get(Record, record.id)
            row.created_at = row.started_at
    status, body = server.get("/atelier/telemetry")
    assert status == 200
    days = {d["day"]: d for d in body["days"]}
    first, second = time.strftime("%Y-%m-%d", time.gmtime(1_800_000_000)), \
        time.strftime("%Y-%m-%d", time.gmtime(1_800_000_000 + DAY))
    assert days[first]["runs"] == 2 and days[first]["device_s"] == 396.0
    assert days[first]["cost_usd"] == pytest.approx(396 / 3600 * 2.5)  # H100 at 2.50 an hour
    assert days[second]["cost_usd"] == pytest.approx(180 / 3600 * 0.05)  # the CPU's rate
    assert {w["workspace"]: w["runs"] for w in body["workspaces"]} == {"default": 2, "posters": 1}
    assert [u["user"] for u in body["users"]] == ["default"]  # bob's runs are bob's
    series = {(t["tier"], t["day"]): t for t in body["tiers"]}
    assert series[("ultra", first)]["device_s"] == 360.0 and series[("draft", first)]["runs"] == 1
    ultra = body["scores"]["ultra"]
    assert ultra["runs"] == 2 and ultra["mean"] == 80.0 and sum(ultra["counts"]) == 2
    status, one = server.get(f"/atelier/generations/{r1.id}/telemetry")
    assert one["device_s"] == 36.0 and one["rate_usd_per_hour"] == 2.5 and one["cost_usd"] == pytest.approx(0.025)
    status, refused = server.get("/atelier/telemetry?all=1")
    assert status == 403 and refused["field"] == "all"
    assert server.get("/atelier/telemetry?since=abc")[0] == 400


@pytest.fixture
def ollama() -> Any:
    def reply(body: dict[str, Any], request: web.Request) -> Any:
        if not body["messages"]:
            return ""
        text = ('{"score": 95, "feedback": "good", "checks": {}}' if is_critic(body)
                else "a red fox in the snow, oil painting, soft light")
        return web.json_response({"model": "m", "message": {"role": "assistant", "content": text}, "done": True,
                                  "prompt_eval_count": 40, "eval_count": 12})

    server = ScriptedLLM(reply)
    server.start()
    yield server
    server.stop()


def test_llm_calls_are_counted_per_user_with_tokens_and_each_provider_has_its_health(server: Any, settings: Any,
                                                                                      ollama: Any) -> None:
    url = f"http://127.0.0.1:{ollama.port}"
    endpoints(settings, local={"backend": "ollama", "url": url, "model": "m"},
              dead={"backend": "ollama", "url": "http://127.0.0.1:9", "model": "m"})
    status, body = server.post("/atelier/enhance", {"prompt": "a fox", "endpoint": "local"},
                               headers={"comfy-user": "alice"})
    assert status == 200, body
    status, body = server.post("/atelier/enhance", {"prompt": "a hare", "endpoint": "dead", "timeout_s": 3},
                               headers={"comfy-user": "alice"})
    assert status == 200 and body["fallbacks"]  # the rule backend answered instead
    totals = server.get("/atelier/telemetry", headers={"comfy-user": "alice"})[1]
    (today,) = totals["days"]
    assert today["llm_calls"] >= 3 and today["llm_failures"] == 1  # calls an open circuit skipped are not calls
    chats = sum(1 for _, body, _ in ollama.requests if body["messages"])  # the release call reports no tokens
    assert chats >= 1 and today["llm_tokens"] == 52 * chats  # 40 in + 12 out each, as Ollama reported them
    assert today["llm_mean_latency_ms"] is not None
    assert server.get("/atelier/telemetry", headers={"comfy-user": "bob"})[1]["days"] == []
    providers = {p["endpoint"]: p for p in server.get("/atelier/telemetry/providers")[1]["providers"]}
    assert providers[url]["success_rate"] == 1.0 and providers[url]["p50_ms"] is not None
    assert providers[url]["circuit"] == "closed" and providers[url]["calls"] == len(ollama.requests)
    dead = providers["http://127.0.0.1:9"]
    assert dead["success_rate"] == 0.0 and "cannot connect" in dead["last_error"] and dead["circuit"] == "open"


def test_a_runs_telemetry_lists_the_llm_calls_its_prompt_enhance_made(atelier: Any, server: Any, settings: Any,
                                                                      ollama: Any) -> None:
    url = f"http://127.0.0.1:{ollama.port}"
    endpoints(settings, local={"backend": "ollama", "url": url, "model": "m"})
    enhance_as_the_node(atelier, "p-run", "a fox")
    store = atelier.records.store
    record = store.create("txt2img", "default", {"n": 1}, prompt="a fox", status="completed", started_at=10.0,
                          finished_at=12.0)
    store.set_status(record.id, "completed", comfy_prompt_id="p-run", finished_at=12.0)
    status, run = server.get(f"/atelier/generations/{record.id}/telemetry")
    chats = sum(1 for _, body, _ in ollama.requests if body["messages"])
    assert status == 200 and run["llm_calls"] == len(ollama.requests) and run["llm_tokens"] == 52 * chats
    assert run["endpoints"] == [url] and run["device_s"] == 2.0
    other = store.create("txt2img", "default", {"n": 2}, prompt="x")
    assert server.get(f"/atelier/generations/{other.id}/telemetry")[1]["llm_calls"] == 0


def test_llm_calls_count_in_the_workspace_they_were_made_for(atelier: Any, server: Any, settings: Any,
                                                            ollama: Any) -> None:
    """The route's ``workspace``; a Prompt Enhance node's calls: the workspace of their run's records."""
    endpoints(settings, local={"backend": "ollama", "url": f"http://127.0.0.1:{ollama.port}", "model": "m"})
    status, body = server.post("/atelier/enhance", {"prompt": "a fox", "endpoint": "local", "workspace": "ads"})
    assert status == 200, body
    after_route = len(ollama.requests)
    enhance_as_the_node(atelier, "p-film", "a hare")
    record = atelier.records.store.create("txt2img", "default", {"n": 1}, prompt="a hare", workspace="film")
    atelier.records.store.set_status(record.id, "running", comfy_prompt_id="p-film")
    status, body = server.post("/atelier/enhance", {"prompt": "an owl", "endpoint": "local"})
    assert status == 200
    workspaces = {w["workspace"]: w for w in server.get("/atelier/telemetry")[1]["workspaces"]}
    assert workspaces["ads"]["llm_calls"] == after_route and workspaces["ads"]["runs"] == 0
    node_calls = workspaces["film"]["llm_calls"]
    assert node_calls >= 1 and workspaces["default"]["llm_calls"] == len(ollama.requests) - after_route - node_calls
    for bad in ("", "x" * 129, 7):
        status, refused = server.post("/atelier/enhance", {"prompt": "a fox", "workspace": bad})
        assert status == 400 and refused["field"] == "workspace"
