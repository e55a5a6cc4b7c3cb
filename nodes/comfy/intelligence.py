"""ComfyUI V3 nodes for intelligent generation (adapter over ``core.intelligence`` and ``core.loras``):
Smart Plan (analysis and parameters under constraints), LoRA Recommend (the user's LoRAs applied with ComfyUI's
own loader, matched keys reported) and Save With Explanation (the explanation in the PNG, a JSON sidecar and the
generation record)."""

from __future__ import annotations

import json
import time
from typing import Any

from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, invalid, node_error
from ..core.base.ids import user_id
from ..core.intelligence.explain import MODES, Explanation, parse
from ..core.intelligence.node import accepted_values, quality_plan, record_parameters, save_names
from ..core.intelligence.optimise import PRIORITIES
from ..core.loras.recommend import Preferences
from ..core.quality import plan as planning
from ..core.records.service import graph_of
from . import runtime
from .quality import QualityPresetType, _image_outputs
from .social import SocialContextType

ExplanationType = io.Custom("ATELIER_EXPLANATION")
NO_CHECKPOINT = runtime.NO_CHECKPOINT


class SmartPlan(io.ComfyNode):
    """Prompt analysis and the parameters under your constraints, resolved once into a plan, with the reasons."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        service = runtime.atelier().quality
        return io.Schema(
            node_id="AtelierSmartPlan",
            display_name="Smart Plan",
            category="Atelier/Intelligence",
            description="Analyses the prompt (subjects, style, content type, lighting, mood, complexity) and chooses "
                        "the tier, steps, size and passes within max time and VRAM (0 = no limit) for the priority. "
                        "AUTO applies it; ASSISTED shows it and uses what you accept (the 'accepted' JSON, saved "
                        "with the workflow); MANUAL uses your tier and says where it differs. Wire the outputs into "
                        "EmptyLatentImage and a Quality Sampler (or KSampler for the base pass).",
            inputs=[
                io.String.Input("prompt", multiline=True, default=""),
                io.String.Input("negative", multiline=True, default=""),
                io.Combo.Input("checkpoint", options=runtime.checkpoints(), default=NO_CHECKPOINT,
                               tooltip="Its family decides the parameters and which LoRAs fit"),
                io.Combo.Input("model_family", options=["auto", *service.tables.families.families], default="auto"),
                io.Combo.Input("mode", options=list(MODES), default="AUTO"),
                io.Combo.Input("priority", options=list(PRIORITIES), default="balanced"),
                io.Float.Input("max_time_s", default=0.0, min=0.0, max=86400.0, step=1.0,
                               tooltip="0: no time limit"),
                io.Float.Input("max_vram_gb", default=0.0, min=0.0, max=1024.0, step=0.5,
                               tooltip="0: no VRAM limit"),
                io.Int.Input("width", default=0, min=0, max=16384, step=8, tooltip="0: from the content type"),
                io.Int.Input("height", default=0, min=0, max=16384, step=8, tooltip="0: from the content type"),
                io.Int.Input("batch_size", default=1, min=1, max=256),
                io.Combo.Input("tier", options=planning.tier_options(service), default=service.tables.default_tier,
                               tooltip="MANUAL: the tier used"),
                io.String.Input("accepted", default="", multiline=True, optional=True,
                                tooltip="ASSISTED: what you accepted, as JSON ({\"tier\": \"high\", \"loras\": "
                                        "[[\"name.safetensors\", 0.8]]}); saved with the workflow"),
                io.String.Input("owner", default="", optional=True, tooltip="Whose LoRA overrides and presets"),
            ],
            outputs=[QualityPresetType.Output("quality_preset", display_name="QUALITY_PRESET"), *_image_outputs(),
                     io.String.Output("prompt_out", display_name="prompt"),
                     io.String.Output("negative_out", display_name="negative"),
                     ExplanationType.Output("explanation", display_name="EXPLANATION")],
        )

    @classmethod
    def validate_inputs(cls, prompt: str | None = None, checkpoint: str | None = None,
                        model_family: str | None = None, mode: str | None = None, priority: str | None = None,
                        max_time_s: float | None = None, max_vram_gb: float | None = None, width: int | None = None,
                        height: int | None = None, batch_size: int | None = None, tier: str | None = None,
                        owner: str | None = None) -> bool | str:
        """Refuse, before anything runs, a budget no plan meets (naming the cheapest plan) and, in MANUAL, an
        unknown tier; what the family changes in the tier only warns (the badge shows it)."""
        return runtime.validate_node(cls, "AtelierSmartPlan", {
            "prompt": prompt, "checkpoint": checkpoint, "model_family": model_family, "mode": mode,
            "priority": priority, "max_time_s": max_time_s, "max_vram_gb": max_vram_gb, "width": width,
            "height": height, "batch_size": batch_size, "tier": tier}, owner or None)

    @classmethod
    def execute(cls, prompt: str, negative: str, checkpoint: str, model_family: str, mode: str, priority: str,
                max_time_s: float, max_vram_gb: float, width: int, height: int, batch_size: int, tier: str,
                accepted: str = "", owner: str = "") -> io.NodeOutput:
        atelier = runtime.atelier()
        try:
            if not prompt.strip():
                raise invalid("prompt", prompt, "a prompt to analyse")
            user = user_id(owner or None)
            body: dict[str, Any] = {
                "prompt": prompt, "negative": negative, "mode": mode,
                "family": None if model_family == "auto" else model_family,
                "checkpoint": None if checkpoint == NO_CHECKPOINT else checkpoint,
                "constraints": {"priority": priority, "max_time_s": max_time_s or None,
                                "max_vram_gb": max_vram_gb or None},
                "width": width, "height": height, "batch_size": batch_size}
            if mode == "MANUAL":
                body["tier"] = tier
            chosen = accepted_values(accepted) if mode == "ASSISTED" else {}
            body.update(chosen)
            decision = atelier.intelligence.decide(user, body)
            plan = quality_plan(decision, user, atelier.quality, atelier.checkpoint_header)
        except AtelierError as exc:
            raise node_error(exc) from None
        explanation = decision.explanation
        explanation.accepted = chosen
        explanation.performance["decided_at"] = time.time()
        return io.NodeOutput(plan, *planning.outputs(plan), prompt, negative, explanation,
                             ui=ui.PreviewText(explanation.text()))


class LoraRecommend(io.ComfyNode):
    """LoRAs of your library for this prompt, applied with ComfyUI's own LoRA loading; how many of each file's
    modules matched the model is reported (a LoRA that matched nothing is a warning, never a silent no-op)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        service = runtime.atelier().quality
        return io.Schema(
            node_id="AtelierLoraRecommend",
            display_name="LoRA Recommend",
            category="Atelier/Intelligence",
            description="Ranks the LoRAs in your loras folders against the prompt (trigger words, tags, names; CLIP "
                        "text similarity when its weights are found) after filtering out other families, ratings "
                        "above the social context and your exclusions. AUTO and ASSISTED apply the recommended ones "
                        "(ASSISTED: or those you list in 'loras'); MANUAL applies only yours. The prompt gets the "
                        "trigger words.",
            inputs=[
                io.Model.Input("model"),
                io.Clip.Input("clip"),
                io.String.Input("prompt", multiline=True, default="", force_input=True),
                io.Combo.Input("checkpoint_family", options=["auto", *service.tables.families.families],
                               default="auto", tooltip="auto: the Smart Plan's family (or SD1.5 without one)"),
                io.Combo.Input("mode", options=list(MODES), default="AUTO"),
                io.Int.Input("max_loras", default=3, min=0, max=8),
                io.Float.Input("min_confidence", default=0.5, min=0.0, max=1.0, step=0.05),
                io.Boolean.Input("allow_style_mixing", default=True),
                io.String.Input("loras", default="", optional=True,
                                tooltip="MANUAL/ASSISTED: name.safetensors:0.8, one per line"),
                io.String.Input("exclude", default="", optional=True, tooltip="LoRA names never to use, one per line"),
                ExplanationType.Input("explanation", optional=True),
                SocialContextType.Input("social_context", optional=True),
                io.String.Input("owner", default="", optional=True),
            ],
            outputs=[io.Model.Output("model_out", display_name="MODEL"), io.Clip.Output("clip_out", display_name="CLIP"),
                     io.String.Output("prompt_out", display_name="prompt"),
                     ExplanationType.Output("explanation_out", display_name="EXPLANATION")],
        )

    @classmethod
    def validate_inputs(cls, loras: str | None = None, checkpoint_family: str | None = None, mode: str | None = None,
                        owner: str | None = None) -> bool | str:
        """Refuse, before anything runs, a LoRA you listed that is not in your library or is of another family
        than the checkpoint family chosen (MANUAL and ASSISTED; AUTO does not read the list)."""
        return runtime.validate_node(cls, "AtelierLoraRecommend", {
            "loras": loras, "checkpoint_family": checkpoint_family, "mode": mode}, owner or None)

    @classmethod
    def execute(cls, model: Any, clip: Any, prompt: str, checkpoint_family: str, mode: str, max_loras: int,
                min_confidence: float, allow_style_mixing: bool, loras: str = "", exclude: str = "",
                explanation: Explanation | None = None, social_context: dict[str, Any] | None = None,
                owner: str = "") -> io.NodeOutput:
        atelier = runtime.atelier()
        earlier = parse(explanation)
        try:
            user = user_id(owner or None)
            family = checkpoint_family if checkpoint_family != "auto" else (
                (earlier.parameters.get("family") if earlier else None) or "sd15")
            chosen = _lora_lines(loras)
            accepted_on_plan = earlier is not None and mode == "ASSISTED" and "loras" in earlier.accepted
            if accepted_on_plan and not chosen and earlier is not None:  # accepted on the Smart Plan's canvas
                chosen = _accepted_loras(earlier.accepted["loras"])
            preferences = Preferences.parse({"max_loras": max_loras, "min_confidence": min_confidence,
                                             "allow_style_mixing": allow_style_mixing,
                                             "exclude": [x.strip() for x in exclude.splitlines() if x.strip()]})
            body: dict[str, Any] = {"prompt": prompt or " ", "family": family, "mode": mode,
                                    "preferences": preferences.model_dump()}
            if social_context:
                body.update(rating=social_context.get("rating"), world=social_context.get("world_id", "default"))
            if mode == "MANUAL" or (mode == "ASSISTED" and (chosen or accepted_on_plan)):
                body["loras"] = chosen
            decision = atelier.intelligence.decide(user, body)
        except AtelierError as exc:
            raise node_error(exc) from None
        applied, warnings = [], []
        for card, strength, why in decision.loras:
            path = atelier.loras.path_of(card)
            model, clip, report = runtime.apply_lora(model, clip, path, card.name, strength)
            applied.append({"name": card.name, "title": card.title, "strength": strength, "reason": why,
                            "family": card.family.family, "triggers": card.triggers[:3], **report.to_dict()})
            if report.warning:
                warnings.append(report.warning)
        additions = [t for card, _, _ in decision.loras for t in card.triggers[:1] if t.lower() not in prompt.lower()]
        new_prompt = ", ".join([prompt.strip(), *additions]) if additions else prompt
        base = earlier or decision.explanation
        result = base.with_loras(applied, decision.recommendations.filtered[:20], warnings, new_prompt)
        # "atelier_loras": what each LoRA matched, for clients reading the history (the Python API's ComfyUI backend)
        return io.NodeOutput(model, clip, new_prompt, result, ui={"text": [result.text()], "atelier_loras": applied})


def _accepted_loras(value: Any) -> list[list[Any]]:
    try:
        return [[str(name), float(strength)] for name, strength in value]
    except (TypeError, ValueError):
        raise invalid("explanation.accepted.loras", str(value)[:80], '[["name.safetensors", 0.8], ...]') from None


def _lora_lines(text: str) -> list[list[Any]]:
    out: list[list[Any]] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        name, _, strength = line.rpartition(":") if ":" in line else (line, "", "")
        try:
            out.append([name.strip() or line, float(strength) if strength else 1.0])
        except ValueError:
            raise invalid("loras", line, "name.safetensors:0.8, one per line") from None
    return out


class SaveWithExplanation(io.ComfyNode):
    """Saves PNGs that carry the explanation (text chunk ``atelier_explanation``) beside ComfyUI's prompt and
    workflow, a JSON sidecar per image, and records the run with its explanation."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierSaveWithExplanation",
            display_name="Save With Explanation",
            category="Atelier/Intelligence",
            description="Like Save Image, plus the explanation (why these LoRAs and parameters, the estimate and the "
                        "measured time) in each PNG's 'atelier_explanation' text chunk and in <image>.atelier.json; "
                        "the run is recorded in Atelier's generation records with it.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images"),
                io.String.Input("filename_prefix", default="atelier/explained"),
                ExplanationType.Input("explanation", optional=True),
                io.String.Input("owner", default="", optional=True),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> str:
        return str(time.time_ns())

    @classmethod
    def execute(cls, images: Any, filename_prefix: str, explanation: Explanation | None = None,
                owner: str = "") -> io.NodeOutput:
        atelier = runtime.atelier()
        value = parse(explanation)
        if value is not None:
            decided = value.performance.get("decided_at")
            if isinstance(decided, (int, float)):
                value = value.with_measured(time.time() - decided)
        try:
            user = user_id(owner or None)
        except AtelierError as exc:
            raise node_error(exc) from None
        chunks = {"prompt": json.dumps(cls.hidden.prompt)} if cls.hidden.prompt is not None else {}
        for key, data in (cls.hidden.extra_pnginfo or {}).items():
            chunks[key] = json.dumps(data)
        saved = runtime.save_pngs(images, filename_prefix, chunks, value)
        record_id = None
        if value is not None:
            record = atelier.records.create(user, {
                "operation_type": "image_generation", "prompt": str(value.analysis.get("prompt", ""))[:20000],
                "parameters": record_parameters(value, save_names(saved))},
                status="running", comfy_prompt_id=runtime.current_prompt_id(), graph=graph_of(cls.hidden.prompt))
            record_id = record.id
        text = (value.text() if value else "saved without an explanation") + (
            f"\nrecord {record_id}" if record_id else "")
        return io.NodeOutput(ui={"images": saved, "text": [text]})
