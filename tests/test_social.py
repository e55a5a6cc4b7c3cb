"""Social context: tiers, bands and rating clamps at every boundary; enforcement; the route."""

from __future__ import annotations

from pathlib import Path

import pytest
from atelier.nodes.core.base.errors import Forbidden, InvalidInput
from atelier.nodes.core.social.context import ContextRequest, build_context, enforce, worlds
from atelier.nodes.core.social.service import SocialService

WORLDS = worlds()
WORLD = WORLDS["default"]


def ctx(user_max: str | None = None, **values):
    return build_context(ContextRequest(**values), user_max, WORLDS)


@pytest.mark.parametrize(("values", "tier"), [
    ({}, "stranger"),
    ({"affinity": 14.9, "trust": 10}, "stranger"),
    ({"affinity": 15, "trust": 10}, "acquaintance"),
    ({"affinity": 35, "trust": 29.9}, "acquaintance"),
    ({"affinity": 35, "trust": 30}, "friend"),
    ({"affinity": 60, "trust": 55}, "close_friend"),
    ({"affinity": 60, "trust": 55, "chemistry": 55}, "romantic_interest"),
    ({"affinity": 60, "trust": 55, "chemistry": 55, "tension": 80.1}, "close_friend"),  # max tension exceeded
    ({"affinity": 70, "trust": 70, "chemistry": 70}, "partner"),
    ({"affinity": 70, "trust": 70, "chemistry": 70, "tension": 60}, "partner"),
    ({"affinity": 70, "trust": 70, "chemistry": 70, "tension": 60.5}, "romantic_interest"),
    ({"affinity": 100, "trust": 100, "chemistry": 100}, "partner"),
])
def test_tiers_at_their_thresholds(values: dict, tier: str) -> None:
    assert ctx(**values).tier == tier


def test_bands_and_ratings_follow_the_intimacy_level() -> None:
    friend = ctx(affinity=40, trust=40)
    assert (friend.intimacy_level, friend.band, friend.rating) == (1, "light", "sfw")
    romantic = ctx(affinity=60, trust=55, chemistry=60)
    assert (romantic.band, romantic.rating) == ("deep", "romantic")
    partner = ctx(affinity=80, trust=80, chemistry=80)
    assert (partner.band, partner.band_rating, partner.rating) == ("intense", "mature_implied", "mature_implied")
    tense = ctx(affinity=80, trust=80, chemistry=80, tension=59)
    assert tense.band == "intense"
    tenser = ctx(affinity=60, trust=55, chemistry=60, tension=70)
    assert tenser.intimacy_level == 1 and any("tension" in w for w in tenser.warnings)
    assert partner.values == {"affinity": 80.0, "trust": 80.0, "chemistry": 80.0, "tension": 0.0}


def test_the_lowest_maximum_wins() -> None:
    partner = dict(affinity=80, trust=80, chemistry=80)
    assert ctx(user_max="romantic", **partner).rating == "romantic"
    assert ctx(user_max="romantic", **partner).clamped_by == ["user"]
    assert ctx(user_max="restricted", **partner).rating == "mature_implied"  # the world's max is lower
    assert ctx(user_max="romantic", max_rating="sfw", **partner).rating == "sfw"
    assert ctx(user_max="sfw", max_rating="restricted", **partner).rating == "sfw"  # a client cannot raise it
    clamped = ctx(user_max="sfw", **partner)
    assert clamped.prompt_addition.startswith("friendly") and "nsfw" in clamped.negative_addition


def test_a_world_that_allows_more(tmp_path: Path) -> None:
    folder = tmp_path / "social" / "worlds"
    folder.mkdir(parents=True)
    text = (Path(__file__).resolve().parents[1] / "presets" / "worlds" / "default.yaml").read_text()
    text = text.replace("id: default", "id: adult").replace("max_rating: mature_implied", "max_rating: restricted")
    text = text.replace("intense: mature_implied}", "intense: restricted}")
    (folder / "adult.yaml").write_text(text)
    service = SocialService(tmp_path / "social")
    partner = {"affinity": 90, "trust": 90, "chemistry": 90, "world_id": "adult"}
    assert service.build("bob", partner)["rating"] == "restricted"
    (tmp_path / "social" / "social.yaml").write_text("default_max_rating: mature_implied\nusers: {bob: sfw}\n")
    assert service.build("bob", partner)["rating"] == "sfw"
    # carol is not listed: her name is only a claim (comfy-user), so she gets the strictest maximum configured;
    # named by a trusted proxy, the default maximum.
    assert service.build("carol", partner)["rating"] == "sfw"
    assert service.build("carol", partner, authenticated=True)["rating"] == "mature_implied"


def test_enforcement_clamps_or_rejects() -> None:
    friend = ctx(affinity=40, trust=40)
    assert enforce(friend, "sfw", WORLD) == "sfw"
    assert enforce(friend, "mature_implied", WORLD, "clamp") == "sfw"
    with pytest.raises(Forbidden) as refused:
        enforce(friend, "romantic", WORLD, "reject")
    assert refused.value.status == 403 and refused.value.accepted == ["sfw"]


@pytest.mark.parametrize(("body", "field"), [
    ({"affinity": 101}, "affinity"), ({"trust": -1}, "trust"), ({"world_id": "mars"}, "world_id"),
    ({"max_rating": "x-rated"}, "max_rating"), ({"requested_rating": "nc17"}, "requested_rating"),
    ({"enforcement": "maybe"}, "enforcement"), ({"mood": 3}, "mood"),
])
def test_bad_input_names_the_field(body: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        SocialService(None).build("default", body)
    assert exc.value.field == field


def test_social_context_route(server) -> None:
    status, body = server.post("/atelier/social-context/build", {
        "affinity": 80, "trust": 80, "chemistry": 80, "npc_id": "mira", "requested_rating": "restricted"})
    assert status == 200 and body["tier"] == "partner" and body["allowed_rating"] == "mature_implied"
    assert body["npc_id"] == "mira" and body["validation"] == {"errors": [], "warnings": []}
    status, body = server.post("/api/atelier/social-context/build", {
        "affinity": 20, "trust": 20, "requested_rating": "romantic", "enforcement": "reject"})
    assert status == 403 and body["field"] == "requested_rating" and body["accepted"] == ["sfw"]
    status, body = server.post("/atelier/social-context/build", {"affinity": "lots"})
    assert status == 400 and body["field"] == "affinity"
    assert server.post("/atelier/social-context/build", raw=b"[")[0] == 400
    assert "default" in server.get("/atelier/social-context/worlds")[1]["worlds"]
