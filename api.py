"""``from atelier.api import IntelligentGenerationPipeline, PipelineConfig, ...``: the Python API (see
``nodes/api``)."""

from .nodes.api import *  # noqa: F403
from .nodes.api import __all__  # noqa: F401
