"""The plan is what runs: every pipeline at every tier and a few families, compiled to its ComfyUI graph and
expanded the way ComfyUI runs it, states exactly the graph's sampling passes, sizes, batches, denoise, prompt
suffixes and enhancement loops, and the graph has no pass the plan does not state.

The expansion here calls the same core functions the nodes call when ComfyUI executes them: Quality Preset
(``plan.build_plan``/``outputs``), Quality Sampler (``sampler_passes``/``sampler_expansion``), Prompt Enhance
(``node_body``), Frame Chain (``steps.frame_chain``) and Frame Start (``steps.start_expansion``, every frame
succeeding). Each KSampler chain is then read back from the graph (``passes_in_graph``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from atelier.nodes.core.enhance.service import node_body
from atelier.nodes.core.quality import plan as planning
from atelier.nodes.core.quality.estimate import Estimator, work_units
from atelier.nodes.core.quality.passes import SamplingPass, passes_in_graph
from atelier.nodes.core.quality.pipelines import PipelinePlan, StagePlan
from atelier.nodes.core.quality.service import QualityService
from atelier.nodes.core.storyboard import steps
from atelier.nodes.core.storyboard.pipelines import PipelineRun, compile_pipeline, plan_run

TIERS = ("draft", "standard", "high", "ultra")
FAMILIES = ("sd15", "sdxl", "flux_schnell")  # full, full at 1024 px, distilled (fixed steps, no second passes)
RUNS = {
    "storyboard_generation": [{"storyboard": "a | b\nc | d"}, {"storyboard": "a | b", "reference": "ref.png"},
                              {"storyboard": "a | b\nc | d\ne | f", "variations": 3, "enhance": False}],
    "shot_generation": [{"prompt": "a lighthouse"}, {"prompt": "a lighthouse", "variations": 2, "width": 640,
                                                     "height": 448}],
    "sequence_generation": [{"prompt": "a lighthouse"}, {"storyboard": "a | b\nc | d", "enhance": False}],
}
CASES = [(name, tier, family, i) for name, runs in RUNS.items() for tier in TIERS for family in FAMILIES
         for i in range(len(runs))]
Graph = dict[str, dict[str, Any]]


class Expanded:
    """A compiled graph expanded as ComfyUI would run it, with Atelier's planning values filled in."""

    def __init__(self, service: QualityService, graph: Graph) -> None:
        self.service = service
        self.graph: Graph = {k: json.loads(json.dumps(v)) for k, v in graph.items()}
        self.plans: dict[str, planning.QualityPlan] = {}
        self.enhance: list[dict[str, Any]] = []  # each Prompt Enhance's request
        self.chained: dict[str, float] = {}       # frame prefix -> the base pass's denoise (Frame Start's)
        self._run()

    def _value(self, link: Any) -> Any:
        if isinstance(link, list) and link[0] in self.plans:
            plan = self.plans[link[0]]
            return plan if link[1] == 0 else planning.outputs(plan)[link[1] - 1]
        return link

    def _run(self) -> None:
        for node_id, node in list(self.graph.items()):
            if node["class_type"] == "AtelierQualityPreset":
                i = node["inputs"]
                self.plans[node_id] = planning.build_plan(self.service, i["tier"], i["model_family"], i["checkpoint"],
                                                          None, i["width"], i["height"], i["batch_size"])
        for node in self.graph.values():  # links to a plan's sockets become the values ComfyUI passes
            node["inputs"] = {k: v if k == "quality_preset" or k.startswith("preset_") else self._value(v)
                              for k, v in node["inputs"].items()}
        for node_id, node in list(self.graph.items()):
            kind, i = node["class_type"], node["inputs"]
            if kind == "AtelierQualitySampler":
                plan = self.plans[i["quality_preset"][0]]
                denoise = self.service.tables.chain_level(plan.preset.level)["denoise"]
                passes = planning.sampler_passes(plan, i["start"], denoise)
                expansion, latent = planning.sampler_expansion(passes, f"{node_id}.qs", i, i["seed"])
                self._replace(node_id, expansion, latent)
            elif kind == "AtelierFrameChain":
                self._frame_chain(node_id, i)
        for node in self.graph.values():
            if node["class_type"] == "AtelierPromptEnhance":
                i = node["inputs"]
                plan = self.plans.get(i["quality_preset"][0]) if isinstance(i.get("quality_preset"), list) else None
                self.enhance.append(node_body({k: v for k, v in i.items() if k != "quality_preset"}, plan))

    def _frame_chain(self, node_id: str, i: dict[str, Any]) -> None:
        plan = self.plans[i["quality_preset"][0]]
        request = steps.ChainRequest(i["storyboard"], i["negative"], i["variations"], i["threshold"], i["seed"],
                                     i["enhance"], i["scorers"], i["filename_prefix"], "", i["pipeline"])
        links = {k: i[k] for k in ("model", "clip", "vae", "reference", "quality_preset") if k in i}
        expansion, outputs = steps.frame_chain(plan, request, links, f"{node_id}.fc", "(backend default)")
        for start_id in [k for k, v in expansion.items() if v["class_type"] == "AtelierFrameStart"]:
            s = expansion.pop(start_id)["inputs"]
            report = json.dumps({"name": "x", "clip": 1, "role": "start", "prompt": "", "sources": [],
                                 "status": "ok"}) if "previous_report" in s else None
            outcome = steps.start_expansion(s["recipe"], report, {k: s[k] for k in ("vae", "previous", "reference")
                                                                    if k in s})
            expansion.update(outcome.graph)
            for node in expansion.values():  # Frame Start's sockets: latent, denoise, start
                node["inputs"] = {k: outcome.outputs[v[1]] if isinstance(v, list) and v[0] == start_id else v
                                  for k, v in node["inputs"].items()}
            self.chained[start_id.rsplit(".", 1)[0]] = outcome.outputs[1]
        self._replace(node_id, expansion, outputs[0])

    def _replace(self, node_id: str, expansion: Graph, output: Any) -> None:
        del self.graph[node_id]
        self.graph.update(expansion)
        for node in self.graph.values():
            node["inputs"] = {k: output if isinstance(v, list) and v[0] == node_id else v
                              for k, v in node["inputs"].items()}

    def of(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(k, v["inputs"]) for k, v in self.graph.items() if v["class_type"] == kind]


def _same(read: list[SamplingPass], stated: list[SamplingPass], base_size: tuple[int, int] | None) -> None:
    """Passes read from a graph equal the plan's (the base size comes from the latent it starts from)."""
    assert [p.name for p in read] == [p.name for p in stated]
    for got, want in zip(read, stated, strict=True):
        assert (got.steps, got.cfg, got.sampler_name, got.scheduler) == (want.steps, want.cfg, want.sampler_name,
                                                                          want.scheduler), want.name
        assert got.denoise == pytest.approx(want.denoise), want.name
        size = (got.width, got.height) if got.name != "base" or base_size is None else base_size
        assert size == (want.width, want.height), want.name


def _check_enhancement(plan: PipelinePlan, expanded: Expanded, prompts: list[str]) -> None:
    text = plan.stage(next((s.id for s in plan.stages if s.category == "text"), ""))
    if text is None:
        assert not expanded.enhance, "enhancement runs that the plan does not state"
        return
    assert len(expanded.enhance) == text.runs
    for body in expanded.enhance:
        assert body["backend"] == text.parameters["enhance_backend"]
        assert body["iterations"] == text.parameters["enhance_iterations"]
        assert body["threshold"] == text.parameters["enhance_threshold"]
    assert sorted(b["prompt"] for b in expanded.enhance) == sorted(prompts)


def _check_shot(plan: PipelinePlan, run: PipelineRun, expanded: Expanded) -> None:
    shot = plan.stage("shot")
    assert shot is not None
    (decode, inputs), = expanded.of("VAEDecode")
    (_, latent), = expanded.of("EmptyLatentImage")
    assert latent["batch_size"] == shot.parameters["batch_size"]
    read = passes_in_graph(expanded.graph, decode)
    _same(read, shot.passes, (latent["width"], latent["height"]))
    assert len(expanded.of("KSampler")) == len(shot.passes)
    prompt = run.prompt + shot.prompt_suffix
    _check_enhancement(plan, expanded, [prompt])
    (_, positive), _ = expanded.of("CLIPTextEncode")
    assert positive["text"] == prompt or plan.stage("prompt") is not None


def _check_frames(plan: PipelinePlan, expanded: Expanded) -> None:
    chained = [s for s in plan.stages if s.category == "image"]
    by_chain = {("text" if s.parameters["denoise"] == 1.0 else "image"): s for s in chained}
    frames = [k.removesuffix(".select") for k, _ in expanded.of("AtelierFrameSelect")]
    counted = {stage.id: 0 for stage in chained}
    prompts = []
    for frame in frames:
        stage = by_chain["image" if frame in expanded.chained else "text"]
        counted[stage.id] += 1
        denoise = expanded.chained.get(frame, 1.0)
        assert denoise == pytest.approx(stage.parameters["denoise"])
        read = passes_in_graph(expanded.graph, f"{frame}.a0.decode")
        base = read[0]
        assert base.denoise == pytest.approx(denoise)
        start = expanded.graph.get(f"{frame}.latent") or expanded.graph.get(f"{frame}.start.latent")
        if start is not None:  # text to image: the frame's batch is its empty latent's
            assert start["inputs"]["batch_size"] == stage.parameters["batch_size"]
            size = (start["inputs"]["width"], start["inputs"]["height"])
        else:  # from an image: scaled to the base size, repeated to the batch
            assert expanded.graph[f"{frame}.start.batch"]["inputs"]["amount"] == stage.parameters["batch_size"]
            scaled = expanded.graph[f"{frame}.start.size"]["inputs"]
            size = (scaled["width"], scaled["height"])
        _same(read, stage.passes, size)
        recipe = json.loads(expanded.graph[f"{frame}.select"]["inputs"]["recipe"])
        prompt = recipe["prompt"]
        assert prompt.endswith(stage.prompt_suffix)
        prompts.append(prompt)
    assert counted == {s.id: s.runs for s in chained}
    assert len(expanded.of("KSampler")) == sum(len(s.passes) * s.runs for s in chained)
    _check_enhancement(plan, expanded, prompts)


@pytest.mark.parametrize(("name", "tier", "family", "case"), CASES,
                         ids=[f"{n}-{t}-{f}-{i}" for n, t, f, i in CASES])
def test_the_graph_runs_exactly_the_plan(service: QualityService, name: str, tier: str, family: str,
                                         case: int) -> None:
    run = PipelineRun(checkpoint="model.safetensors", tier=tier, model_family=family, **RUNS[name][case])
    plan = plan_run(name, run, service.tables.tiers[tier], service.tables, Estimator(service.tables))
    expanded = Expanded(service, compile_pipeline(run, plan))
    if name == "shot_generation":
        _check_shot(plan, run, expanded)
    else:
        _check_frames(plan, expanded)
    stated = {p.name for s in plan.stages for p in s.passes}
    assert ("hires_fix" in stated) == (tier in ("high", "ultra") and family != "flux_schnell")
    assert ("refinement" in stated) == (tier == "ultra" and family != "flux_schnell")
    kinds = {v["class_type"] for v in expanded.graph.values()}
    assert ("SaveAnimatedWEBP" in kinds) == (name == "sequence_generation")


def test_high_and_ultra_price_the_passes_they_run(service: QualityService) -> None:
    """The estimate grows with each pass the graph runs: ultra's refinement and larger hires pass cost time."""
    plans = {t: plan_run("shot_generation", PipelineRun(checkpoint="m.safetensors", tier=t, prompt="p",
                                                        model_family="sd15"),
                         service.tables.tiers[t], service.tables, Estimator(service.tables)) for t in TIERS}
    shot: dict[str, StagePlan] = {t: p.stage("shot") for t, p in plans.items()}  # type: ignore[misc]
    units = {t: s.estimate.units for t, s in shot.items()}
    assert units["draft"] < units["standard"] < units["high"] < units["ultra"]
    for tier in ("high", "ultra"):  # each pass the plan states adds its units; without it the price drops
        params = shot[tier].parameters
        fewer = work_units("image", {**params, "refinement": False, "hires_enabled": False}, "sd15", service.tables)
        assert fewer < units[tier] / 1.5
