"""The Python API on diffusers: every snippet of the issue run as written (import path and model path added) on a
tiny random Stable Diffusion pipeline built here, with tiny LoRAs in kohya and diffusers/PEFT layouts; bad
input named; records and feedback in the records store; the batch strategies and their order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

diffusers = pytest.importorskip("diffusers", reason='the diffusers extra: pip install "atelier[diffusers]"')

from atelier.api import (  # noqa: E402
    BatchConfig,
    GenerationConstraints,
    GenerationParams,
    IntelligentGenerationPipeline,
    LoRAChoice,
    LoRAPreferences,
    OperationMode,
    PipelineConfig,
    Priority,
    VariationStrategy,
)
from atelier.nodes.core.base.errors import InvalidInput, NotFound  # noqa: E402
from atelier.nodes.core.intelligence.explain import PNG_KEY  # noqa: E402
from tiny_diffusers import ldm_checkpoint, tiny_lora, tiny_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ATELIER_HOME with the tiny model in models/diffusers and a LoRA library in models/loras."""
    root = tmp_path_factory.mktemp("atelier-home")
    model = tiny_pipeline(root / "models" / "diffusers" / "tiny-sd")
    loras = root / "models" / "loras"
    tiny_lora(model, loras / "anime_magic.safetensors", {"anime": 12, "magical girl": 8}, "kohya", seed=1)
    tiny_lora(model, loras / "cinematic_portrait.safetensors", {"photorealistic": 9, "portrait": 9, "cinematic": 5},
              "peft", seed=2)
    tiny_lora(model, loras / "xl_anime.safetensors", {"anime": 20}, "peft", seed=3, base_version="sdxl_base_v1-0")
    return root


@pytest.fixture
def atelier_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATELIER_HOME", str(home))
    monkeypatch.delenv("ATELIER_LORAS", raising=False)
    return home


def model_path(home: Path) -> str:
    return str(home / "models" / "diffusers" / "tiny-sd")


def pixels(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_the_issues_snippets_run_as_written(atelier_home: Path) -> None:
    pipeline = IntelligentGenerationPipeline()                 # defaults: AUTO, a local model, LoRA folder from config
    result = pipeline.generate("anime girl with magical powers")
    assert result.image is not None and result.metadata.loras_used and result.explanation

    config = PipelineConfig(base_model=model_path(atelier_home), mode=OperationMode.AUTO,
                            constraints=GenerationConstraints(max_time_seconds=60, max_vram_gb=8.0,
                                                              priority=Priority.QUALITY),
                            lora_preferences=LoRAPreferences(max_loras=3, min_confidence=0.6, allow_style_mixing=True))
    result = IntelligentGenerationPipeline(config=config).generate(
        prompt="photorealistic portrait, cinematic lighting", negative_prompt="cartoon, anime", seed=42)

    results = pipeline.generate_batch(prompt="anime girl, multiple poses",
                                      batch_config=BatchConfig(num_images=4,
                                                               variation_strategy=VariationStrategy.SEED_VARIATION,
                                                               parallel_generation=True))
    assert len({r.metadata.seed for r in results}) == 4

    recommendations = IntelligentGenerationPipeline(config=PipelineConfig(mode=OperationMode.ASSISTED)) \
        .analyze_and_recommend(prompt="anime style, magical girl")
    recommendations.suggested_params.num_steps = 40
    result = pipeline.generate_from_recommendations(prompt="anime style, magical girl",
                                                    recommendations=recommendations)

    pipeline.provide_feedback(generation_id=result.id, rating=5, comments="Perfect!")

    # what each step did, as a user would check it
    assert result.metadata.steps == 40 and "num_steps 40 (recommended" in " ".join(result.explanation["differences"])
    record = pipeline.atelier.records.store.get(result.id, "default")
    assert [(f.rating, f.comment) for f in record.feedback or ()] == [(5, "Perfect!")]
    assert record.operation_type == "api_generation" and record.parameters["generation"]["steps"] == 40


def test_auto_applies_the_librarys_loras_with_matched_modules_and_explains(atelier_home: Path) -> None:
    pipeline = IntelligentGenerationPipeline(PipelineConfig(base_model=model_path(atelier_home)))
    result = pipeline.generate("anime girl with magical powers", seed=7)
    meta = result.metadata
    used = {x["name"]: x for x in meta.loras_used}
    assert set(used) == {"anime_magic.safetensors"}  # the SDXL one is of another family
    assert used["anime_magic.safetensors"]["matched"] == used["anime_magic.safetensors"]["modules"] == 32
    assert meta.base_model == "tiny-sd" and meta.pipeline_type == "StableDiffusionPipeline"
    assert meta.backend == "diffusers" and meta.peak_vram_gb is None  # the CPU reports no accelerator memory
    assert (meta.width, meta.height) == result.image.size and meta.generation_time_s > 0
    explanation = result.explanation
    assert any(x["name"] == "xl_anime.safetensors" and "SDXL" in x["reason"] for x in explanation["loras_filtered"])
    assert explanation["performance"]["memory"]["strategy"] == "none"
    assert explanation["performance"]["measured_s"] == pytest.approx(meta.generation_time_s, abs=1e-3)
    again = pipeline.generate("anime girl with magical powers", seed=7)
    assert np.array_equal(pixels(again.image), pixels(result.image))  # the same seed, the same image


def test_a_result_saves_a_png_with_its_metadata_and_explanation_and_a_sidecar(atelier_home: Path,
                                                                              tmp_path: Path) -> None:
    from PIL import Image

    result = IntelligentGenerationPipeline().generate("anime girl with magical powers", seed=3)
    saved = result.save(tmp_path / "girl.png")
    with Image.open(saved) as png:
        text = dict(png.text)  # type: ignore[attr-defined]
    assert json.loads(text[PNG_KEY]) == result.explanation
    assert json.loads(text["atelier_metadata"])["seed"] == 3
    assert "Seed: 3" in text["parameters"] and "<lora:anime_magic:" in text["parameters"]
    sidecar = json.loads((tmp_path / "girl.atelier.json").read_text())
    assert sidecar["id"] == result.id and sidecar["metadata"]["seed"] == 3
    with pytest.raises(InvalidInput) as bad:
        result.save(tmp_path / "girl.jpg")
    assert bad.value.field == "path"


def test_manual_uses_exactly_what_the_caller_gives(atelier_home: Path) -> None:
    pipeline = IntelligentGenerationPipeline(PipelineConfig(mode="MANUAL"))
    params = GenerationParams(num_steps=5, guidance_scale=4.0, width=64, height=48, sampler="dpmpp_2m",
                              scheduler="karras", tier="custom")
    result = pipeline.generate("anime girl with magical powers", seed=11, params=params,
                               loras=[LoRAChoice("cinematic_portrait.safetensors", 0.5)])
    meta = result.metadata
    assert (meta.steps, meta.cfg, meta.width, meta.height, meta.sampler, meta.scheduler) == (
        5, 4.0, 64, 48, "dpmpp_2m", "karras")
    assert [(x["name"], x["strength"]) for x in meta.loras_used] == [("cinematic_portrait.safetensors", 0.5)]
    scheduler = pipeline.backend.pipe.scheduler  # ComfyUI's dpmpp_2m + karras, as diffusers runs them
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config.algorithm_type == "dpmsolver++" and scheduler.config.use_karras_sigmas is True
    assert not any("takes no" in w for w in result.explanation["warnings"])
    differences = " ".join(result.explanation["differences"])
    assert "num_steps 5 (recommended" in differences and "left out the recommended LoRA anime_magic" in differences
    plain = pipeline.generate("anime girl with magical powers", seed=11)
    assert plain.metadata.loras_used == []  # MANUAL without LoRAs applies none
    batch = pipeline.generate_batch("anime girl", BatchConfig(num_images=2, base_seed=1), params=params)
    assert [(r.metadata.steps, r.metadata.seed) for r in batch] == [(5, 1), (5, 2)]
    with pytest.raises(InvalidInput) as auto_params:
        IntelligentGenerationPipeline().generate_batch("anime girl", BatchConfig(num_images=2), params=params)
    assert auto_params.value.field == "params"


def test_bad_input_is_named(atelier_home: Path) -> None:
    with pytest.raises(InvalidInput) as missing:
        IntelligentGenerationPipeline(PipelineConfig(base_model=str(atelier_home / "nope"))).generate("a fox")
    assert missing.value.field == "base_model" and "nothing is downloaded" in str(missing.value)
    manual = IntelligentGenerationPipeline(PipelineConfig(mode=OperationMode.MANUAL))
    with pytest.raises(InvalidInput) as wrong_family:
        manual.generate("a fox", loras=[LoRAChoice("xl_anime.safetensors", 1.0)])
    assert wrong_family.value.field == "loras.xl_anime.safetensors" and "SDXL" in str(wrong_family.value)
    with pytest.raises(NotFound):
        manual.generate("a fox", loras=[LoRAChoice("missing.safetensors", 1.0)])
    tight = IntelligentGenerationPipeline(PipelineConfig(constraints=GenerationConstraints(max_time_seconds=0.001)))
    with pytest.raises(InvalidInput) as no_plan:
        tight.generate("a fox")
    assert no_plan.value.field == "constraints" and "cheapest" in str(no_plan.value).lower()
    pipeline = IntelligentGenerationPipeline()
    with pytest.raises(InvalidInput) as rating:
        pipeline.provide_feedback("0" * 32, 6)
    assert rating.value.field == "rating" and "1 to 5" in str(rating.value)
    with pytest.raises(NotFound):
        pipeline.provide_feedback("0" * 32, 4)
    for make, field in ((lambda: PipelineConfig(mode="SOMETIMES"), "mode"),
                        (lambda: GenerationConstraints(priority="fast"), "constraints.priority"),
                        (lambda: LoRAPreferences(min_confidence=2), "lora_preferences.min_confidence"),
                        (lambda: BatchConfig(num_images=0), "batch_config.num_images"),
                        (lambda: PipelineConfig(backend="comfyui"), "comfyui_url")):
        with pytest.raises(InvalidInput) as bad:
            make()
        assert bad.value.field == field
    recommendations = pipeline.analyze_and_recommend("a fox")
    recommendations.suggested_params.width = 50  # not a multiple of 8
    with pytest.raises(InvalidInput) as width:
        pipeline.generate_from_recommendations("a fox", recommendations)
    assert width.value.field == "suggested_params.width"


def test_a_single_file_checkpoint_runs_like_its_folder_and_never_downloads_a_config(
        atelier_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    checkpoint = ldm_checkpoint(Path(model_path(atelier_home)), tmp_path / "tiny_sd15.safetensors")
    params = GenerationParams(num_steps=3, guidance_scale=5.0, width=64, height=64, sampler="euler", scheduler="normal",
                              tier="custom")
    folder = IntelligentGenerationPipeline(PipelineConfig(mode="MANUAL", base_model=model_path(atelier_home)))
    single = IntelligentGenerationPipeline(PipelineConfig(mode="MANUAL", base_model=str(checkpoint),
                                                          model_config=model_path(atelier_home)))
    expected = folder.generate("a lighthouse at dusk", seed=5, params=params)
    got = single.generate("a lighthouse at dusk", seed=5, params=params,
                          loras=[LoRAChoice("anime_magic.safetensors", 0.8)])
    assert got.metadata.base_model == "tiny_sd15.safetensors" and got.metadata.pipeline_type == \
        "StableDiffusionPipeline"
    assert got.metadata.loras_used[0]["matched"] == 32  # kohya keys match the single file's modules too
    plain = single.generate("a lighthouse at dusk", seed=5, params=params)  # the LoRA is unloaded again
    assert np.abs(pixels(plain.image) - pixels(expected.image)).max() <= 2
    assert np.abs(pixels(got.image) - pixels(expected.image)).max() > 2

    # without a local configuration nothing is fetched: the error says what to give
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(InvalidInput) as no_config:
        IntelligentGenerationPipeline(PipelineConfig(mode="MANUAL", base_model=str(checkpoint))).generate(
            "a fox", params=params)
    assert no_config.value.field == "base_model" and "model_config" in str(no_config.value)
    assert str(tmp_path) not in str(no_config.value)


def test_a_size_edit_carries_the_hires_pass_so_the_image_is_not_stretched(atelier_home: Path) -> None:
    params = GenerationParams(num_steps=2, guidance_scale=5.0, width=64, height=64, sampler="euler",
                              scheduler="normal", tier="custom", hires={"width": 96, "height": 96, "steps": 2,
                                                                        "denoise": 0.5})
    manual = IntelligentGenerationPipeline(PipelineConfig(mode="MANUAL"))
    grid = manual.generate_batch("a lighthouse", BatchConfig(num_images=2, base_seed=3, variation_strategy="param",
                                                             param_grid=[{"width": 64}, {"width": 48}]),
                                 params=params)
    assert [r.image.size for r in grid] == [(96, 96), (72, 96)]  # the 1.5× upscale kept, not a 96-wide stretch
    assert [p["width"] for p in grid[1].metadata.passes] == [48, 72]

    assisted = IntelligentGenerationPipeline(PipelineConfig(mode="ASSISTED",
                                                            constraints=GenerationConstraints(priority="quality")))
    recommendations = assisted.analyze_and_recommend("a lighthouse")
    hires = dict(recommendations.suggested_params.hires or {})
    assert hires, "the quality plan has a hires pass"
    recommendations.suggested_params.width = recommendations.suggested_params.width * 3 // 4
    result = assisted.generate_from_recommendations("a lighthouse", recommendations, seed=1)
    assert result.image.size == (hires["width"] * 3 // 4, hires["height"])
    assert any(d.startswith("hires ") for d in result.explanation["differences"])
    assert recommendations.suggested_params.hires == hires  # the caller's object is left as they made it


def test_batch_strategies_vary_what_they_say_in_the_order_that_switches_least(atelier_home: Path) -> None:
    pipeline = IntelligentGenerationPipeline()
    prompt = "anime girl with magical powers"
    seeds = pipeline.generate_batch(prompt, BatchConfig(num_images=3, base_seed=100))
    assert [r.metadata.seed for r in seeds] == [100, 101, 102]
    batched = pipeline.generate_batch(prompt, BatchConfig(num_images=3, base_seed=100, parallel_generation=True))
    for one, many in zip(seeds, batched, strict=True):  # one batched call gives the images of three calls
        assert np.abs(pixels(one.image) - pixels(many.image)).mean() < 2.0

    grid = pipeline.generate_batch(prompt, BatchConfig(num_images=3, base_seed=5,
                                                       variation_strategy=VariationStrategy.PARAM_VARIATION))
    assert len({r.metadata.seed for r in grid}) == 1
    base = grid[0].metadata
    assert [(r.metadata.steps, r.metadata.cfg) for r in grid] == [
        (base.steps, base.cfg), (base.steps, base.cfg - 1.5), (base.steps, base.cfg + 1.5)]
    listed = pipeline.generate_batch(prompt, BatchConfig(num_images=2, variation_strategy="param",
                                                         param_grid=[{"num_steps": 3}, {"num_steps": 6}]))
    assert [r.metadata.steps for r in listed] == [3, 6]

    loras = pipeline.generate_batch(prompt, BatchConfig(num_images=4, base_seed=9,
                                                        variation_strategy=VariationStrategy.LORA_VARIATION))
    sets = [[(x["name"], x["strength"]) for x in r.metadata.loras_used] for r in loras]
    strength = sets[0][0][1]
    assert sets == [[("anime_magic.safetensors", strength)], [],
                    [("anime_magic.safetensors", round(strength * 0.6, 3))],
                    [("anime_magic.safetensors", round(strength * 1.3, 3))]]
    assert all(r.explanation["loras"] == [] or r.explanation["loras"][0]["matched"] == 32 for r in loras)

    best = pipeline.generate_batch(prompt, BatchConfig(num_images=3, base_seed=1, select_best=True))
    assert [r.rank for r in best] == [1, 2, 3] and best[0].score >= best[1].score >= best[2].score
    store = pipeline.atelier.records.store
    assert store.page(operation_type="api_generation", user="default", limit=500).items[0].parameters["batch"][
        "size"] == 3
    pipeline.keep(best[-1].id)  # the user keeps the one ranked last: a choice learning reads
    kept, others = store.choices("default")[0]
    assert kept.id == best[-1].id and {o.id for o in others} == {best[0].id, best[1].id}
    assert kept.scores["rank"] == 3 and kept.scores["normalised"]["technical"]
    with pytest.raises(InvalidInput):
        pipeline.keep(pipeline.generate(prompt, seed=1).id)  # not from a batch


def test_memory_strategy_follows_the_budget() -> None:
    from atelier.nodes.core.generation.memory import choose

    shares = {"none": 1.0, "model_cpu_offload": 0.55, "group_offload": 0.3, "sequential_cpu_offload": 0.12}
    assert choose(10.0, None, shares, True).strategy == "none"
    assert choose(10.0, 12.0, shares, True).strategy == "none"
    assert choose(10.0, 6.0, shares, True).strategy == "model_cpu_offload"
    assert choose(10.0, 4.0, shares, True).strategy == "group_offload"
    assert choose(10.0, 2.0, shares, True).strategy == "sequential_cpu_offload"
    tight = choose(10.0, 0.5, shares, True)
    assert tight.strategy == "sequential_cpu_offload" and "still over" in tight.reason
    on_cpu = choose(10.0, 6.0, shares, False)
    assert (on_cpu.strategy, on_cpu.chosen) == ("none", "model_cpu_offload") and "CPU" in on_cpu.reason


def _cli(home: Path, *args: str) -> Any:
    """``atelier generate`` in a fresh interpreter (with the CI's torchvision shim, as conftest installs it)."""
    import subprocess
    import sys

    tests = Path(__file__).resolve().parent
    code = (f"import sys; sys.path.insert(0, {str(tests)!r}); import torchvision_shim; torchvision_shim.install(); "
            "from atelier.nodes.cli.main import main; sys.exit(main(sys.argv[1:]))")
    import os

    env = {**os.environ, "ATELIER_HOME": str(home)}
    env.pop("ATELIER_LORAS", None)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, env=env,
                          stdin=subprocess.DEVNULL)


def test_the_command_line_generates_batches_and_asks_in_assisted_mode(home: Path, tmp_path: Path) -> None:
    done = _cli(home, "generate", "anime girl with magical powers", "--out", str(tmp_path), "--batch", "2",
                "--seed", "5", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert [i["seed"] for i in report["images"]] == [5, 6]
    assert all(Path(i["file"]).is_file() and Path(i["file"]).with_name(Path(i["file"]).stem + ".atelier.json")
               .is_file() for i in report["images"])
    assert report["images"][0]["loras"] == ["anime_magic.safetensors @0.8"] or report["images"][0]["loras"]
    asked = _cli(home, "generate", "anime girl", "--mode", "assisted", "--out", str(tmp_path))
    assert asked.returncode == 2 and "--yes" in asked.stderr and "Recommended:" in asked.stderr
    accepted = _cli(home, "generate", "anime girl", "--mode", "assisted", "--yes", "--out", str(tmp_path))
    assert accepted.returncode == 0 and "why: ASSISTED" in accepted.stdout, accepted.stderr[-2000:]
    missing = _cli(home, "generate", "a fox", "--model", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert missing.returncode == 2 and "base_model" in missing.stderr and "Traceback" not in missing.stderr


def test_a_comfyui_job_graph_is_valid_for_comfyui_and_runs_the_jobs_passes(object_info: dict[str, Any]) -> None:
    from atelier.nodes.core.generation.backend import Job
    from atelier.nodes.core.generation.graph import job_graph
    from test_workflows import check_api_graph

    params = GenerationParams(num_steps=12, guidance_scale=6.5, width=512, height=768, sampler="dpmpp_2m",
                              scheduler="karras", tier="high", hires={"width": 768, "height": 1152, "steps": 8,
                                                                      "denoise": 0.45},
                              refine={"steps": 5, "denoise": 0.2})
    job = Job("a lighthouse", "blurry", params, [LoRAChoice("style/oil.safetensors", 0.7)], [42])
    graph = job_graph("sd15.safetensors", "sd15", job, 42, "alice")
    check_api_graph(graph, object_info, "job graph")
    samplers = [graph[n]["inputs"] for n in ("base", "hires", "refine")]
    assert [(s["steps"], s["denoise"], s["seed"]) for s in samplers] == [(12, 1.0, 42), (8, 0.45, 42), (5, 0.2, 42)]
    assert graph["up"]["inputs"]["width"] == 768 and graph["loras"]["inputs"]["loras"] == "style/oil.safetensors:0.7"
    assert graph["pos"]["inputs"]["clip"] == ["loras", 1] and graph["base"]["inputs"]["model"] == ["loras", 0]
    plain = job_graph("sd15.safetensors", "sd15", Job("a", "", params, [], [1]), 1)
    assert "loras" not in plain and plain["pos"]["inputs"]["clip"] == ["ckpt", 1]


def test_the_comfyui_backend_runs_inside_an_event_loop_and_names_an_unreachable_server(tmp_path: Path) -> None:
    import asyncio

    from atelier.nodes.core.base.errors import Unavailable
    from atelier.nodes.host import Settings
    from atelier.nodes.host.context import Atelier
    from atelier.nodes.remote.comfy_backend import ComfyUIBackend

    atelier = Atelier(Settings.standalone(tmp_path / "home", environ={}))
    backend = ComfyUIBackend("http://127.0.0.1:9", atelier.quality, timeout_s=5)

    async def inside_a_notebook() -> int:  # a running loop, as in Jupyter
        return int(backend._call(asyncio.sleep(0, result=7)))

    assert asyncio.run(inside_a_notebook()) == 7
    with pytest.raises(Unavailable) as gone:
        backend.load("tiny.safetensors", None)
    assert "cannot reach ComfyUI at http://127.0.0.1:9" in str(gone.value)


def test_the_reviews_findings_stay_fixed(atelier_home: Path, tmp_path: Path) -> None:
    """Scheduler options never leak between jobs; image-to-image runs exactly the planned steps; edits and
    configs are validated before anything runs; variations past the grid move to the next seed; saved files
    are readable."""
    from atelier.nodes.engines.diffusers_backend import img2img_steps

    assert all(int(img2img_steps(s, d / 100) * (d / 100)) == s for s in range(1, 151) for d in range(1, 101))
    pipeline = IntelligentGenerationPipeline(PipelineConfig(mode="MANUAL"))
    karras = GenerationParams(num_steps=3, guidance_scale=5.0, width=32, height=32, sampler="dpmpp_2m",
                              scheduler="karras", tier="t")
    pipeline.generate("a fox", seed=1, params=karras)
    normal = GenerationParams(num_steps=3, guidance_scale=5.0, width=32, height=32, sampler="dpmpp_2m",
                              scheduler="normal", tier="t")
    pipeline.generate("a fox", seed=1, params=normal)
    assert pipeline.backend.pipe.scheduler.config.use_karras_sigmas is False  # karras did not stay on
    bad = GenerationParams(num_steps=3, guidance_scale=5.0, width=32, height=32, sampler="euler", scheduler="normal",
                           tier="t", hires={"width": 64, "height": 64, "steps": 2, "denoise": 0})
    with pytest.raises(InvalidInput) as zero:
        pipeline.generate("a fox", params=bad)
    assert zero.value.field == "params.hires.denoise"
    with pytest.raises(InvalidInput) as auto:
        IntelligentGenerationPipeline().generate("a fox", params=karras)
    assert auto.value.field == "params"
    for make, field in ((lambda: BatchConfig(scorers="vibes"), "batch_config.scorers"),
                        (lambda: BatchConfig(weights={"technical": "x"}), "batch_config.weights.technical"),
                        (lambda: PipelineConfig(lora_folders="/x/loras"), "lora_folders"),  # type: ignore[arg-type]
                        (lambda: PipelineConfig(device="gpu0"), "device"),
                        (lambda: GenerationConstraints(max_time_seconds=10**400), "constraints.max_time_seconds")):
        with pytest.raises(InvalidInput) as wrong:
            make()
        assert wrong.value.field == field
    grid = pipeline.generate_batch("a fox", BatchConfig(num_images=3, base_seed=7, variation_strategy="param",
                                                        param_grid=[{"num_steps": 2}, {"num_steps": 3}]),
                                   params=normal)
    assert [(r.metadata.steps, r.metadata.seed) for r in grid] == [(2, 7), (3, 7), (2, 8)]  # no duplicate
    saved = grid[0].save(tmp_path / "fox.png")
    assert saved.stat().st_mode & 0o777 == 0o644


def test_batched_calls_hold_only_as_many_seeds_as_the_vram_budget_allows(atelier_home: Path) -> None:
    from atelier.nodes.core.generation.batch import plan_jobs

    params = GenerationParams(num_steps=3, guidance_scale=5.0, width=64, height=64, sampler="euler",
                              scheduler="normal", tier="t")
    jobs, produced = plan_jobs("a fox", "", params, [], BatchConfig(num_images=5, base_seed=1,
                                                                   parallel_generation=True), max_batch=2)
    assert [j.seeds for j in jobs] == [[1, 2], [3, 4], [5]] and produced == [0, 1, 2, 3, 4]
    pipeline = IntelligentGenerationPipeline(PipelineConfig(constraints=GenerationConstraints(max_vram_gb=3.0)))
    service = pipeline.service
    decision = service._decide("a fox", "", OperationMode.AUTO)
    assert service._max_batch(decision, service._memory(decision)) is None  # the CPU: no accelerator memory
    service.accelerator = True  # as on a GPU: resident weights once, one image's activations per seed
    memory = service._memory(decision)
    tables = service.quality.tables
    resident = tables.family(decision.family).weights_gb + tables.estimator["vram"]["overhead_gb"]
    per_image = decision.plan.estimate.vram_gb - resident
    share = {"none": 1.0, "model_cpu_offload": 0.55, "group_offload": 0.3, "sequential_cpu_offload": 0.12}
    assert service._max_batch(decision, memory) == max(1, int((3.0 - resident * share[memory.strategy]) // per_image))
