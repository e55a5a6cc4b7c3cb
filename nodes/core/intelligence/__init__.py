"""Intelligent generation: prompt analysis, parameters under constraints, explanations (core, no ComfyUI)."""
