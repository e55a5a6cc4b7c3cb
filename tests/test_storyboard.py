"""Storyboards outside ComfyUI: chaining rules, failing frames, the manifest, the main job (curate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from atelier.nodes.core.base.errors import InvalidInput
from atelier.nodes.core.storyboard.chaining import frame_start
from atelier.nodes.core.storyboard.demo import demo_generate, demo_reference
from atelier.nodes.core.storyboard.frames import color_match, judge_attempt, unusable
from atelier.nodes.core.storyboard.manifest import build_manifest, write_storyboard
from atelier.nodes.core.storyboard.runner import StoryboardRunner
from atelier.nodes.core.storyboard.spec import (
    OWN_START,
    PREVIOUS_END,
    REFERENCE,
    Storyboard,
    chain_settings,
    frame_seed,
    frames,
)

BOARD = Storyboard.parse({"clips": [{"start": f"clip {i} opens", "end": f"clip {i} closes"} for i in range(1, 6)]})


def test_chaining_rules_with_a_reference_and_reanchoring() -> None:
    specs = frames(BOARD, has_reference=True, reanchor_every=4)
    assert [s.filename for s in specs[:4]] == ["clip_001_start.png", "clip_001_end.png", "clip_002_start.png",
                                               "clip_002_end.png"]
    assert specs[0].sources == (REFERENCE,)                       # the first start: the reference
    assert specs[1].sources == (REFERENCE, OWN_START)             # an end: reference + its own clip's start
    assert specs[2].sources == (REFERENCE, PREVIOUS_END)          # later starts: reference + previous end
    assert specs[2].source_index(PREVIOUS_END) == 1 and specs[3].source_index(OWN_START) == 2
    assert specs[8].sources == (REFERENCE,)                       # clip 5 re-anchors on the reference alone
    assert specs[6].sources == (REFERENCE, PREVIOUS_END)


def test_chaining_without_a_reference_and_around_failed_frames() -> None:
    specs = frames(BOARD, has_reference=False, reanchor_every=4)
    assert specs[0].sources == () and specs[1].sources == (OWN_START,) and specs[2].sources == (PREVIOUS_END,)
    with_ref = frames(BOARD, has_reference=True, reanchor_every=0)
    assert frame_start(with_ref[2], failed={1}).sources == (REFERENCE,)  # the previous end failed: reference alone
    assert frame_start(specs[2], failed={1}).mode == "txt2img"          # nothing left: text to image


def test_storyboards_parse_from_lines_and_bad_ones_name_the_problem() -> None:
    board = Storyboard.from_text("# my story\na fox wakes | the fox runs\n\nrain falls | the sun returns\n")
    assert [c.end for c in board.clips] == ["the fox runs", "the sun returns"]
    with pytest.raises(InvalidInput) as exc:
        Storyboard.from_text("just one prompt")
    assert exc.value.field == "storyboard line 1"
    with pytest.raises(InvalidInput) as exc:
        Storyboard.parse({"clips": []})
    assert "clips" in str(exc.value.field)
    with pytest.raises(InvalidInput) as exc:
        chain_settings(3, {"variations": 99})
    assert exc.value.field == "variations"
    assert chain_settings(1).variations == 2 and chain_settings(2).variations == 4  # per tier, from YAML


def test_unusable_variations_and_colour_matching() -> None:
    good = demo_generate("a lighthouse", "", None, 1.0, 3, 1)[0]
    assert unusable(good) is None
    assert "NaN" in unusable(torch.full((32, 32, 3), float("nan")))
    assert unusable(torch.full((32, 32, 3), 0.5)) == "a blank image"
    reference = torch.rand(1, 32, 32, 3) * 0.2 + 0.7        # bright
    dark = torch.rand(2, 32, 32, 3) * 0.2
    matched = color_match(dark, reference, 1.0)
    assert abs(float(matched.mean()) - float(reference.mean())) < 0.02  # pulled to the reference's colours
    assert torch.equal(color_match(dark, reference, 0.0), dark)
    attempt, chosen, below = judge_attempt(torch.cat([torch.full((1, 32, 32, 3), float("nan")), dark]),
                                           "x", 1, "technical", 30.0)
    assert chosen in (1, 2) and attempt.scores[0] is None and attempt.problems[0].startswith("the sampler")


def _settings(**kw):
    return chain_settings(2, {"variations": 3, **kw})


def test_a_failing_frame_is_retried_once_then_marked_failed_and_the_storyboard_goes_on() -> None:
    calls: list[tuple[str, int, bool]] = []

    def generate(prompt, negative, init, denoise, seed, count):
        calls.append((prompt, seed, init is not None))
        if prompt.startswith("clip 2 opens"):
            raise RuntimeError("CUDA out of memory")
        if prompt.startswith("clip 3 closes") and seed == frame_seed(7, 5, 0):
            return torch.full((count, 64, 64, 3), float("nan"))  # first attempt unusable, the retry works
        return demo_generate(prompt, negative, init, denoise, seed, count, size=64)

    runner = StoryboardRunner(generate, _settings())
    results, images = runner.run(BOARD, demo_reference("x", 0, 64), seed=7)
    status = {r.name: r.status for r in results}
    assert status["clip_002_start"] == "failed" and len(results[2].attempts) == 2  # tried twice
    assert "CUDA out of memory" in results[2].error and images[2] is None
    assert results[3].sources == [REFERENCE]          # clip 2's end chains from the reference alone
    assert status["clip_003_end"] != "failed" and len(results[5].attempts) == 2
    assert "NaN" in results[5].attempts[0].error
    assert all(status[n] != "failed" for n in status if n != "clip_002_start")
    seeds = [seed for _, seed, _ in calls]
    assert len(seeds) == len(set(seeds))              # every attempt of every frame has its own seed


def test_a_failing_scorer_keeps_the_first_image_and_never_loses_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    from atelier.nodes.core.storyboard import frames as frames_module

    generate = lambda p, n, i, d, s, c: demo_generate(p, n, i, d, s, c, size=48)  # noqa: E731
    board = Storyboard.parse({"clips": [{"start": "a", "end": "b"}]})
    # a scorer whose model is missing (no weights anywhere): the result is unscored, the images are fine
    results, images = StoryboardRunner(generate, _settings(scorers="hpsv2")).run(board)
    assert [r.status for r in results] == ["unscored", "unscored"] and all(i is not None for i in images)
    assert [r.chosen for r in results] == [0, 0] and all(len(r.attempts) == 1 for r in results)  # no retry
    assert "kept the first usable variation" in results[0].warnings[0]
    expected = demo_generate("a", "", None, 1.0, frame_seed(0, 0, 0), 3, size=48)[:1]
    assert torch.equal(images[0], expected)  # the first variation, exactly
    manifest = build_manifest(board, _settings(scorers="hpsv2"), results, "standard").to_dict()
    assert manifest["status"] == "completed" and manifest["scoring"]["unscored_frames"] == [r.name for r in results]
    assert "hpsv2" in manifest["scoring"]["skipped"] and not manifest["scoring"]["ran"]

    def broken(*args, **kwargs):  # a scorer's own crash: the same
        raise RuntimeError("scorer crashed")

    monkeypatch.setattr(frames_module, "score_variations", broken)
    results, images = StoryboardRunner(generate, _settings()).run(board)
    assert [r.status for r in results] == ["unscored", "unscored"] and all(i is not None for i in images)
    assert "scorer crashed" in results[0].warnings[0]


def test_manifest_and_files(tmp_path: Path) -> None:
    settings = _settings(threshold=99.0)  # every frame below the threshold: kept, with a warning
    runner = StoryboardRunner(lambda p, n, i, d, s, c: demo_generate(p, n, i, d, s, c, size=48), settings,
                              enhance=lambda prompt: prompt + ", enhanced")
    board = Storyboard.parse({"clips": [{"start": "a fox", "end": "a fox asleep"}]})
    results, images = runner.run(board, seed=3)
    manifest = build_manifest(board, settings, results, "standard")
    path = write_storyboard(tmp_path, manifest, images)
    saved = json.loads(path.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_001_end.png", "clip_001_start.png", "manifest.json"]
    first = saved["frames"][0]
    assert first["prompt"] == "a fox, enhanced" and first["file"] == "clip_001_start.png"
    assert len(first["attempts"][0]["scores"]) == 3 and first["chosen"] in (0, 1, 2)
    assert first["best_score"] == max(first["attempts"][0]["scores"])
    assert first["status"] == "below_threshold" and "below the threshold 99" in saved["warnings"][0]
    assert saved["failed_clips"] == [] and saved["clips"][0]["start"] == "a fox"


def test_the_main_job_curates_the_shipped_storyboard(tmp_path: Path) -> None:
    from atelier.nodes.cli import main

    assert main(["--json", "curate", "--out", str(tmp_path), "--tier", "draft", "--seed", "2"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["frames"]) == 6
    assert all(len(f["attempts"][-1]["scores"]) == 2 for f in manifest["frames"])  # draft: 2 variations
    assert manifest["frames"][0]["prompt"] != manifest["clips"][0]["start"]       # enhanced by the rule loop
    report = (tmp_path / "report.html").read_text()
    frames_shown = [f'src="{f["file"]}"' for f in manifest["frames"]]
    assert all(shown in report for shown in frames_shown) and 'src="reference.png"' in report
    # every variation of every attempt, with its per-scorer scores; the kept one marked
    variations = [name for f in manifest["frames"] for a in f["attempts"] for name in a["files"]]
    assert len(variations) == 12 and all((tmp_path / name).is_file() and name in report for name in variations)
    assert report.count('<figure class="chosen">') == 6 and "technical" in report
    assert all(len(a["details"]) == 2 for f in manifest["frames"] for a in f["attempts"])
    assert main(["curate", "--storyboard", str(tmp_path / "missing.txt")]) == 2


def _sampling(size: int, steps: int, hires: bool = False):
    """The sampling passes of a plan (one base pass; with ``hires`` a hires fix at 1.5x) and seed 5."""
    from atelier.nodes.core.quality.passes import SamplingPass
    from atelier.nodes.core.storyboard.graph import Sampling

    passes = [SamplingPass("base", steps, 7.0, "euler", "normal", 1.0, size, size)]
    if hires:
        passes.append(SamplingPass("hires_fix", 3, 7.0, "euler", "normal", 0.45, size * 3 // 2, size * 3 // 2))
    return Sampling(passes, 5)


def _expansion(reference: bool, hires: bool = False):
    from atelier.nodes.core.storyboard.graph import Sources, storyboard_graph

    board = Storyboard.parse({"clips": [{"start": "a", "end": "b"}, {"start": "c", "end": "d"}]})
    settings = chain_settings(2)
    specs = frames(board, reference, settings.reanchor_every)
    sources = Sources(["1", 0], ["1", 1], ["1", 2], ["9", 0] if reference else None)
    return storyboard_graph(specs, settings, _sampling(512, 20, hires), sources, "7.fc",
                            "", {"storyboard": board.model_dump_json(), "settings": "{}", "tier": "standard",
                                 "filename_prefix": "s"})


def _started(graph, frame: str, previous_failed: bool = False):
    """What frame's Frame Start expands into at run time (the chained frame failed or not)."""
    from atelier.nodes.core.storyboard.steps import start_expansion

    inputs = graph[f"7.fc.{frame}.start"]["inputs"]
    report = json.dumps({"name": "x", "clip": 1, "role": "start", "prompt": "", "sources": [],
                         "status": "failed" if previous_failed else "ok"}) if "previous_report" in inputs else None
    links = {k: v for k, v in inputs.items() if k in ("previous", "reference", "vae")}
    return start_expansion(inputs["recipe"], report, links)


def check_nodes(graph, object_info) -> None:
    for node_id, node in graph.items():
        info = object_info.get(node["class_type"])
        if info is None:
            assert node["class_type"].startswith("Atelier"), node_id
            continue
        required = set(info["input"]["required"])
        assert required <= set(node["inputs"]), (node_id, required - set(node["inputs"]))
        assert set(node["inputs"]) <= required | set(info["input"].get("optional", {})), node_id


def test_the_comfyui_expansion_chains_frames_with_core_nodes(object_info) -> None:
    graph, outputs = _expansion(reference=True)
    assert outputs == [["7.fc.save", 0], ["7.fc.save", 1]]
    check_nodes(graph, object_info)
    first = _started(graph, "clip_001_start")
    check_nodes(first.graph, object_info)
    assert first.graph["7.fc.clip_001_start.start.size"]["inputs"]["image"] == ["9", 0]  # from the reference
    end = _started(graph, "clip_001_end")
    assert end.graph["7.fc.clip_001_end.start.chain"]["inputs"]["previous"] == ["7.fc.clip_001_start.select", 0]
    second = _started(graph, "clip_002_start")
    check_nodes(second.graph, object_info)
    assert second.graph["7.fc.clip_002_start.start.chain"]["inputs"]["previous"] == ["7.fc.clip_001_end.select", 0]
    assert second.graph["7.fc.clip_002_start.start.chain"]["inputs"]["reference"] == ["9", 0]
    sample = graph["7.fc.clip_002_start.a0.base"]["inputs"]
    assert sample["denoise"] == ["7.fc.clip_002_start.start", 1] and sample["seed"] == frame_seed(5, 2, 0)
    assert second.outputs[1] == chain_settings(2).denoise                              # the tier's denoise
    assert second.graph["7.fc.clip_002_start.start.batch"]["inputs"]["amount"] == 4   # the tier's variations
    assert graph["7.fc.clip_002_end.collect"]["inputs"]["images"] == ["7.fc.clip_002_start.collect", 0]
    plain, _ = _expansion(reference=False)
    assert plain["7.fc.clip_001_start.latent"]["inputs"]["batch_size"] == 4           # text to image
    assert "reference" not in _started(plain, "clip_002_start").graph["7.fc.clip_002_start.start.chain"]["inputs"]


def test_every_frame_runs_the_plans_passes_and_a_failed_frame_passes_on_at_the_final_size() -> None:
    """With a hires fix, every frame's attempt is KSampler -> LatentUpscale -> KSampler -> VAEDecode; the base
    pass keeps the start's denoise (a link: Frame Start decides it), the hires pass the plan's."""
    from atelier.nodes.core.quality.passes import passes_in_graph

    graph, _ = _expansion(reference=True, hires=True)
    upscale = graph["7.fc.clip_002_start.a0.upscale"]["inputs"]
    assert (upscale["width"], upscale["height"]) == (768, 768)
    assert upscale["samples"] == ["7.fc.clip_002_start.a0.base", 0]
    hires = graph["7.fc.clip_002_start.a0.hires_fix"]["inputs"]
    assert (hires["steps"], hires["denoise"], hires["latent_image"]) == (3, 0.45, ["7.fc.clip_002_start.a0.upscale", 0])
    assert graph["7.fc.clip_002_start.a0.decode"]["inputs"]["samples"] == ["7.fc.clip_002_start.a0.hires_fix", 0]
    read = passes_in_graph(graph, "7.fc.clip_002_start.a0.decode")
    assert [(p.name, p.steps, p.width) for p in read] == [("base", 20, 0), ("hires_fix", 3, 768)]
    recipe = json.loads(graph["7.fc.clip_002_start.select"]["inputs"]["recipe"])
    assert (recipe["width"], recipe["height"]) == (768, 768)  # a failed frame's grey image matches the others
    start = json.loads(graph["7.fc.clip_002_start.start"]["inputs"]["recipe"])
    assert (start["width"], start["height"]) == (512, 512)  # the chained image is scaled to the base pass


def test_failed_frames_chain_the_same_on_the_command_line_and_in_comfyui() -> None:
    """One storyboard, frame 3 (clip 2's start) failing, with and without a reference: the runner and the
    ComfyUI graph (Frame Start deciding at run time) start every frame from the same images."""
    board = Storyboard.parse({"clips": [{"start": f"clip {i} opens", "end": f"clip {i} closes"} for i in (1, 2, 3)]})
    for reference in (True, False):
        def generate(prompt, negative, init, denoise, seed, count):
            if prompt.startswith("clip 2 opens"):
                raise RuntimeError("CUDA out of memory")
            return demo_generate(prompt, negative, init, denoise, seed, count, size=48)

        runner = StoryboardRunner(generate, chain_settings(2, {"variations": 2}))
        results, _ = runner.run(board, demo_reference("x", 0, 48) if reference else None, seed=5)
        cli = {r.name: (r.sources, r.status) for r in results}

        from atelier.nodes.core.storyboard.graph import Sources, storyboard_graph

        settings = chain_settings(2, {"variations": 2})
        specs = frames(board, reference, settings.reanchor_every)
        graph, _ = storyboard_graph(specs, settings, _sampling(48, 4),
                                    Sources(["1", 0], ["1", 1], ["1", 2], ["9", 0] if reference else None),
                                    "7.fc", "", {})
        status = {name: state for name, (_, state) in cli.items()}
        comfy = {}
        for spec in specs:
            if f"7.fc.{spec.name}.start" not in graph:
                comfy[spec.name] = ([], "txt2img")
                continue
            chained = [s for s in spec.sources if s != REFERENCE]
            failed = bool(chained) and status[specs[spec.source_index(chained[0])].name] == "failed"
            outcome = _started(graph, spec.name, previous_failed=failed)
            kinds = {n["class_type"] for n in outcome.graph.values()}
            assert ("EmptyLatentImage" in kinds) == (outcome.start.mode == "txt2img") and outcome.outputs[1] == (
                1.0 if outcome.start.mode == "txt2img" else settings.denoise)
            comfy[spec.name] = (json.loads(outcome.outputs[2])["sources"], outcome.start.mode)
        for name, (sources, _) in cli.items():
            assert comfy[name][0] == sources, (reference, name, comfy[name], sources)
        assert cli["clip_002_start"][1] == "failed"
        after = comfy["clip_002_end"]  # its own start failed
        assert after == (["reference"], "img2img") if reference else after == ([], "txt2img")  # never a grey image


def test_a_retry_samples_again_with_the_next_seed() -> None:
    import json as json_

    from atelier.nodes.core.storyboard.graph import sampler_nodes

    graph, _ = _expansion(reference=True)
    recipe = json_.loads(graph["7.fc.clip_001_end.select"]["inputs"]["recipe"])
    retry = sampler_nodes(recipe["prefix"], recipe, 1)
    sample = retry["7.fc.clip_001_end.a1.base"]["inputs"]
    assert sample["seed"] == frame_seed(5, 1, 1) != graph["7.fc.clip_001_end.a0.base"]["inputs"]["seed"]
    assert sample["latent_image"] == ["7.fc.clip_001_end.start", 0] and sample["positive"] == ["7.fc.clip_001_end.pos", 0]
    assert sample["denoise"] == ["7.fc.clip_001_end.start", 1]  # the same start as the first attempt
    assert not set(retry) & set(graph)  # new, deterministic ids


def test_frame_select_keeps_the_best_retries_then_fails_with_the_start_it_was_given() -> None:
    """Frame Select's decisions (core/storyboard/steps.py): what the node does, without ComfyUI."""
    import json as json_

    from atelier.nodes.core.storyboard.steps import fallback_image, select_frame

    graph, _ = _expansion(reference=True)
    select = graph["7.fc.clip_001_end.select"]["inputs"]
    started = json_.dumps({"sources": ["reference"], "mode": "img2img"})  # its start frame had failed
    good = demo_generate("b", "", None, 1.0, 3, 4, size=48)
    kept = select_frame(good, "b", select["recipe"], 0, "", started, None)
    assert kept.retry is None and kept.chosen in range(4) and kept.frame.status in ("ok", "below_threshold")
    assert kept.frame.sources == ["reference"]  # what it started from, as Frame Start said
    broken = torch.full((4, 48, 48, 3), float("nan"))
    retry = select_frame(broken, "b", select["recipe"], 0, "", started, None)
    assert retry.chosen is None and retry.retry_outputs == [["7.fc.clip_001_end.a1.select", 0],
                                                            ["7.fc.clip_001_end.a1.select", 1]]
    again = retry.retry["7.fc.clip_001_end.a1.select"]["inputs"]
    assert again["start"] == ["7.fc.clip_001_end.start", 2] and again["attempt"] == 1
    assert len(json_.loads(again["previous_attempts"])) == 1
    failed = select_frame(broken, "b", again["recipe"], 1, again["previous_attempts"], started, None)
    assert failed.retry is None and failed.chosen is None and failed.frame.status == "failed"
    assert len(failed.frame.attempts) == 2 and "NaN" in failed.frame.error
    assert fallback_image(64, 32).shape == (1, 32, 64, 3)


def _scene(size: int = 48, flipped: bool = False) -> torch.Tensor:
    """A test scene: a left-to-right gradient sky and a red block on the left (mirrored when ``flipped``)."""
    x = torch.linspace(0, 1, size)
    image = torch.stack([0.2 + 0.6 * x.expand(size, size), 0.3 + 0.2 * x.expand(size, size),
                         0.9 - 0.5 * x.expand(size, size)], dim=-1)
    image[size // 3: size // 2, 4: size // 4] = torch.tensor([0.9, 0.1, 0.1])
    image = image + 0.02 * torch.sin(torch.arange(size).float())[:, None, None]  # some texture
    return image.flip(1) if flipped else image


def test_variations_that_differ_only_in_continuity_keep_the_consistent_one() -> None:
    """Every variation has the same quality (a mirror image scores the same on every technical signal); the
    one consistent with the reference and the previous frame is kept, and the manifest gives each clip's
    continuity. Without the continuity weight, the first (inconsistent) one would be kept."""
    reference = _scene().unsqueeze(0)

    def generate(prompt, negative, init, denoise, seed, count):  # the consistent one last: ties pick the first
        return torch.stack([_scene(flipped=i < count - 1) for i in range(count)])

    board = Storyboard.parse({"clips": [{"start": "a", "end": "b"}, {"start": "c", "end": "d"}]})
    results, images = StoryboardRunner(generate, _settings(scorers="technical")).run(board, reference)
    for frame in results:
        last = frame.attempts[-1]
        assert len(set(last.scores)) == 1  # the same quality for every variation
        assert frame.chosen == 2 and last.continuity[2] > max(last.continuity[:2]) + 10
        assert last.continuity_method == "structure+palette"  # no CLIP model here
    assert all(torch.equal(image[0], _scene()) for image in images)
    manifest = build_manifest(board, _settings(), results, "standard").to_dict()
    assert set(manifest["continuity"]) == {"1", "2"} and all(v > 90 for v in manifest["continuity"].values())
    quality_only, _ = StoryboardRunner(generate, _settings(scorers="technical", continuity=0.0)).run(board, reference)
    assert [f.chosen for f in quality_only] == [0, 0, 0, 0]

    # Frame Select in ComfyUI decides the same from its previous/reference inputs; a failed previous is left out
    from atelier.nodes.core.storyboard.steps import select_frame

    graph, _ = _expansion(reference=True)
    select = graph["7.fc.clip_001_end.select"]["inputs"]
    assert select["previous"] == ["7.fc.clip_001_start.select", 0] and select["reference"] == ["9", 0]
    recipe = json.loads(select["recipe"])
    recipe.update(scorers="technical")
    report = {"name": "x", "clip": 1, "role": "start", "prompt": "", "sources": [], "status": "ok"}
    verdict = select_frame(generate("b", "", None, 1.0, 0, 3), "b", json.dumps(recipe), 0, "", "", None,
                           _scene().unsqueeze(0), json.dumps(report), reference)
    assert verdict.chosen == 2 and verdict.frame.continuity is not None
    failed = json.dumps({**report, "status": "failed"})
    alone = select_frame(generate("b", "", None, 1.0, 0, 3), "b", json.dumps(recipe), 0, "", "", None,
                         _scene(flipped=True).unsqueeze(0), failed, reference)
    assert alone.chosen == 2  # the failed (grey or mirrored) previous frame is not compared with
