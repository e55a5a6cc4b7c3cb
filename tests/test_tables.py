"""Shipped YAML tables: valid ComfyUI names, consistent tiers, and families."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atelier.nodes.core.quality.apply import FunctionTemplate, apply_preset
from atelier.nodes.core.quality.estimate import Estimator
from atelier.nodes.core.quality.tables import load_tables

T = load_tables()


def _ksampler(object_info: dict[str, Any]) -> tuple[list[str], list[str]]:
    req = object_info["KSampler"]["input"]["required"]
    return req["sampler_name"][0], req["scheduler"][0]


def test_shipped_name_lists_are_comfyuis(object_info: dict[str, Any]) -> None:
    from atelier.nodes.core.base.data import PRESETS_DIR, read_yaml

    names = read_yaml(PRESETS_DIR / "comfyui_names.yaml")
    samplers, schedulers = _ksampler(object_info)
    assert names["samplers"] == samplers and names["schedulers"] == schedulers


def test_every_sampler_and_scheduler_in_tables_is_valid_in_comfyui(object_info: dict[str, Any]) -> None:
    samplers, schedulers = _ksampler(object_info)
    for tier in T.tiers.values():
        assert tier.image.sampler in samplers and tier.image.scheduler in schedulers, tier.id
    for name, fam in T.families.families.items():
        assert set(fam.samplers.values()) <= set(samplers), name
        assert set(fam.schedulers.values()) <= set(schedulers), name


def test_applied_parameters_are_valid_ksampler_inputs(object_info: dict[str, Any]) -> None:
    samplers, schedulers = _ksampler(object_info)
    steps_spec = object_info["KSampler"]["input"]["required"]["steps"][1]
    for family in T.families.families:
        for tier in T.tiers.values():
            p = apply_preset(tier, FunctionTemplate(model_family=family), T).params
            assert p["sampler_name"] in samplers and p["scheduler"] in schedulers
            assert steps_spec["min"] <= p["steps"] <= steps_spec["max"]
            assert p["width"] % 8 == 0 and p["height"] % 8 == 0


def test_four_tiers_with_levels_and_low_alias() -> None:
    assert [(t.id, t.level) for t in T.tiers.values()] == [("draft", 1), ("standard", 2), ("high", 3), ("ultra", 4)]
    assert T.tier_id("low") == "draft" and T.tier_id("HIGH") == "high" and T.tier_id("mega") is None
    for category in ("image", "video", "audio", "text"):
        assert all(getattr(t, category) for t in T.tiers.values())


def test_tiers_grow_in_quality_and_cost() -> None:
    tiers = list(T.tiers.values())
    for low, high in zip(tiers, tiers[1:], strict=False):
        assert low.image.steps < high.image.steps
        assert low.video.fps <= high.video.fps and low.audio.sample_rate <= high.audio.sample_rate
        assert low.text.max_tokens < high.text.max_tokens
        for key in ("time", "resource", "cost"):
            assert getattr(low.multipliers, key) < getattr(high.multipliers, key)


def test_nominal_time_multipliers_agree_with_computed_estimates() -> None:
    """The multipliers shown to people stay within 35% of what the estimator computes (SD1.5)."""
    est = Estimator(T)
    template = FunctionTemplate(model_family="sd15")

    def seconds(tier: str) -> float:
        params = apply_preset(T.tiers[tier], template, T).params
        return est.estimate("image", params, "sd15").time_expected_s

    reference = seconds("standard")
    for tier in T.tiers.values():
        ratio = seconds(tier.id) / reference
        assert abs(ratio / tier.multipliers.time - 1) < 0.35, (tier.id, ratio, tier.multipliers.time)


def test_the_fixed_mapping_names_shipped_workflows_that_exist() -> None:
    """Every task type x tier names a shipped workflow (its builder and both files), or the task type says what
    model it needs; every pipeline names the workflow that runs it."""
    from atelier.nodes.core.storyboard.pipelines import WORKFLOWS

    repo = Path(__file__).resolve().parents[1]
    named = [T.pipelines.pipelines[p].workflow for p in T.pipelines.pipelines]
    for task_type, spec in T.pipelines.task_types.items():
        mapping = T.pipelines.workflows.get(task_type)
        if mapping is None:
            assert spec.needs and spec.category in ("video", "audio"), task_type
            continue
        assert set(mapping) == set(T.tiers), task_type
        named.extend(mapping.values())
    for name in named:
        assert name in WORKFLOWS, name
        assert (repo / "workflows" / f"{name}.json").is_file() and (repo / "workflows" / "api" / f"{name}.json").is_file()
    assert set(T.pipelines.workflows) <= set(T.pipelines.task_types)
