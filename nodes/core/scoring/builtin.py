"""The built-in scorers in one registry: ``technical`` and the model-based ones (``model_scorers.py``)."""

from __future__ import annotations

from .model_scorers import MODEL_SCORERS
from .models import ModelManager
from .registry import SCORER_NAMES, Scorers
from .technical import TECHNICAL


def builtin_scorers(models: ModelManager | None = None) -> Scorers:
    """Every built-in scorer (``SCORER_NAMES``), the model-based ones loading from ``models``."""
    registry = Scorers([TECHNICAL, *MODEL_SCORERS], models)
    assert tuple(registry.names()) == SCORER_NAMES, registry.names()
    return registry
