"""Prompt analysis, parameters under constraints, explanations, the routes and the CLI of intelligent generation."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from atelier.nodes.core.enhance.rules import rules as prompt_rules
from atelier.nodes.core.intelligence.analysis import analyse, lexicon
from atelier.nodes.core.intelligence.explain import PNG_KEY, Explanation, parse
from atelier.nodes.core.intelligence.optimise import Constraints, NoPlanFits, optimise
from atelier.nodes.host import Atelier, Settings
from llm_servers import ScriptedLLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import lora_files as lf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("prompt", "style", "content", "complexity"), [
    ("anime girl with magical powers", "anime", "character", "simple"),
    ("photorealistic portrait of an old fisherman, cinematic lighting, moody", "photo", "portrait", "simple"),
    ("a watercolor landscape, mountains and a lake at dawn", "painting", "landscape", "simple"),
    ("two knights fighting a dragon next to a castle, a sign that says \"halt\", oil painting", "painting",
     "character", "very_complex"),
    ("3d render of a perfume bottle, studio lighting", "3d", "product", "simple"),
    ("a cat next to a dog", "unspecified", "animal", "moderate"),
])
def test_analysis_names_style_content_and_complexity_with_the_features_that_decided(
        prompt: str, style: str, content: str, complexity: str) -> None:
    result = analyse(prompt)
    assert (result.style, result.content_type, result.complexity) == (style, content, complexity)
    assert complexity == "simple" or result.complexity_features  # what decided it is named
    assert result.to_dict() == analyse(prompt).to_dict()  # deterministic


def test_analysis_finds_subjects_lighting_and_mood() -> None:
    result = analyse("photorealistic portrait of an old fisherman, golden hour, moody and serene",
                     "blurry, cartoon")
    assert result.subjects == ["old fisherman"]
    assert result.lighting == ["golden hour"] and result.mood == ["moody", "serene"]
    assert "cartoon" not in result.terms and "fisherman" in result.terms
    assert analyse("two red cats and a blue car").subjects == ["two red cats", "blue car"]


def test_the_style_lexicon_is_the_enhancers() -> None:
    """Every style word the enhancer knows (and adds) has a category in the analysis, so they never drift."""
    categorised = {cue for cues in lexicon()["styles"].values() for cue in cues}
    style = prompt_rules()["aspects"]["style"]
    assert set(style["cues"]) <= categorised
    for addition in style["additions"]:
        assert analyse(addition).style != "unspecified", addition


def test_an_llm_refines_the_analysis_and_a_dead_one_falls_back_in_time(tmp_path: Path) -> None:
    answer = json.dumps({"subjects": ["sorceress"], "style": "anime", "content_type": "portrait",
                         "lighting": ["glow"], "mood": ["made-up"], "complexity": "moderate"})
    good = ScriptedLLM(lambda body, request: answer)
    good_url = good.start()

    async def stall(body, request):
        await asyncio.sleep(4)  # past the 1 s deadline
        return "{}"

    slow = ScriptedLLM(stall)
    slow_url = slow.start()
    try:
        data = tmp_path / "home" / "data"
        data.mkdir(parents=True)
        (data / "llm.json").write_text(json.dumps({"endpoints": {
            "good": {"backend": "ollama", "url": good_url, "model": "m"},
            "slow": {"backend": "ollama", "url": slow_url, "model": "m"}}}))
        atelier = Atelier(Settings.standalone(tmp_path / "home", environ={}))
        prompt = "a sorceress with a magic glow, portrait"
        refined = asyncio.run(atelier.intelligence.analyse({"prompt": prompt, "llm_endpoint": "good"}))
        assert refined.source == "llm" and refined.subjects == ["sorceress"] and refined.style == "anime"
        assert refined.mood == analyse(prompt).mood  # words not in the prompt are not taken
        started = time.monotonic()
        fallback = asyncio.run(atelier.intelligence.analyse({"prompt": prompt, "llm_endpoint": "slow",
                                                             "llm_timeout_s": 1}))
        assert time.monotonic() - started < 3
        assert fallback.source == "rule" and "LLM refinement failed" in fallback.notes[0]
    finally:
        good.stop()
        slow.stop()


def test_constraints_resolve_in_order_and_the_same_inputs_give_the_same_plan(atelier: Atelier) -> None:
    quality = atelier.quality
    free = optimise(quality, "alice", "sd15", Constraints(priority="quality"), analyse("a castle"))
    assert free.tier == "ultra" and free.cuts == []
    speed = optimise(quality, "alice", "sd15", Constraints(priority="speed"), analyse("a castle"))
    assert speed.tier == "draft"
    ultra_s = free.estimate.time_expected_s
    tight = Constraints(max_time_s=ultra_s * 0.5, priority="quality")
    plan = optimise(quality, "alice", "sd15", tight, analyse("a castle"))
    assert plan.tier in ("high", "standard") and plan.cuts[0].startswith("ultra over budget")
    assert plan.estimate.time_expected_s <= ultra_s * 0.5
    assert optimise(quality, "alice", "sd15", tight, analyse("a castle")).to_dict() == plan.to_dict()
    # below every tier: steps, then hires passes, then resolution, then batch, in that order
    draft = optimise(quality, "alice", "sd15", Constraints(priority="speed"), None, 512, 512, 8)
    squeezed = optimise(quality, "alice", "sd15", Constraints(max_time_s=draft.estimate.time_expected_s * 0.3,
                                                              priority="speed"), None, 512, 512, 8)
    kinds = [c.split()[0] for c in squeezed.cuts[1:]]
    order = ["steps", "size", "batch"]
    assert kinds == sorted(kinds, key=order.index) and "batch" in kinds
    with pytest.raises(NoPlanFits) as refused:
        optimise(quality, "alice", "sdxl", Constraints(max_time_s=0.01), None)
    body = refused.value.to_dict()
    assert refused.value.status == 422 and body["cheapest"]["tier"] == "draft" and body["estimate"]["time_s"]
    with pytest.raises(NoPlanFits, match="VRAM"):
        optimise(quality, "alice", "flux_dev", Constraints(max_vram_gb=1.0), None)


def test_the_analysis_shapes_size_steps_and_cfg_and_says_why(atelier: Atelier) -> None:
    quality = atelier.quality
    portrait = optimise(quality, "alice", "sdxl", Constraints(priority="speed"), analyse("portrait of a woman"))
    landscape = optimise(quality, "alice", "sdxl", Constraints(priority="speed"), analyse("mountain landscape"))
    assert portrait.params["height"] > portrait.params["width"]
    assert landscape.params["width"] > landscape.params["height"]
    assert any("portrait at 2:3" in r for r in portrait.reasons)
    given = optimise(quality, "alice", "sdxl", Constraints(priority="speed"), analyse("portrait"), 1024, 1024)
    assert given.params["width"] == given.params["height"]  # the user's size is the user's
    hard = analyse("two knights fighting a dragon next to a castle, a sign that says \"halt\"")
    simple = optimise(quality, "alice", "sd15", Constraints(priority="speed"), analyse("a castle"))
    complex_plan = optimise(quality, "alice", "sd15", Constraints(priority="speed"), hard)
    assert complex_plan.params["steps"] > simple.params["steps"]
    assert any("very complex prompt" in r for r in complex_plan.reasons)


def test_decide_explains_and_manual_mode_says_where_the_user_differs(atelier: Atelier, tmp_path: Path) -> None:
    root = atelier.settings.lora_folders[0]
    lf.write_safetensors(root / "knight.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "knight", {"knight": 20, "armor": 9}))
    lf.write_safetensors(root / "xl_knight.safetensors", lf.kohya_sdxl(), lf.kohya_metadata(
        "sdxl_base_v1-0", "xl knight", {"knight": 20}))
    decision = atelier.intelligence.decide("alice", {"prompt": "a knight in armor", "family": "sd15",
                                                     "constraints": {"priority": "balanced"}})
    explanation = decision.explanation
    assert [x["name"] for x in explanation.loras] == ["knight.safetensors"]
    assert {"name": "xl_knight.safetensors"}.items() <= explanation.loras_filtered[0].items()
    assert explanation.parameters["tier"] == "high" and explanation.performance["estimate"]["time_s"]["expected"]
    text = explanation.text()
    assert "knight.safetensors" in text and "not used: xl_knight.safetensors" in text
    assert parse(explanation.to_json()).to_dict() == explanation.to_dict()
    assert PNG_KEY == "atelier_explanation"
    manual = atelier.intelligence.decide("alice", {"prompt": "a knight in armor", "family": "sd15", "mode": "MANUAL",
                                                   "tier": "draft", "loras": [["xl_knight.safetensors", 1.2]]})
    assert manual.plan.tier == "draft"
    assert "tier draft (recommended high)" in manual.explanation.differences
    assert any("xl_knight.safetensors @1.2 (not recommended)" in d for d in manual.explanation.differences)
    measured = explanation.with_measured(12.5)
    assert measured.performance["measured_s"] == 12.5 and "measured: 12.50 s" in measured.text()
    assert Explanation.of(measured.to_dict()).performance["measured_s"] == 12.5


def test_routes_list_filter_override_and_recommend(server, atelier: Atelier) -> None:
    root = atelier.settings.lora_folders[0]
    lf.write_safetensors(root / "watercolor.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "watercolor", {"watercolor": 20}))
    lf.write_safetensors(root / "xl" / "xl_watercolor.safetensors", lf.kohya_sdxl(), lf.kohya_metadata(
        "sdxl_base_v1-0", "xl watercolor", {"watercolor": 20}))
    lf.write_safetensors(root / "mystery.safetensors", {"foo.lora_down.weight": (4, 8)})
    (root / "broken.safetensors").write_bytes(b"\x00" * 3)
    status, listing = server.get("/atelier/loras")
    assert status == 200 and listing["count"] == 3 and listing["problems"][0]["name"] == "broken.safetensors"
    assert str(root) not in json.dumps(listing)
    status, only_xl = server.get("/atelier/loras?family=sdxl")
    assert [c["name"] for c in only_xl["cards"]] == ["xl/xl_watercolor.safetensors"]
    assert server.get("/atelier/loras?family=sd9")[0] == 400
    assert server.get("/atelier/loras?sort=x")[0] == 400
    mystery = next(c for c in listing["cards"] if c["name"] == "mystery.safetensors")
    assert server.get(f"/atelier/loras/{mystery['id']}")[1]["family"]["family"] == "unknown"
    assert server.get("/atelier/loras/..%2F..%2Fetc")[0] in (400, 404)
    status, changed = server.put(f"/atelier/loras/{mystery['id']}/family", {"family": "sd15"},
                                 headers={"comfy-user": "alice"})
    assert status == 200 and changed["family"]["source"] == "override"
    assert server.get(f"/atelier/loras/{mystery['id']}", headers={"comfy-user": "bob"})[1]["family"]["family"] == \
        "unknown"
    assert server.put(f"/atelier/loras/{mystery['id']}/family", {"family": "sd15", "x": 1})[0] == 400

    status, rec = server.post("/atelier/intelligence/loras", {"prompt": "a watercolor harbour", "family": "sd15"})
    assert status == 200 and [r["name"] for r in rec["loras"]] == ["watercolor.safetensors"]
    assert "'watercolor'" in rec["loras"][0]["reason"]
    assert any(f["name"] == "xl/xl_watercolor.safetensors" and "SDXL" in f["reason"] for f in rec["filtered"])
    status, plan = server.post("/atelier/intelligence/optimize", {"prompt": "a harbour", "family": "sd15",
                                                                  "constraints": {"max_time_s": 0.01}})
    assert status == 422 and plan["field"] == "constraints" and plan["cheapest"]["tier"] == "draft"
    status, bad = server.post("/atelier/intelligence/optimize", {"prompt": "x", "constraints": {"priority": "fast"}})
    assert status == 400 and bad["field"].startswith("constraints")
    assert server.post("/atelier/intelligence/decide", {"prompt": "x", "mode": "YOLO"})[0] == 400
    status, decided = server.post("/atelier/intelligence/decide", {"prompt": "a watercolor harbour", "family": "sd15"})
    assert status == 200 and decided["explanation"]["loras"][0]["name"] == "watercolor.safetensors"
    status, analysed = server.post("/atelier/intelligence/analyze", {"prompt": "a moody harbour at dusk"})
    assert status == 200 and analysed["mood"] == ["moody"] and analysed["summary"]


def test_cli_lists_analyses_and_recommends(tmp_path: Path) -> None:
    folder = tmp_path / "my_loras"
    lf.write_safetensors(folder / "ink.safetensors", lf.kohya_sdxl(), lf.kohya_metadata(
        "sdxl_base_v1-0", "ink", {"ink": 20}))
    (folder / "junk.safetensors").write_bytes(b"PK\x03\x04junk")
    env = {"ATELIER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "atelier", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listing = cli("loras", "--folder", str(folder))
    assert "ink.safetensors  [sdxl 0.95 by metadata]" in listing and "problem: junk.safetensors: a zip" in listing
    assert "complex" in cli("analyze", "two knights fighting next to a tower")
    recommended = cli("recommend-loras", "ink drawing of a crow", "--family", "sdxl", "--folder", str(folder))
    assert "ink.safetensors @0.8" in recommended and "matched 'ink'" in recommended


def test_clip_text_similarity_ranks_loras_when_the_scorers_clip_is_found(tmp_path: Path) -> None:
    """With the scorers' CLIP in its folder (a tiny random open_clip model built here), every allowed LoRA gets
    the cosine of its text against the prompt's; with no word in common, the higher cosine ranks first and the
    reason says so. Without the weights, the ranking is lexical only and says nothing of CLIP."""
    from tiny_models import open_clip_folder

    home = tmp_path / "home"
    root = home / "models" / "loras"
    for name, tags in (("harbour", {"harbour": 9, "boats": 4}), ("forest", {"forest": 9, "moss": 4}),
                       ("city", {"city": 9, "neon": 4})):
        lf.write_safetensors(root / f"{name}.safetensors", lf.kohya_sd1(), lf.kohya_metadata("sd_v1", name, tags))
    body = {"prompt": "an old sailor mending nets", "family": "sd15",
            "preferences": {"min_confidence": 0.0, "max_loras": 3}}
    plain = Atelier(Settings.standalone(home, environ={}))
    assert plain.intelligence.similarity() is None
    assert plain.intelligence.decide("alice", body).recommendations.chosen == []  # no word in common

    open_clip_folder(home / "models" / "scorers" / "clip-vit-large-patch14")
    atelier = Atelier(Settings.standalone(home, environ={}))
    cosine = atelier.intelligence.similarity()
    assert cosine is not None
    cards = {c.name: c for c in atelier.loras.scan("alice").cards}
    from atelier.nodes.core.loras.recommend import card_text

    expected = dict(zip(sorted(cards), cosine(body["prompt"], [card_text(cards[n]) for n in sorted(cards)]),
                        strict=True))
    ranked = atelier.intelligence.decide("alice", body).recommendations
    found = [*ranked.chosen, *ranked.candidates]
    positive = sorted((n for n, c in expected.items() if c > 0), key=lambda n: -expected[n])
    assert positive, expected  # the tiny model is seeded: at least one text points the prompt's way
    assert [r.card.name for r in ranked.chosen] == positive[:len(ranked.chosen)]
    for rec in found:
        assert rec.similarity == pytest.approx(expected[rec.card.name], abs=1e-6)
        assert f"CLIP text similarity {expected[rec.card.name]:.2f}" in rec.reason
