"""Writes the API-format twins of the shipped workflows (workflows/api/) from the pipeline graphs.

    python tools/build_workflows.py

Node ids become numbers (the UI format needs them) and every node gets a title. The checkpoint is left
empty: the user picks theirs in the Load Checkpoint widget (``python -m atelier run --checkpoint`` sets it).
The UI-format files in workflows/ are then made by ComfyUI's own frontend from these (loadApiJson +
graph.serialize), so they are exactly what the frontend writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO.parent))

from atelier.nodes.core.storyboard.pipelines import WORKFLOWS, PipelineRun  # noqa: E402

DEFAULTS = {"checkpoint": "", "tier": "standard", "prompt": "a lighthouse on a cliff at dusk, oil painting",
            "storyboard": "a lighthouse on a cliff at dusk | the lighthouse beam sweeping over the sea\n"
                          "storm clouds over the lighthouse at night | waves crashing below the lighthouse\n"
                          "the storm clearing at dawn | golden sunrise behind the lighthouse",
            "variations": 0, "seed": 42}  # variations 0: the tier's (best of N: 4)
TITLES = {"ckpt": "Load Checkpoint", "quality": "Quality Preset", "enhance": "Prompt Enhance", "positive": "Positive",
          "negative": "Negative", "latent": "Empty Latent Image", "sample": "KSampler", "decode": "VAE Decode",
          "score": "Variation Score", "rank": "Rank Select", "refine_stage": "Quality Stage (refinement)",
          "refine_encode": "VAE Encode", "refine": "KSampler (refine)", "refine_decode": "VAE Decode (refine)",
          "save": "Save Image", "chain": "Frame Chain", "animate": "Animated sequence", "grid": "Tier Comparison Grid",
          "reference": "Reference image", "plan": "Smart Plan", "loras": "LoRA Recommend",
          "explained": "Save With Explanation"}


def numbered(graph: dict) -> dict:
    ids = {name: str(i) for i, name in enumerate(graph, 1)}
    out = {}
    for name, node in graph.items():
        inputs = {k: [ids[v[0]], v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
        title = TITLES.get(name) or name.replace("_", " ").capitalize()
        out[ids[name]] = {"class_type": node["class_type"], "inputs": inputs, "_meta": {"title": title}}
    return out


def main() -> None:
    run = PipelineRun(**{**DEFAULTS, "checkpoint": "x"}).model_copy(update={"checkpoint": ""})
    for name, build in WORKFLOWS.items():
        path = REPO / "workflows" / "api" / f"{name}.json"
        path.write_text(json.dumps(numbered(build(run)), indent=2) + "\n")
        print(path.relative_to(REPO))


if __name__ == "__main__":
    main()
