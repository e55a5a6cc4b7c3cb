"""``python -m atelier``: Atelier's main job from a shell, on embedded defaults.

    python -m atelier plan storyboard_generation --tier high      # stages, workflows, estimates
    python -m atelier plan shot_generation --prompt "a lighthouse at dusk"   # … and the enhanced prompt
    python -m atelier enhance "a red fox" --family flux_dev        # the writer/critic loop, with its trace
    python -m atelier compare --family sdxl                        # the four tiers side by side
    python -m atelier recommend print
    python -m atelier presets                                     # built-in and custom presets
    python -m atelier serve --storyboards atelier_demo             # the Atelier panel at /atelier/ui/

Custom presets and calibration data are read from ``ATELIER_HOME`` (default ``~/.atelier``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..comfy.runtime import atelier_home
from ..core.base.errors import AtelierError, invalid
from ..core.quality.service import QualityService


def _service() -> QualityService:
    home = atelier_home()
    return QualityService(home / "users", home / "data")


def _seconds(value: float) -> str:
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.1f} s"


def _template_args(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"model_family": args.family}
    if args.checkpoint:
        body["checkpoint"] = args.checkpoint
    body.update(width=args.width, height=args.height)
    return body


def _enhance(body: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from ..core.enhance.service import EnhanceService

    return asyncio.run(EnhanceService(atelier_home() / "data").enhance(body))


def _print_enhanced(result: dict[str, Any]) -> None:
    print(f"original:  {result['original']}")
    print(f"enhanced:  {result['prompt']}")
    print(f"negative:  {result['negative']}")
    print(f"score {result['score']:.0f}; {result['summary']}")
    for step in result["trace"]:
        what = f"score {step['score']:.0f}" if step["score"] is not None else (step["text"] or step["note"])
        print(f"  {step['iteration']} {step['role']:<6} {step['backend']:<12} {what}")
        if step["role"] == "critic" and step["checks"]:
            print(f"    failed: {', '.join(c['id'] for c in step['checks'])}")
    for fallback in result["fallbacks"]:
        print(f"fallback: {fallback}")


def _print_plan(plan: dict[str, Any]) -> None:
    fam = plan["family"]
    print(f"Pipeline {plan['pipeline']} at {plan['preset']['display_name']} "
          f"(tier {plan['tier']}, level {plan['preset']['level']}) — {plan['description']}")
    print(f"Model family: {fam['family']} ({fam['source']}: {fam['evidence']})\n")
    header = f"{'stage':<16} {'task type':<22} {'workflow':<40} {'expected':>10} {'range':>17} {'VRAM':>8}"
    print(header)
    print("-" * len(header))
    for stage in plan["stages"]:
        t = stage["estimate"]["time_s"]
        print(f"{stage['id']:<16} {stage['task_type']:<22} {stage['workflow']:<40} {_seconds(t['expected']):>10} "
              f"{_seconds(t['min']) + '-' + _seconds(t['max']):>17} {stage['estimate']['vram_gb']:>6.1f}GB")
        params = stage["parameters"]
        shown = ", ".join(f"{k}={v}" for k, v in params.items()
                          if k in ("steps", "cfg", "sampler_name", "scheduler", "width", "height", "batch_size",
                                   "denoise", "hires_enabled", "frames", "fps", "max_tokens", "sample_rate"))
        print(f"{'':<16} {shown}")
    totals = plan["totals"]
    print("-" * len(header))
    print(f"{'total':<80} {_seconds(totals['time_s']['expected']):>10} "
          f"{_seconds(totals['time_s']['min']) + '-' + _seconds(totals['time_s']['max']):>17} "
          f"{totals['vram_gb']:>6.1f}GB peak, ${totals['cost_usd']:.4f}")
    enhanced = plan.get("enhanced")
    if enhanced:
        print(f"\nPrompt, enhanced (score {enhanced['score']:.0f}, {enhanced['iterations']} iteration(s)): "
              f"{enhanced['prompt']}")
        for stage in plan["stages"]:
            if stage["category"] == "image":
                print(f"  {stage['id']}: {enhanced['prompt']}{stage['prompt_suffix']}")
        print(f"  negative: {enhanced['negative']}")
    calibrated = all(s["estimate"]["calibrated"] for s in plan["stages"])
    print("\nEstimates are " + ("calibrated from recorded runs." if calibrated else
                                "priors for a reference GPU; they calibrate from runs recorded in ComfyUI."))


def _print_compare(result: dict[str, Any]) -> None:
    keys = ["steps", "cfg", "sampler_name", "scheduler", "width", "height", "hires_enabled", "hires_width",
            "refinement"]
    columns = result["presets"]
    print(f"{'':<16}" + "".join(f"{c['preset']['id']:>16}" for c in columns))
    for key in keys:
        print(f"{key:<16}" + "".join(f"{str(c['parameters'].get(key)):>16}" for c in columns))
    print(f"{'time (exp.)':<16}" + "".join(f"{_seconds(c['estimate']['time_s']['expected']):>16}" for c in columns))
    print(f"{'VRAM':<16}" + "".join(f"{c['estimate']['vram_gb']:>14.1f}GB" for c in columns))
    print(f"{'vs standard':<16}" + "".join(f"{c['vs_standard']['time_ratio']:>15}x" for c in columns))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier", description="Atelier: quality tiers and curated pipelines.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="command", required=True)

    def template_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--family", default="auto", help="model family (sd15, sdxl, flux_dev, …) or auto")
        p.add_argument("--checkpoint", help="checkpoint file name, for family detection")
        p.add_argument("--width", type=int, default=0, help="base width (0: family native)")
        p.add_argument("--height", type=int, default=0, help="base height (0: family native)")

    plan = sub.add_parser("plan", help="show a pipeline's stages, workflows and estimates at a tier")
    plan.add_argument("pipeline", nargs="?", default="storyboard_generation")
    plan.add_argument("--tier", default="standard")
    plan.add_argument("--user", default="default")
    plan.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a parameter for every stage that takes it (JSON value), e.g. --set steps=30")
    plan.add_argument("--prompt", help="enhance this prompt (rule backend) and show each stage's prompt")
    plan.add_argument("--seed", type=int, default=0)
    template_options(plan)

    enhance = sub.add_parser("enhance", help="improve a prompt with the writer/critic loop")
    enhance.add_argument("prompt")
    enhance.add_argument("--negative", default="")
    enhance.add_argument("--backend", default="rule", choices=["rule", "ollama", "openai", "transformers"])
    enhance.add_argument("--endpoint", default="(backend default)", help="a name from the LLM config file")
    enhance.add_argument("--model", default="")
    enhance.add_argument("--family", default="sd15")
    enhance.add_argument("--threshold", type=float, default=85.0)
    enhance.add_argument("--iterations", type=int, default=4)
    enhance.add_argument("--seed", type=int, default=0)
    enhance.add_argument("--temperature", type=float, default=0.7)

    compare = sub.add_parser("compare", help="compare tiers side by side")
    compare.add_argument("presets", nargs="*", default=["draft", "standard", "high", "ultra"])
    compare.add_argument("--user", default="default")
    template_options(compare)

    recommend = sub.add_parser("recommend", help="recommend a tier for a use case")
    recommend.add_argument("use_case")
    template_options(recommend)

    presets = sub.add_parser("presets", help="list built-in and custom presets")
    presets.add_argument("--user", default="default")
    sub.add_parser("pipelines", help="list pipelines")

    score = sub.add_parser("score", help="score image files and rank them (best-of-N)")
    score.add_argument("images", nargs="+", help="image files")
    score.add_argument("--prompt", default="", help="the prompt the images were made from")
    score.add_argument("--scorers", default="technical", help="technical, clip_score, aesthetic, pickscore, hpsv2")
    score.add_argument("--weights", default="", help='e.g. "technical=1, clip_score=2"')
    score.add_argument("--top-k", type=int, default=1)
    score.add_argument("--threshold", type=float, default=30.0)
    score.add_argument("--models", help="a ComfyUI models folder (scorers/, aesthetic/, clip_vision/)")

    run = sub.add_parser("run", help="queue a pipeline or an API workflow file on a running ComfyUI, show its "
                                      "progress, download its outputs and print the ranking")
    run.add_argument("target", help="a pipeline (storyboard_generation, shot_generation, sequence_generation) "
                                    "or an API-format workflow .json")
    run.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address")
    run.add_argument("--tier", default="standard")
    run.add_argument("--checkpoint", help="a checkpoint in ComfyUI's models/checkpoints (pipelines)")
    run.add_argument("--prompt", default="")
    run.add_argument("--storyboard", help="a storyboard file (JSON or 'start | end' lines)")
    run.add_argument("--reference", help="a reference image in ComfyUI's input folder")
    run.add_argument("--variations", type=int, default=0)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--width", type=int, default=0)
    run.add_argument("--height", type=int, default=0)
    run.add_argument("--out", default="atelier_outputs", help="where the outputs are downloaded")

    curate = sub.add_parser("curate", help="the main job on embedded defaults: a storyboard enhanced, generated "
                                           "(Atelier's demo renderer), scored, chained; manifest + HTML report")
    curate.add_argument("--storyboard", help="a JSON file, or lines 'start prompt | end prompt' "
                                             "(default: the shipped lighthouse storyboard)")
    curate.add_argument("--tier", default="standard")
    curate.add_argument("--user", default="default")
    curate.add_argument("--seed", type=int, default=0)
    curate.add_argument("--variations", type=int, help="variations per frame (default: the tier's)")
    curate.add_argument("--out", help="output folder (default: ATELIER_HOME/output/storyboards/<time>)")
    curate.add_argument("--no-enhance", action="store_true", help="use the prompts as written")

    serve = sub.add_parser("serve", help="Atelier's routes and its panel (/atelier/ui/) without ComfyUI: presets, "
                                         "tier comparison, records, social context, storyboards")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8189)
    serve.add_argument("--storyboards", help="a folder of storyboards, or one storyboard folder (default: where "
                                             "curate writes, ATELIER_HOME/output/storyboards)")
    return parser


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise AtelierError(f"--set {pair!r}: expected KEY=VALUE", field="--set", value=pair)
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        service = _service()
        if args.command == "plan":
            request = {k: v for k, v in _template_args(args).items() if v not in (None, 0) or k == "model_family"}
            request["parameters"] = _parse_sets(args.set)
            result = service.pipeline_plan(args.user, args.pipeline, args.tier, request)
            if args.prompt:
                result["enhanced"] = _enhance({"prompt": args.prompt, "seed": args.seed,
                                               "model_family": result["family"]["family"]})
            printer = _print_plan
        elif args.command == "enhance":
            result = _enhance({"prompt": args.prompt, "negative": args.negative, "backend": args.backend,
                               "endpoint": args.endpoint, "model": args.model, "model_family": args.family,
                               "threshold": args.threshold, "iterations": args.iterations, "seed": args.seed,
                               "temperature": args.temperature})
            printer = _print_enhanced
        elif args.command == "compare":
            result = service.compare(args.user, {"presets": args.presets, "template": _template_args(args)})
            printer = _print_compare
        elif args.command == "recommend":
            result = service.recommend(args.use_case, _template_args(args))
            printer = _print_recommendation
        elif args.command == "score":
            try:
                from ..core.scoring.api import score
            except ImportError as exc:
                print(f"atelier: scoring needs torch and pillow ({exc}); inside ComfyUI they are there, "
                      f"elsewhere: pip install torch==2.13.0 pillow", file=sys.stderr)
                return 2

            models = args.models or str(atelier_home() / "models")
            result = score(args.images, args.prompt, args.scorers, args.weights, args.top_k, args.threshold,
                           models_dir=models)
            result["files"] = args.images
            printer = _print_scores
        elif args.command == "run":
            result = _run_remote(args)
            printer = _print_run
        elif args.command == "serve":
            return _serve(service, args)
        elif args.command == "curate":
            result = _curate(service, args)
            printer = _print_curated
        elif args.command == "presets":
            result = service.list_presets(args.user)
            printer = _print_presets
        else:
            result = {"pipelines": service.pipelines()}
            printer = _print_pipelines
    except AtelierError as exc:
        print(f"atelier: {exc.message}", file=sys.stderr)
        return 2
    try:
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            printer(result)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
    return 0


def _print_recommendation(result: dict[str, Any]) -> None:
    print(f"Use case {result['use_case']}: {result['tier']} (confidence {result['confidence']:.0%})")
    print(f"  {result['reasoning']}")
    print(f"  vs standard: {result['trade_offs']['summary']}")
    print(f"  expected {_seconds(result['estimate']['time_s']['expected'])}, {result['estimate']['vram_gb']:.1f} GB")
    for alt in result["alternatives"]:
        print(f"  alternative {alt['tier']} ({alt['direction']}): {alt['time_ratio_vs_recommended']}x the time")


def _print_presets(result: dict[str, Any]) -> None:
    for preset in result["presets"]:
        kind = "built-in" if preset["builtin"] else f"extends {preset['extends']}"
        print(f"{preset['id']:<20} level {preset['level']}  {kind:<20} "
              f"~{_seconds(preset['estimate']['time_s']['expected'])}  {preset['description']}")
    for problem in result["problems"]:
        print(f"skipped {problem['file']}: {problem['error']}")


def _print_scores(result: dict[str, Any]) -> None:
    scores, files = result["scores"], result["files"]
    names = list(scores["normalised"])
    print(f"{'rank':<5} {'overall':>8} " + " ".join(f"{n:>11}" for n in names) + "  file")
    for rank, index in enumerate(result["ranking"]["order"], 1):
        overall = scores["overall"][index] if index < len(scores["overall"]) else float("nan")
        values = " ".join(f"{scores['metrics'][n][index]:>11.3f}" for n in names)
        mark = " *" if index in result["ranking"]["chosen"] else ""
        print(f"{rank:<5} {overall:>8.2f} {values}  {files[index]}{mark}")
    for warning in [*scores["warnings"], *result["ranking"]["warnings"]]:
        print(f"warning: {warning}")
    if result["ranking"]["below_threshold"]:
        print(f"warning: the best score is below the threshold {result['ranking']['threshold']:g}")


def _print_pipelines(result: dict[str, Any]) -> None:
    for pipe in result["pipelines"]:
        stages = " -> ".join(f"{s['id']} ({s['task_type']})" for s in pipe["stages"])
        print(f"{pipe['name']}: {pipe['description']}\n    {stages}")


def _serve(service: QualityService, args: argparse.Namespace) -> int:
    """Atelier's routes on a standalone aiohttp server (no ComfyUI queue: pipeline runs answer 503)."""
    from aiohttp import web

    from ..comfy import runtime
    from ..core.storyboard.library import StoryboardLibrary
    from ..server.routes import standalone_app

    if not 0 < args.port < 65536:
        raise invalid("--port", args.port, "a port number 1-65535")
    folder = Path(args.storyboards) if args.storyboards else atelier_home() / "output" / "storyboards"
    app = standalone_app(service, enhance=runtime.enhance_service(), social=runtime.social_service(),
                         records=runtime.record_service(), pipelines=runtime.pipeline_service(),
                         storyboards=StoryboardLibrary(folder.resolve()))
    print(f"Atelier panel: http://{args.host}:{args.port}/atelier/ui/  (storyboards from {folder}; Ctrl+C stops)")
    try:
        web.run_app(app, host=args.host, port=args.port, print=None)
    except OSError as exc:  # e.g. the port is taken
        raise invalid("--port", args.port, "a free port on this host", f"cannot listen: {exc.strerror or exc}") \
            from None
    return 0


def _curate(service: QualityService, args: argparse.Namespace) -> dict[str, Any]:
    import time

    from ..core.storyboard.curate import DEFAULT_STORYBOARD, curate, rule_enhancer
    from ..core.storyboard.spec import Storyboard, chain_settings

    source = Path(args.storyboard) if args.storyboard else DEFAULT_STORYBOARD
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise invalid("storyboard", str(source), "a readable storyboard file", str(exc)) from None
    storyboard = Storyboard.from_text(text)
    preset = service.tier(args.user, args.tier)
    settings = chain_settings(preset.level, {"variations": args.variations})
    out = Path(args.out) if args.out else atelier_home() / "output" / "storyboards" / time.strftime("%Y%m%d-%H%M%S")
    enhance = None if args.no_enhance else rule_enhancer(atelier_home() / "data")

    def progress(spec: Any, frame: Any) -> None:
        if not args.json:
            best = f"{frame.best_score:5.1f}" if frame.best_score is not None else "  -  "
            print(f"  {frame.name:<16} {frame.status:<16} best {best}  ({len(frame.attempts)} attempt(s))",
                  file=sys.stderr)

    return curate(storyboard, settings, out, preset.id, args.seed, enhance, progress)


def _print_curated(result: dict[str, Any]) -> None:
    frames = result["frames"]
    kept = sum(1 for f in frames if f["status"] != "failed")
    print(f"storyboard: {len(result['clips'])} clips, {kept}/{len(frames)} frames kept, tier {result['tier']}, "
          f"{result['duration_s']:.1f} s; status {result['status']}")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(f"manifest: {result['files']['manifest']}")
    print(f"report:   {result['files']['report']}")


def _run_remote(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from ..remote.comfyui import ComfyClient, progress_bar

    body: dict[str, Any] = {"tier": args.tier, "prompt": args.prompt, "variations": args.variations,
                            "seed": args.seed, "width": args.width, "height": args.height}
    if args.checkpoint:
        body["checkpoint"] = args.checkpoint
    if args.reference:
        body["reference"] = args.reference
    if args.storyboard:
        try:
            body["storyboard"] = Path(args.storyboard).read_text(encoding="utf-8")
        except OSError as exc:
            raise invalid("storyboard", args.storyboard, "a readable storyboard file", str(exc)) from None
    client = ComfyClient(args.server)
    return asyncio.run(client.run(args.target, body, Path(args.out), None if args.json else progress_bar))


def _print_run(result: dict[str, Any]) -> None:
    print(f"prompt {result['prompt_id']}: {result['status']}")
    for node_id, output in result["outputs"].items():
        for text in output.get("text", []) if isinstance(output, dict) else []:
            if "#1" in text or "overall" in text:  # Rank Select's ranking
                print(f"ranking (node {node_id}):\n{text}")
    for manifest in result["manifests"]:
        kept = [f for f in manifest["frames"] if f["status"] != "failed"]
        print(f"storyboard {manifest['folder']}: {len(kept)}/{len(manifest['frames'])} frames kept, "
              f"failed clips {manifest['failed_clips'] or 'none'}")
        for frame in manifest["frames"]:
            best = f"{frame['best_score']:.1f}" if frame.get("best_score") is not None else "-"
            print(f"  {frame['name']:<16} {frame['status']:<16} best {best}")
    for path in result["files"]:
        print(f"saved {path}")
    if result["error"]:
        print(f"error: {json.dumps(result['error'])[:2000]}")
