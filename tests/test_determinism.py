"""Determinism and reuse: seed strategies recorded with the run, a reused generation answered without queueing,
a record replayed exactly (same graph, same hash), two records compared. Through the routes of a real server
whose ComfyUI is the stand-in (``fake_comfyui``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from atelier.nodes.core.base.errors import InvalidInput
from atelier.nodes.core.records.seeds import STRATEGIES, plan_seeds, seed_inputs, seeded
from atelier.nodes.host import wiring
from conftest import Client, serve_app


def sampler_graph(seed: int = 0, checkpoint: str = "sd15.safetensors") -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": 20, "cfg": 7.0, "model": ["1", 0]}},
        "3": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": seed, "steps": 10, "model": ["1", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }


@pytest.fixture
def api(on_comfyui: Any) -> Iterator[Client]:
    yield from serve_app(wiring.app(on_comfyui))


def submit(api: Client, user: str = "alice", **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"operation_type": "txt2img", "prompt": "a red fox", "parameters": {"checkpoint": "sd15.safetensors",
                                                                              "steps": 20}, "graph": sampler_graph()}
    return api.post("/atelier/generations", {**body, **extra}, headers={"comfy-user": user})


def test_each_seed_strategy_gives_its_seeds_and_records_how() -> None:
    assert set(STRATEGIES) == {"fixed", "per_item", "per_user", "per_project", "timestamp"}
    assert plan_seeds("fixed", 42, 3).seeds == [42, 42, 42]
    assert plan_seeds("per_item", 42, 3).seeds == [42, 43, 44]
    alice, again, bob = (plan_seeds("per_user", 7, 2, user=u) for u in ("alice", "alice", "bob"))
    assert alice.seeds == again.seeds and alice.seeds != bob.seeds and alice.seeds[1] == alice.seeds[0] + 1
    assert alice.to_dict()["key"] == "alice" and plan_seeds("per_user", 8, 1, user="alice").seeds != alice.seeds[:1]
    project = plan_seeds("per_project", 7, 1, project="posters")
    assert project.seeds == plan_seeds("per_project", 7, 1, project="posters").seeds != \
        plan_seeds("per_project", 7, 1, project="covers").seeds
    stamped = plan_seeds("timestamp", 0, 2, now=1_800_000_000.123)
    assert stamped.seeds == [1_800_000_000_123, 1_800_000_000_124] and stamped.timestamp_ms == 1_800_000_000_123
    assert stamped.to_dict()["utc"] == "2027-01-15T08:00:00.123Z"
    for now in (1796104843.5269, 1796104843.5271, 1800000000.0004, 1800000000.9996):  # the time read, recorded
        first = plan_seeds("timestamp", 0, 1, now=now)
        assert plan_seeds("timestamp", 0, 1, now=first.timestamp_ms / 1000).seeds == first.seeds
    replayed = plan_seeds("timestamp", 0, 2, now=stamped.timestamp_ms / 1000)  # the recorded time gives the seeds
    assert replayed.seeds == stamped.seeds
    assert all(0 <= s < 2**48 for s in plan_seeds("per_user", 2**48 - 1, 5, user="z").seeds)
    for bad, field in ((lambda: plan_seeds("random", 0, 1), "seeds.strategy"),
                       (lambda: plan_seeds("fixed", -1, 1), "seeds.base"),
                       (lambda: plan_seeds("per_project", 0, 1), "seeds.project")):
        with pytest.raises(InvalidInput) as refused:
            bad()
        assert refused.value.field == field


def test_a_graphs_samplers_get_the_plans_seeds() -> None:
    graph = sampler_graph()
    assert seed_inputs(graph) == [("2", "seed"), ("3", "noise_seed")]
    out = seeded(graph, plan_seeds("per_item", 100, 2))
    assert out["2"]["inputs"]["seed"] == 100 and out["3"]["inputs"]["noise_seed"] == 101
    assert graph["2"]["inputs"]["seed"] == 0  # the caller's graph is left as it was


def test_a_generations_seeds_are_resolved_recorded_and_queued(api: Client, fake_comfyui: Any) -> None:
    status, record = submit(api, seeds={"strategy": "per_user", "base": 9})
    assert status == 201 and record["reused"] is False
    seeds = record["parameters"]["seeds"]
    assert seeds["strategy"] == "per_user" and seeds["key"] == "alice" and len(seeds["seeds"]) == 2
    queued = fake_comfyui.graphs[record["comfy_prompt_id"]]
    assert [queued["2"]["inputs"]["seed"], queued["3"]["inputs"]["noise_seed"]] == seeds["seeds"]
    status, bad = submit(api, seeds={"strategy": "sometimes"})
    assert status == 400 and bad["field"] == "seeds.strategy"
    for project in ({"a": 1}, "", 7):
        status, bad = submit(api, seeds={"strategy": "per_project", "project": project})
        assert status == 400 and bad["field"] == "seeds.project", bad
    for flag in ("reuse", "distributed"):
        status, bad = submit(api, **{flag: 1})
        assert status == 400 and bad["field"] == flag  # true or false, not 1


def test_reuse_answers_an_identical_completed_run_without_queueing(api: Client, fake_comfyui: Any,
                                                                    on_comfyui: Any) -> None:
    status, first = submit(api, seeds={"strategy": "fixed", "base": 5})
    fake_comfyui.start(first["comfy_prompt_id"])
    fake_comfyui.finish(first["comfy_prompt_id"], outputs={"9": {"images": [{"filename": "fox.png"}]}})
    asyncio.run(on_comfyui.follower().poll())
    queued_before = len(fake_comfyui.graphs)
    status, again = submit(api, seeds={"strategy": "fixed", "base": 5}, reuse=True)
    assert status == 200 and again["reused"] is True and again["id"] == first["id"]
    assert again["outputs"] == {"9": ["fox.png"]} and len(fake_comfyui.graphs) == queued_before  # nothing queued
    status, other = submit(api, seeds={"strategy": "fixed", "base": 6}, reuse=True)  # other seeds: a new run
    assert status == 201 and other["reused"] is False and len(fake_comfyui.graphs) == queued_before + 1
    status, bobs = submit(api, user="bob", seeds={"strategy": "fixed", "base": 5}, reuse=True)
    assert status == 201 and bobs["reused"] is False  # alice's run is not bob's to reuse
    # the same config on another graph (another checkpoint) is another run: never answered by the first
    status, other_graph = submit(api, seeds={"strategy": "fixed", "base": 5}, reuse=True,
                                 graph=sampler_graph(checkpoint="sdxl.safetensors"))
    assert status == 201 and other_graph["reused"] is False and other_graph["repro_hash"] != first["repro_hash"]
    status, no_graph = submit(api, seeds={"strategy": "fixed", "base": 5}, reuse=True, graph=None)
    assert status == 201 and no_graph["reused"] is False  # only recorded: nothing ran
    status, checked = api.post("/atelier/generations/validate", {
        "operation_type": "txt2img", "prompt": "a red fox", "parameters": first["parameters"] | {"prompt": None},
        "graph": fake_comfyui.graphs[first["comfy_prompt_id"]]}, headers={"comfy-user": "alice"})
    assert status == 200 and checked["repro_hash"] == first["repro_hash"] and first["id"] in checked["identical"]


def test_a_replay_queues_the_same_graph_and_has_the_same_hash(api: Client, fake_comfyui: Any) -> None:
    status, original = submit(api, seeds={"strategy": "timestamp"})
    status, replay = api.post(f"/atelier/generations/{original['id']}/replay", headers={"comfy-user": "alice"})
    assert status == 201, replay
    assert replay["replay_of"] == original["id"] and replay["same_hash"] is True
    assert replay["repro_hash"] == original["repro_hash"] and replay["id"] != original["id"]
    assert replay["parameters"]["seeds"] == original["parameters"]["seeds"]  # the recorded time, not a new one
    recorded = original["parameters"]["seeds"]  # exact in the stored parameters: it plans the same seeds again
    assert plan_seeds("timestamp", 0, 2, now=recorded["timestamp_ms"] / 1000).seeds == recorded["seeds"]
    assert fake_comfyui.graphs[replay["comfy_prompt_id"]] == fake_comfyui.graphs[original["comfy_prompt_id"]]
    status, graph = api.get(f"/atelier/generations/{original['id']}/graph", headers={"comfy-user": "alice"})
    assert status == 200 and graph["graph"] == fake_comfyui.graphs[original["comfy_prompt_id"]]
    assert api.post(f"/atelier/generations/{original['id']}/replay", headers={"comfy-user": "bob"})[0] == 404
    status, braces = submit(api, prompt="hi {{x}}", variables={"x": "{{ y }} and {{{z}}"})  # a value with {{…}}
    assert status == 201 and braces["prompt_text"] == "hi {{ y }} and {{{z}}"
    status, again = api.post(f"/atelier/generations/{braces['id']}/replay", headers={"comfy-user": "alice"})
    assert status == 201 and again["prompt_text"] == braces["prompt_text"] and again["same_hash"] is True, again
    status, recorded = api.post("/atelier/generations", {"operation_type": "note", "prompt": "x"},
                                headers={"comfy-user": "alice"})
    status, refused = api.post(f"/atelier/generations/{recorded['id']}/replay", headers={"comfy-user": "alice"})
    assert status == 400 and refused["field"] == "id" and "graph" in refused["error"]


def test_two_records_are_compared_by_parameters_models_and_seeds(api: Client) -> None:
    _, a = submit(api, seeds={"strategy": "fixed", "base": 1})
    _, b = api.post("/atelier/generations", {
        "operation_type": "txt2img", "prompt": "a red fox at night",
        "parameters": {"checkpoint": "sdxl.safetensors", "steps": 30},
        "graph": sampler_graph(checkpoint="sdxl.safetensors"), "seeds": {"strategy": "fixed", "base": 2}},
        headers={"comfy-user": "alice"})
    status, diff = api.get(f"/atelier/generations/diff?a={a['id']}&b={b['id']}", headers={"comfy-user": "alice"})
    assert status == 200 and diff["same_hash"] is False
    assert "- steps: 20" in diff["parameters"] and "+ steps: 30" in diff["parameters"]
    assert '- checkpoint: "sd15.safetensors"' in diff["models"]
    assert '+ graph.1.inputs.ckpt_name: "sdxl.safetensors"' in diff["models"]
    assert "- graph.2.inputs.seed: 1" in diff["seeds"] and "+ graph.2.inputs.seed: 2" in diff["seeds"]
    assert diff["prompt"] == ["- a red fox", "+ a red fox at night"]
    status, same = api.get(f"/atelier/generations/diff?a={a['id']}&b={a['id']}", headers={"comfy-user": "alice"})
    assert same["same_hash"] is True and not any(same[k] for k in ("parameters", "models", "seeds", "prompt", "graph"))
    assert api.get(f"/atelier/generations/diff?a={a['id']}&b={b['id']}", headers={"comfy-user": "bob"})[0] == 404
    _, noted = api.post("/atelier/generations", {"operation_type": "txt2img", "prompt": "a red fox",
                                                  "parameters": a["parameters"]}, headers={"comfy-user": "alice"})
    status, one_graph = api.get(f"/atelier/generations/diff?a={a['id']}&b={noted['id']}", headers={"comfy-user": "alice"})
    assert status == 200 and '- 1: {"class_type": "CheckpointLoaderSimple"' in one_graph["graph"][0]
    assert one_graph["same_hash"] is False  # a run and a config only recorded are not the same run
    status, missing = api.get(f"/atelier/generations/diff?a={a['id']}", headers={"comfy-user": "alice"})
    assert status == 400 and missing["field"] == "b"


def test_a_batchs_seed_strategy_gives_each_item_its_seed(on_comfyui: Any, fake_comfyui: Any) -> None:
    body = {"checkpoint": "m.safetensors", "seed": 11, "items": [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "seed": 0}]}
    fixed = asyncio.run(on_comfyui.batches.create("alice", {**body, "seed_strategy": "fixed"}))
    per_user = asyncio.run(on_comfyui.batches.create("alice", {**body, "seed_strategy": "per_user"}))
    store = on_comfyui.records.store

    def seeds(report: dict[str, Any]) -> list[int]:
        return [store.get(i["record_id"]).parameters["seed"] for i in report["items"]]

    assert seeds(fixed) == [11, 11, 0]  # an item's own seed (even 0) wins
    derived = plan_seeds("per_user", 11, 3, user="alice").seeds
    assert seeds(per_user) == [derived[0], derived[1], 0]
    batch = store.get(per_user["id"])
    assert batch.parameters["seeds"]["strategy"] == "per_user" and batch.parameters["seeds"]["seeds"] == derived


def test_the_command_line_diffs_and_replays_records(api: Client, tmp_path: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    from atelier.nodes.core.records.store import RecordStore
    from atelier.nodes.host import Settings

    home = tmp_path / "home"
    store = RecordStore(Settings.standalone(home, {}).records_url)
    a = store.create("txt2img", "default", {"steps": 20, "seed": 1}, prompt="a fox")
    b = store.create("txt2img", "default", {"steps": 25, "seed": 1}, prompt="a fox")
    env = {**os.environ, "ATELIER_HOME": str(home)}
    shown = subprocess.run([sys.executable, "-m", "atelier", "diff", a.id, b.id], capture_output=True, text=True,
                           env=env, timeout=120)
    assert shown.returncode == 0 and "different hashes" in shown.stdout and "- steps: 20" in shown.stdout
    _, original = submit(api, user="default", seeds={"strategy": "fixed", "base": 3})
    replayed = subprocess.run([sys.executable, "-m", "atelier", "replay", original["id"], "--server", api.base,
                               "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert replayed.returncode == 0, replayed.stderr
    again = json.loads(replayed.stdout)
    assert again["replay_of"] == original["id"] and again["repro_hash"] == original["repro_hash"]


def test_the_records_view_replays_and_compares(api: Client, browser: Any) -> None:
    from conftest import SCREENSHOTS

    _, a = submit(api, user="default", seeds={"strategy": "fixed", "base": 1})
    _, b = submit(api, user="default", seeds={"strategy": "fixed", "base": 2})
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{api.base}/atelier/ui/?view=records")
    page.wait_for_selector("#atelier-panel-records")
    page.get_by_role("button", name=f"Open record txt2img {a['id']}").click()
    page.get_by_role("button", name="Pin for comparison").click()
    page.get_by_text("Pinned: open another record").wait_for()
    page.get_by_role("button", name=f"Open record txt2img {b['id']}").click()
    page.get_by_role("button", name=f"Compare with {a['id'][:12]}").click()
    diff = page.get_by_test_id("record-diff")
    diff.wait_for()
    assert "different hashes" in diff.inner_text()
    assert "- graph.2.inputs.seed: 1" in diff.locator("[data-section='seeds']").inner_text()
    page.get_by_role("button", name=f"Replay record {b['id']}").click()
    page.get_by_text("the same hash.").wait_for()
    details = page.get_by_test_id("record-details")
    assert b["repro_hash"] in details.get_by_test_id("repro-hash").inner_text()
    assert b["id"] not in details.get_attribute("aria-label")  # the new record is shown
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "test_the_records_view_replays_and_compares.png"), full_page=True)
    context.close()
    assert not problems, problems
