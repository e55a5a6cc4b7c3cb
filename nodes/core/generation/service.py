"""The intelligent pipeline outside ComfyUI, backend-neutral: analysis → LoRA recommendation from the user's
library → parameters under the constraints → generation on a backend → explanation → a record per image →
feedback.

The public class (``atelier.api.IntelligentGenerationPipeline``) builds this from Atelier's folders and the
chosen backend; everything that decides lives here and in the intelligence core, shared with the nodes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..base.errors import invalid
from ..intelligence.explain import Explanation
from ..intelligence.service import Decision, IntelligenceService, lora_differences
from ..quality.service import QualityService
from ..records.service import RecordService
from .backend import Backend, Job, ModelInfo, Output
from .batch import plan_jobs, random_seed
from .memory import MemoryChoice, choose, describe
from .tables import generation_tables
from .types import (
    BatchConfig,
    GenerationMetadata,
    GenerationParams,
    GenerationResult,
    LoRAChoice,
    OperationMode,
    PipelineConfig,
    Recommendations,
    VariationStrategy,
    _number,
)

OPERATION = "api_generation"
WORKSPACE = "api"
MAX_PROMPT = 20_000

# images, prompt, scorers, weights (None: learned), user -> {"overall", "normalised", "metrics", "weights", "reason"}
Scorer = Callable[[list[Any], str, str, Any, str], dict[str, Any]]


class GenerationService:
    def __init__(self, config: PipelineConfig, intelligence: IntelligenceService, quality: QualityService,
                 records: RecordService, backend: Backend, accelerator: bool,
                 scorer: Scorer | None = None) -> None:
        self.config = config
        self.intelligence = intelligence
        self.quality = quality
        self.records = records
        self.backend = backend
        self.accelerator = accelerator
        self.scorer = scorer
        self._model: ModelInfo | None = None
        self._lock = threading.RLock()  # one backend, one model: calls from several threads take turns

    # ---- the model -----------------------------------------------------------------------------------------
    @property
    def model(self) -> ModelInfo:
        with self._lock:
            if self._model is None:
                self._model = self.backend.load(self.config.base_model, self.config.model_family)
            return self._model

    # ---- recommend ---------------------------------------------------------------------------------------
    def _decide(self, prompt: str, negative: str, mode: OperationMode) -> Decision:
        _text("prompt", prompt, required=True)
        _text("negative_prompt", negative)
        body: dict[str, Any] = {
            "prompt": prompt, "negative": negative, "family": self.model.family, "mode": mode.value,
            "constraints": self.config.constraints.to_request(),
            "preferences": self.config.lora_preferences.to_request(), "operation_type": OPERATION}
        if self.model.native_resolution:
            body["native_resolution"] = self.model.native_resolution
        return self.intelligence.decide(self.config.user, body)

    def analyze_and_recommend(self, prompt: str, negative_prompt: str = "") -> Recommendations:
        """What AUTO would do, to edit before ``generate_from_recommendations``."""
        decision = self._decide(prompt, negative_prompt, OperationMode.ASSISTED)
        params = GenerationParams.from_plan(decision.plan.tier, decision.plan.params)
        loras = [LoRAChoice(card.name, strength, why, card.family.family) for card, strength, why in decision.loras]
        recommendations = Recommendations(decision.analysis.to_dict(), loras, params,
                                          decision.explanation.to_dict(), decision.recommendations.filtered[:20],
                                          decision.family)
        recommendations.original = {"params": params.to_dict(), "loras": [x.to_dict() for x in loras]}
        return recommendations

    # ---- generate ----------------------------------------------------------------------------------------
    def generate(self, prompt: str, negative_prompt: str = "", seed: int | None = None,
                 params: GenerationParams | None = None, loras: list[LoRAChoice] | None = None) -> GenerationResult:
        """AUTO/ASSISTED: the recommendation applied (ASSISTED without edits is AUTO). MANUAL: ``params`` and
        ``loras`` exactly as given (no LoRA when none is given; the default tier's plan when no params)."""
        mode = OperationMode(self.config.mode)
        if mode is OperationMode.MANUAL:
            decision = self._decide(prompt, negative_prompt, mode)
            mine = self._check_loras(loras or [], decision.base, "loras")
            chosen = params or GenerationParams.from_plan(decision.plan.tier, decision.plan.params)
            if not isinstance(chosen, GenerationParams):
                raise invalid("params", type(chosen).__name__, "GenerationParams(...) or None")
            return self._single(prompt, negative_prompt, seed, decision, chosen.validate("params"), mine,
                                _param_differences(decision, chosen) + _lora_edits(decision, mine))
        if params is not None or loras is not None:
            raise invalid("params", "given", "MANUAL mode only (AUTO and ASSISTED generate the recommendation; edit "
                                             "it with analyze_and_recommend and generate_from_recommendations)")
        decision = self._decide(prompt, negative_prompt, mode)
        chosen = GenerationParams.from_plan(decision.plan.tier, decision.plan.params)
        applied = [LoRAChoice(c.name, s, why, c.family.family) for c, s, why in decision.loras]
        return self._single(prompt, negative_prompt, seed, decision, chosen, applied, [])

    def generate_from_recommendations(self, prompt: str, recommendations: Recommendations,
                                      negative_prompt: str = "", seed: int | None = None) -> GenerationResult:
        """Exactly the (edited) recommendations; the explanation lists every edit."""
        if not isinstance(recommendations, Recommendations):
            raise invalid("recommendations", type(recommendations).__name__,
                          "what analyze_and_recommend returned (edited or not)")
        params = recommendations.suggested_params.validate()
        before = (recommendations.original or {}).get("params")
        if before:  # a size edit carries the untouched hires pass with it
            params = params.follow_size(GenerationParams(**before)).validate()
        decision = self._decide(prompt, negative_prompt, OperationMode.ASSISTED)
        loras = self._check_loras(list(recommendations.loras), decision.base, "recommendations.loras")
        return self._single(prompt, negative_prompt, seed, decision, params, loras, _edits(recommendations, params),
                            mode=OperationMode.ASSISTED)

    def _check_loras(self, loras: list[LoRAChoice], base: str, name: str) -> list[LoRAChoice]:
        """The caller's LoRAs: each in the library, of the model's family, at a strength of -4 to 4."""
        out = []
        for x in loras:
            if not isinstance(x, LoRAChoice):
                raise invalid(name, type(x).__name__, "LoRAChoice(name, strength)")
            card = self.intelligence.library.by_name(self.config.user, x.name)
            if card.family.family != base:
                names = self.intelligence.family_names()
                raise invalid(f"{name}.{x.name}", card.family.family,
                              f"a LoRA of the model's family ({names.get(base, base)})",
                              f"{x.name} is a {names.get(card.family.family, card.family.family)} LoRA "
                              f"({card.family.source})")
            _number(x.strength, f"{name}.{x.name}.strength", -4.0, 4.0, "a strength from -4 to 4")
            out.append(replace(x, family=card.family.family, reason=x.reason or "chosen by you"))
        return out

    def generate_batch(self, prompt: str, batch_config: BatchConfig | None = None, negative_prompt: str = "",
                       params: GenerationParams | None = None,
                       loras: list[LoRAChoice] | None = None) -> list[GenerationResult]:
        """``num_images`` images by the batch's strategy, around the recommendation (MANUAL: around ``params``
        and ``loras`` as given)."""
        config = batch_config or BatchConfig()
        if not isinstance(config, BatchConfig):
            raise invalid("batch_config", type(config).__name__, "BatchConfig(...)")
        mode = OperationMode(self.config.mode)
        if mode is not OperationMode.MANUAL and (params is not None or loras is not None):
            raise invalid("params", "given", "MANUAL mode only (AUTO and ASSISTED batch around the recommendation)")
        decision = self._decide(prompt, negative_prompt, mode)
        differences: list[str] = []
        if mode is OperationMode.MANUAL:
            chosen = self._check_loras(loras or [], decision.base, "loras")
            if params is not None and not isinstance(params, GenerationParams):
                raise invalid("params", type(params).__name__, "GenerationParams(...) or None")
            base = (params or GenerationParams.from_plan(decision.plan.tier, decision.plan.params)).validate("params")
            differences = _param_differences(decision, base) + _lora_edits(decision, chosen)
        else:
            base = GenerationParams.from_plan(decision.plan.tier, decision.plan.params)
            chosen = [LoRAChoice(c.name, s, why, c.family.family) for c, s, why in decision.loras]
        params, loras = base, chosen
        memory = self._memory(decision)
        jobs, produced = plan_jobs(prompt, negative_prompt, params, loras, config, memory.strategy,
                                   self._max_batch(decision, memory))
        results: list[GenerationResult | None] = [None] * config.num_images
        batch_id = uuid.uuid4().hex
        positions = iter(produced)
        progress = _progress(config.num_images, "images")
        for job in jobs:
            for output in self._run(job):
                index = next(positions)
                results[index] = self._result(prompt, negative_prompt, decision, job.params, job.loras, output, memory,
                                              differences, mode, batch={"strategy": VariationStrategy(
                                                                  config.variation_strategy).value, "batch_id": batch_id,
                                                               "index": index, "size": config.num_images})
                progress.update(1)
        progress.close()
        done = [r for r in results if r is not None]
        if config.select_best and done:
            self._rank(done, prompt, config)
        return done

    def keep(self, generation_id: str) -> None:
        """The variation of a batch the user kept (learning reads it: kept over the batch's others)."""
        self.records.store.keep(generation_id, self.config.user)

    def provide_feedback(self, generation_id: str, rating: int, comments: str = "") -> None:
        """A rating (1-5) and comment for a generation of this user; stored with its record."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise invalid("rating", rating, "a whole number from 1 to 5")
        self.records.store.feedback(generation_id, rating, comments, self.config.user)

    # ---- the run -----------------------------------------------------------------------------------------
    def _memory(self, decision: Decision) -> MemoryChoice:
        if getattr(self.backend, "manages_memory", False):
            return MemoryChoice("none", "none", f"{self.backend.name} manages its own memory")
        shares = generation_tables()["memory"]["shares"]
        return choose(decision.plan.estimate.vram_gb, self.config.constraints.max_vram_gb, shares, self.accelerator)

    def _max_batch(self, decision: Decision, memory: MemoryChoice) -> int | None:
        """How many seeds one batched call may hold under ``max_vram_gb``: the estimate's resident part (weights
        and overhead, times the memory strategy's share) once, plus one image's activations per seed. No budget,
        or no accelerator: no limit."""
        budget = self.config.constraints.max_vram_gb
        if budget is None or not self.accelerator or getattr(self.backend, "manages_memory", False):
            return None
        tables = self.quality.tables
        resident = tables.family(decision.family).weights_gb + float(tables.estimator["vram"]["overhead_gb"])
        per_image = max(0.01, (decision.plan.estimate.vram_gb - resident) / max(1, int(decision.plan.params.get(
            "batch_size", 1))))
        share = float(generation_tables()["memory"]["shares"][memory.strategy])
        return max(1, int((budget - resident * share) // per_image))

    def _run(self, job: Job) -> list[Output]:
        with self._lock:
            return self.backend.run(job)

    def _single(self, prompt: str, negative: str, seed: int | None, decision: Decision, params: GenerationParams,
                loras: list[LoRAChoice], differences: list[str],
                mode: OperationMode | None = None) -> GenerationResult:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise invalid("seed", seed, "a whole number 0 to 2^63-1, or None (random, recorded)")
        memory = self._memory(decision)
        job = Job(prompt, negative, params, loras, [random_seed() if seed is None else seed], memory.strategy)
        output = self._run(job)[0]
        return self._result(prompt, negative, decision, params, loras, output, memory, differences,
                            mode or OperationMode(self.config.mode))

    def _result(self, prompt: str, negative: str, decision: Decision, params: GenerationParams,
                loras: list[LoRAChoice], output: Output, memory: MemoryChoice, differences: list[str],
                mode: OperationMode, batch: dict[str, Any] | None = None) -> GenerationResult:
        model = self.model
        reports = {r["name"]: r for r in output.lora_reports}
        used = [{"name": x.name, "strength": x.strength, **{k: v for k, v in reports.get(x.name, {}).items()
                                                            if k in ("matched", "modules", "warning")}}
                for x in loras]
        width, height = params.final_size()
        meta = GenerationMetadata(prompt, negative, output.seed, params.num_steps, params.guidance_scale, width,
                                  height, params.sampler, params.scheduler, used, round(output.seconds, 4),
                                  output.peak_vram_gb, model.id, model.pipeline_type, self.backend.name, params.tier,
                                  output.memory_strategy, params.passes())
        explanation = self._explanation(decision, mode, params, loras, used, output, memory, differences)
        parameters = {"generation": {k: v for k, v in meta.to_dict().items()
                                     if k not in ("generation_time_s", "peak_vram_gb")},
                      "explanation": explanation, "checkpoint": model.id, "backend": self.backend.name,
                      "quality": {"preset": params.tier}, **({"batch": batch} if batch else {}),
                      **({"use_case": self.config.use_case} if self.config.use_case else {})}
        finished = time.time()
        record = self.records.create(self.config.user, {"operation_type": OPERATION, "workspace": WORKSPACE,
                                                        "prompt": prompt, "parameters": parameters},
                                     status="completed", started_at=finished - output.seconds, finished_at=finished)
        return GenerationResult(record.id, output.image, meta, explanation)

    def _explanation(self, decision: Decision, mode: OperationMode, params: GenerationParams,
                     loras: list[LoRAChoice], used: list[dict[str, Any]], output: Output, memory: MemoryChoice,
                     differences: list[str]) -> dict[str, Any]:
        base = decision.explanation
        applied = [{"name": x.name, "title": x.name, "strength": x.strength, "reason": x.reason,
                    "family": x.family, **{k: v for k, v in u.items() if k not in ("name", "strength")}}
                   for x, u in zip(loras, used, strict=True)]
        warnings = [u["warning"] for u in used if u.get("warning")] + list(output.notes)
        value = base.with_loras(applied, decision.recommendations.filtered[:20], warnings).with_measured(output.seconds)
        data = value.to_dict()
        data["mode"] = mode.value
        data["parameters"] = {**data["parameters"], "tier": params.tier, "steps": params.num_steps,
                              "cfg": params.guidance_scale, "width": params.width, "height": params.height,
                              "sampler_name": params.sampler, "scheduler": params.scheduler}
        data["differences"] = [*data.get("differences", []), *differences]
        data["performance"] = {**data["performance"], "memory": describe(memory),
                               "peak_vram_gb": output.peak_vram_gb}
        data["parameter_reasons"] = [*data.get("parameter_reasons", []), f"memory: {memory.reason}"]
        out = Explanation.of(data)
        out.summary = out.compose_summary()
        return out.to_dict()

    def _rank(self, results: list[GenerationResult], prompt: str, config: BatchConfig) -> None:
        """Scores every image (the caller's weights, else what the user's ratings taught), ranks them best first,
        and keeps each image's scores in its record (what learning reads once the user rates it)."""
        if self.scorer is None:
            raise invalid("batch_config.select_best", True, "a pipeline with the scoring core")
        scored = self.scorer([r.image for r in results], prompt, config.scorers, config.weights, self.config.user)
        overall = scored["overall"]
        if len(overall) != len(results):
            raise invalid("batch_config.scorers", config.scorers, "scorers that score every image")
        order = sorted(range(len(results)), key=lambda i: (-overall[i], i))
        for rank, i in enumerate(order, 1):
            result = results[i]
            result.score, result.rank = overall[i], rank
            result.explanation.setdefault("parameter_reasons", []).append(
                f"ranked {rank} of {len(results)} by {', '.join(scored['weights'])} ({scored['reason']})")
            mine = {"overall": [overall[i]], "weights": scored["weights"],
                    "normalised": {k: [v[i]] for k, v in scored["normalised"].items()},
                    "metrics": {k: [v[i]] for k, v in scored["metrics"].items()}, "rank": rank}
            self.records.store.set_status(result.id, "completed", scores=mine)
        results.sort(key=lambda r: r.rank or 0)


def _text(name: str, value: Any, required: bool = False) -> None:
    if not isinstance(value, str) or len(value) > MAX_PROMPT or (required and not value.strip()):
        raise invalid(name, value if not isinstance(value, str) else value[:80],
                      f"text of {'1' if required else '0'}-{MAX_PROMPT} characters")


def _param_differences(decision: Decision, chosen: GenerationParams) -> list[str]:
    recommended = GenerationParams.from_plan(decision.plan.tier, decision.plan.params)
    return [f"{k} {getattr(chosen, k)} (recommended {getattr(recommended, k)})"
            for k in ("tier", "num_steps", "guidance_scale", "width", "height", "sampler", "scheduler")
            if getattr(chosen, k) != getattr(recommended, k)]


def _lora_edits(decision: Decision, mine: list[LoRAChoice]) -> list[str]:
    return lora_differences({c.name: s for c, s, _ in decision.loras}, {x.name: x.strength for x in mine})


def _edits(recommendations: Recommendations, params: GenerationParams) -> list[str]:
    original = recommendations.original or {}
    before = original.get("params") or {}
    now = params.to_dict()
    out = [f"{k} {now[k]} (recommended {before[k]})" for k in now if k in before and now[k] != before[k]]
    out += lora_differences({x["name"]: x["strength"] for x in original.get("loras", [])},
                            {x.name: x.strength for x in recommendations.loras})
    return out


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, unit: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with diffusers and transformers; without them, no bar
        return _NoProgress()
    return tqdm(total=total, unit=unit, desc="Atelier batch", leave=False)


__all__ = ["GenerationService", "OPERATION", "replace"]
