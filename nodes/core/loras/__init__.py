"""The LoRA library: cards built from safetensors headers and sidecars (family with its evidence, triggers,
tags, strength), cached by content hash, with per-user family overrides; recommendations for a prompt."""
