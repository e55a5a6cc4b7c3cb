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
    assert keyframes["parameters"]["batch_size"] == 4 and keyframes["sources"]["batch_size"] == "storyboard"
    assert keyframes["parameters"]["steps"] == 30 and keyframes["sources"]["steps"] == "user"
    assert keyframes["parameters"]["sampler_name"] == "dpmpp_2m" and keyframes["sources"]["sampler_name"] == "quality"
    assert chained["parameters"]["denoise"] == 0.5 and chained["parameters"]["steps"] == 28
    assert stages["script"]["parameters"] == {"max_tokens": 1024, "temperature": 0.6, "enhance_iterations": 4,
                                              "enhance_threshold": 85.0, "enhance_backend": "rule"}
    assert stages["script"]["estimate"]["time_s"]["expected"] < 2.0  # the rule loop the graphs run
    assert keyframes["prompt_suffix"].startswith(", storyboard keyframe")


def test_same_tier_same_parameters(service: QualityService) -> None:
    first = service.pipeline_plan("default", "sequence_generation", "ultra", {})
    second = service.pipeline_plan("default", "sequence_generation", "ultra", {})
    assert [s["parameters"] for s in first["stages"]] == [s["parameters"] for s in second["stages"]]
    assert [s["workflow"] for s in first["stages"]] == [
        "atelier_prompt_enhance", "atelier_quality_txt2img", "atelier_img2img"]
    assert first["workflow"] == "atelier_sequence"


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


def test_storyboard_totals_count_every_frame(service: QualityService) -> None:
    """A storyboard's stages run once per frame: 3 clips cost about 3x one clip, and the stages say how often."""
    one = service.pipeline_plan("default", "storyboard_generation", "standard", {"clips": 1})
    three = service.pipeline_plan("default", "storyboard_generation", "standard", {"clips": 3})
    runs = {s["id"]: s["runs"] for s in three["stages"]}
    assert runs == {"script": 6, "keyframes": 1, "chained_frames": 5}
    assert three["totals"]["runs"] == 12
    ratio = three["totals"]["time_s"]["expected"] / one["totals"]["time_s"]["expected"]
    assert 2.5 < ratio < 3.5
    referenced = service.pipeline_plan("default", "storyboard_generation", "standard", {"clips": 3, "reference": True})
    runs = {s["id"]: s["runs"] for s in referenced["stages"]}
    assert runs["keyframes"] == 0 and runs["chained_frames"] == 6
    assert "reference" in next(s for s in referenced["stages"] if s["id"] == "keyframes")["note"]


@pytest.mark.parametrize(("tier", "variations", "denoise"), [("draft", 2, 0.7), ("ultra", 6, 0.5)])
def test_storyboard_stages_take_the_tiers_chaining(service: QualityService, tier: str, variations: int,
                                                   denoise: float) -> None:
    """The plan's batch and img2img strength are what Frame Chain runs at that tier (presets/storyboard.yaml)."""
    stages = {s["id"]: s for s in service.pipeline_plan("default", "storyboard_generation", tier, {})["stages"]}
    assert stages["keyframes"]["parameters"]["batch_size"] == variations
    assert stages["chained_frames"]["parameters"]["batch_size"] == variations
    assert stages["chained_frames"]["parameters"]["denoise"] == denoise
    assert stages["chained_frames"]["passes"][0]["denoise"] == denoise
    assert stages["keyframes"]["passes"][0]["denoise"] == 1.0
    mine = service.pipeline_plan("default", "storyboard_generation", tier, {"variations": 3})["stages"]
    assert {s["parameters"]["batch_size"] for s in mine if s["category"] == "image"} == {3}


def test_stages_an_image_model_cannot_run_are_neither_planned_nor_priced(service: QualityService) -> None:
    plan = service.pipeline_plan("default", "sequence_generation", "ultra", {"model_family": "sdxl"})
    assert [s["id"] for s in plan["stages"]] == ["prompt", "keyframes", "chained_keyframes"]
    skipped = {s["id"]: s for s in plan["skipped"]}
    assert set(skipped) == {"motion", "interpolation", "soundtrack"}
    assert "Stable Diffusion XL" in skipped["motion"]["reason"] and "video" in skipped["motion"]["reason"]
    assert "video model" in skipped["motion"]["needs"] and "audio model" in skipped["soundtrack"]["needs"]
    assert plan["totals"]["time_s"]["expected"] == pytest.approx(
        sum(s["estimate"]["time_s"]["expected"] * s["runs"] for s in plan["stages"]), abs=0.05)
    off = service.pipeline_plan("default", "shot_generation", "high", {"enhance": False})
    assert [s["id"] for s in off["stages"]] == ["shot"] and off["skipped"][0]["reason"] == "prompt enhancement is off"


@pytest.mark.parametrize(("tier", "passes"), [("draft", ["base"]), ("standard", ["base"]),
                                              ("high", ["base", "hires_fix"]),
                                              ("ultra", ["base", "hires_fix", "refinement"])])
def test_each_tier_states_its_passes(service: QualityService, tier: str, passes: list[str]) -> None:
    shot = service.pipeline_plan("default", "shot_generation", tier, {"model_family": "sd15"})["stages"][1]
    assert [p["name"] for p in shot["passes"]] == passes
    p = shot["parameters"]
    if "hires_fix" in passes:
        hires = shot["passes"][1]
        assert (hires["steps"], hires["denoise"], hires["width"]) == (p["hires_steps"], p["hires_denoise"],
                                                                      p["hires_width"])
    if "refinement" in passes:
        refine = shot["passes"][2]
        assert (refine["steps"], refine["denoise"], refine["width"]) == (p["refine_steps"], p["refine_denoise"],
                                                                         p["hires_width"])
