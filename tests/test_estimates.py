"""Estimates: priors that follow the work, calibration from real runs, history ingestion."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from atelier.nodes.core.quality.apply import FunctionTemplate, apply_preset
from atelier.nodes.core.quality.estimate import CalibrationStore, Estimator, calibration_key, work_units
from atelier.nodes.core.quality.runs import PlannedRun, RunObserver
from atelier.nodes.core.quality.tables import load_tables

T = load_tables()


def image_params(tier: str = "standard", **template) -> dict:
    return apply_preset(T.tiers[tier], FunctionTemplate(**template), T).params


def test_priors_grow_with_the_work() -> None:
    est = Estimator(T)
    base = image_params()
    seconds = lambda p, fam="sd15": est.estimate("image", p, fam).time_expected_s  # noqa: E731
    assert seconds({**base, "steps": 50}) > seconds(base)
    assert seconds({**base, "width": 768, "height": 768}) > seconds(base)
    assert seconds({**base, "batch_size": 4}) > 3 * seconds({**base, "batch_size": 1}) - 2 * 1.5
    assert seconds(base, "sdxl") > seconds(base)
    assert work_units("image", {**base, "cfg": 1.0}, "sd15", T) < 0.6 * work_units("image", base, "sd15", T)
    times = [seconds(image_params(t)) for t in ("draft", "standard", "high", "ultra")]
    assert times == sorted(times)
    vram = [est.estimate("image", image_params(t), "sd15").vram_gb for t in ("draft", "standard", "high", "ultra")]
    assert vram == sorted(vram)
    e = est.estimate("image", base, "sd15")
    assert e.time_min_s < e.time_expected_s < e.time_max_s and e.cost_usd > 0 and not e.calibrated


def _true_seconds(units: float, rng: random.Random) -> float:
    """A machine unlike the prior: 6x slower per unit, 4 s overhead, +-5% noise."""
    return (4.0 + 0.24 * units) * rng.uniform(0.95, 1.05)


def _configs(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        tier = rng.choice(["draft", "standard", "high", "ultra"])
        side = rng.choice([512, 640, 768])
        out.append({**image_params(tier, model_family="sd15", width=side, height=side),
                    "batch_size": rng.choice([1, 2, 4])})
    return out


def test_calibration_reaches_the_accuracy_target(tmp_path: Path) -> None:
    rng = random.Random(7)
    est = Estimator(T, CalibrationStore(tmp_path / "cal.sqlite"), device="cpu-test")
    held_out = _configs(rng, 40)
    prior_errors = [abs(est.estimate("image", p, "sd15").time_expected_s / _true_seconds(
        work_units("image", p, "sd15", T), random.Random(1)) - 1) for p in held_out]
    for i, params in enumerate(_configs(rng, 12)):
        seconds = _true_seconds(work_units("image", params, "sd15", T), rng)
        assert est.record_run("image", params, "sd15", seconds, run_id=f"run{i}")
    assert not est.record_run("image", held_out[0], "sd15", 3.0, run_id="run0")  # duplicate prompt id
    errors = []
    for params in held_out:
        actual = _true_seconds(work_units("image", params, "sd15", T), rng)
        estimate = est.estimate("image", params, "sd15")
        assert estimate.calibrated and estimate.samples == 12
        errors.append(abs(estimate.time_expected_s / actual - 1))
    assert max(errors) < 0.15 and sum(errors) / len(errors) < 0.10
    assert min(prior_errors) > 0.5  # the prior alone was far off on this machine
    # calibration is per device: another device still uses the prior
    assert not est.estimate("image", held_out[0], "sd15", device="other-gpu").calibrated


def test_calibration_shrugs_off_a_cold_start_outlier(tmp_path: Path) -> None:
    rng = random.Random(3)
    est = Estimator(T, CalibrationStore(tmp_path / "cal.sqlite"), device="gpu")
    configs = _configs(rng, 10)
    for i, params in enumerate(configs):
        seconds = _true_seconds(work_units("image", params, "sd15", T), rng)
        est.record_run("image", params, "sd15", seconds * (8 if i == 0 else 1), run_id=str(i))  # model load
    params = configs[5]
    actual = 4.0 + 0.24 * work_units("image", params, "sd15", T)
    assert abs(est.estimate("image", params, "sd15").time_expected_s / actual - 1) < 0.1


def test_runs_recorded_by_another_process_count(tmp_path: Path) -> None:
    path = tmp_path / "cal.sqlite"
    writer, reader = Estimator(T, CalibrationStore(path), "gpu"), Estimator(T, CalibrationStore(path), "gpu")
    for i, params in enumerate(_configs(random.Random(5), 5)):
        writer.record_run("image", params, "sd15", 10.0 + i, run_id=str(i))
    assert reader.calibration.count() == 5
    assert reader.calibration.summary()[0] | {"last_run_at": 0} == {
        "key": "image:sd15:u2", "device": "gpu", "samples": 5, "last_run_at": 0}
    assert reader.estimate("image", image_params(), "sd15").calibrated


def _history(status: str = "success", cached: list[str] | None = None, start: int = 1000, end: int = 13500,
             tier: object = "standard") -> dict:
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
             "3": {"class_type": "KSampler", "inputs": {}},
             "9": {"class_type": "AtelierQualityPreset", "inputs": {"tier": tier, "width": 0, "height": 0}}}
    cached = ["1"] if cached is None else cached
    return {"prompt": [0, "p1", graph, {}, ["9"]], "outputs": {},
            "status": {"status_str": status, "completed": status == "success", "messages": [
                ["execution_start", {"prompt_id": "p1", "timestamp": start}],
                ["execution_cached", {"nodes": cached, "prompt_id": "p1", "timestamp": start + 1}],
                ["execution_success", {"prompt_id": "p1", "timestamp": end}]]}}


def test_observer_reads_durations_from_comfyui_history(tmp_path: Path) -> None:
    est = Estimator(T, CalibrationStore(tmp_path / "cal.sqlite"), "cpu")
    planned: list[dict] = []

    def planner(inputs: dict) -> PlannedRun | None:
        planned.append(inputs)
        if not isinstance(inputs["tier"], str):
            return None
        return PlannedRun("image", "sd15", image_params(inputs["tier"]), "cpu")

    observer = RunObserver(est, planner)
    assert observer.ingest("p1", _history()) == "recorded 12.50s"
    assert planned[0]["tier"] == "standard"  # planned from the inputs kept in history
    assert est.calibration.samples(calibration_key("image", "sd15"), "cpu")[0][1] == 12.5
    assert observer.ingest("p1", _history()) == "already seen"
    # a re-run whose Quality Preset node was cached still teaches (the sampler ran)
    assert observer.ingest("p1b", _history(cached=["1", "9"])).startswith("recorded")
    assert observer.ingest("p2", _history(cached=["1", "3"])) == "skipped: sampler served from cache"
    assert observer.ingest("p4", _history(cached=[])) == "skipped: models were loaded from disk during the run"
    assert observer.ingest("p3", _history(status="error")).startswith("skipped: status")
    assert observer.ingest("p5", _history(tier=["7", 0])) == "skipped: a Quality Preset's inputs could not be planned"
    running = _history()
    running["status"]["status_str"] = None
    assert observer.ingest("p6", running) == "not finished"
    no_atelier = _history()
    del no_atelier["prompt"][2]["9"]
    assert observer.ingest("p7", no_atelier) == "no Atelier plan"
    assert est.calibration.count() == 2


def test_a_run_is_priced_by_the_passes_that_ran(tmp_path: Path) -> None:
    """At high, a Quality Sampler runs the hires pass: its units count it; a hand-wired KSampler on the same
    plan ran the base pass only, and is learned as such; a storyboard is not learned from."""
    est = Estimator(T, CalibrationStore(tmp_path / "cal.sqlite"), "cpu")
    observer = RunObserver(est, lambda inputs: PlannedRun("image", "sd15", image_params("high"), "cpu"))
    key = calibration_key("image", "sd15")
    sampler = _history(tier="high")
    sampler["prompt"][2]["3"] = {"class_type": "AtelierQualitySampler", "inputs": {"quality_preset": ["9", 0]}}
    assert observer.ingest("a", sampler).startswith("recorded")
    assert observer.ingest("b", _history(tier="high")).startswith("recorded")
    units = {round(u, 3) for u, _ in est.calibration.samples(key, "cpu")}
    full = work_units("image", image_params("high"), "sd15", T)
    base = work_units("image", {**image_params("high"), "hires_enabled": False}, "sd15", T)
    assert units == {round(full, 3), round(base, 3)} and full > 1.5 * base
    story = _history(tier="high")
    story["prompt"][2]["5"] = {"class_type": "AtelierFrameChain", "inputs": {"quality_preset": ["9", 0]}}
    assert observer.ingest("c", story) == "skipped: a storyboard's frames are not one plan's runs"


def test_the_fit_learns_a_per_evaluation_overhead_when_runs_tell_it_apart() -> None:
    """Small images on a slow host: every step costs a fixed overhead beyond its pixels. Runs of several
    sizes and step counts separate it; a held-out run is then predicted within 1 %."""
    from atelier.nodes.core.quality.estimate import fit_durations

    truth = lambda u, e: 0.4 + 0.05 * u + 0.03 * e  # noqa: E731
    runs = [(2.0, 24), (5.0, 50), (3.0, 100), (12.0, 70), (20.0, 40), (7.5, 140)]
    fit = fit_durations([u for u, _ in runs], [truth(u, e) for u, e in runs], 0.08, [e for _, e in runs])
    assert fit is not None and fit.seconds_per_evaluation == pytest.approx(0.03, rel=1e-6)
    assert fit.seconds(9.0, 85) == pytest.approx(truth(9.0, 85), rel=0.01)
    two = fit_durations([u for u, _ in runs], [0.4 + 0.05 * u for u, _ in runs], 0.08)  # no evaluations known
    assert two is not None and two.seconds_per_evaluation == 0.0 and two.seconds_per_unit == pytest.approx(0.05)
