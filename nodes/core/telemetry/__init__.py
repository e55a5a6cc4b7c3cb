"""Telemetry: device time and cost per run, LLM calls (latency, tokens) and provider health, totals per user,
workspace and day, and the charts' series (``presets/telemetry.yaml`` has the rates)."""
