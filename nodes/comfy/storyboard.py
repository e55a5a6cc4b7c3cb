"""ComfyUI V3 nodes for storyboards: adapters over ``core.storyboard.steps``.

Frame Chain expands into ComfyUI's own nodes (see ``core/storyboard/graph.py``), so sampling, caching,
progress, interruption and memory management are ComfyUI's. Frame Start, Frame Select, Chain Image,
Storyboard Collect and Storyboard Save are the steps of that expansion; they can be used on their own too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.quality.plan import QualityPlan
from ..core.records.service import graph_of, graph_parameters
from ..core.storyboard import steps
from ..core.storyboard.manifest import write_storyboard
from . import runtime
from .quality import QualityPresetType

STORYBOARDS = Path("atelier") / "storyboards"  # under ComfyUI's output folder


def _links(cls: type[io.ComfyNode], names: tuple[str, ...]) -> dict[str, Any]:
    """This node's own input links (for an expansion that wires into the same sources)."""
    inputs = cls.hidden.dynprompt.get_node(str(cls.hidden.unique_id))["inputs"]
    return {name: inputs[name] for name in names if isinstance(inputs.get(name), list)}


class ChainImage(io.ComfyNode):
    """The image a chained frame starts from: the previous frame blended with the reference, colour-matched."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierChainImage", display_name="Chain Image", category="Atelier/Storyboard",
            description="Blends the previous frame with the reference (anchor = the reference's weight) and pulls "
                        "its colours to the reference's, so chained frames do not drift. A failed previous frame "
                        "is left out.",
            inputs=[io.Image.Input("previous"), io.String.Input("previous_report", force_input=True, optional=True),
                    io.Float.Input("anchor", default=0.35, min=0.0, max=1.0, step=0.05),
                    io.Float.Input("color_match", default=0.7, min=0.0, max=1.0, step=0.05),
                    io.Image.Input("reference", optional=True)],
            outputs=[io.Image.Output("image")])

    @classmethod
    def execute(cls, previous: torch.Tensor, anchor: float, color_match: float, previous_report: str = "",
                reference: torch.Tensor | None = None) -> io.NodeOutput:
        return io.NodeOutput(steps.chain_image(previous, reference, anchor, color_match, previous_report))


class FrameStart(io.ComfyNode):
    """What a chained frame starts from, decided when the frame before it has run: its image blended with the
    reference, the reference alone, or nothing (text to image) when it failed."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierFrameStart", display_name="Frame Start", category="Atelier/Storyboard",
            description="Applies the storyboard's chaining rule once the frame this one chains from has a report: "
                        "a failed frame is left out. Expands into ComfyUI's EmptyLatentImage (text to image), or "
                        "Chain Image, ImageScale, VAEEncode and RepeatLatentBatch (image to image at the tier's "
                        "denoise).",
            inputs=[io.String.Input("recipe", multiline=True, tooltip="Set by Frame Chain (JSON)"),
                    io.Vae.Input("vae"),
                    io.Image.Input("previous", optional=True),
                    io.String.Input("previous_report", force_input=True, optional=True),
                    io.Image.Input("reference", optional=True)],
            outputs=[io.Latent.Output("latent"), io.Float.Output("denoise"),
                     io.String.Output("start", tooltip="What the frame started from (JSON)")],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            enable_expand=True)

    @classmethod
    def execute(cls, recipe: str, vae: Any, previous: torch.Tensor | None = None, previous_report: str | None = None,
                reference: torch.Tensor | None = None) -> io.NodeOutput:
        try:
            outcome = steps.start_expansion(recipe, previous_report, _links(cls, ("vae", "previous", "reference")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"Atelier Frame Start: its recipe is not Frame Chain's ({exc})") from None
        return io.NodeOutput(*outcome.outputs, expand=outcome.graph)


class FrameSelect(io.ComfyNode):
    """Scores a frame's variations and keeps the best; a failed attempt expands a retry with the next seed."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierFrameSelect", display_name="Frame Select", category="Atelier/Storyboard",
            description="Scores the variations of one storyboard frame (quality, and continuity with the previous "
                        "frame and the reference) and keeps the best. Variations with NaN/inf or blank pixels are "
                        "unusable; when none is usable the frame is sampled again with the next seed (retries), then "
                        "marked failed and the fallback image passes on. When scoring fails the first usable "
                        "variation is kept, unscored, with a warning.",
            inputs=[io.Image.Input("images"), io.String.Input("prompt", force_input=True),
                    io.String.Input("recipe", multiline=True, tooltip="Set by Frame Chain (JSON)"),
                    io.Int.Input("attempt", default=0, min=0, max=3),
                    io.String.Input("previous_attempts", default="", tooltip="Set by Frame Chain (JSON)"),
                    io.Image.Input("fallback", optional=True),
                    io.String.Input("start", force_input=True, optional=True,
                                    tooltip="From Frame Start: what the frame started from"),
                    io.Image.Input("previous", optional=True, tooltip="The previous frame (continuity)"),
                    io.String.Input("previous_report", force_input=True, optional=True),
                    io.Image.Input("reference", optional=True, tooltip="The reference (continuity)")],
            outputs=[io.Image.Output("image"), io.String.Output("report", tooltip="The frame's outcome (JSON)")],
            enable_expand=True)

    @classmethod
    def execute(cls, images: torch.Tensor, prompt: str, recipe: str, attempt: int, previous_attempts: str = "",
                fallback: torch.Tensor | None = None, start: str = "", previous: torch.Tensor | None = None,
                previous_report: str | None = None, reference: torch.Tensor | None = None) -> io.NodeOutput:
        scorers = runtime.atelier().scorers
        verdict = steps.select_frame(images, prompt, recipe, attempt, previous_attempts, start, scorers,
                                     previous, previous_report, reference)
        if verdict.retry is not None:
            assert verdict.retry_outputs is not None
            return io.NodeOutput(*verdict.retry_outputs, expand=verdict.retry)
        if verdict.chosen is None:
            plan = json.loads(recipe)
            image = fallback[:1] if fallback is not None else steps.fallback_image(plan["width"], plan["height"])
        else:
            image = images[verdict.chosen: verdict.chosen + 1]
        return io.NodeOutput(image, verdict.frame.to_json(), ui=ui.PreviewText(verdict.summary()))


class StoryboardCollect(io.ComfyNode):
    """Appends one frame (image + report) to the frames collected so far, in order."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierStoryboardCollect", display_name="Storyboard Collect", category="Atelier/Storyboard",
            inputs=[io.Image.Input("image"), io.String.Input("report", force_input=True),
                    io.Image.Input("images", optional=True),
                    io.String.Input("reports", force_input=True, optional=True)],
            outputs=[io.Image.Output("images_out", display_name="images"),
                     io.String.Output("reports_out", display_name="reports")])

    @classmethod
    def execute(cls, image: torch.Tensor, report: str, images: torch.Tensor | None = None,
                reports: str | None = None) -> io.NodeOutput:
        collected = json.loads(reports) if reports else []
        batch = image if images is None else torch.cat([images, image.to(images)], dim=0)
        return io.NodeOutput(batch, json.dumps([*collected, json.loads(report)]))


class StoryboardSave(io.ComfyNode):
    """Writes clip_001_start.png, … and manifest.json under output/atelier/storyboards/, and records the run."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierStoryboardSave", display_name="Storyboard Save", category="Atelier/Storyboard",
            is_output_node=True,
            inputs=[io.Image.Input("images"), io.String.Input("reports", force_input=True),
                    io.String.Input("storyboard", multiline=True), io.String.Input("settings", default="{}"),
                    io.String.Input("tier", default=""), io.String.Input("filename_prefix", default="storyboard"),
                    io.String.Input("owner", default="", optional=True,
                                    tooltip="The user the storyboard and its record belong to (empty: default)")],
            outputs=[io.Image.Output("frames"), io.String.Output("manifest")],
            hidden=[io.Hidden.prompt])

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> str:
        return str(time.time_ns())  # writes files and a record each run

    @classmethod
    def execute(cls, images: torch.Tensor, reports: str, storyboard: str, settings: str, tier: str,
                filename_prefix: str, owner: str = "") -> io.NodeOutput:
        prompt_id = runtime.current_prompt_id()
        try:
            manifest = steps.saved_manifest(storyboard, settings, reports, tier, prompt_id, owner)
        except AtelierError as exc:
            raise node_error(exc) from None
        subfolder = STORYBOARDS / steps.folder_name(filename_prefix)
        folder = runtime.output_directory() / subfolder
        write_storyboard(folder, manifest, [images[i: i + 1] for i in range(len(manifest.frames))])
        records = runtime.atelier().records
        try:  # the storyboard is saved; a records problem must not lose it
            record = records.create(manifest.owner, steps.record_config(manifest, graph_parameters(cls.hidden.prompt)),
                                    status="running", comfy_prompt_id=prompt_id, graph=graph_of(cls.hidden.prompt))
            records.store.set_status(record.id, "running", scores=steps.record_scores(manifest, str(subfolder)))
        except AtelierError:
            pass
        saved = [ui.SavedResult(f.file, str(subfolder), io.FolderType.output) for f in manifest.frames if f.file]
        return io.NodeOutput(images, json.dumps(manifest.to_dict()),
                             ui={"images": saved, "storyboard": [str(subfolder)]})


class FrameChain(io.ComfyNode):
    """A storyboard of clips (start and end frames), each frame the best of its variations, chained."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierFrameChain", display_name="Frame Chain (storyboard)", category="Atelier/Storyboard",
            description="Generates a storyboard on ComfyUI's own nodes: for each clip a start and an end frame, each "
                        "the best-scoring of N variations. The first start frame comes from the reference; later "
                        "starts from the reference + the previous clip's end; ends from the reference + their own "
                        "start (img2img at the tier's denoise, colour-matched, re-anchored every few clips). A failed "
                        "frame is retried once, then marked failed and left out of the frames after it (the "
                        "reference alone, or text to image); the storyboard goes on. Saves clip_001_start.png, "
                        "… and manifest.json under output/atelier/storyboards/.",
            inputs=[
                io.Model.Input("model"), io.Clip.Input("clip"), io.Vae.Input("vae"),
                QualityPresetType.Input("quality_preset", tooltip="The tier: sampling settings and chaining strength"),
                io.String.Input("storyboard", multiline=True,
                                default="a lighthouse on a cliff at dusk | the lighthouse beam over the sea\n"
                                        "storm clouds over the lighthouse | waves crashing below the lighthouse",
                                tooltip="One clip per line: 'start prompt | end prompt' (or JSON)"),
                io.String.Input("negative", multiline=True, default="text, watermark, blurry"),
                io.Int.Input("variations", default=0, min=0, max=16, tooltip="Per frame; 0: the tier's"),
                io.Float.Input("threshold", default=30.0, min=0.0, max=100.0, step=1.0),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFF, control_after_generate=True),
                io.Boolean.Input("enhance", default=True, tooltip="Improve each frame's prompt (rule backend)"),
                io.String.Input("scorers", default="auto",
                                tooltip="auto: technical and every model scorer whose weights are found"),
                io.String.Input("filename_prefix", default="storyboard"),
                io.Image.Input("reference", optional=True),
                io.String.Input("owner", default="", optional=True,
                                tooltip="The user the storyboard and its record belong to (empty: default). "
                                        "Atelier's pipeline routes set it; it is not authentication."),
                io.Combo.Input("pipeline", options=steps.chain_pipelines(runtime.atelier().quality.tables),
                               default="storyboard_generation", optional=True,
                               tooltip="Whose stage prompt suffixes the frames get (presets/pipelines.yaml): "
                                       "keyframes starting from text, chained frames from an image"),
            ],
            outputs=[io.Image.Output("frames"), io.String.Output("manifest")],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            is_output_node=True,  # it saves the storyboard: a graph may end here
            enable_expand=True)

    @classmethod
    def validate_inputs(cls, storyboard: str | None = None, scorers: str | None = None) -> bool | str:
        """Refuse a storyboard that does not parse or is too long, and an unknown scorer, before anything runs
        (a linked storyboard is checked when it runs)."""
        return runtime.validate_node(cls, "AtelierFrameChain", {"storyboard": storyboard, "scorers": scorers}, None)

    @classmethod
    def execute(cls, model: Any, clip: Any, vae: Any, quality_preset: QualityPlan, storyboard: str,
                negative: str, variations: int, threshold: float, seed: int, enhance: bool, scorers: str,
                filename_prefix: str, reference: torch.Tensor | None = None, owner: str = "",
                pipeline: str = "storyboard_generation") -> io.NodeOutput:
        request = steps.ChainRequest(storyboard, negative, variations, threshold, seed, enhance, scorers,
                                     filename_prefix, owner, pipeline)
        endpoint = runtime.atelier().enhance.endpoint_names()[0]
        try:
            graph, outputs = steps.frame_chain(quality_preset, request,
                                               _links(cls, ("model", "clip", "vae", "reference", "quality_preset")),
                                               f"{cls.hidden.unique_id}.fc", endpoint)
        except AtelierError as exc:
            raise node_error(exc) from None
        return io.NodeOutput(*outputs, expand=graph)


class TierGrid(io.ComfyNode):
    """One prompt and seed rendered at several tiers, side by side with each tier's settings and time."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        pairs = []
        for slot in "abcd":
            pairs += [io.Image.Input(f"image_{slot}", optional=slot != "a"),
                      QualityPresetType.Input(f"preset_{slot}", optional=slot != "a")]
        return io.Schema(
            node_id="AtelierTierGrid", display_name="Tier Comparison Grid", category="Atelier/Quality",
            description="A labelled grid of the images of up to four tiers: each labelled with its tier, steps, size "
                        "and estimated time (calibrated from this machine's runs when there are enough).",
            inputs=[*pairs, io.Int.Input("columns", default=2, min=1, max=4)],
            outputs=[io.Image.Output("grid")])

    @classmethod
    def execute(cls, columns: int, **inputs: Any) -> io.NodeOutput:
        from ..core.storyboard.grid import labelled_grid

        images, labels = [], []
        for slot in "abcd":
            image, plan = inputs.get(f"image_{slot}"), inputs.get(f"preset_{slot}")
            if image is not None:
                images.append(image)
                labels.append(plan.grid_label() if plan else slot)
        return io.NodeOutput(labelled_grid(images, labels, columns), ui=ui.PreviewText("\n".join(labels)))
