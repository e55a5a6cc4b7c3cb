""""Why this image": the card a record answers at GET /atelier/generations/{id}/why gathers the plan, the LoRAs,
the prompt as given against the prompt that ran, the variations' scores and ranks, the rating clamp and the
hash — from records made the way the nodes make them, with real scores, a real social context and a real
decision on a real LoRA library."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from atelier.nodes.core.quality.plan import build_plan
from atelier.nodes.core.records.service import node_parameters, node_scores
from atelier.nodes.core.scoring.images import collect
from atelier.nodes.core.scoring.scores import score_variations
from atelier.nodes.host import Atelier
from imagegen import blurred, noisy, scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import lora_files as lf  # noqa: E402

ALICE, BOB = {"comfy-user": "alice"}, {"comfy-user": "bob"}


def _graph(original: str) -> dict:
    return {"1": {"class_type": "AtelierPromptEnhance", "inputs": {"prompt": original, "backend": "rule"}},
            "2": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 20}}}


def test_a_best_of_n_record_says_which_variation_won_how_the_prompt_changed_and_the_rating_clamp(
        server, atelier: Atelier) -> None:
    base = scene(seed=3)
    images = [blurred(base, 4.0), base, noisy(base, 0.2)]
    scores = score_variations(collect(torch.stack(images)), scorers="technical")
    social = atelier.social.build("alice", {"affinity": 40, "trust": 40, "npc_id": "mira",
                                           "requested_rating": "mature_implied"})
    plan = build_plan(atelier.quality, "high", "sd15")
    body = {"operation_type": "best_of_n", "prompt": "a red fox in snow, cinematic lighting",
            "parameters": node_parameters(_graph("a fox in snow"), plan, social)}
    first = atelier.records.create("alice", body, status="running")
    atelier.records.store.set_status(first.id, "completed", scores=node_scores(scores))
    again = atelier.records.create("alice", body)

    status, card = server.get(f"/atelier/generations/{again.id}/why", headers=ALICE)
    assert status == 200
    assert card["hash"] == {"repro_hash": again.repro_hash, "identical_earlier": [first.id], "identical_count": 1}
    assert card["plan"]["source"] == "Quality Preset"
    assert card["plan"]["parameters"]["steps"] == plan.params["steps"] and card["plan"]["parameters"]["tier"] == "high"
    assert card["prompt"]["changed_by"] == "Prompt Enhance"
    assert card["prompt"]["added"] == ["red", "cinematic lighting"] and card["prompt"]["removed"] == []
    assert card["rating"]["requested"] == "mature_implied" and card["rating"]["applied"] == "sfw"
    assert card["rating"]["clamped"] is True and card["rating"]["npc"] == "mira"
    assert "variations" not in card  # the second record has no scores yet

    status, scored = server.get(f"/atelier/generations/{first.id}/why", headers=ALICE)
    variations = scored["variations"]
    overall = scores.overall
    assert variations["count"] == 3 and variations["chosen"] == overall.index(max(overall)) == 1
    assert [v["rank"] for v in variations["items"]] == [sorted(overall, reverse=True).index(x) + 1 for x in overall]
    assert set(variations["items"][1]["metrics"]) == {"technical"}
    assert server.get(f"/atelier/generations/{first.id}/why", headers=BOB)[0] == 404  # alice's record
    assert server.get("/atelier/generations/..%2F..%2Fetc/why", headers=ALICE)[0] in (400, 404)


def test_an_explained_record_shows_the_smart_plan_its_loras_and_the_trigger_words_it_added(
        server, atelier: Atelier) -> None:
    root = atelier.settings.lora_folders[0]
    lf.write_safetensors(root / "knight.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "knight", {"knight": 20, "armor": 9}))
    lf.write_safetensors(root / "xl_knight.safetensors", lf.kohya_sdxl(), lf.kohya_metadata(
        "sdxl_base_v1-0", "xl knight", {"knight": 20}))
    decision = atelier.intelligence.decide("alice", {"prompt": "a knight in armor", "family": "sd15",
                                                     "constraints": {"max_time_s": 30, "priority": "quality"}})
    applied = [{**x, "matched": 22, "modules": 22, "report": "22 of 22 modules matched"}
               for x in decision.explanation.loras]
    explained = decision.explanation.with_loras(applied, decision.recommendations.filtered, [],
                                                "a knight in armor, knight").with_measured(3.2)
    record = atelier.records.create("alice", {"operation_type": "image_generation", "prompt": "a knight in armor",
                                              "parameters": {"explanation": explained.to_dict(),
                                                             "images": ["atelier/explained_00001_.png"]}})
    status, card = server.get(f"/atelier/generations/{record.id}/why", headers=ALICE)
    assert status == 200 and card["summary"] == explained.summary
    assert card["plan"]["source"] == "Smart Plan" and card["plan"]["mode"] == "AUTO"
    assert card["plan"]["parameters"]["tier"] == decision.plan.tier
    assert card["plan"]["reasons"] == decision.plan.reasons and card["plan"]["measured_s"] == 3.2
    assert card["plan"]["estimated_s"] == round(decision.plan.estimate.time_expected_s, 2)
    assert [x["name"] for x in card["loras"]["used"]] == ["knight.safetensors"]
    assert card["loras"]["used"][0]["report"] == "22 of 22 modules matched"
    assert card["loras"]["left_out"][0]["name"] == "xl_knight.safetensors"
    assert "SDXL" in card["loras"]["left_out"][0]["reason"]
    assert card["prompt"] == {"given": "a knight in armor", "used": "a knight in armor, knight",
                              "changed_by": "LoRA trigger words", "added": ["knight"], "removed": []}
    assert card["images"] == ["atelier/explained_00001_.png"]
    assert "rating" not in card and "variations" not in card  # nothing invented
    # the estimate and the measured time are kept, yet never change the hash: the same decision run again is
    # an identical run
    later = explained.with_measured(9.9)
    twin = atelier.records.create("alice", {"operation_type": "image_generation", "prompt": "a knight in armor",
                                            "parameters": {"explanation": later.to_dict(),
                                                           "images": ["atelier/explained_00001_.png"]}})
    assert twin.repro_hash == record.repro_hash and twin.parameters["explanation"]["performance"]["measured_s"] == 9.9
