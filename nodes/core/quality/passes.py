"""The sampling passes of an image plan, and the ComfyUI nodes that run them.

A plan's image parameters state up to three passes:

- ``base``: KSampler at the plan's size, steps, cfg, sampler, scheduler and denoise;
- ``hires_fix`` (``hires_enabled``): the latent upscaled (LatentUpscale) to the hires size, then KSampler
  again at ``hires_steps`` and ``hires_denoise``;
- ``refinement`` (``refinement``): KSampler once more at the final size, ``refine_steps`` at ``refine_denoise``.

``sampling_passes`` reads them from the parameters; ``sampling_graph`` turns them into ComfyUI's own
nodes. The estimator prices the same list, the Quality Sampler node and Frame Chain expand into the same
nodes, and the conformance test reads the graphs back (``passes_in_graph``): what is planned is what runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

Link = list[Any]  # [node id, output index]
Graph = dict[str, dict[str, Any]]
PASS_NAMES = ("base", "hires_fix", "refinement")
UPSCALE_METHOD = "nearest-exact"  # ComfyUI's LatentUpscale default, the classic hires fix
REFINE_SEED_OFFSET = 1            # the refinement pass samples with its own noise


@dataclass(frozen=True)
class SamplingPass:
    """One KSampler of a plan."""

    name: str
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    denoise: float
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """``hires_fix: 15 steps at 768x768, denoise 0.45``."""
        return f"{self.name}: {self.steps} steps at {self.width}x{self.height}, denoise {self.denoise:g}"


def sampling_passes(params: dict[str, Any]) -> list[SamplingPass]:
    """The passes image parameters state, in the order they run."""
    cfg, sampler, scheduler = (float(params.get("cfg", 1.0)), str(params.get("sampler_name", "")),
                               str(params.get("scheduler", "")))
    passes = [SamplingPass("base", int(params["steps"]), cfg, sampler, scheduler, float(params.get("denoise", 1.0)),
                           int(params["width"]), int(params["height"]))]
    if params.get("hires_enabled"):
        passes.append(SamplingPass("hires_fix", max(1, int(params["hires_steps"])), cfg, sampler, scheduler,
                                   float(params["hires_denoise"]), int(params["hires_width"]),
                                   int(params["hires_height"])))
    if params.get("refinement"):
        last = passes[-1]
        passes.append(SamplingPass("refinement", max(1, int(params["refine_steps"])), cfg, sampler, scheduler,
                                   float(params["refine_denoise"]), last.width, last.height))
    return passes


def final_size(params: dict[str, Any]) -> tuple[int, int]:
    """The size of the images a plan delivers (the last pass's)."""
    last = sampling_passes(params)[-1]
    return last.width, last.height


def sampling_graph(prefix: str, passes: list[SamplingPass], *, model: Link, positive: Link, negative: Link,
                   latent: Link, seed: Any, denoise: Any = None) -> tuple[Graph, Link]:
    """ComfyUI nodes running ``passes`` on ``latent``: (the nodes, the link of the last latent).

    ``denoise`` replaces the base pass's (a link or a number: an img2img start decides it at run time).
    Node ids are ``<prefix>.<pass>`` and ``<prefix>.upscale``, so ComfyUI's cache keeps what did not change.
    """
    graph: Graph = {}
    current = latent
    for sampling in passes:
        node = f"{prefix}.{sampling.name}"
        if sampling.name == "hires_fix":
            graph[f"{prefix}.upscale"] = {"class_type": "LatentUpscale", "inputs": {
                "samples": current, "upscale_method": UPSCALE_METHOD, "width": sampling.width,
                "height": sampling.height, "crop": "disabled"}}
            current = [f"{prefix}.upscale", 0]
        pass_seed = seed
        if sampling.name == "refinement":
            pass_seed = [seed[0], seed[1]] if isinstance(seed, list) else int(seed) + REFINE_SEED_OFFSET
        pass_denoise = denoise if sampling.name == "base" and denoise is not None else sampling.denoise
        graph[node] = {"class_type": "KSampler", "inputs": {
            "model": model, "seed": pass_seed, "steps": sampling.steps, "cfg": sampling.cfg,
            "sampler_name": sampling.sampler_name, "scheduler": sampling.scheduler, "positive": positive,
            "negative": negative, "latent_image": current, "denoise": pass_denoise}}
        current = [node, 0]
    return graph, current


def passes_in_graph(graph: Graph, last: str) -> list[SamplingPass]:
    """The sampling passes that make node ``last``'s latent, read back from a graph with literal values
    (the conformance test's view): the chain of KSampler and LatentUpscale nodes through ``latent_image`` and
    ``samples``, sized from the EmptyLatentImage it starts from (0x0 when it starts from an image)."""
    chain: list[dict[str, Any]] = []
    node_id: Any = last
    while isinstance(node_id, str) and graph[node_id]["class_type"] in ("KSampler", "LatentUpscale", "VAEDecode"):
        node = graph[node_id]
        if node["class_type"] != "VAEDecode":
            chain.append(node)
        upstream = node["inputs"]["latent_image" if node["class_type"] == "KSampler" else "samples"]
        node_id = upstream[0] if isinstance(upstream, list) else None
    source = graph.get(node_id, {}) if isinstance(node_id, str) else {}
    width, height = 0, 0
    if source.get("class_type") == "EmptyLatentImage":
        width, height = source["inputs"]["width"], source["inputs"]["height"]
    found: list[SamplingPass] = []
    upscaled = False
    for node in reversed(chain):
        inputs = node["inputs"]
        if node["class_type"] == "LatentUpscale":
            width, height, upscaled = inputs["width"], inputs["height"], True
            continue
        name = "base" if not found else "hires_fix" if upscaled else "refinement"
        found.append(SamplingPass(name, inputs["steps"], inputs["cfg"], inputs["sampler_name"], inputs["scheduler"],
                                  inputs["denoise"], width, height))
        upscaled = False
    return found
