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
    assert done.status == "completed" and done.outputs == {"9": ["a.png"]}
    assert done.finished_at - done.started_at == pytest.approx(3.0, abs=0.01)  # ComfyUI's own clock
    assert failed.status == "failed" and failed.error == "CUDA out of memory"
    assert asyncio.run(follower.poll()) == []  # each finished prompt once
    samples = on_comfyui.quality.estimator.calibration.samples("image:sd15:u2", on_comfyui.settings.device)
    assert [round(seconds, 2) for _, seconds in samples] == [3.0]  # learned once, from the successful run
