"""Did a LoRA apply? How many of its modules found a weight in the model, reported, never silent.

In ComfyUI the LoRA is applied by ComfyUI's own loader (``comfy.sd.load_lora_for_models``) and the host counts
the weights it patched; outside ComfyUI ``match_modules`` checks a LoRA's modules against a model's weight
names under the common naming schemes (kohya ``lora_unet_``/``lora_te*_`` with '_' for '.', diffusers/PEFT
``unet.``/``text_encoder.``/``transformer.`` prefixes, and bare module names).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_transformer_", "unet.", "text_encoder.",
            "text_encoder_2.", "transformer.", "diffusion_model.", "model.diffusion_model.", "base_model.model.")
MODEL_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "cond_stage_model.transformer.",
                  "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model.", "")

TEXT_MODEL_PARTS = ("encoder.", "embeddings.", "final_layer_norm.")  # transformers 5 drops "text_model."


@dataclass
class ApplyReport:
    name: str
    strength_model: float
    strength_clip: float
    modules: int  # LoRA modules in the file
    matched: int  # of them, the ones that patched a weight
    unmatched: list[str] = field(default_factory=list)  # a few names that did not

    @property
    def fraction(self) -> float:
        return self.matched / self.modules if self.modules else 0.0

    @property
    def warning(self) -> str | None:
        if self.modules and self.matched == 0:
            return (f"{self.name}: none of its {self.modules} modules matched the model (a LoRA of another family?); "
                    "it had no effect")
        if self.modules and self.fraction < 0.5:
            return f"{self.name}: only {self.matched} of {self.modules} modules matched the model"
        return None

    def text(self) -> str:
        return f"{self.matched}/{self.modules} modules applied"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "strength_model": self.strength_model, "strength_clip": self.strength_clip,
                "modules": self.modules, "matched": self.matched, "fraction": round(self.fraction, 3),
                "unmatched": self.unmatched[:5], "warning": self.warning, "report": self.text()}


def _keys_of(weight: str) -> set[str]:
    """The names a LoRA may use for the module owning ``weight``."""
    module = weight.removesuffix(".weight")
    names = set()
    for prefix in MODEL_PREFIXES:
        if prefix and not module.startswith(prefix):
            continue
        bare = module[len(prefix):]
        for name in (bare, f"text_model.{bare}" if bare.startswith(TEXT_MODEL_PARTS) else bare):
            names.add(name)
            names.add(name.replace(".", "_"))
    return names


def _bare(module: str) -> str:
    for prefix in PREFIXES:
        if module.startswith(prefix):
            return module[len(prefix):]
    return module


def match_modules(name: str, lora_modules: Iterable[str], model_weights: Iterable[str], strength_model: float = 1.0,
                  strength_clip: float = 1.0) -> ApplyReport:
    """Which of a LoRA's modules name a weight of the model (by any of the naming schemes above)."""
    known: set[str] = set()
    for weight in model_weights:
        if weight.endswith(".weight"):
            known |= _keys_of(weight)
    modules = list(lora_modules)
    unmatched = [m for m in modules if _bare(m) not in known and _bare(m).replace(".", "_") not in known]
    return ApplyReport(name, strength_model, strength_clip, len(modules), len(modules) - len(unmatched), unmatched)
