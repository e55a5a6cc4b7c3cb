"""ComfyUI V3 node for prompt enhancement (adapter over ``core.enhance``)."""

from __future__ import annotations

import json
from typing import Any

from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.enhance.config import DEFAULT_ENDPOINT
from ..core.enhance.loop import (
    BACKENDS,
    DEFAULT_DEADLINE_S,
    DEFAULT_THRESHOLD,
    MAX_DEADLINE_S,
    MAX_ITERATIONS,
)
from ..core.enhance.service import node_body, node_fingerprint, node_text
from ..core.quality.plan import QualityPlan
from ..core.telemetry.llm import calling_prompt, calling_user
from . import runtime
from .quality import QualityPresetType


class PromptEnhance(io.ComfyNode):
    """A writer/critic loop improves the prompt; outputs wire into CLIPTextEncode."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        service = runtime.atelier().quality
        return io.Schema(
            node_id="AtelierPromptEnhance",
            display_name="Prompt Enhance",
            category="Atelier/Prompt",
            description="A writer rewrites the prompt, a critic scores it 0-100 with concrete feedback; repeats "
                        "until the threshold or the iteration limit. rule works offline; ollama/openai use an "
                        "endpoint from Atelier's LLM config (keys never in the graph); any failure falls back to "
                        "rule, then to the original prompt.",
            inputs=[
                io.String.Input("prompt", multiline=True, default=""),
                io.String.Input("negative", multiline=True, default=""),
                io.Combo.Input("backend", options=list(BACKENDS), default="rule"),
                io.Combo.Input("endpoint", options=runtime.atelier().enhance.endpoint_names(),
                               default=DEFAULT_ENDPOINT, tooltip="Named in <user dir>/atelier/llm.json"),
                io.String.Input("model", default="",
                                tooltip="Model name (ollama/openai) or a local folder (transformers); "
                                        "empty: the endpoint's model"),
                io.Combo.Input("model_family", options=["auto", *service.tables.families.families], default="auto",
                               tooltip="auto: from the Quality Preset input, else SD1.5"),
                io.Float.Input("threshold", default=DEFAULT_THRESHOLD, min=0.0, max=100.0, step=1.0),
                io.Int.Input("iterations", default=0, min=0, max=MAX_ITERATIONS,
                             tooltip="Writer/critic rounds at most; 0: the tier's rounds and stopping score "
                                     "(from the Quality Preset input)"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Float.Input("temperature", default=0.7, min=0.0, max=2.0, step=0.05),
                io.Boolean.Input("keep_trace", default=False,
                                 tooltip="Keep the trace file under output/atelier/traces after the run"),
                io.Boolean.Input("keep_llm_loaded", default=False,
                                 tooltip="Ollama: keep the model in memory after the loop (default: free its VRAM "
                                         "for the diffusion model)"),
                QualityPresetType.Input("quality_preset", optional=True),
                io.Float.Input("timeout_s", default=DEFAULT_DEADLINE_S, min=1.0, max=MAX_DEADLINE_S, step=1.0,
                               optional=True, tooltip="The whole enhancement's deadline: a dead LLM server never "
                                                      "holds the queue longer; then the rule backend takes over"),
            ],
            outputs=[
                io.String.Output("prompt_out", display_name="prompt"),
                io.String.Output("negative_out", display_name="negative"),
                io.Float.Output("score"),
                io.Int.Output("iterations_out", display_name="iterations"),
                io.String.Output("trace", tooltip="The whole trace as JSON"),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> str:
        """Stable: changes exactly when an input (seed included) or the chosen endpoint's settings change."""
        return node_fingerprint(runtime.atelier().enhance, inputs)

    @classmethod
    async def execute(cls, prompt: str, negative: str, backend: str, endpoint: str, model: str, model_family: str,
                      threshold: float, iterations: int, seed: int, temperature: float, keep_trace: bool,
                      keep_llm_loaded: bool = False, quality_preset: QualityPlan | None = None,
                      timeout_s: float = DEFAULT_DEADLINE_S) -> io.NodeOutput:
        body = node_body({"prompt": prompt, "negative": negative, "backend": backend, "endpoint": endpoint,
                          "model": model, "model_family": model_family, "threshold": threshold,
                          "iterations": iterations, "seed": seed, "temperature": temperature,
                          "keep_llm_loaded": keep_llm_loaded, "timeout_s": timeout_s}, quality_preset)
        token = calling_user.set(runtime.queuing_user() or "(unknown)")  # whose LLM calls these are
        run = calling_prompt.set(runtime.current_prompt_id())  # and the run they belong to
        try:
            result = await runtime.atelier().enhance.enhance(body, keep_trace=keep_trace)
        except AtelierError as exc:
            raise node_error(exc) from None
        finally:
            calling_prompt.reset(run)
            calling_user.reset(token)
        return io.NodeOutput(result["prompt"], result["negative"], float(result["score"]), int(result["iterations"]),
                             json.dumps(result), ui=ui.PreviewText(node_text(result)))
