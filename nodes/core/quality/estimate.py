"""Time, VRAM and cost estimates, and their calibration from recorded runs.

Work units model what a run computes: one unit is one model evaluation of an SD1.5 UNet at
512x512. A family's cost, the resolution (to the power ``resolution_exponent``), cfg (two
evaluations per step when cfg > 1), the batch, VAE coding and every sampling pass of the plan
(base, hires fix, refinement: ``passes.py``) add up.

Prior: ``seconds = overhead + units * seconds_per_unit`` of a reference device. Recorded
runs of the same (category/family, device) replace the prior with a robust linear fit
``seconds = a + b * units + c * evaluations`` (``c``: the fixed cost of one model evaluation, learned
when the runs tell it apart); the min/max band comes from the fit's residuals.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .passes import final_size, sampling_passes
from .tables import Tables, load_tables

log = logging.getLogger("atelier")
MAX_SAMPLES_PER_KEY = 200
REFERENCE_SIDE = 512  # one work unit: one SD1.5 UNet evaluation at 512x512
FIT_TTL_S = 5.0  # fits are re-read this often, so runs recorded by other processes count


@dataclass(frozen=True)
class Estimate:
    time_min_s: float
    time_expected_s: float
    time_max_s: float
    vram_gb: float
    cost_usd: float
    units: float
    calibrated: bool
    samples: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_s": {"min": round(self.time_min_s, 2), "expected": round(self.time_expected_s, 2),
                       "max": round(self.time_max_s, 2)},
            "vram_gb": round(self.vram_gb, 2), "cost_usd": round(self.cost_usd, 5),
            "units": round(self.units, 2), "calibrated": self.calibrated, "samples": self.samples,
            "device": self.device,
        }


UNITS_VERSION = 2  # image units count every pass that runs (v1 priced hires and refinement apart from the graph)


def calibration_key(category: str, family: str) -> str:
    """Runs are compared by the units they computed: a change of the units' model starts a new key."""
    return f"image:{family}:u{UNITS_VERSION}" if category == "image" else category


def image_units(params: dict[str, Any], family: str, tables: Tables) -> float:
    """Every sampling pass the plan states (``passes.sampling_passes``, what the graph runs), one VAE decode at
    the final size, and one VAE encode when the base pass starts from an image (denoise < 1), per image.

    ComfyUI's KSampler runs ``steps`` steps at any denoise (it shortens the schedule, not the loop)."""
    fam = tables.family(family)
    est = tables.estimator
    exponent = float(est["resolution_exponent"])
    reference_px = REFERENCE_SIDE ** 2
    evals = 1 if float(params.get("cfg", 1.0)) <= 1.0 else 2
    passes = sampling_passes(params)
    units = sum(fam.cost * p.steps * evals * (p.width * p.height / reference_px) ** exponent for p in passes)
    last, base = passes[-1], passes[0]
    units += float(est["vae_decode_units"]) * fam.cost * last.width * last.height / reference_px
    if base.denoise < 1.0:
        units += float(est["vae_encode_units"]) * fam.cost * base.width * base.height / reference_px
    return units * int(params.get("batch_size", 1))


def model_evaluations(category: str, params: dict[str, Any]) -> float:
    """How many times a run evaluates the diffusion model (every step of every pass, both cfg branches, every
    image of the batch): each costs a fixed overhead on top of its pixels' work, which the fit learns."""
    if category != "image":
        return 0.0
    evals = 1 if float(params.get("cfg", 1.0)) <= 1.0 else 2
    return float(sum(p.steps for p in sampling_passes(params)) * evals * int(params.get("batch_size", 1)))


def work_units(category: str, params: dict[str, Any], family: str, tables: Tables) -> float:
    est = tables.estimator
    if category == "image":
        return image_units(params, family, tables)
    if category == "video":
        video = est["video"]
        fam = tables.family(family)
        rel = (params["width"] * params["height"]) / fam.native_resolution ** 2
        factor = float(video["motion_quality"][params["motion_quality"]])
        if params.get("interpolation"):
            factor *= float(video["interpolation_factor"])
        return float(video["units_per_frame"]) * params["frames"] * rel * factor * params.get("batch_size", 1)
    if category == "audio":
        audio = est["audio"]
        factor = float(audio["processing_quality"][params["processing_quality"]])
        return float(audio["units_per_second"]) * params["duration_s"] * params["sample_rate"] / 44100 * factor
    iterations = int(params.get("enhance_iterations", 1))
    if params.get("enhance_backend") == "rule":  # the offline loop: no model, about a millisecond a round
        return float(est["text"]["rule_units_per_iteration"]) * iterations
    return float(est["text"]["units_per_token"]) * params["max_tokens"] * iterations


def vram_gb(category: str, params: dict[str, Any], family: str, tables: Tables) -> float:
    est = tables.estimator
    vram = est["vram"]
    if category == "image":
        fam = tables.family(family)
        width, height = final_size(params)
        megapixels = width * height / 1e6
        activations = float(vram["activation_gb_per_megapixel"]) * megapixels * int(params.get("batch_size", 1))
        if not params.get("attention_slicing", True):
            activations *= float(vram["no_slicing_factor"])
        return fam.weights_gb + activations + float(vram["overhead_gb"])
    if category == "video":
        megapixels = params["width"] * params["height"] / 1e6
        return float(est["video"]["weights_gb"]) + 0.02 * megapixels * params["frames"] + float(vram["overhead_gb"])
    return float(est[category]["weights_gb"]) + float(vram["overhead_gb"])


@dataclass(frozen=True)
class Fit:
    overhead_s: float
    seconds_per_unit: float
    band_low: float   # factors on the expected time
    band_high: float
    samples: int
    seconds_per_evaluation: float = 0.0  # the fixed cost of one model evaluation, whatever its size

    def seconds(self, units: float, evaluations: float = 0.0) -> float:
        return self.overhead_s + self.seconds_per_unit * units + self.seconds_per_evaluation * evaluations


Sample = tuple[float, float, float]  # (units, evaluations, seconds)


def fit_durations(units: list[float], seconds: list[float], min_band: float,
                  evaluations: list[float] | None = None) -> Fit | None:
    """``seconds = a + b * units + c * evaluations`` minimising relative error, outliers (> 3 MADs) dropped;
    ``c`` (a per-evaluation overhead: small models, small images, slow Python per step) only when the samples
    tell it apart from ``b``, else ``a + b * units``.

    Relative error is what people feel (10 s off on a 20 s run is bad, on 10 min it is not),
    and it keeps one long run from deciding the overhead of every short one.
    """
    evaluations = evaluations if evaluations is not None else [0.0] * len(units)
    samples = [(u, e, s) for u, e, s in zip(units, evaluations, seconds, strict=True)
               if u > 0 and s > 0 and math.isfinite(s) and math.isfinite(e)]
    if not samples:
        return None
    for _ in range(3):
        fit = _least_squares(samples)
        residuals = [s / fit.seconds(u, e) - 1 for u, e, s in samples]
        mad = statistics.median(abs(r) for r in residuals) * 1.4826
        kept = [p for p, r in zip(samples, residuals, strict=True) if mad == 0 or abs(r) <= 3 * mad]
        if len(kept) == len(samples) or len(kept) < 2:
            break
        samples = kept
    fit = _least_squares(samples)
    relative = sorted(s / fit.seconds(u, e) for u, e, s in samples)
    low = min(relative[int(0.1 * (len(relative) - 1))], 1 - min_band)
    high = max(relative[math.ceil(0.9 * (len(relative) - 1))], 1 + min_band)
    return Fit(fit.overhead_s, fit.seconds_per_unit, low, high, len(samples), fit.seconds_per_evaluation)


def _least_squares(samples: list[Sample]) -> Fit:
    """Weighted (1/seconds^2: relative error) least squares with every coefficient >= 0: of the models
    ``a + b u + c e``, ``b u + c e``, ``a + b u`` and ``b u``, the one that fits best (a model needs more samples
    than coefficients, and spread in what it separates)."""
    seconds = [s for _, _, s in samples]
    columns = {"a": [1.0] * len(samples), "b": [u for u, _, _ in samples], "c": [e for _, e, _ in samples]}
    spread = max(columns["b"]) / min(columns["b"])
    best: tuple[float, dict[str, float]] | None = None
    for names in ("abc", "bc", "ab"):
        if len(samples) <= len(names) or ("a" in names and spread < 1.25) or ("c" in names and max(columns["c"]) <= 0):
            continue
        solved = _solve([tuple(columns[n][i] for n in names) for i in range(len(samples))], seconds)
        if solved is None or min(solved) < 0 or solved[names.index("b")] <= 0:
            continue
        values = dict(zip(names, solved, strict=True))
        error = sum((1 - (values.get("a", 0.0) + values["b"] * u + values.get("c", 0.0) * e) / s) ** 2
                    for u, e, s in samples)
        if best is None or error < best[0] - 1e-12:
            best = (error, values)
    if best is None:
        return Fit(0.0, statistics.median(s / u for u, _, s in samples), 1.0, 1.0, len(samples))
    values = best[1]
    return Fit(values.get("a", 0.0), values["b"], 1.0, 1.0, len(samples), values.get("c", 0.0))


def _solve(rows: list[tuple[float, ...]], seconds: list[float]) -> list[float] | None:
    """The weighted normal equations (weight 1/seconds^2: relative error), by Gaussian elimination;
    None when the columns cannot be told apart."""
    n = len(rows[0])
    matrix = [[0.0] * (n + 1) for _ in range(n)]
    for row, s in zip(rows, seconds, strict=True):
        w = 1.0 / (s * s)
        for i in range(n):
            for j in range(n):
                matrix[i][j] += w * row[i] * row[j]
            matrix[i][n] += w * row[i] * s
    scale = [max(abs(matrix[i][i]), 1e-300) for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(matrix[r][col]) / scale[r])
        if abs(matrix[pivot][col]) <= 1e-12 * scale[pivot]:
            return None
        matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
        scale[col], scale[pivot] = scale[pivot], scale[col]
        for r in range(n):
            if r != col:
                factor = matrix[r][col] / matrix[col][col]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[col], strict=True)]
    return [matrix[i][n] / matrix[i][i] for i in range(n)]


class CalibrationStore:
    """Durations of real runs, in SQLite (one writer at a time, WAL; safe across processes)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fits: dict[tuple[str, str], tuple[float, Fit | None]] = {}
        self._memory: sqlite3.Connection | None = None
        try:
            self._create()
        except (OSError, sqlite3.Error) as exc:  # a read-only data folder: learn in memory, say so once
            log.warning("Atelier: calibration data cannot be written to %s (%s); estimates learn in memory only",
                        path.name if path else "memory", exc)
            self.path = None
            self._create()

    def _create(self) -> None:
        with self._db() as db, db:
            db.execute("""CREATE TABLE IF NOT EXISTS run_samples (
                id INTEGER PRIMARY KEY, key TEXT NOT NULL, device TEXT NOT NULL,
                units REAL NOT NULL, seconds REAL NOT NULL, run_id TEXT UNIQUE,
                params TEXT NOT NULL, created_at REAL NOT NULL)""")
            db.execute("CREATE INDEX IF NOT EXISTS run_samples_key ON run_samples(key, device, id)")
            columns = {row[1] for row in db.execute("PRAGMA table_info(run_samples)")}
            if "evaluations" not in columns:  # stores made before the per-evaluation overhead was learned
                db.execute("ALTER TABLE run_samples ADD COLUMN evaluations REAL NOT NULL DEFAULT 0")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection under the store's lock (the in-memory one is kept, file ones are closed)."""
        with self._lock:
            db = self._connect()
            try:
                yield db
            finally:
                if db is not self._memory:
                    db.close()

    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            if self._memory is None:
                self._memory = sqlite3.connect(":memory:", check_same_thread=False)
            return self._memory
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def record(self, key: str, device: str, units: float, seconds: float, params: dict[str, Any],
               run_id: str | None = None, evaluations: float = 0.0) -> bool:
        """Store one run; False when ``run_id`` was already recorded or the values are unusable."""
        if not (units > 0 and seconds > 0 and math.isfinite(units) and math.isfinite(seconds)
                and math.isfinite(evaluations) and evaluations >= 0):
            return False
        with self._db() as db, db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO run_samples(key, device, units, seconds, run_id, params, created_at,"
                " evaluations) VALUES (?,?,?,?,?,?,?,?)",
                (key, device, units, seconds, run_id, json.dumps(params, sort_keys=True), time.time(), evaluations))
        self._fits.pop((key, device), None)
        return cursor.rowcount == 1

    def samples(self, key: str, device: str) -> list[tuple[float, float]]:
        """(units, seconds) of the newest runs."""
        return [(u, s) for u, _, s in self.samples_with_evaluations(key, device)]

    def samples_with_evaluations(self, key: str, device: str) -> list[Sample]:
        with self._db() as db:
            rows = db.execute("SELECT units, evaluations, seconds FROM run_samples WHERE key=? AND device=?"
                              " ORDER BY id DESC LIMIT ?", (key, device, MAX_SAMPLES_PER_KEY)).fetchall()
        return [(float(u), float(e), float(s)) for u, e, s in rows]

    def count(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM run_samples").fetchone()[0])

    def summary(self) -> list[dict[str, Any]]:
        """Samples per (key, device), newest first."""
        with self._db() as db:
            rows = db.execute("SELECT key, device, COUNT(*), MAX(created_at) FROM run_samples"
                              " GROUP BY key, device ORDER BY MAX(created_at) DESC").fetchall()
        return [{"key": k, "device": d, "samples": int(n), "last_run_at": t} for k, d, n, t in rows]

    def fit(self, key: str, device: str, min_band: float) -> Fit | None:
        cached = self._fits.get((key, device))
        if cached is not None and time.monotonic() - cached[0] < FIT_TTL_S:
            return cached[1]
        rows = self.samples_with_evaluations(key, device)
        fit = fit_durations([u for u, _, _ in rows], [s for _, _, s in rows], min_band,
                            [e for _, e, _ in rows]) if rows else None
        self._fits[(key, device)] = (time.monotonic(), fit)
        return fit


class Estimator:
    def __init__(self, tables: Tables | None = None, calibration: CalibrationStore | None = None,
                 device: str = "reference", usd_per_gpu_hour: float | None = None) -> None:
        self.tables = tables or load_tables()
        self.calibration = calibration
        self.device = device
        est = self.tables.estimator
        self.usd_per_hour = usd_per_gpu_hour if usd_per_gpu_hour is not None else float(est["cost"]["usd_per_gpu_hour"])

    def estimate(self, category: str, params: dict[str, Any], family: str, device: str | None = None,
                 usd_per_gpu_hour: float | None = None) -> Estimate:
        device = device or self.device
        est = self.tables.estimator
        units = work_units(category, params, family, self.tables)
        ref = est["reference_device"]
        uncertainty = est["uncertainty"]
        fit = None
        if self.calibration is not None:
            fit = self.calibration.fit(calibration_key(category, family), device,
                                       float(uncertainty["min_calibrated_band"]))
            if fit is not None and fit.samples < int(uncertainty["min_samples"]):
                fit = None
        if fit is not None:
            expected = fit.seconds(units, model_evaluations(category, params))
            low, high = fit.band_low, fit.band_high
        else:
            expected = float(ref["overhead_s"]) + float(ref["seconds_per_unit"]) * units
            low, high = (float(x) for x in uncertainty["prior_band"])
        rate = usd_per_gpu_hour if usd_per_gpu_hour is not None else self.usd_per_hour
        return Estimate(
            time_min_s=expected * low, time_expected_s=expected, time_max_s=expected * high,
            vram_gb=vram_gb(category, params, family, self.tables),
            cost_usd=expected / 3600.0 * rate, units=units, calibrated=fit is not None,
            samples=fit.samples if fit else 0, device=device)

    def record_run(self, category: str, params: dict[str, Any], family: str, seconds: float,
                   device: str | None = None, run_id: str | None = None) -> bool:
        if self.calibration is None:
            return False
        units = work_units(category, params, family, self.tables)
        return self.calibration.record(calibration_key(category, family), device or self.device,
                                       units, seconds, params, run_id, model_evaluations(category, params))
