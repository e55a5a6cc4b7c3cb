"""Two users on one server: every read, write, list, rate and cancel across users is refused (404, as for
what does not exist), ids never reach outside their owner's folder, symbolic links are never followed, and a
user name that is only a claim gets the strictest rating."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, serve_app

ALICE, BOB = {"comfy-user": "alice"}, {"comfy-user": "bob"}
TRAVERSAL = "..%2F..%2F..%2Fbob%2Fatelier%2Fpresets%2Fsecret"


def as_user(server: Client, headers: dict[str, str]) -> Any:
    class User:
        def get(self, path: str) -> tuple[int, Any]:
            return server.get(path, headers=headers)

        def post(self, path: str, body: Any = None) -> tuple[int, Any]:
            return server.post(path, body, headers=headers)

        def put(self, path: str, body: Any = None) -> tuple[int, Any]:
            return server.put(path, body, headers=headers)

        def delete(self, path: str) -> tuple[int, Any]:
            return server.delete(path, headers=headers)
    return User()


def test_a_preset_id_never_reaches_another_users_folder(server: Client) -> None:
    alice, bob = as_user(server, ALICE), as_user(server, BOB)
    assert bob.post("/atelier/presets", {"id": "secret", "extends": "ultra", "image": {"steps": 99}})[0] == 201
    assert alice.post("/atelier/presets", {"id": "mine", "extends": "high"})[0] == 201
    for path in (f"/atelier/presets/{TRAVERSAL}", "/atelier/presets/secret", "/atelier/presets/..%2Fbob%2Fsecret"):
        status, body = alice.get(path)
        assert status == 404 and "99" not in json.dumps(body), (path, body)
    assert alice.post(f"/atelier/presets/{TRAVERSAL}/apply", {})[0] == 404
    for tier in ("../../../bob/atelier/presets/secret", "secret", "bob/secret"):
        status, body = alice.post("/atelier/estimate", {"preset": tier, "template": {}})
        assert status == 404 and body["field"] == "preset", body
        status, body = alice.post("/atelier/compare", {"presets": [tier]})
        assert status == 400 and body["field"] == "presets" and "secret" not in body["accepted"], body
    status, body = alice.get(f"/atelier/pipelines/shot_generation/summary/{TRAVERSAL}")
    assert status == 400 and body["field"] == "tier"
    assert alice.put(f"/atelier/presets/{TRAVERSAL}", {"extends": "draft"})[0] in (400, 404)
    assert alice.delete(f"/atelier/presets/{TRAVERSAL}")[0] == 404
    assert bob.get("/atelier/presets/secret")[1]["image"]["steps"] == 99  # untouched, still bob's
    assert [p["id"] for p in alice.get("/atelier/presets")[1]["presets"]][-1] == "mine"


def test_records_feedback_families_and_telemetry_belong_to_their_user(server: Client) -> None:
    alice, bob = as_user(server, ALICE), as_user(server, BOB)
    assert bob.post("/atelier/generations/prompts/hero", {"template": "bob's hero {{name}}"})[0] == 201
    status, record = bob.post("/atelier/generations", {"operation_type": "image_generation", "prompt_family": "hero",
                                                       "variables": {"name": "Mira"}, "parameters": {"seed": 1}})
    assert status == 201 and record["prompt_text"] == "bob's hero Mira"
    assert alice.get("/atelier/generations")[1]["items"] == []
    assert alice.get(f"/atelier/generations/{record['id']}")[0] == 404
    assert alice.get(f"/atelier/generations/{record['id']}/why")[0] == 404
    assert alice.post(f"/atelier/generations/{record['id']}/feedback", {"rating": 1})[0] == 404
    assert alice.post(f"/atelier/generations/{record['id']}/cancel")[0] == 404
    assert alice.get("/atelier/generations/prompts")[1]["families"] == []
    # alice's "hero" is her own family: bob's next record still renders bob's text
    assert alice.post("/atelier/generations/prompts/hero", {"template": "alice's text"})[1]["version"] == 1
    again = bob.post("/atelier/generations", {"operation_type": "image_generation", "prompt_family": "hero",
                                              "variables": {"name": "Ada"}})[1]
    assert again["prompt_text"] == "bob's hero Ada"
    assert alice.post("/atelier/generations/validate", {"operation_type": "image_generation",
                                                        "prompt_family": "hero"})[1]["prompt"] == "alice's text"
    status, checked = alice.post("/atelier/generations/validate", {"operation_type": "image_generation",
                                                                   "prompt": "bob's hero Mira", "parameters": {"seed": 1}})
    assert status == 200 and checked["identical"] == []  # bob's identical run is not alice's to see
    assert [r["id"] for r in bob.get("/atelier/generations")[1]["items"]] == [again["id"], record["id"]]
    assert bob.post(f"/atelier/generations/{record['id']}/feedback", {"rating": 5})[0] == 200
    assert bob.post(f"/atelier/generations/{record['id']}/cancel")[1]["status"] == "cancelled"
    assert alice.get("/atelier/generations/telemetry")[1] == {"groups": []}


def test_storyboards_belong_to_their_user_and_links_are_not_followed(server: Client, storyboard_root: Path,
                                                                     tmp_path: Path) -> None:
    from atelier.nodes.core.storyboard.curate import curate
    from atelier.nodes.core.storyboard.spec import Storyboard, chain_settings

    board = Storyboard.from_text("a fox | a river")
    curate(board, chain_settings(1, {"variations": 2}), storyboard_root / "bobs", "draft", owner="bob")
    curate(board, chain_settings(1, {"variations": 2}), storyboard_root / "alices", "draft", owner="alice")
    alice, bob = as_user(server, ALICE), as_user(server, BOB)
    assert [s["id"] for s in alice.get("/atelier/storyboards")[1]["storyboards"]] == ["alices"]
    assert alice.get("/atelier/storyboards/bobs")[0] == 404
    assert alice.get("/atelier/storyboards/bobs/files/clip_001_start.png")[0] == 404
    assert bob.get("/atelier/storyboards/bobs/files/clip_001_start.png")[0] == 200
    # symbolic links: a whole folder, a manifest and a frame pointing outside are never followed
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"\x89PNG secret")
    (storyboard_root / "linked").symlink_to(storyboard_root / "alices", target_is_directory=True)
    own = storyboard_root / "alices"
    (own / "clip_001_start.png").unlink()
    (own / "clip_001_start.png").symlink_to(outside / "secret.png")
    assert [s["id"] for s in alice.get("/atelier/storyboards")[1]["storyboards"]] == ["alices"]
    status, body = alice.get("/atelier/storyboards/alices/files/clip_001_start.png")
    assert status == 404 and "secret" not in json.dumps(body) and str(tmp_path) not in json.dumps(body)
    (own / "manifest.json").rename(outside / "manifest.json")
    (own / "manifest.json").symlink_to(outside / "manifest.json")
    assert alice.get("/atelier/storyboards")[1]["storyboards"] == []


def test_an_unlisted_user_gets_the_strictest_rating(server: Client, settings: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "social.yaml").write_text("default_max_rating: mature_implied\nusers: {bob: romantic}\n")
    partner = {"affinity": 90, "trust": 90, "chemistry": 90, "requested_rating": "restricted"}
    status, bobs = server.post("/atelier/social-context/build", partner, headers=BOB)
    assert status == 200 and bobs["allowed_rating"] == "romantic"
    for who in ({"comfy-user": "mallory"}, {}):  # a name nobody listed, or none at all
        status, body = server.post("/atelier/social-context/build", partner, headers=who)
        assert status == 200 and body["allowed_rating"] == "romantic"  # the strictest configured, not the default


@pytest.fixture
def proxied(tmp_path: Path, service: Any) -> Any:
    from atelier.nodes.host import Atelier, Settings, wiring

    settings = Settings.standalone(tmp_path / "proxied", environ={"ATELIER_TRUSTED_USER_HEADER": "X-Forwarded-User"})
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "social.yaml").write_text("default_max_rating: mature_implied\nusers: {bob: sfw}\n")
    yield from serve_app(wiring.app(Atelier(settings)))


def test_a_trusted_proxy_names_the_user(proxied: Client) -> None:
    status, body = proxied.get("/atelier/generations", headers={"comfy-user": "bob"})  # a claim is not enough
    assert status == 401 and body["field"] == "X-Forwarded-User"
    partner = {"affinity": 90, "trust": 90, "chemistry": 90, "requested_rating": "restricted"}
    status, body = proxied.post("/atelier/social-context/build", partner, headers={"X-Forwarded-User": "carol"})
    assert status == 200 and body["allowed_rating"] == "mature_implied"  # named by the proxy: the default maximum
    status, body = proxied.post("/atelier/social-context/build", partner, headers={"X-Forwarded-User": "bob"})
    assert body["allowed_rating"] == "sfw"
    assert os.environ.get("ATELIER_TRUSTED_USER_HEADER") is None  # read from Settings, not the process
