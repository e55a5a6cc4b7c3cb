"""Runnable pipelines: their graphs (validated against ComfyUI 0.3.64's catalogue), the run and status
routes, and their errors. Queueing on a real ComfyUI is in the opt-in integration suite."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from atelier.nodes.core.storyboard.pipelines import BUILDERS, pipeline_graph
from test_workflows import check_api_graph

RUN = {"tier": "high", "checkpoint": "mine.safetensors", "prompt": "a lighthouse at dusk",
       "storyboard": "a lighthouse at dusk | its beam over the sea\nstorm at night | waves below the light"}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_pipeline_graph_is_valid_for_comfyui(name: str, object_info: dict[str, Any]) -> None:
    run, graph = pipeline_graph(name, RUN)
    check_api_graph(graph, object_info, name)
    assert graph["ckpt"]["inputs"]["ckpt_name"] == "mine.safetensors"     # the caller's checkpoint, no default
    assert graph["quality"]["inputs"]["tier"] == "high"


def test_pipeline_runs_are_recorded_and_queued(on_comfyui, fake_comfyui) -> None:
    pipelines, records = on_comfyui.pipelines, on_comfyui.records
    answer = asyncio.run(pipelines.run("default", "shot_generation", {**RUN, "variations": 3}))
    queued = fake_comfyui.graphs[answer["prompt_id"]]
    assert queued["latent"]["class_type"] == "EmptyLatentImage" and queued["quality"]["inputs"]["batch_size"] == 3
    record = records.store.get(answer["record_id"])
    assert record.status == "queued" and record.operation_type == "shot_generation"
    assert asyncio.run(pipelines.status("default", answer["prompt_id"]))["status"] == "queued"  # ComfyUI's queue says so
    fake_comfyui.start(answer["prompt_id"])
    assert asyncio.run(pipelines.status("default", answer["prompt_id"]))["status"] == "running"


def test_a_graph_comfyui_refuses_is_a_400_and_a_failed_record(on_comfyui, fake_comfyui) -> None:
    from atelier.nodes.core.records.service import QueueError

    with pytest.raises(QueueError) as refused:
        asyncio.run(on_comfyui.records.submitter.submit("default", {
            "operation_type": "image_generation", "graph": {"1": {"class_type": "Invalid", "inputs": {}}}}))
    assert refused.value.status == 400 and refused.value.message.startswith("ComfyUI refused the graph")
    assert "1" in refused.value.value  # ComfyUI's node errors, by node id
    failed = on_comfyui.records.store.page(status="failed").items
    assert failed and failed[0].error.startswith("ComfyUI refused the graph")


def test_status_reads_comfyui_history_and_the_storyboard_manifest(on_comfyui, fake_comfyui) -> None:
    folder = on_comfyui.settings.output_dir / "atelier" / "storyboards" / "s_1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"status": "completed_with_failures", "failed_clips": [2]}))
    prompt_id = asyncio.run(on_comfyui.comfy.queue({"1": {"class_type": "SaveImage", "inputs": {}}}))
    fake_comfyui.finish(prompt_id, outputs={
        "3.fc.save": {"images": [], "storyboard": ["atelier/storyboards/s_1"]},
        "x": {"storyboard": ["atelier/storyboards/../../../etc"]}})
    status = asyncio.run(on_comfyui.pipelines.status("default", prompt_id))
    assert status["status"] == "completed" and status["manifests"][0]["failed_clips"] == [2]
    assert len(status["manifests"]) == 1  # a folder outside output/atelier/storyboards is never read


def test_pipeline_routes_answer_errors_by_name(server) -> None:
    for path, body, code, field in [
        ("/atelier/pipelines/nope/run", RUN, 404, "name"),
        ("/atelier/pipelines/shot_generation/run", {**RUN, "tier": "mythic"}, 400, "tier"),
        ("/atelier/pipelines/shot_generation/run", {"tier": "high"}, 400, "checkpoint"),
        ("/atelier/pipelines/shot_generation/run", {**RUN, "prompt": ""}, 400, "prompt"),
        ("/atelier/pipelines/storyboard_generation/run", {**RUN, "storyboard": "no separator"}, 400,
         "storyboard line 1"),
        ("/atelier/pipelines/shot_generation/run", {**RUN, "variations": 99}, 400, "variations"),
        ("/atelier/pipelines/shot_generation/run", RUN, 503, "name"),  # a standalone server has no queue
        ("/api/atelier/pipelines/runs/unknown", None, 404, "prompt_id"),
    ]:
        status, answer = server.request("POST" if body is not None else "GET", path, body)
        assert status == code and answer["field"] == field, (path, answer)


def test_the_follower_moves_records_along_comfyuis_queue_and_history_and_calibrates(on_comfyui, fake_comfyui) -> None:
    """The records follower, through Atelier's one ComfyUI client: queued -> running (ComfyUI's queue) ->
    completed or failed (its history, timed by its events); a finished plan teaches the estimator."""
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
             "4": {"class_type": "AtelierQualityPreset", "inputs": {"tier": "draft", "model_family": "sd15",
                                                                    "checkpoint": "(none)", "width": 512,
                                                                    "height": 512, "batch_size": 1}},
             "6": {"class_type": "KSampler", "inputs": {}}}
    records = on_comfyui.records
    ok = asyncio.run(records.submitter.submit("default", {"operation_type": "image_generation", "graph": graph}))
    bad = asyncio.run(records.submitter.submit("default", {"operation_type": "image_generation", "graph": graph}))
    follower = on_comfyui.follower()
    fake_comfyui.start(ok.comfy_prompt_id)
    assert asyncio.run(follower.poll()) == [] and records.store.get(ok.id).status == "running"
    fake_comfyui.finish(ok.comfy_prompt_id, seconds=3.0, cached=["1"], outputs={"9": {"images": [{"filename": "a.png"}]}})
    fake_comfyui.finish(bad.comfy_prompt_id, ok=False)
    assert sorted(asyncio.run(follower.poll())) == sorted([ok.id, bad.id])
    done, failed = records.store.get(ok.id), records.store.get(bad.id)
    assert done.status == "completed" and done.outputs == {"9": ["a.png"], "atelier": {"cached": ["1"]}}  # and what came from ComfyUI's cache
    assert done.finished_at - done.started_at == pytest.approx(3.0, abs=0.01)  # ComfyUI's own clock
    assert failed.status == "failed" and failed.error == "CUDA out of memory"
    assert asyncio.run(follower.poll()) == []  # each finished prompt once
    samples = on_comfyui.quality.estimator.calibration.samples("image:sd15:u2", on_comfyui.settings.device)
    assert [round(seconds, 2) for _, seconds in samples] == [3.0]  # learned once, from the successful run


def test_a_runs_per_node_timings_come_from_the_events_comfyui_sends_whoever_queued_it(on_comfyui, fake_comfyui) -> None:
    """ComfyUI sends a prompt's execution events only to the client that queued it (the browser, say): Atelier
    observes them as the server sends them, and the follower gives the prompt's records each node's seconds."""
    import time

    from atelier.nodes.comfy.runtime import observe_events
    from atelier.nodes.core.records.timings import PromptTimings

    class Server:  # ComfyUI's PromptServer as far as events go: send_sync puts them on its websocket queue
        def __init__(self) -> None:
            self.sent: list[tuple[Any, Any, Any]] = []

        def send_sync(self, event: Any, data: Any, sid: Any = None) -> None:
            self.sent.append((event, data, sid))

    server = Server()
    assert observe_events(server, on_comfyui.node_timings.observe)
    assert not observe_events(server, on_comfyui.node_timings.observe)  # once, however often it is asked
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {}}, "6": {"class_type": "KSampler", "inputs": {}}}
    record = asyncio.run(on_comfyui.records.submitter.submit("default", {"operation_type": "image_generation",
                                                                         "graph": graph}))
    pid = record.comfy_prompt_id
    server.send_sync("execution_start", {"prompt_id": pid}, "browser-1")
    server.send_sync("executing", {"node": "1", "prompt_id": pid}, "browser-1")
    time.sleep(0.05)
    server.send_sync("executing", {"node": "6", "prompt_id": pid}, "browser-1")
    server.send_sync("progress", {"value": 1, "max": 2, "prompt_id": pid, "node": "6"}, "browser-1")
    server.send_sync(1, b"a preview", "browser-1")  # binary events pass untouched
    time.sleep(0.1)
    server.send_sync("execution_success", {"prompt_id": pid}, "browser-1")
    server.send_sync("executing", {"node": None, "prompt_id": pid}, "browser-1")
    assert [e[0] for e in server.sent] == ["execution_start", "executing", "executing", "progress", 1,
                                           "execution_success", "executing"]
    assert all(e[2] == "browser-1" for e in server.sent)  # every event still goes to its client
    fake_comfyui.finish(pid, seconds=0.2)
    asyncio.run(on_comfyui.follower().poll())
    timings = on_comfyui.records.store.get(record.id).outputs["atelier"]["timings"]
    assert [(t["node"], t["class_type"]) for t in timings] == [("1", "CheckpointLoaderSimple"), ("6", "KSampler")]
    assert 0.04 <= timings[0]["seconds"] < 1 and 0.09 <= timings[1]["seconds"] < 1
    assert on_comfyui.node_timings.take(pid) == []  # taken once

    def broken(kind: str, data: Any) -> None:
        raise RuntimeError("observer failed")

    other = Server()
    observe_events(other, broken)
    other.send_sync("executing", {"node": "1", "prompt_id": "p"})
    assert other.sent == [("executing", {"node": "1", "prompt_id": "p"}, None)]  # the event still went out

    clocked = PromptTimings(max_prompts=2)
    for prompt, at in (("a", 10.0), ("b", 11.0), ("c", 12.0)):
        clocked.observe("executing", {"node": "3", "prompt_id": prompt}, at)
    clocked.observe("executing", {"node": "4", "prompt_id": "c"}, 14.5)
    clocked.observe("execution_interrupted", {"prompt_id": "c"}, 15.0)
    assert clocked.take("a") == []  # the oldest of three was let go (bounded)
    assert clocked.take("c", {"3": {"class_type": "VAEDecode"}}) == [
        {"node": "3", "seconds": 2.5, "class_type": "VAEDecode"}, {"node": "4", "seconds": 0.5, "class_type": None}]


def test_a_batch_of_mixed_tiers_queues_one_prompt_per_item_and_reports_progress(on_comfyui, fake_comfyui) -> None:
    batches, follower = on_comfyui.batches, on_comfyui.follower()
    body = {"checkpoint": "mine.safetensors", "width": 512, "height": 512, "tier": "standard", "items": [
        {"prompt": "a fox at dawn", "tier": "draft", "count": 2},
        {"prompt": "a fox at dusk", "tier": "ultra", "count": 3},
        {"prompt": "a fox at noon"}]}
    with pytest.raises(Exception) as refused:  # a bad item refuses the whole batch before anything is queued
        asyncio.run(batches.create("default", {**body, "items": [*body["items"], {"prompt": "x", "tier": "mythic"}]}))
    assert getattr(refused.value, "field", None) == "items.3.tier" and not fake_comfyui.graphs
    batch = asyncio.run(batches.create("default", body))
    assert batch["progress"] == {"done": 0, "total": 3} and batch["status"] == "running"
    items = batch["items"]
    assert [(i["tier"], i["count"], i["status"]) for i in items] == [("draft", 2, "queued"), ("ultra", 3, "queued"),
                                                                    ("standard", 4, "queued")]
    assert items[1]["expected_s"] > items[0]["expected_s"]  # ultra's passes are priced
    graphs = [fake_comfyui.graphs[i["prompt_id"]] for i in items]  # one ComfyUI prompt per item, at its tier
    assert [(g["quality"]["inputs"]["tier"], g["quality"]["inputs"]["batch_size"]) for g in graphs] == [
        ("draft", 2), ("ultra", 3), ("standard", 4)]
    for item, seconds, best in zip(items, (2.0, 11.0, 4.0), (61.5, 72.25, 66.0), strict=True):
        fake_comfyui.start(item["prompt_id"])
        fake_comfyui.finish(item["prompt_id"], seconds=seconds, outputs={
            "rank": {"atelier_selection": [{"best_index": 0, "best_score": best}]},
            "save": {"images": [{"filename": f"{item['index']}.png"}]}})
        if item["index"] == 0:
            asyncio.run(follower.poll())
            middle = asyncio.run(batches.get("default", batch["id"]))
            assert middle["progress"] == {"done": 1, "total": 3} and middle["status"] == "running"
    asyncio.run(follower.poll())
    done = asyncio.run(batches.get("default", batch["id"]))
    assert done["status"] == "completed" and done["progress"] == {"done": 3, "total": 3}
    assert [(i["time_s"], i["best_score"]) for i in done["items"]] == [(2.0, 61.5), (11.0, 72.25), (4.0, 66.0)]
    assert done["summary"]["ultra"] == {"items": 1, "completed": 1, "median_time_s": 11.0, "mean_best_score": 72.25}
    from atelier.nodes.core.base.errors import NotFound

    with pytest.raises(NotFound):  # another user's batch
        asyncio.run(batches.get("mallory", batch["id"]))
    with pytest.raises(NotFound):  # a record that is not a batch
        asyncio.run(batches.get("default", done["items"][0]["record_id"]))


def test_batch_routes_answer_errors_by_name(server) -> None:
    for body, code, field in [
        ({"checkpoint": "m.safetensors", "items": []}, 400, "items"),
        ({"checkpoint": "m.safetensors", "items": [{"prompt": "x", "count": 99}]}, 400, "items.0.count"),
        ({"items": [{"prompt": "x"}]}, 400, "checkpoint"),
        ({"checkpoint": "m.safetensors", "items": [{"prompt": "x"}] * 257}, 400, "items"),
        ({"checkpoint": "m.safetensors", "items": [{"prompt": "x"}], "distributed": True}, 400, "distributed"),
        ({"checkpoint": "m.safetensors", "items": [{"prompt": "x"}]}, 503, "items"),  # a standalone server: no queue
    ]:
        status, answer = server.request("POST", "/atelier/batches", body)
        assert status == code and answer["field"] == field, (body, answer)
    status, answer = server.request("GET", "/atelier/batches/0123456789abcdef0123456789abcdef", None)
    assert status == 404


def test_the_tier_value_chart_comes_from_the_users_own_runs(on_comfyui, fake_comfyui, server) -> None:
    """A batch at draft and ultra on one checkpoint: per tier the runs, median time, mean best score and images,
    and "ultra costs Nx draft's time for +M points here" against the reference tier when it ran."""
    from atelier.nodes.core.records.tier_value import tier_value

    batches, follower = on_comfyui.batches, on_comfyui.follower()
    body = {"checkpoint": "mine.safetensors", "items": [
        {"prompt": "a fox", "tier": "standard", "count": 2}, {"prompt": "a fox", "tier": "standard", "count": 2},
        {"prompt": "a fox", "tier": "ultra", "count": 2}, {"prompt": "a fox", "tier": "draft", "count": 2}]}
    batch = asyncio.run(batches.create("default", body))
    for item, seconds, best in zip(batch["items"], (4.0, 6.0, 28.0, 2.0), (60.0, 62.0, 64.5, 50.0), strict=True):
        fake_comfyui.finish(item["prompt_id"], seconds=seconds, outputs={
            "rank": {"atelier_selection": [{"best_index": 0, "best_score": best}]},
            "save": {"images": [{"filename": f"fox_{item['index']}.png"}]}})
    asyncio.run(follower.poll())
    tables = on_comfyui.quality.tables
    chart = tier_value(on_comfyui.records.store, "default", list(tables.tiers), tables.reference_tier)
    (mine,) = chart["checkpoints"]
    rows = {r["tier"]: r for r in mine["tiers"]}
    assert [r["tier"] for r in mine["tiers"]] == ["draft", "standard", "ultra"]  # tier order
    assert rows["standard"]["runs"] == 2 and rows["standard"]["median_time_s"] == 5.0
    assert rows["standard"]["mean_score"] == 61.0 and len(rows["standard"]["images"]) == 2
    assert rows["ultra"]["time_ratio"] == 5.6 and rows["ultra"]["score_delta"] == 3.5
    assert "ultra costs 5.6x standard's time for +3.5 points here" in mine["summary"]
    assert tier_value(on_comfyui.records.store, "mallory", list(tables.tiers), "standard")["checkpoints"] == []
    status, answer = server.get("/atelier/generations/tiers?checkpoint=" + "x" * 600)
    assert status == 400 and answer["field"] == "checkpoint"
    status, answer = server.get("/atelier/generations/tiers")
    assert status == 200 and answer["reference"] == "standard"


def test_render_comparison_queues_the_four_tiers_once_and_answers_the_cache_after(on_comfyui, fake_comfyui,
                                                                                server) -> None:
    pipelines = on_comfyui.pipelines
    body = {"prompt": "a lighthouse at dusk", "checkpoint": "mine.safetensors", "width": 512, "height": 512}
    first = asyncio.run(pipelines.comparison("default", body))
    assert not first["cached"] and first["status"] == "queued" and first["image"] is None
    graph = fake_comfyui.graphs[first["prompt_id"]]
    assert sorted(n["inputs"]["tier"] for n in graph.values() if n["class_type"] == "AtelierQualityPreset") == sorted(
        ["draft", "standard", "high", "ultra"])
    again = asyncio.run(pipelines.comparison("default", body))
    assert again["cached"] and again["record_id"] == first["record_id"] and len(fake_comfyui.graphs) == 1
    fake_comfyui.finish(first["prompt_id"], outputs={"save": {"images": [{"filename": "grid.png"}]}})
    asyncio.run(on_comfyui.follower().poll())
    done = asyncio.run(pipelines.comparison("default", body))
    assert done["cached"] and done["status"] == "completed" and done["image"] == "grid.png"
    other = asyncio.run(pipelines.comparison("default", {**body, "prompt": "a fox"}))  # another prompt: a new render
    assert not other["cached"] and len(fake_comfyui.graphs) == 2
    assert not asyncio.run(pipelines.comparison("mallory", body))["cached"]  # another user's renders are theirs
    status, answer = server.post("/atelier/comparisons", {"prompt": "x", "checkpoint": "m.safetensors", "tier": "x"})
    assert status == 400 and answer["field"] == "tier"  # only the comparison's own fields
    status, answer = server.post("/atelier/comparisons", {"prompt": "x", "checkpoint": "m.safetensors"})
    assert status == 503  # a standalone server has no queue
