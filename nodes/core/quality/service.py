"""One facade over the quality capability for the adapters (nodes, routes, CLI).

Inputs arrive as plain data (JSON bodies, widget values) and leave as JSON-ready dicts; every
bad input raises an ``AtelierError`` naming the field, the value and what is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.errors import NotFound, invalid
from .apply import FunctionTemplate, apply_preset, check_compatibility
from .estimate import CalibrationStore, Estimator
from .pipelines import PipelineRequest, configure_pipeline, list_pipelines
from .presets import PresetLibrary
from .recommend import compare, recommend
from .schema import Preset
from .store import PresetStore
from .summary import summary_text
from .tables import Tables, load_tables

DEFAULT_TEMPLATE = FunctionTemplate(id="default", category="image", model_family="sd15")
MAX_COMPARE = 12


class QualityService:
    """Custom presets under ``users_dir/<user>/atelier/presets``, calibration data in ``data_dir``
    (in memory without one), estimates for ``device`` at ``usd_per_gpu_hour`` (default: the table's)."""

    def __init__(self, users_dir: Path, data_dir: Path | None = None, device: str = "reference",
                 tables: Tables | None = None, usd_per_gpu_hour: float | None = None) -> None:
        self.tables = tables or load_tables()
        self.library = PresetLibrary(PresetStore(users_dir, self.tables.default_tier), self.tables)
        calibration_path = data_dir / "calibration.sqlite" if data_dir else None
        self.estimator = Estimator(self.tables, CalibrationStore(calibration_path), device, usd_per_gpu_hour)

    # --- presets -----------------------------------------------------------------------------
    def preset_view(self, preset: Preset, template: FunctionTemplate = DEFAULT_TEMPLATE) -> dict[str, Any]:
        applied = apply_preset(preset, template, self.tables)
        estimate = self.estimator.estimate(template.category, applied.params, applied.family.family)
        body = preset.model_dump(mode="json")
        body["estimate"] = estimate.to_dict()
        body["estimate_template"] = template.id
        return body

    def list_presets(self, user: str) -> dict[str, Any]:
        presets, problems = self.library.list_all(user)
        return {"presets": [self.preset_view(p) for p in presets],
                "problems": [p.to_dict() for p in problems]}

    def get_preset(self, user: str, preset_id: str) -> dict[str, Any]:
        return self.preset_view(self.library.get(user, preset_id))

    def create_preset(self, user: str, body: Any) -> dict[str, Any]:
        return self.preset_view(self.library.create(user, body))

    def update_preset(self, user: str, preset_id: str, body: Any) -> dict[str, Any]:
        return self.preset_view(self.library.update(user, preset_id, body))

    def validate_preset(self, user: str, body: Any, preset_id: str | None = None) -> dict[str, Any]:
        """What saving ``body`` would give (as a new preset, or over ``preset_id``), without saving it."""
        return self.preset_view(self.library.validate(user, body, preset_id))

    def delete_preset(self, user: str, preset_id: str) -> None:
        self.library.delete(user, preset_id)

    def preset_ids(self, user: str) -> list[str]:
        presets, _ = self.library.list_all(user)
        return [p.id for p in presets]

    # --- application -------------------------------------------------------------------------
    def apply(self, user: str, preset_id: str, template_data: Any) -> dict[str, Any]:
        preset = self.library.get(user, preset_id)
        template = FunctionTemplate.parse(template_data)
        applied = apply_preset(preset, template, self.tables)
        estimate = self.estimator.estimate(template.category, applied.params, applied.family.family)
        compatibility = check_compatibility(preset, template, self.tables, estimate.vram_gb)
        params = applied.declared()
        warnings = applied.warnings + compatibility.warnings
        params["_quality_preset"] = {
            "id": preset.id, "display_name": preset.display_name, "level": preset.level,
            "lineage": list(preset.lineage), "family": applied.family.to_dict(),
            "multipliers": preset.multipliers.model_dump(), "estimate": estimate.to_dict(),
            "warnings": warnings,
        }
        if template.category == "image":  # the plan in words, as the Quality Preset node shows it
            params["_quality_preset"]["summary"] = summary_text(
                preset.display_name, preset.level, applied.family.to_dict(), applied.params, estimate.to_dict(),
                warnings)
        return {"parameters": params, "compatibility": compatibility.to_dict()}

    def compatibility(self, user: str, preset_id: str, template_data: Any) -> dict[str, Any]:
        preset = self.library.get(user, preset_id)
        template = FunctionTemplate.parse(template_data)
        return check_compatibility(preset, template, self.tables).to_dict()

    # --- estimates, pipelines, recommendations ----------------------------------------------
    def estimate(self, user: str, body: Any) -> dict[str, Any]:
        """``{"pipeline", "tier", ...}`` for a pipeline, or ``{"preset", "template"}`` for one function."""
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, "a JSON object")
        if "pipeline" in body:
            request = {k: v for k, v in body.items() if k not in ("pipeline", "tier")}
            if not isinstance(body["pipeline"], str):
                raise invalid("pipeline", type(body["pipeline"]).__name__, list(self.tables.pipelines.pipelines))
            plan = self.pipeline_plan(user, body["pipeline"], body.get("tier", self.tables.default_tier), request)
            return {"pipeline": plan["pipeline"], "tier": plan["tier"],
                    "stages": [{"id": s["id"], "workflow": s["workflow"], "estimate": s["estimate"]}
                               for s in plan["stages"]], "totals": plan["totals"]}
        unknown = set(body) - {"preset", "template"}
        if unknown:
            raise invalid(sorted(unknown)[0], sorted(unknown)[0], ["preset", "template", "pipeline", "tier"])
        preset = self.library.get(user, _text_field(body, "preset", self.tables.default_tier))
        template = FunctionTemplate.parse(body.get("template"))
        applied = apply_preset(preset, template, self.tables)
        estimate = self.estimator.estimate(template.category, applied.params, applied.family.family)
        return {"preset": preset.id, "parameters": applied.params, "family": applied.family.to_dict(),
                "estimate": estimate.to_dict()}

    def pipelines(self) -> list[dict[str, Any]]:
        return list_pipelines(self.tables)

    def pipeline_plan(self, user: str, name: str, tier: Any, request: Any = None) -> dict[str, Any]:
        preset = self._tier(user, tier)
        plan = configure_pipeline(name, preset, PipelineRequest.parse(request), self.tables, self.estimator)
        return plan.to_dict()

    def recommend(self, use_case: str | None, template_data: Any = None,
                  learned: tuple[str, str] | None = None) -> dict[str, Any]:
        """``learned``: (tier, why) the user's own runs for this use case settled on."""
        if not use_case:
            raise invalid("use_case", use_case, list(self.tables.use_cases))
        return recommend(use_case, FunctionTemplate.parse(template_data), self.tables, self.estimator, learned)

    def compare(self, user: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("body", type(body).__name__, "a JSON object with presets and template")
        ids = body.get("presets", list(self.tables.tiers))
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise invalid("presets", ids, "a non-empty list of preset ids")
        if len(ids) > MAX_COMPARE:
            raise invalid("presets", len(ids), f"at most {MAX_COMPARE} presets")
        presets = [self._tier(user, i, field="presets") for i in ids]
        return compare(presets, FunctionTemplate.parse(body.get("template")), self.tables, self.estimator)

    def tier(self, user: str, tier: Any, field: str = "tier") -> Preset:
        """The preset a tier field names (built-in or the user's custom one); unknown is a 400."""
        return self._tier(user, tier, field)

    def _tier(self, user: str, tier: Any, field: str = "tier") -> Preset:
        """A preset named by a tier field: an unknown one is a bad request (400), not a 404."""
        if not isinstance(tier, str) or not tier:
            raise invalid(field, tier, "a tier or preset id")
        try:
            return self.library.get(user, tier)
        except NotFound as exc:
            accepted = self.preset_ids(user)
            raise invalid(field, tier, accepted) from exc

    # --- calibration -------------------------------------------------------------------------
    def calibration(self) -> dict[str, Any]:
        """What the estimator has learned: samples and fitted model per family and device."""
        store = self.estimator.calibration
        band = float(self.tables.estimator["uncertainty"]["min_calibrated_band"])
        minimum = int(self.tables.estimator["uncertainty"]["min_samples"])
        entries = []
        for entry in store.summary() if store else []:
            fit = store.fit(entry["key"], entry["device"], band) if store else None
            entries.append({**entry, "active": bool(fit and fit.samples >= minimum),
                            "fit": None if fit is None else {
                                "overhead_s": round(fit.overhead_s, 3), "seconds_per_unit": fit.seconds_per_unit,
                                "seconds_per_evaluation": fit.seconds_per_evaluation,
                                "band": [round(fit.band_low, 3), round(fit.band_high, 3)], "samples": fit.samples}})
        return {"device": self.estimator.device, "min_samples": minimum, "entries": entries}

    def record_run(self, category: str, params: dict[str, Any], family: str, seconds: float,
                   device: str | None = None, run_id: str | None = None) -> bool:
        return self.estimator.record_run(category, params, family, seconds, device, run_id)


def _text_field(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise invalid(name, value, "a preset id")
    return value
