"""Learning from feedback: scorer weights learned from ratings (offline evaluation with simulated users), LoRA
priors in recommendations with the sentence that says so, per user, never over an explicit choice."""

from __future__ import annotations

import sys
from pathlib import Path

import learning_sim
import pytest
from atelier.nodes.core.learning.model import Sample, learn_lora_priors, learn_weights
from atelier.nodes.host import Atelier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import lora_files as lf  # noqa: E402


def test_learned_weights_pick_a_users_favourite_more_often_and_defaults_stay_for_a_default_taste() -> None:
    learned, default, same_learned, same_default = learning_sim.population(users=60, seed=1)
    print(f"\nfavourite of 4 picked: learned {learned:.1%}, defaults {default:.1%}; "
          f"a default taste: learned {same_learned:.1%}, defaults {same_default:.1%}")
    assert learned - default >= 0.20
    assert same_learned >= same_default - 0.01


def test_weights_follow_the_ratings_and_say_why() -> None:
    defaults = {"technical": 1.0, "clip_score": 1.0}
    samples = [Sample({"technical": 20 + 6 * i, "clip_score": 50 + (7 * i) % 30}, min(5, 1 + i // 3))
               for i in range(12)]
    learned = learn_weights(samples, defaults)
    assert learned.weights["technical"] > 0.7 and learned.learned["technical"] > learned.learned["clip_score"]
    assert learned.reason.startswith("learned from your 12 ratings: they follow technical")
    few = learn_weights(samples[:3], defaults)
    assert few.weights == {"technical": 0.5, "clip_score": 0.5} and "5 needed" in few.reason


def test_lora_priors_shrink_with_few_ratings() -> None:
    priors = learn_lora_priors([(["a.safetensors"], 5), (["a.safetensors", "b.safetensors"], 4),
                                (["a.safetensors"], 5), (["b.safetensors"], 1), (["c.safetensors"], 5)])
    a, b = priors.priors["a.safetensors"], priors.priors["b.safetensors"]
    assert a.prior > 0 > b.prior and "c.safetensors" not in priors.priors  # one rating is not enough
    assert a.reason == "ranked up: you rated 3 images using it 4.7 on average"
    assert b.reason == "ranked down: you rated 2 images using it 2.5 on average"


def _rated_record(atelier: Atelier, user: str, loras: list[str], rating: int, scores: dict[str, float]) -> str:
    record = atelier.records.create(user, {
        "operation_type": "api_generation", "prompt": "a watercolor harbour",
        "parameters": {"generation": {"loras_used": [{"name": n, "strength": 0.8} for n in loras], "seed": rating}}},
        status="completed")
    atelier.records.store.set_status(record.id, "completed", scores={
        "overall": [sum(scores.values()) / len(scores)], "normalised": {k: [v] for k, v in scores.items()}})
    atelier.records.store.feedback(record.id, rating, "", user)
    return record.id


def test_ratings_rank_a_users_loras_and_teach_their_weights_alone(server, atelier: Atelier) -> None:
    root = atelier.settings.lora_folders[0]
    for name in ("watercolor_a", "watercolor_b"):
        lf.write_safetensors(root / f"{name}.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
            "sd_v1", name, {"watercolor": 20}))
    body = {"prompt": "a watercolor harbour", "family": "sd15", "preferences": {"max_loras": 1}}
    before = atelier.intelligence.decide("alice", body).recommendations.chosen
    assert [r.card.name for r in before] == ["watercolor_a.safetensors"]  # ties go by name
    for i in range(3):
        _rated_record(atelier, "alice", ["watercolor_b.safetensors"], 5, {"technical": 30 + 20 * i, "clip_score": 50})
        _rated_record(atelier, "alice", ["watercolor_a.safetensors"], 2, {"technical": 20 + 10 * i, "clip_score": 60})
    after = atelier.intelligence.decide("alice", body).recommendations.chosen
    assert [r.card.name for r in after] == ["watercolor_b.safetensors"]
    assert "Ranked up: you rated 3 images using it 5.0 on average." in after[0].reason
    bobs = atelier.intelligence.decide("bob", body).recommendations.chosen  # alice's ratings are hers
    assert [r.card.name for r in bobs] == ["watercolor_a.safetensors"]
    chosen = atelier.intelligence.decide("alice", {**body, "loras": [["watercolor_a.safetensors", 0.8]]})
    assert [c.name for c, _, _ in chosen.loras] == ["watercolor_a.safetensors"]  # an explicit choice stays

    status, view = server.get("/atelier/learning?scorers=technical,clip_score", headers={"comfy-user": "alice"})
    assert status == 200 and view["weights"]["ratings"] == 6
    assert view["weights"]["learned"]["technical"] > view["weights"]["learned"]["clip_score"]
    assert view["loras"]["watercolor_b.safetensors"]["mean"] == 5.0
    assert server.get("/atelier/learning", headers={"comfy-user": "bob"})[1]["loras"] == {}
    assert server.get("/atelier/learning?scorers=vibes")[0] == 400


@pytest.mark.parametrize("rating", [0, 6, 2.5, True])
def test_a_rating_outside_one_to_five_is_refused(atelier: Atelier, rating: object) -> None:
    from atelier.nodes.core.base.errors import InvalidInput

    record = atelier.records.create("alice", {"operation_type": "x", "prompt": "p"}, status="completed")
    with pytest.raises(InvalidInput) as bad:
        atelier.records.store.feedback(record.id, rating, "", "alice")
    assert bad.value.field == "rating"


def _batch(atelier: Atelier, user: str, batch: str, scores: list[dict[str, float]]) -> list[str]:
    ids = []
    for index, mine in enumerate(scores):
        record = atelier.records.create(user, {
            "operation_type": "api_generation", "prompt": f"a harbour {batch}",
            "parameters": {"generation": {"seed": index}, "batch": {"batch_id": batch, "index": index,
                                                                     "size": len(scores)}}}, status="completed")
        atelier.records.store.set_status(record.id, "completed", scores={
            "overall": [sum(mine.values()) / 2], "normalised": {k: [v] for k, v in mine.items()}})
        ids.append(record.id)
    return ids


def test_kept_variations_teach_the_weights_like_ratings(server, atelier: Atelier) -> None:
    defaults = {"technical": 1.0, "clip_score": 1.0}
    for b in range(8):  # each time the user keeps the variation with the best clip score, not the best technical
        ids = _batch(atelier, "alice", f"b{b}", [{"technical": 80 - b, "clip_score": 30 + b},
                                                 {"technical": 40 + b, "clip_score": 85 - b},
                                                 {"technical": 60, "clip_score": 50 + 2 * b}])
        status, body = server.post(f"/atelier/generations/{ids[1]}/keep", headers={"comfy-user": "alice"})
        assert status == 200 and body == {"kept": ids[1]}
        assert server.post(f"/atelier/generations/{ids[1]}/keep", headers={"comfy-user": "bob"})[0] == 404
    learned = atelier.learning.weights("alice", defaults)
    assert learned.ratings == 24 and learned.learned["clip_score"] > learned.learned["technical"]
    assert learned.weights["clip_score"] > 0.5 and "they follow clip_score" in learned.reason
    assert atelier.learning.weights("bob", defaults).learned == {}  # alice's choices are hers
    single = atelier.records.create("alice", {"operation_type": "api_generation", "prompt": "p"}, status="completed")
    status, body = server.post(f"/atelier/generations/{single.id}/keep", headers={"comfy-user": "alice"})
    assert status == 400 and body["field"] == "id" and "batch" in body["accepted"]


def test_a_preferred_tier_per_pipeline_is_learned_and_starts_the_plan(server, atelier: Atelier) -> None:
    for tier, rating in (("high", 5), ("high", 5), ("high", 4), ("ultra", 2), ("ultra", 3), ("ultra", 2)):
        record = atelier.records.create("alice", {"operation_type": "api_generation", "prompt": f"a fox {rating}",
                                                  "parameters": {"quality": {"preset": tier}, "n": rating}},
                                        status="completed")
        atelier.records.store.feedback(record.id, rating, "", "alice")
    body = {"prompt": "a fox", "family": "sd15", "constraints": {"priority": "quality"},
            "operation_type": "api_generation"}
    decided = atelier.intelligence.decide("alice", body).plan
    assert decided.tier == "high"
    assert decided.reasons[0].startswith("learned: start at high (you rated your high runs 4.7 on average "
                                         "(3 ratings), ultra's 2.3 (3))")
    assert atelier.intelligence.decide("alice", {**body, "operation_type": "image_generation"}).plan.tier == "ultra"
    assert atelier.intelligence.decide("bob", body).plan.tier == "ultra"  # alice's ratings are hers
    manual = atelier.intelligence.decide("alice", {**body, "mode": "MANUAL", "tier": "ultra"})
    assert manual.plan.tier == "ultra"  # an explicit choice stays
    view = server.get("/atelier/learning?scorers=technical", headers={"comfy-user": "alice"})[1]
    assert view["tiers"]["api_generation"]["tier"] == "high"
    assert view["tiers"]["api_generation"]["tiers"]["ultra"] == {"ratings": 3, "mean": 2.33}


def test_a_use_case_learns_the_tier_the_users_runs_settled_on(server, atelier: Atelier) -> None:
    for tier in ("high", "high", "standard", "high"):
        atelier.records.create("alice", {"operation_type": "api_generation", "prompt": f"a fox {tier}",
                                         "parameters": {"use_case": "YouTube  thumbnail", "quality": {"preset": tier},
                                                        "n": tier}}, status="completed")
    status, body = server.get("/atelier/recommend?use_case=youtube%20thumbnail", headers={"comfy-user": "alice"})
    assert status == 200 and body["tier"] == "high" and body["learned"] is True and body["confidence"] == 0.8
    assert body["reasoning"].startswith("learned: you ran 'youtube thumbnail' at high 3 of 4 times (recommended "
                                        "standard: 'youtube thumbnail' read as social media")
    assert "standard" in [a["tier"] for a in body["alternatives"]]
    bobs = server.get("/atelier/recommend?use_case=youtube%20thumbnail", headers={"comfy-user": "bob"})[1]
    assert bobs["tier"] == "standard" and bobs["learned"] is False  # alice's runs are hers
