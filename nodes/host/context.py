"""One running Atelier: its settings and every service built from them, each made once, on first use.

The host passes what only it knows: how to reach the ComfyUI to queue on and follow (``comfy``, a
factory called on first use, once the server listens), how to hand a
scorer model to its memory management (``prepare_model``), how to read a checkpoint's header
(``checkpoint_header``). Nothing here reads the environment or a module global.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.base.files import StorageError, storage_error
from ..core.base.secrets import redact
from ..core.quality.service import QualityService
from ..core.social.service import SocialService
from .settings import Settings

if TYPE_CHECKING:  # the heavier ones (torch, SQLAlchemy, aiohttp) are imported when first used: commands start fast
    from ..core.enhance.service import EnhanceService
    from ..core.intelligence.service import IntelligenceService
    from ..core.learning.service import LearningService
    from ..core.loras.library import LoraLibrary
    from ..core.quality.runs import RunObserver
    from ..core.records.comfy import ComfyUI
    from ..core.records.follower import HistoryFollower
    from ..core.records.service import RecordService
    from ..core.records.timings import PromptTimings
    from ..core.safety.log import ViolationLog
    from ..core.scaleout.service import DistributedSubmitter
    from ..core.scoring.models import ModelManager
    from ..core.scoring.registry import Scorers
    from ..core.storyboard.batches import BatchService
    from ..core.storyboard.library import StoryboardLibrary
    from ..core.storyboard.service import PipelineService
    from ..core.telemetry.llm import LLMCalls
    from ..core.validation.rules import Rules

log = logging.getLogger("atelier")
T = TypeVar("T")
PrepareHook = Callable[[Any], None]  # a scorer model, before each use (ComfyUI: its memory management)
Header = Callable[[str | None], "dict[str, Any] | None"]


def no_header(checkpoint: str | None) -> dict[str, Any] | None:
    return None


class Atelier:
    def __init__(self, settings: Settings, comfy: Callable[[], ComfyUI] | None = None,
                 prepare_model: PrepareHook | None = None, checkpoint_header: Header = no_header) -> None:
        self.settings = settings
        self._comfy = comfy
        self.prepare_model = prepare_model
        self.checkpoint_header = checkpoint_header
        self._made: dict[str, Any] = {}
        self._lock = threading.RLock()

    def _once(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Let go of what holds connections on the event loop (the job queue's pool), when it was made."""
        queue = self._made.get("distributed")
        if queue is not None:
            await queue.queue.close()

    @property
    def comfy(self) -> ComfyUI | None:
        """The ComfyUI generations are queued on and followed (None: a server without one)."""
        make = self._comfy
        return None if make is None else self._once("comfy", make)

    @property
    def quality(self) -> QualityService:
        s = self.settings
        return self._once("quality", lambda: QualityService(s.users_dir, s.data_dir, device=s.device,
                                                            usd_per_gpu_hour=s.usd_per_gpu_hour))

    @property
    def enhance(self) -> EnhanceService:
        from ..core.enhance.config import key_for, secrets_for
        from ..core.enhance.service import EnhanceService
        from ..remote.llm import CircuitBreaker, http_backends

        config = self.settings.llm_config_file
        breaker = self._once("llm_breaker", CircuitBreaker)

        def observe(call: Any) -> None:  # every LLM call's telemetry, in the records' database
            self.llm_calls.add(call)

        return self._once("enhance", lambda: EnhanceService(config, self.settings.traces_dir, http_backends(
            lambda name: key_for(name, config), lambda name: secrets_for(name, config), breaker, observe)))

    @property
    def node_timings(self) -> PromptTimings:
        """Per-node timings of the prompts this ComfyUI runs, from the execution events it sends (told by the
        ComfyUI adapter), taken by the history follower for the prompt's records."""
        from ..core.records.timings import PromptTimings

        return self._once("node_timings", PromptTimings)

    @property
    def llm_calls(self) -> LLMCalls:
        from ..core.telemetry.llm import LLMCalls

        return self._once("llm_calls", lambda: LLMCalls(self.records.store.session))

    def provider_health(self) -> list[dict[str, Any]]:
        """Each LLM endpoint's health from its recent calls, with its circuit's state now."""
        self.enhance  # noqa: B018 - the breaker is made with the backends
        breaker = self._made.get("llm_breaker")
        return self.llm_calls.health(breaker.open_for() if breaker is not None else {})

    def telemetry(self, user: str | None, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Totals per day, workspace and user and the charts' series (``user`` None: everyone's)."""
        from ..core.telemetry.report import Rates, telemetry

        rates = self._once("rates", lambda: Rates.load(self.settings.usd_per_gpu_hour))
        return telemetry(self.records.store, self.llm_calls, rates, self.settings.device, user, since, until)

    def app_health(self) -> dict[str, Any]:
        """Where Atelier keeps things (by name, never an absolute path) and the health of each part: ok,
        warning, error, or off (not configured here)."""
        import os

        from ..core.base.errors import AtelierError
        from ..core.base.secrets import without_paths

        settings = self.settings

        def shown(path: Any) -> str:
            parts = Path(path).parts
            return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)

        def folder(name: str, path: Path, purpose: str) -> dict[str, Any]:
            exists = path.is_dir()
            probe = path if exists else next((p for p in path.parents if p.exists()), path)
            writable = os.access(probe, os.W_OK)
            status = "ok" if writable else "error"
            detail = ("" if exists else "made on first use; ") + ("writable" if writable else "not writable")
            return {"name": name, "where": shown(path), "purpose": purpose, "status": status, "detail": detail}

        storage = [folder("presets", settings.users_dir, "custom presets, per user"),
                   folder("data", settings.data_dir, "records (SQLite), calibration, llm.json, social.yaml, worlds"),
                   folder("output", settings.output_dir, "traces, saved storyboards"),
                   folder("storyboards", settings.storyboards_dir, "the storyboard viewer's library"),
                   folder("shared output", settings.shared_dir, "scale-out workers' images"),
                   *(folder("loras", p, "the LoRA library") for p in settings.lora_folders),
                   *(folder(kind, p, "scorer weights") for kind, paths in settings.model_folders.items()
                     for p in paths)]
        health: list[dict[str, Any]] = []
        kind = "postgresql" if (settings.database_url or "").startswith("postgresql") else "sqlite"
        try:
            health.append({"part": "records database", "status": "ok",
                           "detail": f"{kind}, {self.records.store.count()} record(s)"})
        except (AtelierError, Exception) as exc:  # the app map reports a broken part, it does not break
            health.append({"part": "records database", "status": "error",
                           "detail": without_paths(getattr(exc, "message", None) or type(exc).__name__)[:300]})
        health.append({"part": "ComfyUI", "status": "ok" if self.comfy is not None else "off",
                       "detail": "this server queues on its ComfyUI" if self.comfy is not None
                       else "a standalone server: generations are recorded, not queued"})
        try:
            queue = self.distributed
            alive = [w for w in queue.store.workers(settings.stalled_after_s) if w["state"] in ("ready", "busy")]
            health.append({"part": "job queue", "status": "ok" if alive else "warning",
                           "detail": f"{len(alive)} worker(s) taking jobs"})
        except AtelierError as exc:
            health.append({"part": "job queue", "status": "off", "detail": exc.message})
        try:
            for provider in self.provider_health():
                bad = provider["circuit"] == "open" or (provider["success_rate"] or 0) < 0.5
                health.append({"part": f"LLM {provider['endpoint']}", "status": "warning" if bad else "ok",
                               "detail": f"{provider['calls']} call(s), success {provider['success_rate']}, "
                                         f"circuit {provider['circuit']}"})
        except Exception:  # no records database: reported above
            pass
        for name in sorted(self.scorers.specs):
            why = self.scorers.missing(name)
            health.append({"part": f"scorer {name}", "status": "warning" if why else "ok",
                           "detail": without_paths(why) if why else "ready"})
        return {"storage": storage, "health": health}

    def run_telemetry(self, record: Any) -> dict[str, Any]:
        from ..core.telemetry.report import Rates, run_telemetry

        rates = self._once("rates", lambda: Rates.load(self.settings.usd_per_gpu_hour))
        return {**run_telemetry(record, rates, self.settings.device),
                **self.llm_calls.of_prompt(record.comfy_prompt_id)}

    @property
    def social(self) -> SocialService:
        return self._once("social", lambda: SocialService(self.settings.data_dir,
                                                          lambda *entry: self.violations.add(*entry)))

    def operator(self, user: str) -> bool:
        """Whether ``user`` may read everyone's safety log (``ATELIER_OPERATORS``)."""
        return user in self.settings.operators

    @property
    def violations(self) -> ViolationLog:
        """The safety log, in the records' database."""
        from ..core.safety.log import ViolationLog

        self.records  # noqa: B018 - made with the records (and their database)
        return self._once("violations", lambda: ViolationLog(self.records.store.session))

    @property
    def records(self) -> RecordService:
        """The records; a database that cannot be opened (a read-only data folder) is a 503 naming it, and the
        next request tries again."""
        from sqlalchemy.exc import SQLAlchemyError

        from ..core.records.service import RecordService

        def make() -> RecordService:
            try:
                service = RecordService(self.settings.records_url, self.comfy)
            except (OSError, SQLAlchemyError) as exc:
                shown = "records.sqlite" if not self.settings.database_url else "the records database"
                if isinstance(exc, OSError):
                    raise storage_error(exc, shown, "open") from None
                cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                cause = redact(cause.replace(str(self.settings.data_dir), "data"))[:200]
                raise StorageError(f"cannot open {shown}: {cause}", field="storage", value=shown,
                                   accepted="a writable data folder or a reachable database") from None
            # the safety log (same database): refused variable values and requests for another user's record
            from ..core.safety.log import ViolationLog

            log = ViolationLog(service.store.session)
            service.report = log.add
            service.store.on_isolation = lambda user, asked, why: log.add(user, "isolation_refused", "records", asked,
                                                                         "not found (404)", why)
            self._made.setdefault("violations", log)
            return service
        return self._once("records", make)

    @property
    def pipelines(self) -> PipelineService:
        from ..core.storyboard.service import PipelineService

        return self._once("pipelines", lambda: PipelineService(
            self.records, self.settings.output_dir, self.quality, lambda: self.distributed,
            self.settings.distributed))

    @property
    def batches(self) -> BatchService:
        from ..core.storyboard.batches import BatchService

        return self._once("batches", lambda: BatchService(self.records, self.quality, lambda: self.distributed,
                                                          self.settings.distributed))

    @property
    def storyboards(self) -> StoryboardLibrary:
        from ..core.storyboard.library import StoryboardLibrary

        return self._once("storyboards", lambda: StoryboardLibrary(self.settings.storyboards_dir))

    @property
    def models(self) -> ModelManager:
        """The scorers' models (each loaded once, kept between runs)."""
        from ..core.scoring.models import ModelFolders, ModelManager

        s = self.settings
        return self._once("models", lambda: ModelManager(ModelFolders(s.model_folders, s.hf_cache),
                                                         self.prepare_model))

    @property
    def scorers(self) -> Scorers:
        from ..core.scoring.builtin import builtin_scorers

        return self._once("scorers", lambda: builtin_scorers(self.models))

    @property
    def loras(self) -> LoraLibrary:
        """The LoRA library of the LoRA folders (cards cached in the data folder, overrides per user)."""
        from ..core.loras.library import LoraLibrary

        s = self.settings
        tables = self.quality.tables
        names = {p: f.base for f in tables.families.families.values() for p in f.match.names}
        return self._once("loras", lambda: LoraLibrary(lambda: list(s.lora_folders), s.data_dir, s.users_dir,
                                                       lambda: names))

    @property
    def intelligence(self) -> IntelligenceService:
        """Prompt analysis, LoRA recommendations, parameters under constraints and their explanation."""
        from ..core.intelligence.service import IntelligenceService

        def ratings(world: str) -> list[str] | None:
            found = self.social.worlds().get(world)
            return list(found.ratings) if found else None

        def similarity() -> Any:
            """The scorers' CLIP text tower, when its weights are found (nothing is downloaded)."""
            if self.scorers.missing("clip_score") is not None:
                return None

            def cosine(prompt: str, texts: Any) -> list[float]:
                try:
                    embeddings = self.models.backbone("clip").text_embeddings([prompt, *texts])
                except Exception as exc:  # a broken model file: rank without it, and say so in the log
                    log.warning("Atelier: CLIP text similarity unavailable (%s)", redact(str(exc))[:200])
                    return [0.0] * len(texts)
                return [float(x) for x in (embeddings[1:] @ embeddings[0]).tolist()]
            return cosine

        def priors(user: str) -> dict[str, tuple[float, str]]:
            from ..core.learning.model import score_shift

            learned = self.learning.lora_priors(user).priors
            return {name: (score_shift(p), p.reason) for name, p in learned.items()}

        def tier(user: str, pipeline: str) -> tuple[str, str] | None:
            found = self.learning.preferred_tiers(user, list(self.quality.tables.tiers)).get(pipeline)
            return (found.tier, found.reason) if found else None

        return self._once("intelligence", lambda: IntelligenceService(
            self.quality, self.loras, ratings, similarity, header_of=self.checkpoint_header, enhance=self.enhance,
            priors_of=priors, tier_of=tier))

    @property
    def distributed(self) -> DistributedSubmitter:
        """Scale-out: submission to the job queue in the records' PostgreSQL (503 naming what is missing when
        the records are not in PostgreSQL or the scale extra is not installed)."""
        from ..core.base.errors import Unavailable
        from ..core.scaleout.service import DistributedSubmitter
        from ..core.scaleout.store import ScaleStore

        def make() -> DistributedSubmitter:
            url = self.settings.database_url or ""
            if not url.startswith("postgresql"):
                raise Unavailable("scale-out needs the records in PostgreSQL: set ATELIER_DATABASE_URL="
                                  "postgresql+psycopg://...", field="distributed", value=True)
            try:
                from ..queue.procrastinate_queue import ProcrastinateQueue
            except ImportError:
                raise Unavailable('scale-out needs the scale extra: pip install "atelier[scale]"',
                                  field="distributed", value=True) from None
            return DistributedSubmitter(self.records, ScaleStore(self.records.store), ProcrastinateQueue(url),
                                        self.settings.stalled_after_s)
        return self._once("distributed", make)

    @property
    def rules(self) -> Rules:
        """The validation rules over the services that know the answers (tiers, LoRAs, scorers, social)."""
        from ..core.base.errors import NotFound
        from ..core.validation.rules import Rules

        def lora_family(user: str, name: str) -> str | None:
            try:
                return str(self.loras.by_name(user, name).family.family)
            except NotFound:
                return None

        return self._once("rules", lambda: Rules(self.quality, lora_family, self.scorers, self.social))

    @property
    def learning(self) -> LearningService:
        """What each user's feedback taught: scorer weights and LoRA priors (read from the records)."""
        from ..core.learning.service import LearningService

        return self._once("learning", lambda: LearningService(self.records.store))

    @property
    def observer(self) -> RunObserver:
        """Finished prompts with a Quality Preset node -> calibration samples."""
        from ..core.quality import plan as planning
        from ..core.quality.runs import RunObserver

        return self._once("observer", lambda: RunObserver(
            self.quality.estimator, lambda inputs: planning.planned_run(self.quality, inputs, self.checkpoint_header)))

    def follower(self) -> HistoryFollower:
        """Moves records along ComfyUI's queue and history, and calibrates from finished runs."""
        from ..core.records.follower import HistoryFollower
        from ..core.records.service import calibrate_from_record

        comfy = self.comfy
        if comfy is None:
            raise RuntimeError("this Atelier has no ComfyUI to follow")
        estimator, device = self.quality.estimator, self.settings.device
        return self._once("follower", lambda: HistoryFollower(
            comfy, self.records.store, self.observer,
            lambda record, item: calibrate_from_record(estimator, record, item, device),
            timings=self.node_timings.take))
