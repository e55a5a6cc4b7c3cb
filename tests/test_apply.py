"""Template-aware application of a preset, and compatibility checks."""

from __future__ import annotations

import pytest
from atelier.nodes.core.base.errors import InvalidInput
from atelier.nodes.core.quality.apply import FunctionTemplate, apply_preset, check_compatibility
from atelier.nodes.core.quality.service import QualityService
from atelier.nodes.core.quality.tables import load_tables

T = load_tables()


def params(tier: str, **template) -> dict:
    return apply_preset(T.tiers[tier], FunctionTemplate(**template), T).params


def test_family_native_resolution_and_sampler() -> None:
    sd15, sdxl = params("standard", model_family="sd15"), params("standard", model_family="sdxl")
    assert (sd15["width"], sd15["height"]) == (512, 512)
    assert (sdxl["width"], sdxl["height"]) == (1024, 1024)
    assert params("draft", model_family="flux_dev")["sampler_name"] == "euler"
    assert params("high", model_family="sd3")["scheduler"] == "sgm_uniform"


def test_better_sampler_from_level_three() -> None:
    first_order = {"euler", "euler_ancestral"}
    for family, fam in T.families.families.items():
        if fam.distilled:
            continue
        assert params("high", model_family=family)["sampler_name"] not in first_order or family.startswith("flux")
        assert params("ultra", model_family=family)["sampler_name"] not in first_order


def test_distilled_models_fix_steps_and_clamp_cfg() -> None:
    for tier in ("draft", "standard", "high", "ultra"):
        p = params(tier, model_family="sdxl_lightning")
        assert p["cfg"] == 1.0
        assert p["steps"] == T.families.families["sdxl_lightning"].steps_by_level[T.tiers[tier].level]
        assert not p["hires_enabled"] and not p["refinement"]
    lcm = params("ultra", model_family="lcm")
    assert 1.0 <= lcm["cfg"] <= 2.0 and lcm["sampler_name"] == "lcm" and lcm["steps"] == 8


def test_cfg_bonus_above_1024_wide() -> None:
    narrow = params("standard", model_family="sdxl", width=1024, height=1024)
    wide = params("standard", model_family="sdxl", width=1216, height=832)
    assert wide["width"] > 1024 and wide["cfg"] == narrow["cfg"] + 0.5


def test_no_attention_or_vae_slicing_from_level_three() -> None:
    assert params("standard")["attention_slicing"] and params("standard")["vae_slicing"]
    for tier in ("high", "ultra"):
        assert not params(tier)["attention_slicing"] and not params(tier)["vae_slicing"]


def test_resolution_scale_rounds_to_the_family_multiple() -> None:
    draft = params("draft", model_family="flux_dev", width=1000, height=600)
    assert draft["width"] % 16 == 0 and draft["height"] % 16 == 0
    assert (draft["width"], draft["height"]) == (752, 448)  # 750 -> 752, 450 -> 448
    high = params("high", model_family="sd15", width=512, height=768)
    assert (high["hires_width"], high["hires_height"]) == (768, 1152)


def test_every_category_has_its_parameters() -> None:
    assert set(params("high", category="video")) >= {"fps", "frames", "motion_quality", "interpolation", "width"}
    assert params("ultra", category="audio")["sample_rate"] == 48000
    assert params("draft", category="text") == {"max_tokens": 256, "temperature": 0.9, "enhance_iterations": 1,
                                                "enhance_threshold": 70.0}


def test_apply_keeps_declared_inputs_and_adds_metadata(service: QualityService) -> None:
    result = service.apply("default", "high", {"category": "image", "inputs": ["steps", "cfg", "sampler_name"],
                                               "checkpoint": "sd_xl_base_1.0.safetensors"})
    parameters = result["parameters"]
    assert set(parameters) == {"steps", "cfg", "sampler_name", "_quality_preset"}
    meta = parameters["_quality_preset"]
    assert meta["id"] == "high" and meta["level"] == 3 and meta["family"]["family"] == "sdxl"
    assert meta["estimate"]["time_s"]["min"] < meta["estimate"]["time_s"]["expected"] < meta["estimate"]["time_s"]["max"]
    assert result["compatibility"]["ok"]


def test_compatibility_gives_reasons() -> None:
    ultra = T.tiers["ultra"]
    template = FunctionTemplate(id="quick_preview", inputs=("steps", "fps"), max_level=2, max_vram_gb=4.0)
    result = check_compatibility(ultra, template, T, vram_gb=9.0)
    assert not result.ok
    text = " ".join(result.reasons)
    assert "'fps' is not a image parameter" in text
    assert "allows quality level 2 at most" in text
    assert "needs about 9.0 GB" in text
    assert check_compatibility(T.tiers["draft"], FunctionTemplate(min_level=3), T).reasons
    assert check_compatibility(T.tiers["standard"], FunctionTemplate(model_family="nope"), T).reasons


def test_bad_template_is_a_clear_error(service: QualityService) -> None:
    with pytest.raises(InvalidInput) as bad:
        service.apply("default", "high", {"category": "sculpture"})
    assert bad.value.field == "template.category" and "sculpture" in bad.value.message
    with pytest.raises(InvalidInput) as bad_width:
        service.apply("default", "high", {"width": -5})
    assert bad_width.value.field == "template.width"
    with pytest.raises(InvalidInput) as bad_family:
        service.apply("default", "high", {"model_family": "sd9"})
    assert bad_family.value.field == "model_family" and "sdxl" in str(bad_family.value.accepted)
