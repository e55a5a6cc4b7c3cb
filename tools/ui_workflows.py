"""Writes the UI-format shipped workflows (workflows/*.json) from their API twins, with ComfyUI's own frontend.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/python python tools/ui_workflows.py

Starts ComfyUI (``--cpu``, a temporary base directory whose custom_nodes/atelier links to this checkout),
opens its frontend in Chromium (Playwright), and for each workflows/api/<name>.json calls the frontend's
``app.loadApiJson`` then ``app.graph.serialize()``: the file is exactly what the frontend writes when a user
saves the workflow. Run it after ``python tools/build_workflows.py``. ``--url`` uses a running ComfyUI with
Atelier installed instead; ``ATELIER_CHROMIUM`` names the browser (default: chromium on the PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_server import REPO, comfyui  # noqa: E402

# What each workflow does, kept in the file (extra.atelier.description) for people browsing the templates.
DESCRIPTIONS = {
    "atelier_best_of_n": "Best-of-N: the prompt enhanced by the tier's loop, N variations at the tier's passes, "
                         "scored, ranked, the best saved.",
    "atelier_quality_comparison": "One prompt and seed at the four tiers, each with its passes, in a labelled grid "
                                  "with each tier's steps, size and estimated time.",
    "atelier_quality_txt2img": "Text to image at one Quality Preset tier: every sampler setting and pass (hires fix "
                               "at high, hires fix and refinement at ultra) from the tier.",
    "atelier_intelligent": "Intelligent generation: the prompt analysed, parameters chosen within your time and VRAM "
                           "budget, LoRAs of your library recommended and applied (with trigger words), the tier's "
                           "passes, and the PNG saved with the explanation of every choice.",
    "atelier_img2img": "An image refined at one tier: scaled to the tier's size, sampled from it at the tier's "
                       "img2img strength and passes.",
    "atelier_prompt_enhance": "A prompt through the tier's enhancement loop (its rounds and stopping score).",
    "atelier_sequence": "A sequence: a continuous storyboard of keyframes, chained, saved as an animated WEBP.",
    "atelier_shot": "One cinematic shot: the prompt enhanced, the best of N variations at the tier's passes (hires "
                    "fix and refinement as the tier states).",
    "atelier_storyboard": "A storyboard: clips of start and end frames, each the best of its variations, chained "
                          "from the reference and the previous frame.",
}


def write_ui_files(url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        explicit = os.environ.get("ATELIER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
        browser = p.chromium.launch(executable_path=explicit) if explicit else p.chromium.launch()
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(url)
        page.wait_for_function("() => window.app?.graph && window.app.extensionManager?.setting", timeout=120_000)
        for api_path in sorted((REPO / "workflows" / "api").glob("*.json")):
            api = json.loads(api_path.read_text())
            workflow = page.evaluate("async ([api, name]) => { await window.app.loadApiJson(api, name); "
                                     "return JSON.parse(JSON.stringify(window.app.graph.serialize())); }", [api, api_path.name])
            workflow["extra"] = {**workflow.get("extra", {}), "ds": {"scale": 1, "offset": [0, 0]},
                                 "atelier": {"description": DESCRIPTIONS[api_path.stem]}}
            target = REPO / "workflows" / api_path.name
            target.write_text(json.dumps(workflow, indent=2) + "\n")
            print(target.relative_to(REPO))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running ComfyUI with Atelier installed (default: start one from "
                                      "COMFYUI_DIR with COMFYUI_PYTHON)")
    args = parser.parse_args()
    if args.url:
        write_ui_files(args.url)
        return
    if "COMFYUI_DIR" not in os.environ:
        parser.error("set COMFYUI_DIR (and COMFYUI_PYTHON) or pass --url")
    with comfyui() as (url, _):
        write_ui_files(url)


if __name__ == "__main__":
    main()
