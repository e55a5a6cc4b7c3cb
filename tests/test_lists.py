"""One source for every list: tiers, families, pipelines, scorers, LLM backends and ratings are read from their
tables and registries, served by GET /atelier/lists, and never repeated in the web code; the plan summary is
the server's, in the node and in the tier picker alike."""

from __future__ import annotations

import re
from pathlib import Path

from atelier.nodes.core.base.data import PRESETS_DIR, read_yaml
from atelier.nodes.core.enhance.loop import BACKENDS
from atelier.nodes.core.quality import plan as planning
from atelier.nodes.core.quality.service import QualityService
from atelier.nodes.core.scoring.builtin import builtin_scorers
from atelier.nodes.core.scoring.registry import SCORER_NAMES
from atelier.nodes.core.storyboard.pipelines import BUILDERS

REPO = Path(__file__).resolve().parents[1]


def test_lists_come_from_their_tables_and_registries(server) -> None:
    status, lists = server.get("/atelier/lists")
    assert status == 200 and server.get("/api/atelier/lists")[1] == lists
    tiers = read_yaml(PRESETS_DIR / "tiers.yaml")
    assert [t["id"] for t in lists["tiers"]] == sorted(tiers["tiers"], key=lambda t: tiers["tiers"][t]["level"])
    assert lists["default_tier"] == tiers["default"] and lists["reference_tier"] == tiers["reference"]
    families = read_yaml(PRESETS_DIR / "families.yaml")
    assert lists["families"] == ["auto", *families["families"]] and lists["default_family"] == families["default_family"]
    assert lists["scorers"] == list(SCORER_NAMES) == builtin_scorers().names()
    assert lists["backends"] == list(BACKENDS) and lists["backends"][0] == "rule"
    assert lists["ratings"] == read_yaml(PRESETS_DIR / "worlds" / "default.yaml")["ratings"]
    pipelines = {p["name"]: p for p in lists["pipelines"]}
    assert list(pipelines) == list(read_yaml(PRESETS_DIR / "pipelines.yaml")["pipelines"])
    assert {n for n, p in pipelines.items() if p["runnable"]} == set(BUILDERS)
    storyboard, sequence = pipelines["storyboard_generation"]["nodes"], pipelines["sequence_generation"]["nodes"]
    assert "AtelierFrameChain" in storyboard and set(storyboard) < set(sequence)  # the more specific one is larger


def test_web_code_repeats_no_list_of_the_server() -> None:
    names = [*read_yaml(PRESETS_DIR / "tiers.yaml")["tiers"], *SCORER_NAMES[1:], *BACKENDS[1:], *BUILDERS]
    for path in (REPO / "web").rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        for name in names:
            assert not re.search(rf"""["'`]{re.escape(name)}["'`]""", text), (path.name, name)


def test_the_tier_pickers_plan_is_the_nodes_plan(service: QualityService) -> None:
    plan = planning.build_plan(service, "high", "sdxl", None, None, 1024, 768, 2)
    template = {"category": "image", "model_family": "sdxl", "width": 1024, "height": 768, "batch_size": 2}
    applied = service.apply("default", "high", template)["parameters"]["_quality_preset"]
    assert applied["summary"].splitlines()[1:] == plan.summary().splitlines()[1:]  # sampling, size, time, warnings
    assert applied["summary"].startswith("High (level 3) on sdxl [chosen]")
