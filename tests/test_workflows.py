"""Shipped workflows: valid against ComfyUI 0.3.64's /object_info and Atelier's nodes; twins agree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from atelier.nodes.core.quality.plan import IMAGE_OUTPUTS
from atelier.nodes.core.quality.service import QualityService

METRIC_OUTPUTS = ("technical", "clip_score", "aesthetic", "pickscore", "hpsv2")  # as in nodes/scoring_nodes.py

REPO = Path(__file__).resolve().parents[1]
UI_FILES = sorted((REPO / "workflows").glob("*.json"))
USER_FILE_INPUTS = {"ckpt_name", "image"}  # the user picks their own checkpoint in the widget

# Atelier's node schemas without ComfyUI: inputs and output types, in socket order.
_PLAN_TYPES = [{"steps": "INT", "cfg": "FLOAT", "sampler_name": "SAMPLER_COMBO", "scheduler": "SCHEDULER_COMBO",
                "denoise": "FLOAT", "hires_enabled": "BOOLEAN", "hires_scale": "FLOAT", "hires_denoise": "FLOAT"}.get(n, "INT")
               for n in IMAGE_OUTPUTS]
ATELIER_NODES: dict[str, dict[str, Any]] = {
    "AtelierQualityPreset": {
        "inputs": ["tier", "model_family", "checkpoint", "width", "height", "batch_size"],
        "outputs": ["QUALITY_PRESET", *_PLAN_TYPES],
    },
    "AtelierQualityStage": {"inputs": ["quality_preset", "stage"], "outputs": _PLAN_TYPES},
    "AtelierQualitySampler": {"inputs": ["model", "positive", "negative", "latent_image", "quality_preset", "seed",
                                         "start"],
                              "outputs": ["LATENT"]},
    "AtelierVariationScore": {"inputs": ["images", "prompt", "scorers", "weights", "models"],
                              "outputs": ["SCORES", "FLOAT", *(["FLOAT"] * len(METRIC_OUTPUTS))]},
    "AtelierRankSelect": {"inputs": ["images", "scores", "top_k", "threshold", "below_threshold", "latent", "mask"],
                          "outputs": ["IMAGE", "LATENT", "MASK", "INT", "STRING"]},
    "AtelierPromptEnhance": {"inputs": ["prompt", "negative", "backend", "endpoint", "model", "model_family",
                                        "threshold", "iterations", "seed", "temperature", "keep_trace",
                                        "keep_llm_loaded", "quality_preset", "timeout_s"],
                             "outputs": ["STRING", "STRING", "FLOAT", "INT", "STRING"]},
    "AtelierFrameChain": {"inputs": ["model", "clip", "vae", "quality_preset", "storyboard", "negative", "variations",
                                     "threshold", "seed", "enhance", "scorers", "filename_prefix", "reference",
                                     "owner", "pipeline"],
                          "outputs": ["IMAGE", "STRING"]},
    "AtelierFrameStart": {"inputs": ["recipe", "vae", "previous", "previous_report", "reference"],
                          "outputs": ["LATENT", "FLOAT", "STRING"]},
    "AtelierFrameSelect": {"inputs": ["images", "prompt", "recipe", "attempt", "previous_attempts", "fallback", "start",
                                      "previous", "previous_report", "reference"],
                           "outputs": ["IMAGE", "STRING"]},
    "AtelierChainImage": {"inputs": ["previous", "previous_report", "anchor", "color_match", "reference"],
                          "outputs": ["IMAGE"]},
    "AtelierStoryboardCollect": {"inputs": ["image", "report", "images", "reports"], "outputs": ["IMAGE", "STRING"]},
    "AtelierStoryboardSave": {"inputs": ["images", "reports", "storyboard", "settings", "tier", "filename_prefix",
                                         "owner"],
                              "outputs": ["IMAGE", "STRING"]},
    "AtelierTierGrid": {"inputs": [f"{kind}_{slot}" for slot in "abcd" for kind in ("image", "preset")] + ["columns"],
                        "outputs": ["IMAGE"]},
    "AtelierSmartPlan": {"inputs": ["prompt", "negative", "checkpoint", "model_family", "mode", "priority",
                                    "max_time_s", "max_vram_gb", "width", "height", "batch_size", "tier", "accepted",
                                    "owner"],
                         "outputs": ["QUALITY_PRESET", *_PLAN_TYPES, "STRING", "STRING", "ATELIER_EXPLANATION"]},
    "AtelierLoraRecommend": {"inputs": ["model", "clip", "prompt", "checkpoint_family", "mode", "max_loras",
                                        "min_confidence", "allow_style_mixing", "loras", "exclude", "explanation",
                                        "social_context", "owner"],
                             "outputs": ["MODEL", "CLIP", "STRING", "ATELIER_EXPLANATION"]},
    "AtelierSaveWithExplanation": {"inputs": ["images", "filename_prefix", "explanation", "owner"], "outputs": []},
}
ATELIER_INPUT_TYPES = {"images": "IMAGE", "scores": "SCORES", "quality_preset": "QUALITY_PRESET", "latent": "LATENT",
                       "mask": "MASK", "model": "MODEL", "clip": "CLIP", "vae": "VAE", "reference": "IMAGE",
                       "previous": "IMAGE", "image": "IMAGE", "fallback": "IMAGE", "prompt": "STRING",
                       "report": "STRING", "reports": "STRING", "previous_report": "STRING", "models": "SCORER_MODELS",
                       "start": "STRING", "positive": "CONDITIONING", "negative": "CONDITIONING",
                       "latent_image": "LATENT", "explanation": "ATELIER_EXPLANATION",
                       **{f"image_{s}": "IMAGE" for s in "abcd"}, **{f"preset_{s}": "QUALITY_PRESET" for s in "abcd"}}


def _input_type(object_info: dict[str, Any], class_type: str, name: str) -> Any:
    spec = object_info[class_type]["input"]
    for group in ("required", "optional"):
        if name in spec.get(group, {}):
            return spec[group][name][0]
    raise AssertionError(f"{class_type} has no input {name!r}")


def _output_type(object_info: dict[str, Any], class_type: str, slot: int) -> Any:
    if class_type in ATELIER_NODES:
        kind = ATELIER_NODES[class_type]["outputs"][slot]
        ksampler = object_info["KSampler"]["input"]["required"]
        return {"SAMPLER_COMBO": ksampler["sampler_name"][0], "SCHEDULER_COMBO": ksampler["scheduler"][0]}.get(kind, kind)
    return object_info[class_type]["output"][slot]


def check_api_graph(graph: dict[str, Any], object_info: dict[str, Any], label: str = "graph",
                    tiers: Any = ("draft", "standard", "high", "ultra")) -> None:
    """Node types, input names, link types and combo values of an API-format graph."""
    for node_id, node in graph.items():
        class_type = node["class_type"]
        assert class_type in object_info or class_type in ATELIER_NODES, class_type
        for name, value in node["inputs"].items():
            if isinstance(value, list):  # a link: [source node id, output slot]
                source = graph[value[0]]["class_type"]
                received = _output_type(object_info, source, value[1])
                if class_type in ATELIER_NODES:
                    assert name in ATELIER_NODES[class_type]["inputs"], (class_type, name)
                    expected = ATELIER_INPUT_TYPES.get(name)
                else:
                    expected = _input_type(object_info, class_type, name)
                if expected not in (None, "*"):  # "*": any type (PreviewAny)
                    assert received == expected, f"{label} node {node_id}.{name}: {received} -> {expected}"
            elif class_type in ATELIER_NODES:
                assert name in ATELIER_NODES[class_type]["inputs"], (class_type, name)
                if name == "tier":
                    assert value in tiers
            else:
                kind = _input_type(object_info, class_type, name)
                if isinstance(kind, list) and name not in USER_FILE_INPUTS:
                    assert value in kind, f"{label} node {node_id}.{name}={value!r}"
        if class_type in object_info:
            missing = set(object_info[class_type]["input"]["required"]) - set(node["inputs"])
            assert not missing, f"{label} node {node_id} lacks {missing}"


@pytest.mark.parametrize("path", sorted((REPO / "workflows" / "api").glob("*.json")), ids=lambda p: p.name)
def test_api_workflow_is_valid(path: Path, object_info: dict[str, Any], service: QualityService) -> None:
    check_api_graph(json.loads(path.read_text()), object_info, path.name, service.tables.tiers)


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_matches_its_api_twin(path: Path) -> None:
    ui = json.loads(path.read_text())
    api = json.loads((path.parent / "api" / path.name).read_text())
    nodes = {str(n["id"]): n for n in ui["nodes"]}
    assert set(nodes) == set(api) and all(nodes[i]["type"] == api[i]["class_type"] for i in api)
    links = {link[0]: link for link in ui["links"]}
    for node_id, node in nodes.items():
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, origin, origin_slot, target, _, _ = links[slot["link"]]
                assert str(target) == node_id
                assert api[node_id]["inputs"][slot["name"]] == [str(origin), origin_slot], (node_id, slot["name"])
    assert ui["last_link_id"] == max(links) and ui["last_node_id"] == max(int(i) for i in nodes)


def _nulls(value: Any, path: str = "") -> Iterator[str]:
    if value is None:
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nulls(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _nulls(item, f"{path}[]")


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_passes_the_frontends_schema_on_nulls(path: Path) -> None:
    """The frontend's workflow schema refuses null where it writes nothing (floatingLinks, extra.reroutes,
    slot_index ...) and shows an "Invalid workflow" alert on load; null is only where it writes it itself."""
    found = set(_nulls(json.loads(path.read_text())))
    assert found <= {".nodes[].inputs[].link", ".nodes[].outputs[].links"}, sorted(found)


def test_every_workflow_has_its_twin() -> None:
    ui = {p.name for p in UI_FILES}
    api = {p.name for p in (REPO / "workflows" / "api").glob("*.json")}
    assert ui == api and ui


def test_api_twins_are_built_from_the_pipeline_graphs_and_name_no_checkpoint() -> None:
    """workflows/api/ is what tools/build_workflows.py writes from the pipelines (run it after changing them)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_workflows", REPO / "tools" / "build_workflows.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from atelier.nodes.core.storyboard.pipelines import WORKFLOWS, PipelineRun

    run = PipelineRun(**{**tool.DEFAULTS, "checkpoint": "x"}).model_copy(update={"checkpoint": ""})
    for name, build in WORKFLOWS.items():
        shipped = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
        assert shipped == tool.numbered(build(run)), f"{name}: run python tools/build_workflows.py"
    for path in UI_FILES:
        ui = json.loads(path.read_text())
        for node in ui["nodes"]:
            if node["type"] == "CheckpointLoaderSimple":
                assert node["widgets_values"][0] == "", f"{path.name} names a checkpoint the user may not have"
