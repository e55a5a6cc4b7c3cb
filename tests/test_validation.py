"""Validation and health: each rule's code, severity, field and message through ``POST /generations/validate``,
and per node through ``POST /graph/validate`` (what the nodes' health badges show)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from atelier.nodes.core.validation.rules import CODES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import lora_files as lf  # noqa: E402


@pytest.fixture
def loras(settings: Any) -> Path:
    """An SD1.5 and an SDXL LoRA in the LoRA folder of the test's ATELIER_HOME."""
    folder = settings.lora_folders[0]
    lf.write_safetensors(folder / "ink_sd15.safetensors", lf.kohya_sd1(), lf.kohya_metadata("sd_v1", "ink"))
    lf.write_safetensors(folder / "ink_xl.safetensors", lf.kohya_sdxl(), lf.kohya_metadata("sdxl_base_v1-0", "ink xl"))
    return folder


def check(server: Any, parameters: dict[str, Any], prompt: str = "a lighthouse at dusk", user: str = "alice",
          **extra: Any) -> dict[str, Any]:
    status, body = server.post("/atelier/generations/validate", {"operation_type": "image_generation",
                                                                 "prompt": prompt, "parameters": parameters, **extra},
                               headers={"comfy-user": user})
    assert status == 200, body
    return dict(body)


def codes(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {i["code"]: (i["severity"], i["field"]) for i in report["errors"] + report["warnings"]}


def test_a_clean_config_is_valid_with_its_hash(server: Any) -> None:
    report = check(server, {"checkpoint": "v1-5-pruned-emaonly.safetensors", "tier": "standard"})
    assert report["valid"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["prompt"] == "a lighthouse at dusk" and len(report["repro_hash"]) == 64


def test_each_rule_names_its_code_field_and_what_is_accepted(server: Any, loras: Path) -> None:
    found: dict[str, tuple[str, str]] = {}

    def seen(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
        got = codes(report)
        found.update(got)
        return got

    unknown = seen(check(server, {"tier": "legendary"}))
    assert unknown["unknown_tier"] == ("error", "tier")
    distilled = check(server, {"checkpoint": "flux1-schnell.safetensors", "model_family": "flux_schnell",
                               "tier": "ultra"})
    seen(distilled)
    assert codes(distilled)["tier_assumption"][0] == "warning"
    assert any("fixed" in w["message"] or "disabled" in w["message"] for w in distilled["warnings"])
    mismatch = check(server, {"checkpoint": "sd_xl_base_1.0.safetensors", "model_family": "sd15", "tier": "draft"})
    assert seen(mismatch)["family_mismatch"] == ("warning", "model_family")
    assert "looks like sdxl" in mismatch["warnings"][0]["message"]
    lora = check(server, {"checkpoint": "v1-5-pruned-emaonly.safetensors", "loras": ["ink_sd15.safetensors",
                                                                                   "ink_xl.safetensors", "nope"]})
    got = seen(lora)
    assert got["lora_family"] == ("error", "loras.ink_xl.safetensors") and got["unknown_lora"] == ("error", "loras.nope")
    assert "accepted, a sd15 LoRA" in next(e["message"] for e in lora["errors"] if e["code"] == "lora_family")
    scored = check(server, {"scorers": "technical,clip_score,pixel_magic"})
    scorers = seen(scored)
    assert scorers["unknown_scorer"] == ("error", "scorers") and scorers["scorer_missing"] == ("warning", "scorers")
    missing = next(w["message"] for w in scored["warnings"] if w["code"] == "scorer_missing")
    assert " /" not in missing and "(/" not in missing  # folders by name, never the server's paths
    budget = check(server, {"checkpoint": "sd_xl_base_1.0.safetensors", "constraints": {"max_time_s": 0.01}})
    assert seen(budget)["no_plan_fits"] == ("error", "constraints") and "cheapest" in budget["errors"][0]["message"]
    clamped = seen(check(server, {"social": {"world_id": "default", "requested_rating": "restricted",
                                             "enforcement": "clamp"}}))
    assert clamped["rating_clamped"] == ("warning", "social.requested_rating")
    rejected = seen(check(server, {"social": {"world_id": "default", "requested_rating": "restricted",
                                              "enforcement": "reject"}}))
    assert rejected["rating_above_max"][0] == "error"
    status, refused = server.post("/atelier/generations/validate", {"operation_type": "txt2img",
                                  "prompt": "hi {{name}}", "variables": []})
    assert status == 400 and refused["field"] == "variables"  # a value of the wrong kind is not a missing variable
    variable = check(server, {"tier": "draft"}, prompt="a portrait of {{name}}")
    assert seen(variable)["missing_variable"] == ("error", "variables.name") and variable["valid"] is False
    assert variable["prompt"] is None and variable["repro_hash"] is None
    long = seen(check(server, {"storyboard": "\n".join(f"clip {i} | end {i}" for i in range(65))}))
    assert long["storyboard_too_long"] == ("error", "storyboard")
    broken = seen(check(server, {"storyboard": "only a start, no end"}))
    assert broken["storyboard_invalid"] == ("error", "storyboard")
    odd = check(server, {"width": "abc", "height": 1e30, "batch_size": True, "checkpoint": 5,
                         "model_family": {"x": 1}, "loras": ["x"], "tier": "draft", "constraints": {"max_time_s": 5}})
    got = seen(odd)
    assert {e["field"] for e in odd["errors"] if e["code"] == "invalid_value"} == {
        "width", "height", "batch_size", "checkpoint", "model_family"} and odd["valid"] is False
    assert "accepted: a whole number 0-16384" in next(e["message"] for e in odd["errors"] if e["field"] == "width")
    constraints = check(server, {"constraints": {"max_time_s": "soon"}})
    assert codes(constraints)["invalid_value"][1].startswith("constraints")
    assert set(found) == set(CODES)  # every documented rule was seen


def test_a_graphs_atelier_nodes_get_their_status_and_reasons(server: Any) -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "2": {"class_type": "AtelierQualityPreset", "inputs": {"tier": "ultra", "model_family": "sd15",
                                                                "checkpoint": "sd_xl_base_1.0.safetensors"}},
        "3": {"class_type": "AtelierVariationScore", "inputs": {"images": ["5", 0], "scorers": "technical,clip_score"}},
        "4": {"class_type": "AtelierFrameChain", "inputs": {"model": ["1", 0], "storyboard": "a | b", "scorers": "technical"}},
        "5": {"class_type": "AtelierQualityPreset", "inputs": {"tier": "nope", "model_family": "auto"}},
        "6": {"class_type": "KSampler", "inputs": {"seed": 1}},
    }
    status, body = server.post("/atelier/graph/validate", {"graph": graph})
    assert status == 200
    nodes = body["nodes"]
    assert set(nodes) == {"2", "3", "4", "5"}  # Atelier's nodes only
    assert nodes["2"]["status"] == "warning" and nodes["2"]["issues"][0]["code"] == "family_mismatch"
    assert nodes["3"]["status"] == "warning" and nodes["3"]["issues"][0]["code"] == "scorer_missing"
    assert nodes["4"] == {"status": "ok", "issues": []}
    assert nodes["5"]["status"] == "error" and nodes["5"]["issues"][0]["code"] == "unknown_tier"
    assert body["summary"] == {"nodes": 4, "errors": 1, "warnings": 2}
    for bad in ({"graph": []}, {"graph": {str(i): {} for i in range(2001)}}, []):
        status, refused = server.post("/atelier/graph/validate", bad)
        assert status == 400 and refused["field"] in ("graph", "body")


def test_a_lora_nodes_hand_listed_loras_are_checked_against_the_family(server: Any, loras: Path) -> None:
    def lora_node(mode: str, family: str = "sd15") -> dict[str, Any]:
        return {"class_type": "AtelierLoraRecommend", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "prompt": ["2", 0], "checkpoint_family": family, "mode": mode,
            "loras": "ink_sd15.safetensors:0.8\nink_xl.safetensors:0.6\nmissing.safetensors"}}

    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
             "3": lora_node("MANUAL"), "4": lora_node("ASSISTED", "auto"), "5": lora_node("AUTO")}
    nodes = server.post("/atelier/graph/validate", {"graph": graph}, headers={"comfy-user": "alice"})[1]["nodes"]
    manual = {(i["code"], i["field"]) for i in nodes["3"]["issues"]}
    assert manual == {("lora_family", "loras.ink_xl.safetensors"), ("unknown_lora", "loras.missing.safetensors")}
    assert nodes["3"]["status"] == "error"
    # family auto: the checkpoint of the loader the node's model comes from says sd15
    assert {i["code"] for i in nodes["4"]["issues"]} == {"lora_family", "unknown_lora"}
    assert nodes["5"] == {"status": "ok", "issues": []}  # AUTO does not read the list


def test_a_quality_preset_naming_another_users_preset_is_checked_as_that_users(server: Any) -> None:
    status, _ = server.post("/atelier/presets", {"id": "bobs-look", "extends": "draft"}, headers={"comfy-user": "bob"})
    assert status == 201
    graph = {"1": {"class_type": "AtelierQualityPreset", "inputs": {"tier": "bob/bobs-look", "model_family": "auto"}},
             "2": {"class_type": "AtelierQualityPreset", "inputs": {"tier": "bobs-look", "model_family": "auto"}}}
    nodes = server.post("/atelier/graph/validate", {"graph": graph}, headers={"comfy-user": "alice"})[1]["nodes"]
    assert nodes["1"]["status"] == "ok"  # the node's option "bob/bobs-look" is bob's preset
    assert nodes["2"]["issues"][0]["code"] == "unknown_tier"  # a bare id is the default user's, who has none


def test_validating_a_rating_is_not_a_violation(server: Any) -> None:
    social = {"world_id": "default", "requested_rating": "restricted", "enforcement": "reject"}
    for _ in range(3):  # the badges validate on every edit
        assert codes(check(server, {"social": social}))["rating_above_max"][0] == "error"
        graph = {"9": {"class_type": "AtelierSocialContext", "inputs": {
            "world": "default", "requested_rating": "restricted", "enforcement": "clamp"}}}
        assert server.post("/atelier/graph/validate", {"graph": graph},
                           headers={"comfy-user": "alice"})[1]["nodes"]["9"]["status"] == "warning"
    status, body = server.get("/atelier/violations", headers={"comfy-user": "alice"})
    assert status == 200 and body["entries"] == []
    status, _ = server.post("/atelier/social-context/build", {**social, "affinity": 0},
                            headers={"comfy-user": "alice"})
    assert status == 403  # asking for real is logged
    assert [e["kind"] for e in server.get("/atelier/violations", headers={"comfy-user": "alice"})[1]["entries"]] == \
        ["rating_rejected"]


def test_odd_literal_inputs_are_a_nodes_error_never_a_failure(server: Any) -> None:
    """The same rules refuse a prompt in ComfyUI (validate_inputs): an odd value is an issue on its node."""
    graph = {
        "1": {"class_type": "AtelierSmartPlan", "inputs": {"prompt": "a cat", "max_time_s": 5, "width": "abc"}},
        "2": {"class_type": "AtelierSmartPlan", "inputs": {"prompt": "a cat", "max_time_s": 5, "width": 10**12}},
        "3": {"class_type": "AtelierSmartPlan", "inputs": {"tier": "draft", "mode": "MANUAL", "checkpoint": 5}},
        "4": {"class_type": "AtelierLoraRecommend", "inputs": {"loras": "a:1,b", "model_family": {"x": 1},
                                                                "mode": "MANUAL"}},
        "5": {"class_type": "AtelierSmartPlan", "inputs": {"prompt": "a cat", "max_time_s": "soon"}},
        "6": {"class_type": "AtelierQualityPreset", "inputs": {"tier": 7, "checkpoint": ["9", 0]}},
    }
    status, body = server.post("/atelier/graph/validate", {"graph": graph})
    assert status == 200, body
    fields = {nid: {(i["code"], i["field"]) for i in n["issues"]} for nid, n in body["nodes"].items()}
    assert ("invalid_value", "width") in fields["1"] and ("invalid_value", "width") in fields["2"]
    assert ("invalid_value", "checkpoint") in fields["3"] and ("invalid_value", "model_family") in fields["4"]
    assert any(code == "invalid_value" and field.startswith("constraints") for code, field in fields["5"])
    assert ("invalid_value", "tier") in fields["6"]
    assert all(body["nodes"][n]["status"] == "error" for n in "123456")
