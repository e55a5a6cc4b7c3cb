"""Learning from feedback: per-user scorer weights and per-LoRA priors, explainable and never over an explicit
choice (``model.py``; the tables in ``presets/learning.yaml``)."""
