"""The Atelier panel in a real browser: Debian's Chromium driven by Playwright (no browser download)
against Atelier's routes on a real aiohttp server on loopback (the ``server`` fixture), through the
standalone page /atelier/ui/ — the same views as ComfyUI's Atelier sidebar tab.

Every test fails on a console error or an uncaught page error, and saves a screenshot under
``test-artifacts/screenshots/``. Without Chromium or the playwright package the tests skip, unless
``ATELIER_REQUIRE_BROWSER=1`` (set by .ci/run), where that is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from atelier.nodes.core.storyboard.curate import curate
from atelier.nodes.core.storyboard.demo import demo_generate, demo_reference
from atelier.nodes.core.storyboard.manifest import build_manifest, write_storyboard
from atelier.nodes.core.storyboard.runner import StoryboardRunner
from atelier.nodes.core.storyboard.spec import Storyboard, chain_settings
from conftest import SCREENSHOTS


@pytest.fixture
def page(browser: Any, server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page on the panel; console errors and page errors fail the test; a screenshot is kept."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.base = f"{server.base}/atelier/ui/"
    tab.expected = []  # a test that provokes an error answer names it here (the browser logs the status)
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{request.node.name}.png"
    tab.screenshot(path=str(shot), full_page=True)
    context.close()
    assert shot.stat().st_size > 5_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in problems if not any(e in p for e in tab.expected)], problems


def open_view(page: Any, view: str) -> None:
    page.goto(f"{page.base}?view={view}")
    page.wait_for_selector(f"#atelier-panel-{view}")


def test_an_unknown_view_opens_the_first_and_says_so(page: Any) -> None:
    page.goto(f"{page.base}?view=nonsense")
    page.wait_for_selector("#atelier-panel-presets")
    assert page.get_by_role("tab", name="Presets").get_attribute("aria-selected") == "true"
    assert 'No view "nonsense"' in page.get_by_role("status").first.inner_text()  # and no JavaScript error


def expected(seconds: float) -> str:
    """How the panel writes an expected time (dom.js seconds())."""
    if seconds >= 3600:
        return f"~{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"~{seconds / 60:.1f} min"
    return f"~{seconds:.1f} s"


def test_the_page_is_served_by_atelier_and_its_tabs_work_from_the_keyboard(page: Any, server: Any) -> None:
    status, body = server.get("/atelier/ui/")
    assert status == 200 and "mountPanel" in body
    assert server.get("/atelier/ui/../pyproject.toml")[0] == 404
    assert server.get("/atelier/ui/js/panel/..%2F..%2F..%2Fpyproject.toml")[0] == 404
    open_view(page, "presets")
    tab = page.get_by_role("tab", name="Presets")
    assert tab.get_attribute("aria-selected") == "true"
    tab.focus()
    page.keyboard.press("ArrowRight")
    compare = page.get_by_role("tab", name="Compare tiers")
    assert compare.get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "atelier-tab-compare"
    page.keyboard.press("End")
    assert page.get_by_role("tab", name="Settings").get_attribute("aria-selected") == "true"
    assert page.locator("#atelier-panel-compare").is_hidden()
    # every form control in the panel has a label
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('#atelier input, #atelier select, #atelier textarea')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name)""")
    assert unlabelled == []


def test_a_preset_is_created_from_a_base_validated_live_edited_listed_with_its_estimate_and_deleted(
        page: Any, server: Any) -> None:
    open_view(page, "presets")
    form = page.locator("#atelier-panel-presets form")
    page.get_by_label("Id", exact=True).fill("portrait-hq")
    form.get_by_label("Base preset").select_option("high")
    steps = form.get_by_label("Steps", exact=True)
    steps.fill("-3")
    alert = page.get_by_test_id("preset-preview").get_by_role("alert")
    assert "image.steps=-3 is not accepted" in alert.inner_text(timeout=5000)
    assert steps.get_attribute("aria-invalid") is not None
    create = form.get_by_role("button", name="Create preset")
    assert create.is_disabled()

    steps.fill("60")
    preview = page.get_by_test_id("preset-preview")
    preview.get_by_text(re.compile("^Valid:")).wait_for()
    assert steps.get_attribute("aria-invalid") is None
    validated = server.post("/atelier/presets/validate", {"id": "portrait-hq", "extends": "high",
                                                         "image": {"steps": 60}})[1]["preset"]
    assert expected(validated["estimate"]["time_s"]["expected"]) in preview.inner_text()
    assert server.get("/atelier/presets/portrait-hq")[0] == 404  # validation saves nothing
    create.click()

    card = page.locator("li[data-preset='portrait-hq']")
    card.wait_for()
    saved = server.get("/atelier/presets/portrait-hq")[1]
    assert saved["extends"] == "high" and saved["image"]["steps"] == 60 and saved["image"]["hires_fix"]["enabled"]
    assert expected(saved["estimate"]["time_s"]["expected"]) in card.inner_text()
    assert "extends high" in card.inner_text()

    card.get_by_role("button", name="Edit portrait-hq").click()
    assert page.get_by_label("Id", exact=True).is_disabled()
    assert form.get_by_label("Steps", exact=True).input_value() == "60"
    form.get_by_label("Steps", exact=True).fill("20")
    form.get_by_label("Hires fix", exact=True).select_option("false")
    preview.get_by_text(re.compile("^Valid:")).wait_for()
    form.get_by_role("button", name="Save changes").click()
    page.get_by_text(re.compile(r"Saved portrait-hq")).wait_for()
    edited = server.get("/atelier/presets/portrait-hq")[1]
    assert edited["image"]["steps"] == 20 and not edited["image"]["hires_fix"]["enabled"]
    assert edited["revision"] == saved["revision"] + 1
    card = page.locator("li[data-preset='portrait-hq']")
    page.wait_for_function("t => document.querySelector(\"li[data-preset='portrait-hq']\").innerText.includes(t)",
                           arg=expected(edited["estimate"]["time_s"]["expected"]))
    assert edited["estimate"]["time_s"]["expected"] < saved["estimate"]["time_s"]["expected"]

    delete = card.get_by_role("button", name="Delete portrait-hq")
    delete.click()
    assert "Confirm delete" in delete.inner_text()  # a second press confirms
    assert server.get("/atelier/presets/portrait-hq")[0] == 200
    delete.click()
    card.wait_for(state="detached")
    assert server.get("/atelier/presets/portrait-hq")[0] == 404


def test_tiers_are_compared_side_by_side_and_a_pipeline_is_summarised(page: Any, server: Any) -> None:
    open_view(page, "compare")
    table = page.get_by_test_id("comparison").locator("table")
    table.wait_for()
    page.get_by_label("Ultra").uncheck()
    page.get_by_label("Model family").select_option("sdxl")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=comparison] thead th').length === 4")
    page.get_by_test_id("comparison").get_by_text("sdxl").wait_for()
    api = server.post("/atelier/compare", {"presets": ["draft", "standard", "high"],
                                           "template": {"model_family": "sdxl"}})[1]
    headers = table.locator("thead th").all_inner_texts()
    assert headers == ["Parameter", "Draft", "Standard", "High"]
    rows = {r.locator("th").inner_text(): r.locator("td").all_inner_texts() for r in table.locator("tbody tr").all()}
    assert rows["Steps"] == [str(c["parameters"]["steps"]) for c in api["presets"]]
    assert rows["Size"][1] == "1024×1024"  # SDXL's native size at standard
    assert rows["vs standard"][1] == api["presets"][1]["vs_standard"]["summary"]
    assert "the time of standard" in rows["vs standard"][2]

    page.get_by_label("Pipeline", exact=True).select_option("shot_generation")
    page.get_by_label("Tier", exact=True).select_option("high")
    summary = page.get_by_test_id("pipeline-summary")
    page.wait_for_function("() => (document.querySelector('[data-testid=pipeline-summary] table') || {})"
                           ".getAttribute?.('aria-label') === 'shot_generation at high'")
    plan = server.get("/atelier/pipelines/shot_generation/summary/high?model_family=sdxl")[1]
    stages = summary.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.stage)")
    assert stages == [s["id"] for s in plan["stages"]]
    workflows = summary.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert workflows == [s["workflow"] for s in plan["stages"]]
    total = summary.locator("tfoot td").nth(1).inner_text()
    assert total == expected(plan["totals"]["time_s"]["expected"]).lstrip("~")


def test_the_compare_view_shows_what_each_tier_measured_on_the_users_runs(page: Any, server: Any,
                                                                          record_service: Any) -> None:
    for tier, seconds, best in [("standard", 4.0, 60.0), ("standard", 6.0, 62.0), ("ultra", 28.0, 64.5)]:
        done = record_service.create("default", {"operation_type": "batch_item", "prompt": "a fox",
                                                 "parameters": {"checkpoint": "mine.safetensors",
                                                                "quality": {"preset": tier}}})
        record_service.store.set_status(done.id, "running", started_at=1000.0)
        record_service.store.set_status(done.id, "completed", finished_at=1000.0 + seconds,
                                        scores={"best": best}, outputs={"9": [f"{tier}.png"]})
    open_view(page, "compare")
    chart = page.get_by_test_id("tier-value").locator("table[data-checkpoint='mine.safetensors']")
    chart.wait_for()
    rows = {r.locator("th").inner_text(): r.locator("td").all_inner_texts() for r in chart.locator("tbody tr").all()}
    assert list(rows) == ["standard", "ultra"]
    assert rows["standard"][0] == "2" and rows["standard"][3] == "reference"
    assert rows["ultra"][3] == "ultra costs 5.6x standard's time for +3.5 points here"
    assert "ultra costs 5.6x" in chart.locator("caption").inner_text()
    assert "ultra.png" in rows["ultra"][4]  # no ComfyUI here: the image's name, not the image
    assert chart.locator("tr[data-tier=ultra] [role=img]").first.get_attribute("aria-label") == "28.0 s"
    page.get_by_label("Checkpoint").fill("mine.safetensors")
    page.expected.append("503 (Service Unavailable)")
    page.get_by_role("button", name="Render comparison").click()  # no ComfyUI behind this server: said plainly
    page.get_by_test_id("render").get_by_role("alert").get_by_text("no ComfyUI queue").wait_for()


def test_a_record_is_browsed_with_its_hash_and_given_feedback_from_the_keyboard(
        page: Any, server: Any, record_service: Any) -> None:
    done = record_service.create("default", {"operation_type": "txt2img", "prompt": "a red fox in snow",
                                             "workspace": "studio", "parameters": {"steps": 20, "seed": 7}})
    record_service.store.set_status(done.id, "running", started_at=1000.0)
    record_service.store.set_status(done.id, "completed", finished_at=1012.5)
    other = record_service.create("default", {"operation_type": "txt2img", "prompt": "a lighthouse at dusk",
                                              "workspace": "studio", "parameters": {"steps": 30}})
    open_view(page, "records")
    page.locator(f"tr[data-record='{other.id}']").wait_for()
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    page.locator(f"tr[data-record='{other.id}']").wait_for(state="detached")
    assert page.locator("#atelier-panel-records tbody tr").count() == 1

    page.get_by_role("button", name=f"Open record txt2img {done.id}").click()
    details = page.get_by_test_id("record-details")
    details.wait_for()
    assert details.get_by_test_id("repro-hash").inner_text() == done.repro_hash
    assert "a red fox in snow" in details.inner_text() and "12.5 s" in details.inner_text()

    stars = details.get_by_role("radiogroup", name="Rating")
    stars.get_by_role("radio", name="1 star", exact=True).focus()
    page.keyboard.press("ArrowRight")  # 1 -> 2 ... -> 4, as a keyboard user would
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert stars.get_by_role("radio", name="4 stars").get_attribute("aria-checked") == "true"
    details.get_by_label("Comment").fill("sharp fur")
    details.get_by_role("button", name="Send feedback").click()
    page.get_by_text("Thanks: rated 4/5.").wait_for()
    feedback = server.get(f"/atelier/generations/{done.id}")[1]["feedback"]
    assert [(f["rating"], f["comment"]) for f in feedback] == [(4, "sharp fur")]
    page.get_by_role("list", name="Feedback given").get_by_text("sharp fur").wait_for()


def _storyboard_with_a_failed_clip(folder: Path) -> dict[str, Any]:
    board = Storyboard.from_text("a fox in snow | the fox runs\na river at dawn | fog over the river\n"
                                 "a cabin at night | lights in the window")

    def generate(prompt: str, negative: str, init: Any, denoise: float, seed: int, count: int) -> torch.Tensor:
        if prompt.startswith("a river at dawn"):
            raise RuntimeError("CUDA out of memory")
        return demo_generate(prompt, negative, init, denoise, seed, count, size=64)

    settings = chain_settings(2, {"variations": 2})
    frames, images = StoryboardRunner(generate, settings).run(board, demo_reference("x", 0, 64), seed=3)
    manifest = build_manifest(board, settings, frames, "standard")
    write_storyboard(folder, manifest, images)
    return manifest.to_dict()


def test_a_storyboard_manifest_is_viewed_frames_in_order_with_scores_and_failed_clips(
        page: Any, server: Any, storyboard_root: Path) -> None:
    board = Storyboard.from_text("a lighthouse on a cliff | the beam sweeps the sea\nwaves at night | dawn")
    good = curate(board, chain_settings(2, {"variations": 2}), storyboard_root / "lighthouse", "standard")
    failing = _storyboard_with_a_failed_clip(storyboard_root / "river")
    assert failing["failed_clips"] == [2]

    open_view(page, "storyboards")
    page.get_by_role("button", name=re.compile("^lighthouse")).click()
    viewer = page.get_by_test_id("storyboard")
    viewer.wait_for()
    names = viewer.locator("figure").evaluate_all("els => els.map(e => e.dataset.frame)")
    assert names == [f["name"] for f in good["frames"]] == ["clip_001_start", "clip_001_end",
                                                             "clip_002_start", "clip_002_end"]
    captions = viewer.locator("figcaption strong").all_inner_texts()
    assert captions == [f"{f['role']} · score {f['best_score']:.1f}" for f in good["frames"]]
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=storyboard] img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert viewer.locator("img").count() == 4

    page.get_by_role("button", name=re.compile("^river")).click()
    viewer.get_by_text("Failed clips: 2").wait_for()
    failed = viewer.locator("li[data-clip='2']")
    assert "atelier-failed" in failed.get_attribute("class")
    assert "CUDA out of memory" in failed.locator("figure[data-frame='clip_002_start']").inner_text()
    assert failed.get_by_role("img", name="clip_002_start: no image").count() == 1
    assert viewer.locator("li[data-clip='3'] figure img").count() == 2  # the storyboard went on
    assert page.get_by_role("button", name=re.compile("^river")).get_attribute("aria-pressed") == "true"


def test_the_social_context_preview_follows_the_sliders_and_the_worlds_maximum(page: Any, server: Any) -> None:
    open_view(page, "social")
    rating = page.get_by_test_id("social-rating")
    rating.wait_for()
    for name, key in (("Affinity", "End"), ("Trust", "End"), ("Chemistry", "End"), ("Tension", "Home")):
        page.get_by_label(re.compile(f"^{name}")).press(key)  # sliders, from the keyboard
    assert page.get_by_label(re.compile("^Affinity")).input_value() == "100"
    page.wait_for_function("() => document.querySelector('[data-testid=social-tier]')?.textContent === 'partner'")
    api = server.post("/atelier/social-context/build", {"affinity": 100, "trust": 100, "chemistry": 100,
                                                        "tension": 0})[1]
    assert rating.inner_text().startswith(api["rating"])
    page.get_by_label("Requested rating").select_option("restricted")
    page.get_by_text("restricted → mature_implied").wait_for()  # clamped to the world's maximum


def test_settings_are_kept_and_used_as_the_default_tier(page: Any) -> None:
    open_view(page, "settings")
    page.wait_for_selector("#atelier-panel-settings select[name=tier] option[value=ultra]", state="attached")
    page.get_by_label("Default tier").select_option("high")
    page.get_by_label("Default weights").fill("technical=1")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Settings saved").wait_for()
    open_view(page, "compare")
    page.wait_for_function("() => document.querySelector('#atelier-panel-compare select[name=tier]')?.value === 'high'")
    open_view(page, "settings")
    assert page.get_by_label("Default weights").input_value() == "technical=1"
    assert page.evaluate("() => localStorage.getItem('atelier:Atelier.Enhance.Endpoint')") == '""'


def test_the_lora_library_shows_families_with_evidence_triggers_and_problems_and_takes_an_override(
        page: Any, server: Any, atelier: Any) -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import lora_files as lf

    root = atelier.settings.lora_folders[0]
    lf.write_safetensors(root / "watercolor.safetensors", lf.kohya_sd1(), lf.kohya_metadata(
        "sd_v1", "watercolor", {"watercolor": 20, "wet paper": 5}))
    lf.write_sidecars(root / "watercolor.safetensors", a1111={"activation text": "wtrclr style",
                                                               "preferred weight": 0.6})
    lf.write_safetensors(root / "xl" / "xl_ink.safetensors", lf.kohya_sdxl(), lf.kohya_metadata(
        "sdxl_base_v1-0", "xl ink", {"ink": 20}))
    lf.write_safetensors(root / "mystery.safetensors", {"foo.lora_down.weight": (4, 8)})
    (root / "broken.safetensors").write_bytes(b"\x00" * 3)
    open_view(page, "loras")
    view = page.locator("#atelier-panel-loras")
    cards = view.get_by_role("list", name="LoRAs")
    cards.get_by_role("article", name="LoRA watercolor.safetensors").wait_for()
    assert cards.locator(":scope > li").count() == 3
    xl = cards.get_by_role("article", name="LoRA xl/xl_ink.safetensors")
    assert xl.get_by_test_id("lora-family").inner_text() == "SDXL"
    xl.get_by_text("Evidence").click()
    assert "ss_base_model_version" in xl.get_by_role("list", name="Evidence for xl/xl_ink.safetensors").inner_text()
    assert cards.get_by_role("list", name="Trigger words of watercolor.safetensors").inner_text() == "wtrclr style"
    assert "strength 0.6" in cards.get_by_role("article", name="LoRA watercolor.safetensors").inner_text()
    assert "broken.safetensors" in view.get_by_role("region", name="Problems").inner_text()

    view.get_by_label("Family", exact=True).select_option("sdxl")
    view.get_by_role("button", name="Filter").click()
    cards.get_by_role("article", name="LoRA watercolor.safetensors").wait_for(state="detached")
    assert cards.locator(":scope > li").count() == 1
    view.get_by_label("Family", exact=True).select_option("")
    view.get_by_role("button", name="Filter").click()

    mystery = cards.get_by_role("article", name="LoRA mystery.safetensors")
    assert mystery.get_by_test_id("lora-family").inner_text() == "unknown"
    mystery.get_by_label("Family of mystery.safetensors").select_option("sd15")
    mystery.get_by_role("button", name="Set family").click()
    page.get_by_text("Family set to SD1.5 (yours only).").wait_for()
    card = cards.get_by_role("article", name="LoRA mystery.safetensors")
    assert card.get_by_test_id("lora-family").inner_text() == "SD1.5" and "from override" in card.inner_text()
    listing = server.get("/atelier/loras?q=mystery")[1]["cards"]
    assert listing[0]["family"]["family"] == "sd15"
    assert server.get("/atelier/loras?q=mystery", headers={"comfy-user": "bob"})[1]["cards"][0]["family"]["family"] \
        == "unknown"  # the override is the user's, never the file's


def test_why_this_image_shows_plan_loras_prompt_change_variations_and_rating(
        page: Any, server: Any, atelier: Any, record_service: Any) -> None:
    from atelier.nodes.core.quality.plan import build_plan
    from atelier.nodes.core.records.service import node_parameters, node_scores
    from atelier.nodes.core.scoring.images import collect
    from atelier.nodes.core.scoring.scores import score_variations
    from imagegen import blurred, noisy, scene

    base = scene(seed=5)
    scores = score_variations(collect(torch.stack([blurred(base, 4.0), base, noisy(base, 0.2)])), scorers="technical")
    social = atelier.social.build("default", {"affinity": 40, "trust": 40, "requested_rating": "mature_implied"})
    graph = {"1": {"class_type": "AtelierPromptEnhance", "inputs": {"prompt": "a fox in snow"}}}
    record = record_service.create("default", {
        "operation_type": "best_of_n", "prompt": "a red fox in snow, cinematic lighting",
        "parameters": node_parameters(graph, build_plan(atelier.quality, "high", "sd15"), social)}, status="running")
    record_service.store.set_status(record.id, "completed", scores=node_scores(scores))
    open_view(page, "records")
    page.get_by_role("button", name=f"Open record best_of_n {record.id}").click()
    why = page.get_by_test_id("why")
    why.wait_for()
    plan = why.get_by_role("region", name="Plan")
    assert "Quality Preset" in plan.inner_text() and "high" in plan.inner_text()
    assert why.get_by_test_id("prompt-diff").inner_text().split() == ["+", "red", "+", "cinematic", "lighting"]
    chosen = why.locator("tr.atelier-chosen")
    assert chosen.get_attribute("data-variation") == str(scores.overall.index(max(scores.overall)))
    assert why.get_by_role("table", name="Variation scores").locator("tbody tr").count() == 3
    clamp = why.get_by_test_id("rating-clamp").inner_text()
    assert "asked mature_implied, applied sfw" in clamp


def test_a_kept_batch_image_and_ratings_show_what_learning_took(page: Any, server: Any, atelier: Any,
                                                                record_service: Any) -> None:
    ids = []
    for index, (technical, clip) in enumerate(((80, 30), (40, 85), (60, 50))):
        record = record_service.create("default", {
            "operation_type": "api_generation", "prompt": f"a harbour {index}",
            "parameters": {"batch": {"batch_id": "b1", "index": index, "size": 3}, "quality": {"preset": "high"}}},
            status="completed")
        record_service.store.set_status(record.id, "completed", scores={
            "overall": [(technical + clip) / 2], "normalised": {"technical": [technical], "clip_score": [clip]}})
        ids.append(record.id)
    open_view(page, "records")
    page.get_by_role("button", name=f"Open record api_generation {ids[1]}").click()
    details = page.get_by_test_id("record-details")
    details.get_by_role("button", name="I kept this one").click()
    page.get_by_text("Kept: learning takes image 2 of its batch of 3 over the others.").wait_for()
    kept, others = atelier.records.store.choices("default")[0]
    assert kept.id == ids[1] and {o.id for o in others} == {ids[0], ids[2]}
    open_view(page, "learning")
    learning = page.get_by_test_id("learning")
    learning.get_by_role("table", name="Scorer weights").wait_for()
    assert "From 3 rated image(s)" in page.locator("#atelier-panel-learning").inner_text()
    assert "No LoRA rated often enough yet." in learning.inner_text()


def test_the_workers_view_says_why_there_is_no_job_queue(page: Any) -> None:
    open_view(page, "workers")
    workers = page.get_by_test_id("workers")
    workers.get_by_text("No job queue on this server").wait_for()
    assert "PostgreSQL" in workers.inner_text()


def test_the_safety_view_lists_what_was_refused_and_filters_it(page: Any, server: Any) -> None:
    status, theirs = server.post("/atelier/generations", {"operation_type": "txt2img", "prompt": "alice's"},
                                 headers={"comfy-user": "alice"})
    assert server.get(f"/atelier/generations/{theirs['id']}")[0] == 404  # the panel's user asks for alice's
    server.post("/atelier/generations", {"operation_type": "txt2img", "prompt": "{{x}}", "variables": {"x": "y" * 5000}})
    open_view(page, "safety")
    table = page.get_by_role("table", name="Safety log")
    table.wait_for()
    assert table.locator("tr[data-kind='isolation_refused']").count() == 1
    assert f"record {theirs['id']}" in table.inner_text()
    page.get_by_label("Kind").select_option("variable_refused")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=safety] tbody tr').length === 1 && "
                           "document.querySelector('[data-testid=safety] tbody tr').dataset.kind === 'variable_refused'")
    assert page.get_by_label("Everyone's entries (operators)").is_hidden()  # not an operator


def test_the_telemetry_view_charts_time_cost_and_scores_per_tier(page: Any, server: Any, record_service: Any) -> None:
    store = record_service.store
    for tier, seconds, best in (("draft", 30.0, 52.0), ("ultra", 300.0, 81.0), ("ultra", 240.0, 74.0)):
        record = store.create("txt2img", "default", {"quality": {"preset": tier}, "device": "NVIDIA H100"},
                              "posters" if tier == "draft" else "default", prompt=f"a fox {tier}", status="completed",
                              started_at=1000.0, finished_at=1000.0 + seconds)
        store.set_status(record.id, "completed", scores={"best": best}, finished_at=1000.0 + seconds)
    open_view(page, "telemetry")
    time_chart = page.get_by_role("img", name="Device time per tier per day")
    time_chart.wait_for()
    bars = time_chart.locator("[data-bar]")
    assert bars.count() == 2  # draft and ultra, on one day
    assert "9.0 min over 2 run(s)" in time_chart.inner_html()  # ultra: 300 + 240 s
    assert page.get_by_role("img", name="Cost per tier per day").locator("[data-bar]").count() == 2
    assert page.get_by_role("img", name="Best scores at ultra (2 runs, mean 77.5)").is_visible()
    assert page.get_by_role("table", name="Totals per day").locator("tbody tr").count() == 1
    per_workspace = page.get_by_role("table", name="Totals per workspace")
    assert per_workspace.locator("tbody tr").count() == 2
    assert per_workspace.locator("tr[data-key='posters'] td").nth(2).inner_text() == "30.0 s"
    assert "No LLM call yet." in page.get_by_test_id("telemetry").inner_text()


def test_the_developer_view_drills_into_a_run_and_maps_the_app(page: Any, server: Any, record_service: Any,
                                                               settings: Any) -> None:
    store = record_service.store
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
             "2": {"class_type": "KSampler", "inputs": {"seed": 4, "model": ["1", 0]}}}
    record = store.create("txt2img", "default", {"quality": {"preset": "draft"}}, prompt="a fox", graph=graph,
                          status="completed", started_at=1000.0, finished_at=1012.0)
    store.set_status(record.id, "completed", finished_at=1012.0, outputs={
        "9": ["fox.png"], "atelier": {"timings": [{"node": "2", "class_type": "KSampler", "seconds": 11.5}],
                                      "cached": ["1"]}})
    open_view(page, "developer")
    page.get_by_role("button", name=f"Drill into {record.id}").click()
    details = page.get_by_test_id("dev-details")
    details.wait_for()
    assert details.get_by_role("table", name=f"Graph of {record.id}").locator("tr[data-node='2']").inner_text() \
        .count("model←1:0") == 1
    assert "11.5 s" in details.get_by_role("table", name="Timings per node").inner_text()
    assert "From ComfyUI's cache: 1" in details.inner_text() and "12.0 s" in details.inner_text()
    app_map = page.get_by_test_id("app-map")
    app_map.wait_for()
    assert app_map.get_by_role("table", name="Routes").locator("tbody tr").count() > 60
    health = app_map.get_by_role("table", name="Health")
    assert health.locator("tr[data-part='records database']").get_attribute("data-status") == "ok"
    assert health.locator("tr[data-part='ComfyUI']").get_attribute("data-status") == "off"
    assert str(settings.users_dir.parent) not in app_map.inner_text()  # folders by name, never the server's paths


def test_a_nodes_records_are_found_from_the_node_and_lead_back_to_it(page: Any, server: Any,
                                                                     record_service: Any) -> None:
    store = record_service.store
    preset = {"4": {"class_type": "AtelierQualityPreset", "inputs": {"tier": "draft"}},
              "6": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["1", 0]}}}
    mine = store.create("txt2img", "default", {"n": 1}, prompt="with the preset", graph=preset)
    store.create("txt2img", "default", {"n": 2}, prompt="without", graph={"6": preset["6"]})
    open_view(page, "records")  # any view: the canvas's request opens the Developer view
    page.evaluate("() => dispatchEvent(new CustomEvent('atelier:node-records', "
                  "{detail: {class_type: 'AtelierQualityPreset', id: 4}}))")
    page.wait_for_selector("#atelier-panel-developer")
    assert page.get_by_label("Node class").input_value() == "AtelierQualityPreset"
    rows = page.get_by_role("table", name="Recent generations").locator("tbody tr")
    page.wait_for_function("() => document.querySelectorAll('#atelier-panel-developer tbody tr[data-record]')"
                           ".length === 1")
    assert rows.first.get_attribute("data-record") == mine.id
    page.get_by_label("Node id").fill("5")  # another node of that class: none
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function("() => !document.querySelector('#atelier-panel-developer tbody tr[data-record]')")
