"""ComfyUI V3 nodes for quality presets (adapter over ``core.quality``)."""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.quality import plan as planning
from . import runtime

QualityPresetType = io.Custom("QUALITY_PRESET")
NO_CHECKPOINT = runtime.NO_CHECKPOINT


def _image_outputs() -> list[io.Output]:
    """Sockets in the order of ``planning.IMAGE_OUTPUTS``; ids get ``_out`` (V3 wants ids unique
    across inputs and outputs), the names people see do not."""
    samplers, schedulers = runtime.sampler_lists()
    kinds = {"cfg": io.Float, "denoise": io.Float, "hires_scale": io.Float, "hires_denoise": io.Float,
             "hires_enabled": io.Boolean}
    outputs: list[io.Output] = []
    for name in planning.IMAGE_OUTPUTS:
        if name in ("sampler_name", "scheduler"):
            options = samplers if name == "sampler_name" else schedulers
            outputs.append(io.Combo.Output(f"{name}_out", display_name=name, options=options))
        else:
            outputs.append(kinds.get(name, io.Int).Output(f"{name}_out", display_name=name))
    return outputs



class QualityPreset(io.ComfyNode):
    """One quality tier sets every sampling parameter; outputs wire into KSampler and EmptyLatentImage."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        service = runtime.atelier().quality
        families = ["auto", *service.tables.families.families]
        return io.Schema(
            node_id="AtelierQualityPreset",
            display_name="Quality Preset",
            category="Atelier/Quality",
            description="Pick a quality tier (or your custom preset): steps, cfg, sampler, scheduler, size and "
                        "hires-fix settings follow, adapted to the model family, with time/VRAM/cost estimates.",
            inputs=[
                io.Combo.Input("tier", options=planning.tier_options(service), default=service.tables.default_tier,
                               tooltip="Built-in tiers draft/standard/high/ultra, then your custom presets."),
                io.Combo.Input("model_family", options=families, default="auto",
                               tooltip="auto: read from the checkpoint's metadata or name."),
                io.Combo.Input("checkpoint", options=runtime.checkpoints(), default=NO_CHECKPOINT,
                               tooltip="Only used to detect the model family when model_family is auto."),
                io.Int.Input("width", default=0, min=0, max=16384, step=8,
                             tooltip="Base width before the tier's resolution scale; 0 = family native."),
                io.Int.Input("height", default=0, min=0, max=16384, step=8,
                             tooltip="Base height before the tier's resolution scale; 0 = family native."),
                io.Int.Input("batch_size", default=1, min=1, max=256),
            ],
            outputs=[QualityPresetType.Output("quality_preset", display_name="QUALITY_PRESET"), *_image_outputs()],
        )

    @classmethod
    def validate_inputs(cls, tier: str | None = None, model_family: str | None = None) -> bool | str:
        """Refuse an unknown tier or family when the prompt is queued (ComfyUI does not check V3 combos). Only
        these two are named: ComfyUI skips its own min/max checks for the inputs a ``validate_inputs`` takes."""
        return planning.check_inputs(runtime.atelier().quality, tier, model_family) or True

    @classmethod
    def fingerprint_inputs(cls, tier: str, model_family: str = "auto", checkpoint: str | None = None,
                           width: int = 0, height: int = 0, batch_size: int = 1) -> str:
        return planning.node_fingerprint(runtime.atelier().quality, {
            "tier": tier, "model_family": model_family, "checkpoint": checkpoint, "width": width, "height": height,
            "batch_size": batch_size})

    @classmethod
    def execute(cls, tier: str, model_family: str = "auto", checkpoint: str | None = None, width: int = 0,
                height: int = 0, batch_size: int = 1) -> io.NodeOutput:
        try:
            plan = planning.build_plan(runtime.atelier().quality, tier, model_family, checkpoint,
                                       runtime.checkpoint_header(checkpoint), width, height, batch_size)
        except AtelierError as exc:
            raise node_error(exc) from None
        return io.NodeOutput(plan, *planning.outputs(plan), ui=ui.PreviewText(plan.summary()))


class QualityStage(io.ComfyNode):
    """The same tier for another sampling pass: the hires-fix pass or a refinement pass."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierQualityStage",
            display_name="Quality Stage",
            category="Atelier/Quality",
            description="Parameters of one pass of a multi-pass graph (base, hires fix, refinement) at the tier "
                        "chosen by a Quality Preset node, so every KSampler follows one choice.",
            inputs=[
                QualityPresetType.Input("quality_preset"),
                io.Combo.Input("stage", options=list(planning.STAGES), default="hires_fix"),
            ],
            outputs=_image_outputs(),
        )

    @classmethod
    def execute(cls, quality_preset: planning.QualityPlan, stage: str) -> io.NodeOutput:
        try:
            values = planning.outputs(quality_preset, stage)
        except AtelierError as exc:
            raise node_error(exc) from None
        return io.NodeOutput(*values)


class QualitySampler(io.ComfyNode):
    """Every sampling pass of the tier, in ComfyUI's own nodes: KSampler, then (hires fix) LatentUpscale and
    KSampler, then (refinement) KSampler; exactly the passes the plan states and prices."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierQualitySampler",
            display_name="Quality Sampler",
            category="Atelier/Quality",
            description="Runs the tier's passes on the latent: the base pass (steps, cfg, sampler, scheduler), the "
                        "hires fix at high and ultra (latent upscale to the hires size, then its steps at its "
                        "denoise) and the refinement pass at ultra. Expands into KSampler and LatentUpscale, so "
                        "progress, previews, caching and interruption are ComfyUI's.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.Latent.Input("latent_image", tooltip="At the plan's size (Quality Preset's width and height)"),
                QualityPresetType.Input("quality_preset"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Combo.Input("start", options=list(planning.START_MODES), default="text",
                               tooltip="text: an empty latent (denoise 1); image: an encoded image, sampled at "
                                       "the tier's img2img strength"),
            ],
            outputs=[io.Latent.Output("latent")],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            enable_expand=True,
        )

    @classmethod
    def execute(cls, model: Any, positive: Any, negative: Any, latent_image: Any,
                quality_preset: planning.QualityPlan, seed: int, start: str = "text") -> io.NodeOutput:
        service = runtime.atelier().quality
        try:
            passes = planning.sampler_passes(quality_preset, start,
                                             service.tables.chain_level(quality_preset.preset.level)["denoise"])
        except AtelierError as exc:
            raise node_error(exc) from None
        inputs = cls.hidden.dynprompt.get_node(str(cls.hidden.unique_id))["inputs"]
        links = {name: inputs[name] for name in ("model", "positive", "negative", "latent_image")}
        graph, latent = planning.sampler_expansion(passes, f"{cls.hidden.unique_id}.qs", links, seed)
        return io.NodeOutput(latent, expand=graph, ui=ui.PreviewText(planning.passes_text(passes)))
