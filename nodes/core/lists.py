"""The lists an adapter shows (tier pickers, combos, settings, help texts), each read from its one source:
tiers from ``presets/tiers.yaml``, model families from ``families.yaml``, pipelines from ``pipelines.yaml``
(and the runnable graph builders), scorers from the scorer registry, LLM backends from the enhancement loop,
content ratings from the world schemas. The web panel fetches them (``GET /atelier/lists``)."""

from __future__ import annotations

from typing import Any

from .enhance.loop import BACKENDS
from .quality.service import QualityService
from .scoring.registry import DEFAULT_SCORERS, SCORER_NAMES
from .social.service import SocialService
from .storyboard.pipelines import BUILDERS, pipeline_graph

SAMPLE_RUN = {"checkpoint": "model.safetensors", "prompt": "a prompt", "storyboard": "a start | an end"}


def _node_types(name: str) -> list[str]:
    """The node types of a runnable pipeline's graph: a graph holding them all is (likely) that pipeline."""
    _, graph = pipeline_graph(name, SAMPLE_RUN)
    return sorted({node["class_type"] for node in graph.values()})


def lists(quality: QualityService, social: SocialService) -> dict[str, Any]:
    tables = quality.tables
    return {
        "tiers": [{"id": p.id, "display_name": p.display_name, "level": p.level, "aliases": list(p.aliases)}
                  for p in tables.tiers.values()],
        "default_tier": tables.default_tier,
        "reference_tier": tables.reference_tier,
        "families": ["auto", *tables.families.families],
        "default_family": tables.families.default_family,
        "pipelines": [{"name": name, "runnable": name in BUILDERS,
                       "nodes": _node_types(name) if name in BUILDERS else []} for name in tables.pipelines.pipelines],
        "scorers": list(SCORER_NAMES),
        "default_scorers": list(DEFAULT_SCORERS),
        "backends": list(BACKENDS),
        "ratings": social.ratings(),
    }
