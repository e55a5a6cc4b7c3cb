"""Safety: ``POST /generations`` takes a social context (clamped or rejected by the Social Context node's rules,
its prompt additions applied, the record keeping it), and every clamp or rejection of a rating, refused
prompt-variable value and request refused for isolation reasons lands in the violation log, per user (an
operator reads everyone's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from atelier.nodes.core.social.service import SocialService
from atelier.nodes.host import Atelier, Settings, wiring
from conftest import Client, serve_app


@pytest.fixture
def home(tmp_path: Path) -> Path:
    data = tmp_path / "home" / "data"
    data.mkdir(parents=True)
    (data / "social.yaml").write_text("default_max_rating: mature_implied\nusers: {alice: romantic, bob: sfw}\n")
    return tmp_path / "home"


@pytest.fixture
def api(home: Path) -> Iterator[Client]:
    settings = Settings.standalone(home, {"ATELIER_OPERATORS": "root"})
    yield from serve_app(wiring.app(Atelier(settings)))


def log(api: Client, user: str, query: str = "") -> list[dict[str, Any]]:
    status, body = api.get(f"/atelier/violations{query}", headers={"comfy-user": user})
    assert status == 200, body
    return list(body["entries"])


CONTEXT = {"affinity": 80, "trust": 80, "chemistry": 80, "tension": 0, "npc_id": "mira", "world_id": "default",
           "requested_rating": "mature_implied"}


def test_a_generation_takes_a_social_context_clamped_and_kept_in_its_record(api: Client) -> None:
    status, record = api.post("/atelier/generations", {
        "operation_type": "txt2img", "prompt": "a walk by the river", "parameters": {"negative": "blurry"},
        "social_context": CONTEXT}, headers={"comfy-user": "alice"})
    assert status == 201, record
    social = record["parameters"]["social"]
    assert social["requested_rating"] == "mature_implied" and social["allowed_rating"] == "romantic"
    assert "user" in social["clamped_by"]
    assert record["prompt_text"] == "a walk by the river, romantic atmosphere, tender, affectionate, fully clothed"
    assert record["parameters"]["negative"] == "blurry, nsfw, nudity, explicit"
    (entry,) = log(api, "alice")
    assert entry["kind"] == "rating_clamped" and entry["source"] == "POST /generations"
    assert entry["asked"].startswith("rating mature_implied") and entry["applied"] == "rating romantic"
    assert "lowered by the user maximum" in entry["why"]


def test_a_rejected_rating_is_refused_and_logged(api: Client) -> None:
    status, refused = api.post("/atelier/generations", {
        "operation_type": "txt2img", "prompt": "a walk", "social_context": {**CONTEXT, "enforcement": "reject"}},
        headers={"comfy-user": "bob"})
    assert status == 403 and refused["field"] == "requested_rating"
    assert api.get("/atelier/generations", headers={"comfy-user": "bob"})[1]["items"] == []  # nothing recorded
    (entry,) = log(api, "bob")
    assert entry["kind"] == "rating_rejected" and entry["applied"] == "refused (403)"
    status, bad = api.post("/atelier/generations", {"operation_type": "txt2img", "prompt": "x",
                                                    "social_context": {**CONTEXT, "world_id": "nowhere"}})
    assert status == 400 and bad["field"] == "world_id"


def test_refused_variables_and_other_users_records_are_logged_per_user(api: Client) -> None:
    status, refused = api.post("/atelier/generations", {"operation_type": "txt2img", "prompt": "a {{x}}",
                                                        "variables": {"x": "y" * 5000}}, headers={"comfy-user": "bob"})
    assert status == 413 and refused["field"] == "variables.x"
    status, mine = api.post("/atelier/generations", {"operation_type": "txt2img", "prompt": "alice's"},
                            headers={"comfy-user": "alice"})
    assert api.get(f"/atelier/generations/{mine['id']}", headers={"comfy-user": "bob"})[0] == 404
    assert api.get(f"/atelier/generations/{mine['id']}/graph", headers={"comfy-user": "bob"})[0] == 404
    kinds = [(e["kind"], e["asked"]) for e in log(api, "bob")]
    assert ("isolation_refused", f"record {mine['id']}") in kinds and kinds.count(kinds[0]) == 2
    assert any(k == "variable_refused" and a.startswith("variables.x") for k, a in kinds)
    assert log(api, "alice") == []  # bob's entries are bob's
    assert [e["kind"] for e in log(api, "bob", "?kind=variable_refused")] == ["variable_refused"]
    status, denied = api.get("/atelier/violations?all=1", headers={"comfy-user": "bob"})
    assert status == 403 and denied["field"] == "all"
    assert log(api, "bob")[0]["asked"] == "everyone's safety log"  # asking for everyone's is itself logged
    everyone = api.get("/atelier/violations?all=1", headers={"comfy-user": "root"})[1]
    assert everyone["operator"] is True and {e["user"] for e in everyone["entries"]} == {"bob"}
    assert api.get("/atelier/violations?kind=nope", headers={"comfy-user": "bob"})[0] == 400


def test_the_node_applies_the_strictest_maximum_when_the_user_is_not_known(home: Path) -> None:
    entries: list[tuple[str, ...]] = []
    social = SocialService(home / "data", lambda *entry: entries.append(entry))
    known = social.build("alice", CONTEXT, source="node")
    unknown = social.build(None, CONTEXT, source="node")
    assert known["allowed_rating"] == "romantic" and unknown["allowed_rating"] == "sfw"  # bob's sfw is strictest
    assert any("not known" in w and "strictest maximum applies (sfw)" in w for w in unknown["warnings"])
    assert [(e[0], e[1], e[2]) for e in entries] == [("alice", "rating_clamped", "node"),
                                                    ("(unknown)", "rating_clamped", "node")]


def test_a_social_contexts_addition_reaches_what_runs_for_a_versioned_or_templated_prompt(
        on_comfyui: Any, fake_comfyui: Any) -> None:
    """The rating's prompt addition goes after the prompt as rendered (a family's version and a template with
    variables alike) and into the graph's text that is that prompt: the record and the queued graph agree."""
    from atelier.nodes.host import wiring
    from conftest import serve_app

    for api in serve_app(wiring.app(on_comfyui)):
        status, _ = api.post("/atelier/generations/prompts/hero", {"template": "a portrait of {{name}}"})
        assert status == 201

        def graph() -> dict[str, Any]:
            return {"5": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait of Ann", "clip": ["1", 1]}},
                    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}}}

        for prompt in ({"prompt_family": "hero"}, {"prompt": "a portrait of {{name}}"}):
            status, record = api.post("/atelier/generations", {
                "operation_type": "txt2img", **prompt, "variables": {"name": "Ann"}, "graph": graph(),
                "social_context": CONTEXT})
            assert status == 201, record
            addition = record["parameters"]["social"]["prompt_addition"]
            assert addition and record["prompt_text"] == f"a portrait of Ann, {addition}"
            queued = fake_comfyui.graphs[record["comfy_prompt_id"]]
            assert queued["5"]["inputs"]["text"] == record["prompt_text"] and queued["6"]["inputs"]["text"] == "blurry"
        assert record["prompt_source"] == "inline"
        versioned = api.get("/atelier/generations?limit=2")[1]["items"][1]
        assert versioned["prompt_source"] == "versioned" and versioned["prompt_text"].startswith("a portrait of Ann, ")
        before = log(api, "default")
        for parameters in ("ab", 5, ["a"]):
            for extra in ({"seeds": {"strategy": "fixed"}}, {"social_context": CONTEXT}):
                status, refused = api.post("/atelier/generations", {
                    "operation_type": "txt2img", "prompt": "x", "parameters": parameters, **extra})
                assert status == 400 and refused["field"] == "parameters", refused
        assert log(api, "default") == before  # refused before the rating was asked: nothing to log
