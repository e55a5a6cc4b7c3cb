"""The regression harness: the shipped fixtures match what Atelier makes now (CI runs them here), and a change to a
tier table shows as a readable diff, key path by key path, until ``--update`` accepts it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from atelier.nodes.core.base.data import PRESETS_DIR
from atelier.nodes.core.regress.harness import run

FIXTURES = Path(__file__).parent / "fixtures" / "regress"


def test_the_shipped_fixtures_match_what_atelier_makes_now() -> None:
    outcomes = run(FIXTURES)
    assert len(outcomes) >= 9 and {o.name.split("_")[0] for o in outcomes} >= {"preset", "optimise", "pipeline",
                                                                                 "generation"}
    bad = [(o.name, o.status, o.error, o.diff[:6]) for o in outcomes if o.status != "same"]
    assert not bad, f"fixtures differ (run `atelier regress` to see, `--update` if meant): {bad}"


def test_a_tier_table_change_shows_as_a_diff_until_it_is_accepted(tmp_path: Path) -> None:
    presets = tmp_path / "presets"
    shutil.copytree(PRESETS_DIR, presets)
    tiers = presets / "tiers.yaml"
    tiers.write_text(tiers.read_text().replace("      steps: 12\n      cfg: 6.0\n", "      steps: 14\n      cfg: 6.0\n", 1))
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    outcomes = {o.name: o for o in run(fixtures, presets_dir=presets)}
    draft = outcomes["preset_draft_sd15"]
    assert draft.status == "changed" and draft.hash_before != draft.hash_now
    assert draft.diff == ["- parameters.steps: 12", "+ parameters.steps: 14"]
    assert outcomes["preset_high_sdxl"].status == "same"  # only what the draft tier shapes moved
    assert outcomes["pipeline_shot_draft"].status == "same"  # the graph names the tier; the node applies it

    cli = [sys.executable, "-m", "atelier", "regress", "--fixtures", str(fixtures), "--presets", str(presets)]
    shown = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 1 and "changed  preset_draft_sd15" in shown.stdout
    assert "    - parameters.steps: 12" in shown.stdout and "atelier regress --update" in shown.stdout
    accepted = subprocess.run([*cli, "--update"], capture_output=True, text=True, timeout=120)
    assert accepted.returncode == 0 and "updated  preset_draft_sd15" in accepted.stdout
    text = (fixtures / "preset_draft_sd15.yaml").read_text()
    assert text.startswith("# The draft tier on SD1.5") and yaml.safe_load(text)["expected"]["parameters"]["parameters"]["steps"] == 14
    assert subprocess.run(cli, capture_output=True, text=True, timeout=120).returncode == 0


def test_a_broken_fixture_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "bad_kind.yaml").write_text("kind: picture\nconfig: {}\n")
    (tmp_path / "not_yaml.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "bad_tier.yaml").write_text("kind: preset\nconfig: {preset: nope, template: {category: image}}\n")
    outcomes = {o.name: o for o in run(tmp_path)}
    assert outcomes["bad_kind"].status == "error" and "generation" in outcomes["bad_kind"].error
    assert outcomes["not_yaml"].status == "error"
    assert outcomes["bad_tier"].status == "error" and "nope" in outcomes["bad_tier"].error
