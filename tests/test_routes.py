"""Atelier's routes through a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import threading

import pytest
from conftest import Client


def test_presets_crud_round_trip(server: Client) -> None:
    status, listing = server.get("/atelier/presets")
    assert status == 200 and [p["id"] for p in listing["presets"]] == ["draft", "standard", "high", "ultra"]
    assert listing["presets"][0]["estimate"]["time_s"]["expected"] > 0

    status, created = server.post("/atelier/presets", {"id": "cinematic", "extends": "high",
                                                       "image": {"steps": 40}})
    assert status == 201 and created["image"]["steps"] == 40 and created["revision"] == 1
    assert created["lineage"] == ["cinematic", "high"] and created["estimate"]["time_s"]["expected"] > 0
    status, fetched = server.get("/atelier/presets/cinematic")
    assert status == 200 and fetched["image"]["steps"] == 40
    status, updated = server.put("/atelier/presets/cinematic", {"extends": "high", "image": {"steps": 44}},
                                 headers={"If-Match": "1"})
    assert status == 200 and updated["image"]["steps"] == 44 and updated["revision"] == 2
    status, stale = server.put("/atelier/presets/cinematic", {"image": {"steps": 45}}, headers={"If-Match": "1"})
    assert status == 409 and stale["field"] == "revision"
    status, _ = server.delete("/atelier/presets/cinematic")
    assert status == 200
    assert server.get("/atelier/presets/cinematic")[0] == 404


def test_routes_are_per_user(server: Client) -> None:
    server.post("/atelier/presets", {"id": "alices"}, headers={"comfy-user": "alice"})
    assert "alices" in [p["id"] for p in server.get("/atelier/presets", headers={"comfy-user": "alice"})[1]["presets"]]
    assert "alices" not in [p["id"] for p in server.get("/atelier/presets")[1]["presets"]]
    status, body = server.get("/atelier/presets", headers={"comfy-user": "../../etc"})
    assert status == 400 and body["field"] == "user"


def test_error_statuses(server: Client) -> None:
    assert server.get("/atelier/presets/nope")[0] == 404
    status, body = server.post("/atelier/presets", {"id": "high"})
    assert status == 409 and body["field"] == "id"
    server.post("/atelier/presets", {"id": "twice"})
    assert server.post("/atelier/presets", {"id": "twice"})[0] == 409
    status, body = server.put("/atelier/presets/high", {"image": {"steps": 3}})
    assert status == 403 and "built-in" in body["error"]
    assert server.delete("/atelier/presets/ultra")[0] == 403
    status, body = server.post("/atelier/presets", {"id": "x", "image": {"steps": 500}})
    assert status == 400 and body["field"] == "image.steps" and body["value"] == 500
    status, body = server.post("/atelier/presets", raw=b"{not json")
    assert status == 400 and body["field"] == "body"
    status, body = server.get("/atelier/pipelines/shot_generation/summary/mega")
    assert status == 400 and body["field"] == "tier" and "ultra" in body["accepted"]
    assert server.get("/atelier/pipelines/nope/summary/high")[0] == 404
    status, body = server.get("/atelier/recommend?use_case=wedding")  # any text: none known, said so
    assert status == 200 and body["matched_use_case"] is None and body["tier"] == "standard"
    assert body["confidence"] == 0.3 and "names none of the known use cases" in body["reasoning"]
    status, body = server.get("/atelier/recommend?use_case=YouTube%20thumbnail")
    assert status == 200 and body["matched_use_case"] == "social_media" and body["tier"] == "standard"
    assert body["matched_words"] == ["thumbnail", "youtube"] and body["confidence"] == round(0.72 * 0.75, 3)
    assert "read as social media (matched 'thumbnail', 'youtube')" in body["reasoning"]
    status, body = server.get("/atelier/recommend?use_case=a%20poster%20for%20the%20gallery")
    assert body["matched_use_case"] == "print" and body["tier"] == "ultra" and body["confidence"] == 0.54
    assert server.get("/atelier/recommend?use_case=print")[1]["confidence"] == 0.9  # a known one: as before
    assert server.get("/atelier/recommend?use_case=" + "x" * 201)[0] == 400
    assert server.get("/atelier/recommend")[0] == 400
    status, body = server.get("/atelier/recommend?use_case=print&width=wide")
    assert status == 400 and body["field"] == "width"


@pytest.mark.parametrize("body", [None, b"", b"[]", b"42", b'"text"', b"null", b'{"id": 5}', b'{"id": null}',
                                  b'{"image": "fast"}', b'{"id": "a", "extends": ["high"]}',
                                  b'{"id": "a", "multipliers": {"time": -1}}', b"\xff\xfe", b'{"id": "a"' * 3])
def test_garbage_never_gives_a_500(server: Client, body: bytes | None) -> None:
    for method, path in [("POST", "/atelier/presets"), ("PUT", "/atelier/presets/a"),
                         ("POST", "/atelier/presets/high/apply"), ("POST", "/atelier/estimate"),
                         ("POST", "/atelier/compare")]:
        status, answer = server.request(method, path, raw=body)
        assert 200 <= status < 500, (method, path, body, status, answer)
        if status >= 400:
            assert isinstance(answer, dict) and answer["error"]


def test_apply_route(server: Client) -> None:
    status, body = server.post("/atelier/presets/high/apply",
                               {"category": "image", "model_family": "sdxl", "inputs": ["steps", "width"]})
    assert status == 200
    assert body["parameters"]["steps"] == 35 and body["parameters"]["width"] == 1024
    assert body["parameters"]["_quality_preset"]["family"]["family"] == "sdxl"
    status, body = server.post("/atelier/presets/ultra/apply", {"template": {"inputs": ["fps"], "max_level": 2}})
    assert status == 200 and not body["compatibility"]["ok"] and len(body["compatibility"]["reasons"]) == 2
    status, body = server.post("/atelier/presets/high/apply", {"category": "image", "colour": "red"})
    assert status == 400 and body["field"] == "template.colour"


def test_pipelines_estimate_recommend_compare(server: Client) -> None:
    status, body = server.get("/atelier/pipelines")
    assert status == 200 and {p["name"] for p in body["pipelines"]} == {
        "storyboard_generation", "shot_generation", "sequence_generation"}
    status, plan = server.get("/atelier/pipelines/storyboard_generation/summary/high?model_family=sdxl")
    assert status == 200 and plan["family"]["family"] == "sdxl"
    assert plan["totals"]["time_s"]["expected"] == pytest.approx(
        sum(s["estimate"]["time_s"]["expected"] * s["runs"] for s in plan["stages"]), abs=0.05)
    status, est = server.post("/atelier/estimate", {"pipeline": "shot_generation", "tier": "draft"})
    assert status == 200 and len(est["stages"]) == 2
    status, est = server.post("/atelier/estimate", {"preset": "ultra", "template": {"model_family": "flux_dev"}})
    assert status == 200 and est["estimate"]["vram_gb"] > 20
    status, body = server.post("/atelier/estimate", {"pipeline": "shot_generation", "tier": "draft",
                                                     "parameters": {"steps": "many"}})
    assert status == 400 and body["field"] == "parameters.steps"
    status, rec = server.get("/atelier/recommend?use_case=social%20media&model_family=sdxl")
    assert status == 200 and rec["tier"] == "standard" and 0 < rec["confidence"] <= 1
    assert rec["reasoning"] and rec["alternatives"][0]["tier"] == "high"
    status, cmp = server.post("/atelier/compare", {"presets": ["draft", "ultra"], "template": {"model_family": "sdxl"}})
    assert status == 200 and [c["preset"]["id"] for c in cmp["presets"]] == ["draft", "ultra"]
    assert "steps" in cmp["differing_parameters"] and cmp["presets"][1]["vs_standard"]["time_ratio"] > 1
    status, body = server.post("/atelier/compare", {"presets": ["draft", "nope"]})
    assert status == 400 and body["field"] == "presets"


def test_api_mirror(server: Client) -> None:
    assert server.get("/api/atelier/presets")[0] == 200
    assert server.get("/api/atelier/pipelines/shot_generation/summary/low")[1]["tier"] == "draft"


def test_concurrent_writes_over_http(server: Client) -> None:
    results: list[int] = []
    barrier = threading.Barrier(10)

    def create() -> None:
        barrier.wait()
        results.append(server.post("/atelier/presets", {"id": "hot", "extends": "draft"})[0])

    threads = [threading.Thread(target=create) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * 9

    def update(i: int) -> None:
        barrier.wait()
        results.append(server.put("/atelier/presets/hot", {"extends": "draft", "image": {"steps": 10 + i}},
                                  headers={"If-Match": "1"})[0])

    results.clear()
    threads = [threading.Thread(target=update, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 9
    assert server.get("/atelier/presets/hot")[1]["revision"] == 2


def test_preset_validation_resolves_without_saving_and_names_the_bad_field(server: Client) -> None:
    status, ok = server.post("/atelier/presets/validate", {"id": "crisp", "extends": "high", "image": {"steps": 50}})
    assert status == 200 and ok["valid"] and ok["preset"]["image"]["steps"] == 50
    assert ok["preset"]["image"]["sampler"] == "dpmpp_2m"  # inherited from high
    assert ok["preset"]["estimate"]["time_s"]["expected"] > 0
    assert server.get("/atelier/presets/crisp")[0] == 404  # nothing saved

    status, bad = server.post("/atelier/presets/validate", {"id": "crisp", "extends": "high", "image": {"steps": 0}})
    assert status == 200 and not bad["valid"] and bad["field"] == "image.steps" and bad["value"] == 0
    assert not server.post("/atelier/presets/validate", {"id": "crisp", "extends": "nope"})[1]["valid"]
    assert server.post("/atelier/presets", {"id": "crisp", "extends": "high"})[0] == 201
    taken = server.post("/atelier/presets/validate", {"id": "crisp", "extends": "draft"})[1]
    assert not taken["valid"] and "already exists" in taken["error"]
    edit = server.post("/atelier/presets/validate?preset=crisp", {"id": "crisp", "extends": "draft"})[1]
    assert edit["valid"] and edit["preset"]["extends"] == "draft"
    builtin = server.post("/atelier/presets/validate?preset=high", {"id": "high"})[1]
    assert not builtin["valid"] and "built-in" in builtin["error"]
    status, raw = server.post("/atelier/presets/validate", raw=b"{not json")
    assert status == 400 and raw["field"] == "body"


def test_storyboards_are_listed_read_and_only_their_frames_served(server: Client, storyboard_root) -> None:
    from atelier.nodes.core.storyboard.curate import curate
    from atelier.nodes.core.storyboard.spec import Storyboard, chain_settings

    assert server.get("/atelier/storyboards") == (200, {"storyboards": []})
    board = Storyboard.from_text("a fox in snow | the fox runs")
    curate(board, chain_settings(1, {"variations": 2}), storyboard_root / "fox", "draft")
    (storyboard_root / "broken").mkdir()
    (storyboard_root / "broken" / "manifest.json").write_text("{not json")
    (storyboard_root / "secret.txt").write_text("no")

    status, listing = server.get("/atelier/storyboards")
    assert status == 200 and [s["id"] for s in listing["storyboards"]] == ["fox"]  # the unreadable one is left out
    assert listing["storyboards"][0]["kept"] == 2 and listing["storyboards"][0]["failed_clips"] == []
    status, manifest = server.get("/atelier/storyboards/fox")
    assert status == 200 and [f["name"] for f in manifest["frames"]] == ["clip_001_start", "clip_001_end"]
    assert manifest["files"] == ["clip_001_start.png", "clip_001_end.png", "reference.png"]
    status, png = server.get("/atelier/storyboards/fox/files/clip_001_end.png")
    assert status == 200 and png.startswith("\ufffdPNG")  # bytes of a PNG (decoded leniently by the client)
    assert server.get("/atelier/storyboards/fox/files/manifest.json")[0] == 404  # not a frame
    assert server.get("/atelier/storyboards/fox/files/..%2F..%2Fsecret.txt")[0] == 404
    assert server.get("/atelier/storyboards/nope")[0] == 404
    status, bad = server.get("/atelier/storyboards/..%2Fx")
    assert status in (400, 404)

    # a manifest naming a file outside its folder does not get it served
    tampered = storyboard_root / "fox" / "manifest.json"
    tampered.write_text(tampered.read_text().replace('"clip_001_end.png"', '"../secret.txt"'))
    assert server.get("/atelier/storyboards/fox/files/..%2Fsecret.txt")[0] == 404


def test_the_panel_page_and_its_files_are_served_and_nothing_else(server: Client) -> None:
    status, page = server.get("/atelier/ui/")
    assert status == 200 and '<main id="atelier"' in page
    assert server.get("/api/atelier/ui/")[0] == 200  # as ComfyUI mirrors routes under /api
    status, script = server.get("/atelier/ui/js/panel/panel.js")
    assert status == 200 and "export function mountPanel" in script
    assert server.get("/atelier/ui/ui/atelier.css")[0] == 200
    assert server.get("/atelier/ui")[0] == 200  # redirected to /atelier/ui/
    assert server.get("/atelier/ui/../__init__.py")[0] == 404
    assert server.get("/atelier/ui/%2e%2e/__init__.py")[0] == 404
    assert server.get("/atelier/ui/js/panel/missing.js")[0] == 404


def test_one_storyboard_folder_is_a_library_of_itself(tmp_path) -> None:
    """``atelier serve --storyboards atelier_demo`` shows curate's output folder itself."""
    from atelier.nodes.core.storyboard.curate import curate
    from atelier.nodes.core.storyboard.library import StoryboardLibrary
    from atelier.nodes.core.storyboard.spec import Storyboard, chain_settings

    out = tmp_path / "atelier_demo"
    curate(Storyboard.from_text("a fox | a river"), chain_settings(1, {"variations": 2}), out, "draft")
    library = StoryboardLibrary(out)
    assert [s["id"] for s in library.list()] == ["atelier_demo"]
    assert library.file("atelier_demo", "clip_001_start.png") == out / "clip_001_start.png"


def test_serve_refuses_a_taken_port_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    import socket

    from atelier.nodes.cli import main

    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--storyboards", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("atelier: --port=") and "cannot listen" in err and "Traceback" not in err
    assert "Atelier panel: http" not in out  # the address is printed only once the port is bound
