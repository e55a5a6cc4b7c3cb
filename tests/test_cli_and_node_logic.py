"""The CLI main job, and what the QualityPreset node computes (without ComfyUI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from atelier.nodes.core.base.errors import InvalidInput, NotFound
from atelier.nodes.core.quality import plan as planning
from atelier.nodes.core.quality.service import QualityService

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ATELIER_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "atelier", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=home)


def test_cli_plans_a_pipeline_with_estimates(tmp_path: Path) -> None:
    result = run_cli("plan", "storyboard_generation", "--tier", "high", "--family", "sdxl", home=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("storyboard_generation", "keyframes", "atelier_quality_txt2img", "total", "GB peak"):
        assert text in out
    assert "sampler_name=dpmpp_2m" in out


def test_cli_compare_recommend_and_errors(tmp_path: Path) -> None:
    assert "ultra" in run_cli("compare", home=tmp_path).stdout
    assert "Use case print: ultra" in run_cli("recommend", "print", home=tmp_path).stdout
    bad = run_cli("plan", "shot_generation", "--tier", "mega", home=tmp_path)
    assert bad.returncode == 2 and "tier='mega'" in bad.stderr and "Traceback" not in bad.stderr
    bad_set = run_cli("plan", "--set", "steps=0", home=tmp_path)
    assert bad_set.returncode == 2 and "parameters.steps" in bad_set.stderr


def test_node_plan_drives_ksampler_values(service: QualityService) -> None:
    plan = planning.build_plan(service, "high", "auto", "sd_xl_base_1.0.safetensors", None, 1216, 832, 2)
    values = dict(zip(planning.IMAGE_OUTPUTS, planning.outputs(plan), strict=True))
    assert plan.family.family == "sdxl" and values["batch_size"] == 2
    assert (values["width"], values["height"], values["cfg"]) == (1216, 832, 7.5)
    hires = dict(zip(planning.IMAGE_OUTPUTS, planning.outputs(plan, "hires_fix"), strict=True))
    assert (hires["width"], hires["steps"], hires["denoise"]) == (1824, 15, 0.45)
    assert "High (level 3) on sdxl" in plan.summary()
    with pytest.raises(InvalidInput):
        planning.outputs(plan, "polish")


def test_node_tier_options_list_users_presets(service: QualityService) -> None:
    service.library.create("default", {"id": "mine", "extends": "ultra"})
    service.library.create("bob", {"id": "bobs", "extends": "draft"})
    options = planning.tier_options(service)
    assert options[:4] == ["draft", "standard", "high", "ultra"] and "mine" in options and "bob/bobs" in options
    assert planning.build_plan(service, "bob/bobs").preset.lineage == ("bobs", "draft")
    with pytest.raises(NotFound):
        planning.build_plan(service, "bob/mine")


def test_node_fingerprint_follows_preset_edits(service: QualityService) -> None:
    service.library.create("default", {"id": "edit-me"})
    inputs = {"tier": "edit-me", "width": 0}
    before = planning.fingerprint(inputs, service.library.get("default", "edit-me").model_dump(mode="json"))
    again = planning.fingerprint(inputs, service.library.get("default", "edit-me").model_dump(mode="json"))
    service.library.update("default", "edit-me", {"image": {"steps": 33}})
    after = planning.fingerprint(inputs, service.library.get("default", "edit-me").model_dump(mode="json"))
    assert before == again != after


def test_cli_scores_and_ranks_image_files(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    image_module = pytest.importorskip("PIL.Image")
    from imagegen import scene, variants

    files = []
    for name, image in variants(scene()).items():
        path = tmp_path / f"{name}.png"
        image_module.fromarray((image * 255).round().to(torch.uint8).numpy()).save(path)
        files.append(str(path))
    result = run_cli("score", *files, "--prompt", "discs", home=tmp_path)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[1]
    assert first.startswith("1") and "sharp.png *" in first
    missing = run_cli("score", files[0], str(tmp_path / "nope.png"), home=tmp_path)
    assert missing.returncode == 2 and "nope.png" in missing.stderr and "Traceback" not in missing.stderr


def test_python_api_scores_tensors() -> None:
    torch = pytest.importorskip("torch")
    from atelier.nodes.core.scoring.api import score
    from imagegen import blurred, scene

    sharp = scene(seed=4)
    result = score(torch.stack([blurred(sharp), sharp]), "discs", top_k=1)
    assert result["ranking"]["best_index"] == 1 and "image 1" in result["report"].splitlines()[0]


def test_a_newcomers_first_commands_answer_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """curate checks its destination before any work and replaces a run only with --force; --json works after the
    command too; serve refuses a missing storyboards folder; enhance knows the families plan knows."""
    import json

    from atelier.nodes.cli import main

    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    assert main(["curate", "--out", str(out), "--tier", "draft"]) == 0
    first = json.loads((out / "manifest.json").read_text())["created_at"]
    capsys.readouterr()
    assert main(["curate", "--out", str(out), "--tier", "draft"]) == 2  # refused, before rendering anything
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and "Traceback" not in err
    (out / "mine.txt").write_text("the user's own file")
    assert main(["curate", "--out", str(out), "--tier", "draft", "--force", "--json"]) == 0  # --json after it
    again = json.loads(capsys.readouterr().out)
    assert again["created_at"] > first and (out / "mine.txt").exists()  # only the run's files were replaced
    (tmp_path / "a-file").write_text("x")
    assert main(["curate", "--out", str(tmp_path / "a-file")]) == 2
    assert "a folder (this is a file)" in capsys.readouterr().err
    assert main(["serve", "--storyboards", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["enhance", "a fox", "--family", "nope"]) == 2
    assert "model_family='nope'" in capsys.readouterr().err


def test_score_prints_each_warning_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from atelier.nodes.cli import main

    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    assert main(["curate", "--out", str(out), "--tier", "draft"]) == 0
    capsys.readouterr()
    assert main(["score", str(out / "clip_001_start.png"), "--scorers", "technical,clip_score"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("clip_score needs a prompt") == 1
