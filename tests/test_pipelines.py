"""Pipelines configured at a tier: merge order, mappings, determinism and errors."""

from __future__ import annotations

import dataclasses

import pytest
from atelier.nodes.core.base.errors import InvalidInput, NotFound
from atelier.nodes.core.quality.estimate import Estimator
from atelier.nodes.core.quality.pipelines import PipelineRequest, configure_pipeline
from atelier.nodes.core.quality.service import QualityService
from atelier.nodes.core.quality.tables import load_tables

PIPELINES = ("storyboard_generation", "shot_generation", "sequence_generation")


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("tier", ["draft", "standard", "high", "ultra", "low"])
def test_every_pipeline_configures_at_every_tier(service: QualityService, name: str, tier: str) -> None:
    plan = service.pipeline_plan("default", name, tier, {})
    assert plan["stages"] and plan["totals"]["time_s"]["expected"] > 0
    for stage in plan["stages"]:
        assert stage["workflow"].startswith("atelier_")
        assert stage["estimate"]["time_s"]["min"] <= stage["estimate"]["time_s"]["expected"]


def test_quality_then_stage_then_user(service: QualityService) -> None:
    plan = service.pipeline_plan("default", "storyboard_generation", "high", {
        "model_family": "sdxl", "parameters": {"steps": 30},
        "stages": {"chained_frames": {"denoise": 0.5, "steps": 28}}})
    stages = {s["id"]: s for s in plan["stages"]}
    keyframes, chained = stages["keyframes"], stages["chained_frames"]
    assert keyframes["parameters"]["batch_size"] == 4 and keyframes["sources"]["batch_size"] == "stage"
    assert keyframes["parameters"]["steps"] == 30 and keyframes["sources"]["steps"] == "user"
    assert keyframes["parameters"]["sampler_name"] == "dpmpp_2m" and keyframes["sources"]["sampler_name"] == "quality"
    assert chained["parameters"]["denoise"] == 0.5 and chained["parameters"]["steps"] == 28
    assert stages["script"]["parameters"] == {"max_tokens": 1024, "temperature": 0.6}
    assert keyframes["prompt_suffix"].startswith(", storyboard keyframe")


def test_same_tier_same_parameters(service: QualityService) -> None:
    first = service.pipeline_plan("default", "sequence_generation", "ultra", {})
    second = service.pipeline_plan("default", "sequence_generation", "ultra", {})
    assert [s["parameters"] for s in first["stages"]] == [s["parameters"] for s in second["stages"]]
    assert [s["workflow"] for s in first["stages"]] == [
        "atelier_enhance_loop_strict", "atelier_txt2img_hires_refine_best_of_n", "atelier_img2video_interpolated",
        "atelier_interpolate_4x", "atelier_text2audio_mastered"]


def test_custom_preset_uses_its_levels_workflows(service: QualityService) -> None:
    service.library.create("default", {"id": "fast-review", "extends": "draft", "level": 3, "image": {"steps": 18}})
    plan = service.pipeline_plan("default", "shot_generation", "fast-review", {})
    assert plan["tier"] == "high" and plan["preset"]["id"] == "fast-review"
    assert plan["stages"][1]["parameters"]["steps"] == 18


def test_errors_name_the_problem(service: QualityService) -> None:
    with pytest.raises(NotFound) as unknown:
        service.pipeline_plan("default", "music_video", "high")
    assert "storyboard_generation" in unknown.value.message
    with pytest.raises(InvalidInput) as tier:
        service.pipeline_plan("default", "shot_generation", "mega")
    assert tier.value.field == "tier" and "ultra" in tier.value.accepted
    with pytest.raises(InvalidInput) as stage:
        service.pipeline_plan("default", "shot_generation", "high", {"stages": {"dance": {}}})
    assert stage.value.field == "stages.dance"
    with pytest.raises(InvalidInput) as param:
        service.pipeline_plan("default", "shot_generation", "high", {"parameters": {"fps": 24}})
    assert param.value.field == "parameters.fps"
    with pytest.raises(InvalidInput) as value:
        service.pipeline_plan("default", "shot_generation", "high", {"parameters": {"steps": 0}})
    assert value.value.field == "parameters.steps"
    with pytest.raises(InvalidInput) as sampler:
        service.pipeline_plan("default", "shot_generation", "high", {"stages": {"shot": {"sampler_name": "x"}}})
    assert sampler.value.field == "stages.shot.sampler_name"


def test_missing_workflow_mapping_is_a_clear_error() -> None:
    tables = load_tables()
    workflows = {k: dict(v) for k, v in tables.pipelines.workflows.items()}
    del workflows["shot_generation"]["ultra"]
    broken = dataclasses.replace(tables, pipelines=tables.pipelines.model_copy(update={"workflows": workflows}))
    with pytest.raises(InvalidInput) as exc:
        configure_pipeline("shot_generation", tables.tiers["ultra"], PipelineRequest(), broken, Estimator(broken))
    assert "no workflow for task type 'shot_generation' at tier 'ultra'" in exc.value.message
