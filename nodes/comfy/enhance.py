"""ComfyUI V3 node for prompt enhancement (adapter over ``nodes.enhance``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from comfy_api.latest import io, ui

from ..core.base.errors import AtelierError, node_error
from ..core.enhance.config import DEFAULT_ENDPOINT
from ..core.enhance.loop import DEFAULT_THRESHOLD, MAX_ITERATIONS
from . import runtime
from .quality import QualityPresetType

BACKENDS = ["rule", "ollama", "openai", "transformers"]


def _body(prompt: str, negative: str, backend: str, endpoint: str, model: str, model_family: str,
          threshold: float, iterations: int, seed: int, temperature: float,
          quality_preset: dict[str, Any] | None) -> dict[str, Any]:
    family = model_family
    checkpoint = None
    if quality_preset:
        checkpoint = quality_preset.get("template", {}).get("checkpoint")
        if family == "auto":
            family = quality_preset.get("family", {}).get("family", "sd15")
    return {"prompt": prompt, "negative": negative, "backend": backend, "endpoint": endpoint, "model": model,
            "model_family": "sd15" if family == "auto" else family, "checkpoint": checkpoint,
            "threshold": threshold, "iterations": iterations, "seed": seed, "temperature": temperature}


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
                io.Combo.Input("backend", options=BACKENDS, default="rule"),
                io.Combo.Input("endpoint", options=runtime.atelier().enhance.endpoint_names(),
                               default=DEFAULT_ENDPOINT, tooltip="Named in <user dir>/atelier/llm.json"),
                io.String.Input("model", default="",
                                tooltip="Model name (ollama/openai) or a local folder (transformers); "
                                        "empty: the endpoint's model"),
                io.Combo.Input("model_family", options=["auto", *service.tables.families.families], default="auto",
                               tooltip="auto: from the Quality Preset input, else SD1.5"),
                io.Float.Input("threshold", default=DEFAULT_THRESHOLD, min=0.0, max=100.0, step=1.0),
                io.Int.Input("iterations", default=MAX_ITERATIONS, min=1, max=MAX_ITERATIONS),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Float.Input("temperature", default=0.7, min=0.0, max=2.0, step=0.05),
                io.Boolean.Input("keep_trace", default=False,
                                 tooltip="Keep the trace file under output/atelier/traces after the run"),
                io.Boolean.Input("keep_llm_loaded", default=False,
                                 tooltip="Ollama: keep the model in memory after the loop (default: free its VRAM "
                                         "for the diffusion model)"),
                QualityPresetType.Input("quality_preset", optional=True),
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
        endpoint = inputs.get("endpoint", DEFAULT_ENDPOINT)
        resolved = next((e for e in runtime.atelier().enhance.endpoints() if e["name"] == endpoint), None)
        blob = json.dumps({"inputs": {k: v for k, v in inputs.items() if k != "quality_preset"},
                           "endpoint": resolved}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @classmethod
    async def execute(cls, prompt: str, negative: str, backend: str, endpoint: str, model: str, model_family: str,
                      threshold: float, iterations: int, seed: int, temperature: float, keep_trace: bool,
                      keep_llm_loaded: bool = False, quality_preset: dict[str, Any] | None = None) -> io.NodeOutput:
        service = runtime.atelier().enhance
        body = _body(prompt, negative, backend, endpoint, model, model_family, threshold, iterations, seed,
                     temperature, quality_preset)
        body["release_after"] = not keep_llm_loaded
        try:
            result = await service.enhance(body, keep_trace=keep_trace)
        except AtelierError as exc:
            raise node_error(exc) from None
        text = "\n".join([f"score {result['score']:.0f} after {result['iterations']} iteration(s)",
                          result["prompt"], *[f"fallback: {f}" for f in result["fallbacks"]]])
        return io.NodeOutput(result["prompt"], result["negative"], float(result["score"]), int(result["iterations"]),
                             json.dumps(result), ui=ui.PreviewText(text))
