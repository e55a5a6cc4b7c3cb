"""ComfyUI V3 nodes for storyboards (adapters over ``nodes.storyboard``).

Frame Chain expands into ComfyUI's own nodes (see ``storyboard/graph.py``), so sampling, caching,
progress, interruption and memory management are ComfyUI's. Frame Select, Chain Image, Storyboard
Collect and Storyboard Save are the steps of that expansion; they can be used on their own too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.storyboard.frames import Attempt, FrameResult, blend, conclude, judge_attempt
from ..core.storyboard.frames import color_match as match_colours
from ..core.storyboard.graph import Sampling, Sources, sampler_nodes, select_node, storyboard_graph
from ..core.storyboard.manifest import build_manifest, write_storyboard
from ..core.storyboard.runner import frame_seed
from ..core.storyboard.spec import ChainSettings, Storyboard, chain_settings, frames
from . import runtime
from .quality import QualityPresetType

GREY = 0.5


def _grey(width: int, height: int) -> torch.Tensor:
    return torch.full((1, height, width, 3), GREY)


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
        failed = bool(previous_report) and json.loads(previous_report).get("status") == "failed"
        if reference is None:
            return io.NodeOutput(previous)
        if failed:
            return io.NodeOutput(reference[:1])
        return io.NodeOutput(match_colours(blend(previous, reference[:1], anchor), reference[:1], color_match))


class FrameSelect(io.ComfyNode):
    """Scores a frame's variations and keeps the best; a failed attempt expands a retry with the next seed."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierFrameSelect", display_name="Frame Select", category="Atelier/Storyboard",
            description="Scores the variations of one storyboard frame and keeps the best. Variations with NaN/inf "
                        "or blank pixels are unusable; when none is usable or scoring fails, the frame is sampled "
                        "again with the next seed (retries), then marked failed and the fallback image passes on.",
            inputs=[io.Image.Input("images"), io.String.Input("prompt", force_input=True),
                    io.String.Input("recipe", multiline=True, tooltip="Set by Frame Chain (JSON)"),
                    io.Int.Input("attempt", default=0, min=0, max=3),
                    io.String.Input("previous_attempts", default="", tooltip="Set by Frame Chain (JSON)"),
                    io.Image.Input("fallback", optional=True)],
            outputs=[io.Image.Output("image"), io.String.Output("report", tooltip="The frame's outcome (JSON)")],
            enable_expand=True)

    @classmethod
    def execute(cls, images: torch.Tensor, prompt: str, recipe: str, attempt: int, previous_attempts: str = "",
                fallback: torch.Tensor | None = None) -> io.NodeOutput:
        plan = json.loads(recipe)
        frame = FrameResult(plan["name"], plan["clip"], plan["role"], prompt, list(plan["sources"]))
        frame.attempts = [Attempt(**a) for a in (json.loads(previous_attempts) if previous_attempts else [])]
        seed = frame_seed(int(plan["seed"]), int(plan["index"]), attempt)
        result, chosen, below = judge_attempt(images, prompt, seed, plan["scorers"], plan["threshold"],
                                              runtime.atelier().scorers)
        conclude(frame, result, chosen, below, plan["threshold"])
        if chosen is None and attempt < plan["retries"]:
            retry = sampler_nodes(plan["prefix"], plan, attempt + 1)
            select_id = f"{plan['prefix']}.a{attempt + 1}.select"
            retry[select_id] = select_node(plan, [f"{plan['prefix']}.a{attempt + 1}.decode", 0], attempt + 1,
                                           json.dumps([a.__dict__ for a in frame.attempts]))
            return io.NodeOutput([select_id, 0], [select_id, 1], expand=retry)
        if chosen is None:
            image = fallback[:1] if fallback is not None else _grey(plan["width"], plan["height"])
        else:
            image = images[chosen: chosen + 1]
        text = f"{frame.name}: {frame.status}" + (f", best {frame.best_score:.1f}" if frame.best_score else "")
        return io.NodeOutput(image, json.dumps(frame.to_dict()), ui=ui.PreviewText(text))


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
                    io.String.Input("tier", default=""), io.String.Input("filename_prefix", default="storyboard")],
            outputs=[io.Image.Output("frames"), io.String.Output("manifest")],
            hidden=[io.Hidden.prompt])

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> str:
        return str(time.time_ns())  # writes files and a record each run

    @classmethod
    def execute(cls, images: torch.Tensor, reports: str, storyboard: str, settings: str, tier: str,
                filename_prefix: str) -> io.NodeOutput:
        try:
            board = Storyboard.from_text(storyboard)
            chain = ChainSettings(**json.loads(settings or "{}"))
        except AtelierError as exc:
            raise node_error(exc) from None
        results = [FrameResult(**{**r, "attempts": [Attempt(**a) for a in r["attempts"]]})
                   for r in json.loads(reports)]
        safe = "".join(c for c in filename_prefix if c.isalnum() or c in "-_") or "storyboard"
        folder_name = f"{safe}_{time.strftime('%Y%m%d-%H%M%S')}_{time.time_ns() % 10**6:06d}"
        base = runtime.output_directory()
        folder = base / "atelier" / "storyboards" / folder_name
        manifest = build_manifest(board, chain, results, tier, {"comfy_prompt_id": runtime.current_prompt_id()})
        write_storyboard(folder, results, [images[i: i + 1] for i in range(len(results))], manifest)
        _record(manifest, folder, cls.hidden.prompt)
        subfolder = str(Path("atelier") / "storyboards" / folder_name)
        saved = [ui.SavedResult(f["file"], subfolder, io.FolderType.output) for f in manifest["frames"] if f["file"]]
        return io.NodeOutput(images, json.dumps(manifest), ui={"images": saved, "storyboard": [subfolder]})


def _record(manifest: dict[str, Any], folder: Path, prompt: dict[str, Any] | None) -> None:
    """The storyboard run as a generation record (completed or failed later from ComfyUI's history)."""
    from .records import graph_parameters

    frames_out = [f for f in manifest["frames"] if f["file"]]
    try:
        service = runtime.atelier().records
        record = service.create("default", {
            "operation_type": "storyboard", "workspace": "default",
            "parameters": {"graph": graph_parameters(prompt), "storyboard": manifest["clips"],
                           "settings": manifest["settings"], "quality": {"preset": manifest["tier"]}},
            "prompt": " | ".join(f"{c['start']} -> {c['end']}" for c in manifest["clips"])[:20000]},
            status="running", comfy_prompt_id=runtime.current_prompt_id())
        service.store.set_status(record["id"], "running", scores={
            "frames": {f["name"]: f["best_score"] for f in manifest["frames"]},
            "failed_clips": manifest["failed_clips"], "folder": str(folder), "files": [f["file"] for f in frames_out]})
    except AtelierError:
        pass  # the storyboard is saved; a records problem must not lose it


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
                        "frame is retried once, then marked failed; the storyboard goes on. Saves clip_001_start.png, "
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
                io.String.Input("scorers", default="technical"),
                io.String.Input("filename_prefix", default="storyboard"),
                io.Image.Input("reference", optional=True),
            ],
            outputs=[io.Image.Output("frames"), io.String.Output("manifest")],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            is_output_node=True,  # it saves the storyboard: a graph may end here
            enable_expand=True)

    @classmethod
    def validate_inputs(cls, storyboard: str = "", **_: Any) -> bool | str:
        if not isinstance(storyboard, str):
            return True  # linked: checked when it runs
        try:
            Storyboard.from_text(storyboard)
        except AtelierError as exc:
            return exc.message
        return True

    @classmethod
    def execute(cls, model: Any, clip: Any, vae: Any, quality_preset: dict[str, Any], storyboard: str,
                negative: str, variations: int, threshold: float, seed: int, enhance: bool, scorers: str,
                filename_prefix: str, reference: torch.Tensor | None = None) -> io.NodeOutput:
        try:
            board = Storyboard.from_text(storyboard)
            level = int(quality_preset["preset"]["level"])
            settings = chain_settings(level, {"variations": variations or None, "threshold": threshold,
                                              "scorers": scorers})
        except AtelierError as exc:
            raise node_error(exc) from None
        me = str(cls.hidden.unique_id)
        links = cls.hidden.dynprompt.get_node(me)["inputs"]
        params = quality_preset["params"]
        family = quality_preset["family"]["family"]
        sampling = Sampling(int(params["width"]), int(params["height"]), int(params["steps"]), float(params["cfg"]),
                            str(params["sampler_name"]), str(params["scheduler"]), seed)
        enhance_inputs = None
        if enhance:
            enhance_inputs = {"backend": "rule", "endpoint": runtime.atelier().enhance.endpoint_names()[0],
                              "model": "", "model_family": family if family != "auto" else "auto",
                              "threshold": 85.0, "iterations": 4, "temperature": 0.7, "keep_trace": False,
                              "keep_llm_loaded": False}
        sources = Sources(links["model"], links["clip"], links["vae"],
                          links.get("reference") if reference is not None else None, enhance_inputs)
        specs = frames(board, reference is not None, settings.reanchor_every)
        graph, outputs = storyboard_graph(specs, settings, sampling, sources, f"{me}.fc", board.negative or negative,
                                          {"storyboard": board.model_dump_json(), "settings": settings.model_dump_json(),
                                           "tier": quality_preset["preset"]["id"], "filename_prefix": filename_prefix})
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
            if image is None:
                continue
            label = slot
            if plan:
                p, e = plan["params"], plan["estimate"]
                label = (f"{plan['preset']['display_name']}: {p['steps']} steps, {p['width']}x{p['height']}, "
                         f"~{e['time_s']['expected']:.1f}s" + (" calibrated" if e['calibrated'] else " est."))
            images.append(image)
            labels.append(label)
        grid = labelled_grid(images, labels, columns)
        return io.NodeOutput(grid, ui=ui.PreviewText("\n".join(labels)))

