"""The LoRA library: family detection with its evidence, triggers, strengths, sidecars, malformed files, the cache
and per-user overrides, recommendations, and whether a LoRA's modules match a (tiny, real) model."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest
from atelier.nodes.core.base.errors import InvalidInput, NotFound
from atelier.nodes.core.intelligence.analysis import analyse
from atelier.nodes.core.loras.apply import match_modules
from atelier.nodes.core.loras.library import LoraLibrary, module_names
from atelier.nodes.core.loras.recommend import Preferences, recommend
from atelier.nodes.core.quality.tables import load_tables

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import lora_files as lf  # noqa: E402

NAMES = {p: f.base for f in load_tables().families.families.values() for p in f.match.names}
DISPLAY = {"sd15": "SD1.5", "sdxl": "SDXL", "flux": "Flux.1", "sd2": "SD2", "sd3": "SD3"}


def library(tmp_path: Path, *folders: Path) -> LoraLibrary:
    roots = list(folders) or [tmp_path / "loras"]
    return LoraLibrary(lambda: roots, tmp_path / "data", tmp_path / "users", lambda: NAMES)


def card_of(lib: LoraLibrary, name: str, user: str = "alice"):
    return next(c for c in lib.scan(user).cards if c.name == name)


def test_families_are_told_from_metadata_keys_and_shapes_with_their_evidence(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    lf.write_safetensors(root / "plain_sd1.safetensors", lf.kohya_sd1())  # no metadata at all
    lf.write_safetensors(root / "plain_sd2.safetensors", lf.kohya_sd1(context=1024))
    lf.write_safetensors(root / "kohya_xl.safetensors", lf.kohya_sdxl())
    lf.write_safetensors(root / "peft_xl.safetensors", lf.peft_sdxl())
    lf.write_safetensors(root / "kohya_flux.safetensors", lf.kohya_flux(double=2, single=2))
    lf.write_safetensors(root / "peft_flux.safetensors", lf.peft_flux())
    lf.write_safetensors(root / "spec.safetensors", {"a.lora_down.weight": (4, 8)},
                         {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"})
    lf.write_safetensors(root / "kohya_meta.safetensors", lf.kohya_sd1(), lf.kohya_metadata("sd_v1", "k"))
    lf.write_safetensors(root / "mystery.safetensors", {"foo.lora_down.weight": (4, 8)})
    lf.write_safetensors(root / "my_flux_thing.safetensors", {"foo.lora_down.weight": (4, 8)})
    lib = library(tmp_path)
    got = {c.name: c.family for c in lib.scan("alice").cards}
    assert {n: (g.family, g.source) for n, g in got.items()} == {
        "plain_sd1.safetensors": ("sd15", "keys"), "plain_sd2.safetensors": ("sd2", "keys"),
        "kohya_xl.safetensors": ("sdxl", "keys"), "peft_xl.safetensors": ("sdxl", "keys"),
        "kohya_flux.safetensors": ("flux", "keys"), "peft_flux.safetensors": ("flux", "keys"),
        "spec.safetensors": ("sdxl", "metadata"), "kohya_meta.safetensors": ("sd15", "metadata"),
        "mystery.safetensors": ("unknown", "unknown"), "my_flux_thing.safetensors": ("flux", "name")}
    # SD1 and SD2 share key names: the cross-attention width (768 / 1024) is the evidence that decides
    assert any("cross-attention width 1024" in e for e in got["plain_sd2.safetensors"].evidence)
    assert any("width 768" in e for e in got["plain_sd1.safetensors"].evidence)
    assert got["kohya_xl.safetensors"].confidence > got["my_flux_thing.safetensors"].confidence
    assert got["mystery.safetensors"].confidence == 0 and got["mystery.safetensors"].evidence


def test_sidecars_and_disagreements_change_the_family_and_its_confidence(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    pony = lf.write_safetensors(root / "pony_style.safetensors", lf.kohya_sdxl())
    lf.write_sidecars(pony, civitai={"baseModel": "Pony", "trainedWords": ["pny"]})
    a1111 = lf.write_safetensors(root / "forced.safetensors", lf.kohya_sdxl())
    lf.write_sidecars(a1111, a1111={"sd version": "SD1"})  # A1111's sidecar overrides detection...
    lf.write_safetensors(root / "liar.safetensors", lf.kohya_sd1(), lf.kohya_metadata("sdxl_base_v1-0", "l"))
    lib = library(tmp_path)
    pony_card, forced, lying = (card_of(lib, n) for n in ("pony_style.safetensors", "forced.safetensors",
                                                          "liar.safetensors"))
    assert (pony_card.family.family, pony_card.family.variant) == ("sdxl", "pony")
    assert forced.family.family == "sd15" and forced.family.source == "sidecar_sd_version"
    # ...but when the tensors disagree the confidence drops and the evidence says so
    assert forced.family.confidence < 0.9 and any("disagreement" in e for e in forced.family.evidence)
    assert lying.family.family == "sdxl" and lying.family.confidence < 0.95


def test_triggers_tags_and_strength_come_from_metadata_and_sidecars_in_the_documented_order(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    frequency = json.dumps({"10_a": {"watercolor": 10, "1girl": 4}, "5_b": {"watercolor": 3, "flower": 9}})
    path = lf.write_safetensors(root / "wc.safetensors", lf.kohya_sd1(), {
        "ss_tag_frequency": frequency, "modelspec.trigger_phrase": "wtrclr", "modelspec.lora_default_weight": "0.9",
        "ss_datasets": json.dumps([{"subsets": [{"class_tokens": "wtrclr painting"}]}])})
    lf.write_sidecars(path, a1111={"activation text": "watercolor style", "preferred weight": 0},
                      manager={"usage_tips": json.dumps({"strength": 0.55}), "tags": ["art"]})
    lf.write_safetensors(root / "captions.safetensors", lf.kohya_sd1(), {"ss_tag_frequency": json.dumps(
        {"x": {"a lonely lighthouse on a rocky coast": 3, "a lighthouse at night with stars": 2}})})
    lib = library(tmp_path)
    card = card_of(lib, "wc.safetensors")
    assert card.triggers == ["watercolor style", "wtrclr", "wtrclr painting"]
    # counts are summed over every dataset folder: watercolor 13 > flower 9 > 1girl 4
    assert card.tags[:4] == ["art", "watercolor", "flower", "1girl"]
    # preferred weight 0 means "not set": modelspec's default weight comes next, before usage_tips
    assert (card.strength, card.strength_source) == (0.9, "modelspec.lora_default_weight")
    captions = card_of(lib, "captions.safetensors")
    assert captions.tags[0] == "lighthouse"  # captions averaging 16+ characters are split into words
    assert captions.strength_source.startswith("default")


def test_malformed_files_are_problems_with_reasons_and_never_stop_a_scan(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    root.mkdir()
    (root / "short.safetensors").write_bytes(b"\x01\x02")
    (root / "liar.safetensors").write_bytes(struct.pack("<Q", 5000) + b'{"a": 1}')
    (root / "huge.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    (root / "zip.safetensors").write_bytes(b"PK\x03\x04" + b"\0" * 200)
    (root / "json.safetensors").write_bytes(struct.pack("<Q", 6) + b'{"a": ')
    header = json.dumps({"t": {"dtype": "F16", "shape": [4], "data_offsets": [0, 4096]}}).encode()
    (root / "cut.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    (root / "old.ckpt").write_bytes(b"PK\x03\x04")
    os.mkfifo(root / "pipe.safetensors")
    (root / "loop").symlink_to(root)  # a folder link loop is walked once
    lf.write_safetensors(root / "good.safetensors", lf.kohya_sd1())
    scan = library(tmp_path).scan("alice")
    assert [c.name for c in scan.cards] == ["good.safetensors"]
    reasons = {p["name"]: p["reason"] for p in scan.problems}
    assert "truncated" in reasons["short.safetensors"]
    assert "the header says 5000 bytes" in reasons["liar.safetensors"]
    assert "over the" in reasons["huge.safetensors"]
    assert "zip" in reasons["zip.safetensors"]
    assert "not valid JSON" in reasons["json.safetensors"]
    assert "outside the file" in reasons["cut.safetensors"]
    assert "pickle" in reasons["old.ckpt"]
    assert "pipe.safetensors" not in reasons and not any(str(tmp_path) in r for r in reasons.values())


def test_the_cache_rebuilds_only_what_changed_and_the_hash_follows_the_content(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    for i in range(3):
        lf.write_safetensors(root / f"l{i}.safetensors", lf.kohya_sd1(), lf.kohya_metadata("sd_v1", f"l{i}"))
    lib = library(tmp_path)
    first = lib.scan("alice")
    assert (first.files, first.rebuilt) == (3, 3)
    again = library(tmp_path).scan("alice")  # another process: the cache file answers
    assert again.rebuilt == 0 and [c.to_dict() for c in again.cards] == [c.to_dict() for c in first.cards]
    lf.write_sidecars(root / "l1.safetensors", a1111={"activation text": "newword"})
    third = lib.scan("alice")
    assert third.rebuilt == 1 and card_of(lib, "l1.safetensors").triggers == ["newword"]
    shutil.copy(root / "l0.safetensors", root / "copy.safetensors")
    assert card_of(lib, "copy.safetensors").hash == card_of(lib, "l0.safetensors").hash
    data = bytearray((root / "l2.safetensors").read_bytes())
    data[-1] ^= 0xFF  # same header, other weights: another epoch of the same training
    (root / "l2b.safetensors").write_bytes(bytes(data))
    assert card_of(lib, "l2b.safetensors").hash != card_of(lib, "l2.safetensors").hash


def test_a_family_override_is_per_user_and_never_touches_the_lora_file(tmp_path: Path) -> None:
    path = lf.write_safetensors(tmp_path / "loras" / "mystery.safetensors", {"foo.lora_down.weight": (4, 8)})
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    lib = library(tmp_path)
    card = card_of(lib, "mystery.safetensors")
    changed = lib.set_override("alice", card.id, "sdxl")
    assert changed.family.family == "sdxl" and changed.family.source == "override"
    assert card_of(lib, "mystery.safetensors", "bob").family.family == "unknown"
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert (tmp_path / "users" / "alice" / "loras" / "overrides.json").is_file()
    with pytest.raises(InvalidInput, match="family"):
        lib.set_override("alice", card.id, "sd9")
    with pytest.raises(InvalidInput, match="id"):
        lib.set_override("alice", "../../etc", "sdxl")
    with pytest.raises(NotFound):
        lib.set_override("alice", "0" * 12, "sdxl")
    assert lib.set_override("alice", card.id, "auto").family.family == "unknown"


def _recommend_library(tmp_path: Path) -> LoraLibrary:
    root = tmp_path / "loras"
    wc = lf.write_safetensors(root / "watercolor.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "watercolor", {"watercolor": 20, "painting": 9}))
    lf.write_sidecars(wc, civitai={"trainedWords": ["wtrclr"], "model": {"tags": ["style"]}})
    lf.write_safetensors(root / "knight.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "knight", {"knight": 20, "armor": 9}, {"modelspec.trigger_phrase": "shining armor"}))
    ink = lf.write_safetensors(root / "ink.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "ink", {"ink": 20, "painting": 3}))
    lf.write_sidecars(ink, civitai={"model": {"tags": ["style"]}})
    lf.write_safetensors(root / "xl_watercolor.safetensors", lf.kohya_sdxl(), lf.kohya_metadata(
        "sdxl_base_v1-0", "xl watercolor", {"watercolor": 30}))
    spicy = lf.write_safetensors(root / "spicy_knight.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "spicy knight", {"knight": 40}))
    lf.write_sidecars(spicy, manager={"preview_nsfw_level": 8})
    return library(tmp_path)


def test_recommendations_filter_rank_cap_and_explain(tmp_path: Path) -> None:
    lib = _recommend_library(tmp_path)
    cards = lib.scan("alice").cards
    analysis = analyse("a knight in shining armor, watercolor painting, ink lines")
    result = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(), None, family_names=DISPLAY)
    names = [r.card.name for r in result.chosen]
    assert names[0] == "knight.safetensors" or names[0] == "spicy_knight.safetensors"
    assert "xl_watercolor.safetensors" not in names
    filtered = {f["name"]: f["reason"] for f in result.filtered}
    assert filtered["xl_watercolor.safetensors"] == "a SDXL LoRA (metadata), the checkpoint is SD1.5"
    knight = next(r for r in result.chosen if r.card.name == "knight.safetensors")
    assert "'shining armor'" in knight.reason and "sd15" in knight.reason and knight.reason.endswith(".")
    assert knight.triggers == []  # its trigger is already in the prompt
    assert all(0 <= r.score <= 1 and 0 <= r.confidence <= 1 for r in result.chosen)

    # the social context's rating filters an X-level LoRA out of a sfw scene
    ratings = ["sfw", "romantic", "mature_implied", "restricted"]
    rated = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(), ("sfw", ratings),
                      family_names=DISPLAY)
    assert "spicy_knight.safetensors" not in [r.card.name for r in rated.chosen]
    assert "above the social context's sfw" in {f["name"]: f["reason"] for f in rated.filtered}["spicy_knight.safetensors"]
    assert "spicy_knight.safetensors" in [r.card.name for r in recommend(
        cards, analysis.prompt, analysis.terms, "sd15", Preferences(), ("restricted", ratings)).candidates]

    # caps: max_loras, one style LoRA without mixing, exclusions, min_confidence
    one = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(max_loras=1))
    assert len(one.chosen) == 1
    both_styles = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(max_loras=4))
    assert sum(r.card.kind == "style" for r in both_styles.chosen) == 2
    single = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(max_loras=4, allow_style_mixing=False))
    assert sum(r.card.kind == "style" for r in single.chosen) == 1
    without = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(exclude=("knight.safetensors",)))
    assert "knight.safetensors" not in [r.card.name for r in without.chosen]
    assert recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(min_confidence=1.0)).chosen == []
    with pytest.raises(InvalidInput, match="max_loras"):
        Preferences.parse({"max_loras": 99})


def test_a_trigger_common_across_the_library_is_penalised(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    for i in range(6):  # "beautiful" is everyone's trigger; "zorblax" is one LoRA's
        lf.write_safetensors(root / f"generic{i}.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
            "sd_v1", f"generic{i}", {"portrait": 5}, {"modelspec.trigger_phrase": "beautiful"}))
    lf.write_safetensors(root / "rare.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "rare", {"portrait": 5}, {"modelspec.trigger_phrase": "zorblax"}))
    cards = library(tmp_path).scan("alice").cards
    analysis = analyse("beautiful zorblax portrait")
    result = recommend(cards, analysis.prompt, analysis.terms, "sd15", Preferences(max_loras=3))
    assert result.chosen[0].card.name == "rare.safetensors"
    generic = next(r for r in result.candidates if r.card.name.startswith("generic"))
    assert generic.score < 0.75 * result.chosen[0].score and "trigger 'beautiful'" not in generic.reason


def test_module_matching_on_a_tiny_real_text_encoder_reports_what_applied() -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, vocab_size=100, max_position_embeddings=16,
                                         bos_token_id=1, eos_token_id=2, pad_token_id=0))
    weights = list(model.state_dict())
    sd1_te = {k: v for k, v in lf.kohya_sd1().items() if k.startswith("lora_te_text_model_encoder_layers_0_")}
    report = match_modules("te.safetensors", module_names(sd1_te), weights, 0.8, 0.8)
    assert report.modules == 6 and report.matched == 6 and report.warning is None
    flux = match_modules("flux.safetensors", module_names(lf.kohya_flux(double=1, single=1)), weights)
    assert flux.matched == 0 and "none of its" in (flux.warning or "")
    deep = match_modules("deep.safetensors", module_names({k: v for k, v in lf.kohya_sd1().items()
                                                           if k.startswith("lora_te_")}), weights)
    assert deep.matched == 12 and deep.modules == 72 and "only 12 of 72" in (deep.warning or "")
