"""ComfyUI V3 nodes for best-of-N: VariationScore and RankSelect (adapter over ``core.scoring``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.scoring import ranking
from ..core.scoring.images import collect
from ..core.scoring.registry import DEFAULT_SCORERS, SCORER_NAMES
from ..core.scoring.scores import ScoreResult, score_variations
from ..core.scoring.select import rank_select
from . import runtime

log = logging.getLogger("atelier")
ScoresType = io.Custom("SCORES")
ScorerModelsType = io.Custom("SCORER_MODELS")
DEFAULT_CHOICE = "(default)"
MODEL_CHOICES = {  # model key -> ComfyUI folders listed for it
    "clip": ("scorers", "clip_vision"), "aesthetic": ("aesthetic",), "pickscore": ("scorers",), "hpsv2": ("scorers",)}
METRIC_OUTPUTS = SCORER_NAMES  # one FLOAT list each



MAX_PREVIEWS = 64


def _previews(images: list[torch.Tensor], cls: type[io.ComfyNode]) -> list[dict[str, Any]]:
    """Temp previews of single images [H, W, C] for the node's scored gallery (web/js/atelier_scores.js).

    Sent as ``atelier_images`` rather than ``images`` so the frontend draws Atelier's DOM gallery
    (scores, chosen mark, warnings) instead of its own canvas preview."""
    saved: list[dict[str, Any]] = []
    for image in images[:MAX_PREVIEWS]:
        saved.extend(dict(r) for r in ui.PreviewImage(image.unsqueeze(0), cls=cls).values)
    return saved


class VariationScore(io.ComfyNode):
    """Scores every image of a batch (or list) with the chosen scorers; scores show on the node."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierVariationScore",
            display_name="Variation Score",
            category="Atelier/Best-of-N",
            description="Scores variations and combines the scorers into an overall 0-100 score. technical "
                        "(sharpness, noise, exposure, colourfulness) needs no model; clip_score, aesthetic, pickscore "
                        "and hpsv2 use weights from models/scorers and models/aesthetic (never downloaded).",
            is_input_list=True,
            inputs=[
                io.Image.Input("images", tooltip="A batch, or a list of batches (sizes may differ)."),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The prompt, or one per image (a list) for prompt-aware scorers."),
                io.String.Input("scorers", default=",".join(DEFAULT_SCORERS),
                                tooltip=f"Comma-separated: {', '.join(SCORER_NAMES)}"),
                io.String.Input("weights", default="",
                                tooltip='Optional "name=weight, ..."; defaults are documented in the README.'),
                ScorerModelsType.Input("models", optional=True,
                                       tooltip="From a Scorer Models node; without it the default names are used."),
            ],
            outputs=[
                ScoresType.Output("scores_out", display_name="SCORES"),
                io.Float.Output("overall", display_name="overall", is_output_list=True),
                *(io.Float.Output(name, display_name=name, is_output_list=True,
                                  tooltip=f"{name} per image (empty when that scorer was left out)")
                  for name in METRIC_OUTPUTS),
            ],
        )

    @classmethod
    def validate_inputs(cls, scorers: list[str] | None = None) -> bool | str:
        """Refuse an unknown scorer before anything runs (a missing scorer's weights only warn: it is left out)."""
        chosen = scorers[0] if isinstance(scorers, list) and scorers else scorers
        return runtime.validate_node(cls, "AtelierVariationScore", {"scorers": chosen}, None)

    @classmethod
    def execute(cls, images: list[torch.Tensor], prompt: list[str], scorers: list[str],
                weights: list[str], models: list[dict[str, str]] | None = None) -> io.NodeOutput:
        registry = runtime.atelier().scorers  # ComfyUI's model folders and memory management
        chosen = models[0] if models else None
        if chosen:
            registry = registry.with_models(registry.models.with_overrides(  # type: ignore[union-attr]
                {key: Path(path) for key, path in chosen.items()}))
        try:
            image_set = collect(images)
            result = score_variations(image_set, prompt, scorers[0] if scorers else None,
                                      weights[0] if weights else None, registry)
        except AtelierError as exc:
            raise node_error(exc) from None
        for warning in result.warnings:
            log.warning("Atelier Variation Score: %s", warning)
        metric_lists = [result.metrics.get(name, []) for name in METRIC_OUTPUTS]
        shown = {"text": [result.summary()],
                 "atelier_scores": [{**result.to_dict(), "order": ranking.rank(result.overall)}],
                 "atelier_images": _previews(image_set.images, cls)}
        return io.NodeOutput(result, result.overall, *metric_lists, ui=shown)


def _model_options(kinds: tuple[str, ...]) -> list[str]:
    return [DEFAULT_CHOICE, *runtime.model_files(kinds)]


class ScorerModels(io.ComfyNode):
    """Picks the scorers' models from ComfyUI's folders when their names differ from the defaults."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierScorerModels",
            display_name="Scorer Models",
            category="Atelier/Best-of-N",
            description="Choose the models of clip_score/aesthetic, PickScore and HPSv2 from models/scorers, "
                        "models/aesthetic and models/clip_vision. A weights file inside a Hugging Face or "
                        "open_clip folder stands for the folder. (default) keeps the names in presets/scorers.yaml.",
            inputs=[io.Combo.Input(key, options=_model_options(kinds), default=DEFAULT_CHOICE)
                    for key, kinds in MODEL_CHOICES.items()],
            outputs=[ScorerModelsType.Output("models_out", display_name="SCORER_MODELS")],
        )

    @classmethod
    def execute(cls, **choices: str) -> io.NodeOutput:
        chosen: dict[str, str] = {}
        for key, name in choices.items():
            if name == DEFAULT_CHOICE:
                continue
            path = runtime.model_path(MODEL_CHOICES[key], name)
            if path is None:
                raise ValueError(f"Atelier: {key} model {name!r} is not in "
                                 f"{', '.join(MODEL_CHOICES[key])} any more; refresh the node")
            chosen[key] = path
        return io.NodeOutput(chosen)


class RankSelect(io.ComfyNode):
    """Keeps the top-k images (latents and masks aligned); warns or blocks below the threshold."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AtelierRankSelect",
            display_name="Rank Select",
            category="Atelier/Best-of-N",
            description="Ranks variations by overall score (ties keep their order) and keeps the best. Below the "
                        "quality threshold it logs a warning, or blocks only the downstream branch.",
            inputs=[
                io.Image.Input("images"),
                ScoresType.Input("scores"),
                io.Int.Input("top_k", default=1, min=1, max=4096),
                io.Float.Input("threshold", default=ranking.DEFAULT_THRESHOLD, min=0.0, max=100.0, step=0.5,
                               tooltip="Overall score (0-100) under which the best image counts as poor."),
                io.Combo.Input("below_threshold", options=list(ranking.BELOW_THRESHOLD), default="warn",
                               tooltip="warn: log and go on; block: stop only the nodes downstream of this one."),
                io.Latent.Input("latent", optional=True),
                io.Mask.Input("mask", optional=True),
            ],
            outputs=[
                io.Image.Output("images_out", display_name="images"),
                io.Latent.Output("latent_out", display_name="latent",
                                 tooltip="The chosen latents; only meaningful when a latent was given."),
                io.Mask.Output("mask_out", display_name="mask"),
                io.Int.Output("best_index"),
                io.String.Output("report"),
            ],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, scores: ScoreResult, top_k: int = 1,
                threshold: float = ranking.DEFAULT_THRESHOLD, below_threshold: str = "warn",
                latent: dict[str, Any] | None = None, mask: torch.Tensor | None = None) -> io.NodeOutput:
        try:
            chosen = rank_select(images, scores, top_k, threshold, below_threshold, latent, mask)
        except AtelierError as exc:
            raise node_error(exc) from None
        for warning in chosen.selection.warnings:
            log.warning("Atelier Rank Select: %s", warning)
        if chosen.below_message:
            log.warning(chosen.below_message)
        shown = {"text": [chosen.report], "atelier_selection": [{**chosen.selection.to_dict(), "overall": chosen.overall}],
                 "atelier_images": _previews(list(images), cls)}
        if chosen.block:  # stops only the nodes downstream of this one
            return io.NodeOutput(*chosen.outputs(), block_execution=chosen.block, ui=shown)
        return io.NodeOutput(*chosen.outputs(), ui=shown)
