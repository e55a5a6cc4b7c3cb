"""The commands of ``python -m atelier``, one table: name, help, arguments, what it runs, how it shows.

A command runs against the host's ``Atelier`` context (``ATELIER_HOME``'s presets, data and outputs) and
returns a JSON-ready result; ``printers`` shows it, or ``--json`` prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.base.errors import AtelierError, invalid
from ..core.enhance.loop import BACKENDS
from ..core.scoring.registry import SCORER_NAMES
from ..host import Atelier
from . import printers

Arguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace, Atelier], Any]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Arguments
    run: Run
    show: Callable[[Any], None] | None = None  # None: the command prints as it goes (serve)
    exit_code: Callable[[Any], int] | None = None  # the exit status from the result (default 0)


def _template_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", default="auto", help="model family (sd15, sdxl, flux_dev, …) or auto")
    p.add_argument("--checkpoint", help="checkpoint file name, for family detection")
    p.add_argument("--width", type=int, default=0, help="base width (0: family native)")
    p.add_argument("--height", type=int, default=0, help="base height (0: family native)")


def _template(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"model_family": args.family}
    if args.checkpoint:
        body["checkpoint"] = args.checkpoint
    body.update(width=args.width, height=args.height)
    return body


def _sets(pairs: list[str]) -> dict[str, Any]:
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


def _tier(args: argparse.Namespace, atelier: Atelier) -> str:
    return str(args.tier or atelier.quality.tables.default_tier)


def _enhance(atelier: Atelier, body: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(atelier.enhance.enhance(body))


def _read(field: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise invalid(field, path, f"a readable {field} file", str(exc)) from None


# --- plan ------------------------------------------------------------------------------------------
def _plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pipeline", nargs="?", default="storyboard_generation", help="a pipeline (atelier pipelines)")
    p.add_argument("--tier", help="a tier or preset id (default: tiers.yaml's default, standard)")
    p.add_argument("--user", default="default", help="whose custom presets to use")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter for every stage that takes it (JSON value), e.g. --set steps=30")
    p.add_argument("--prompt", help="enhance this prompt (rule backend) and show each stage's prompt")
    p.add_argument("--seed", type=int, default=0, help="the enhancement's seed")
    _template_options(p)


def _plan(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    request = {k: v for k, v in _template(args).items() if v not in (None, 0) or k == "model_family"}
    request["parameters"] = _sets(args.set)
    result = atelier.quality.pipeline_plan(args.user, args.pipeline, _tier(args, atelier), request)
    if args.prompt:
        result["enhanced"] = _enhance(atelier, {"prompt": args.prompt, "seed": args.seed,
                                                "model_family": result["family"]["family"]})
    return result


# --- enhance ---------------------------------------------------------------------------------------
def _enhance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="the prompt to improve")
    p.add_argument("--negative", default="", help="the negative prompt to complete")
    p.add_argument("--backend", default="rule", choices=list(BACKENDS), help="who writes and criticises")
    p.add_argument("--endpoint", default="(backend default)", help="a name from the LLM config file")
    p.add_argument("--model", default="", help="the LLM (or a local transformers folder); empty: the endpoint's")
    p.add_argument("--family", default="sd15", help="the model family the prompt is written for")
    p.add_argument("--threshold", type=float, default=85.0, help="stop once the critic's score reaches this")
    p.add_argument("--iterations", type=int, default=4, help="at most this many rewrites")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same result")
    p.add_argument("--temperature", type=float, default=0.7, help="the LLM's sampling temperature")


def _enhance_command(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    return _enhance(atelier, {"prompt": args.prompt, "negative": args.negative, "backend": args.backend,
                              "endpoint": args.endpoint, "model": args.model, "model_family": args.family,
                              "threshold": args.threshold, "iterations": args.iterations, "seed": args.seed,
                              "temperature": args.temperature})


# --- presets, comparison, recommendation -----------------------------------------------------------
def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("presets", nargs="*", help="preset ids (default: the built-in tiers)")
    p.add_argument("--user", default="default", help="whose custom presets to use")
    _template_options(p)


def _compare(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    presets = args.presets or list(atelier.quality.tables.tiers)
    return atelier.quality.compare(args.user, {"presets": presets, "template": _template(args)})


def _recommend_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("use_case", help="preview, iteration, review, social_media, client_presentation, "
                                    "final_delivery, print, or any text (\"youtube thumbnail\")")
    p.add_argument("--user", default="default", help="whose runs teach the use case's tier")
    _template_options(p)


def _user_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", default="default", help="whose custom presets to list")


# --- scoring ---------------------------------------------------------------------------------------
def _score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--prompt", default="", help="the prompt the images were made from")
    p.add_argument("--scorers", default="auto", help="auto (technical and every model scorer whose weights are "
                   "found), or some of: " + ", ".join(SCORER_NAMES))
    p.add_argument("--weights", default="", help='e.g. "technical=1, clip_score=2"')
    p.add_argument("--top-k", type=int, default=1, help="how many of the best to keep")
    p.add_argument("--threshold", type=float, default=30.0, help="warn when the best overall score is below this")
    p.add_argument("--models", help="a ComfyUI models folder (scorers/, aesthetic/, clip_vision/)")


def _score(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    try:
        from ..core.scoring.api import folder_models, score
    except ImportError as exc:
        raise AtelierError(f"scoring needs torch and pillow ({exc}); inside ComfyUI they are there, "
                           f"elsewhere: pip install torch==2.13.0 pillow") from None
    registry = atelier.scorers.with_models(folder_models(args.models)) if args.models else atelier.scorers
    result = score(args.images, args.prompt, args.scorers, args.weights, args.top_k, args.threshold,
                   registry=registry)
    result["files"] = args.images
    return result


# --- running on ComfyUI ----------------------------------------------------------------------------
def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="a pipeline (storyboard_generation, shot_generation, sequence_generation) "
                                  "or an API-format workflow .json")
    p.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address")
    p.add_argument("--tier", help="a tier or preset id (default: tiers.yaml's default, standard)")
    p.add_argument("--checkpoint", help="a checkpoint in ComfyUI's models/checkpoints (pipelines)")
    p.add_argument("--prompt", default="", help="the shot's (or the sequence's) prompt")
    p.add_argument("--storyboard", help="a storyboard file (JSON or 'start | end' lines)")
    p.add_argument("--reference", help="a reference image in ComfyUI's input folder")
    p.add_argument("--variations", type=int, default=0, help="variations per image (0: the tier's)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--width", type=int, default=0, help="base width (0: the model family's native size)")
    p.add_argument("--height", type=int, default=0, help="base height (0: the model family's native size)")
    p.add_argument("--out", default="atelier_outputs", help="where the outputs are downloaded")
    p.add_argument("--distributed", action="store_true",
                   help="queue on the job queue of many workers (ATELIER_DATABASE_URL or --database) instead of "
                        "one ComfyUI: a storyboard becomes one job per frame; follows the jobs in the database")
    p.add_argument("--database", help="the records' PostgreSQL (SQLAlchemy URL) for --distributed")


def _run(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    body: dict[str, Any] = {"tier": _tier(args, atelier), "prompt": args.prompt, "variations": args.variations,
                            "seed": args.seed, "width": args.width, "height": args.height}
    if args.checkpoint:
        body["checkpoint"] = args.checkpoint
    if args.reference:
        body["reference"] = args.reference
    if args.storyboard:
        body["storyboard"] = _read("storyboard", args.storyboard)
    if args.distributed:
        queued = Atelier(replace(atelier.settings, database_url=_database(args, atelier)))
        return asyncio.run(_follow_run(queued, args.target, {**body, "distributed": True},
                                       None if args.json else printers.job_progress))
    from ..host import wiring  # aiohttp: only the commands that talk HTTP load it

    client = wiring.comfyui(args.server)
    return asyncio.run(client.run(args.target, body, Path(args.out), None if args.json else printers.progress_bar))


async def _follow_run(atelier: Atelier, target: str, body: dict[str, Any],
                      progress: Callable[[list[dict[str, Any]]], None] | None, poll_s: float = 1.0) -> dict[str, Any]:
    """A pipeline on the job queue, followed in the database until its jobs have ended: the run and its jobs
    (state, worker, attempts, times, the images in shared storage)."""
    try:
        answer = await atelier.pipelines.run("default", target, body)
        ids = answer.get("jobs") or [answer["record_id"]]
        queue = atelier.distributed
        while True:
            jobs = [await queue.job("default", i) for i in ids]
            if progress:
                progress(jobs)
            if all(j["state"] not in ("queued", "running") for j in jobs):
                break
            await asyncio.sleep(poll_s)
        records = [await asyncio.to_thread(atelier.records.store.get, i) for i in ids]
        return {"record_id": answer["record_id"], "pipeline": target, "jobs": jobs,
                "files": [f for r in records for f in (r.outputs.get("atelier") or {}).get("files", [])],
                "shared": str(atelier.settings.shared_dir)}
    finally:
        await atelier.aclose()


def _batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help='a JSON or YAML file: {"checkpoint": ..., "items": [{"prompt", "tier", "count"}, ...]} '
                                "(tier and count per item; a top-level tier is the default)")
    p.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address (Atelier installed)")
    p.add_argument("--checkpoint", help="the checkpoint (replaces the file's)")
    p.add_argument("--tier", help="the tier of items that name none (replaces the file's)")
    p.add_argument("--distributed", action="store_true",
                   help="queue on the job queue of many workers (the database of ATELIER_DATABASE_URL or "
                        "--database) instead of one ComfyUI; follows the batch from the database")
    p.add_argument("--database", help="the records' PostgreSQL (SQLAlchemy URL) for --distributed")


def _batch(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    from ..core.base.data import YAMLError, parse_yaml

    try:
        body = parse_yaml(_read("file", args.file))  # YAML reads JSON too
    except YAMLError as exc:
        raise invalid("file", args.file, "a JSON or YAML batch file", str(exc)) from None
    if not isinstance(body, dict):
        raise invalid("file", args.file, 'an object {"checkpoint": ..., "items": [...]}')
    body.update({k: v for k, v in (("checkpoint", args.checkpoint), ("tier", args.tier)) if v})
    if args.distributed:
        body["distributed"] = True
        queued = Atelier(replace(atelier.settings, database_url=args.database or atelier.settings.database_url))
        return asyncio.run(_follow_batch(queued, body, None if args.json else printers.batch_progress))
    from ..host import wiring  # aiohttp: only the commands that talk HTTP load it

    client = wiring.comfyui(args.server)
    return asyncio.run(client.batch(body, None if args.json else printers.batch_progress))


async def _follow_batch(atelier: Atelier, body: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None,
                        poll_s: float = 1.0) -> dict[str, Any]:
    """Queue a batch on the job queue and follow it in the database until every item has ended."""
    report = await atelier.batches.create("default", body)
    seen = -1
    while report["progress"]["done"] < report["progress"]["total"]:
        if progress and report["progress"]["done"] != seen:
            seen = report["progress"]["done"]
            progress(report)
        await asyncio.sleep(poll_s)
        report = await atelier.batches.get("default", report["id"])
    return dict(report)


# --- records: diff and replay -------------------------------------------------------------------------
def _diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="a record id")
    p.add_argument("b", help="another record id")
    p.add_argument("--user", default="default", help="whose records (default: default)")


def _diff(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    from ..core.records.reuse import compare

    store = atelier.records.store
    a, b = store.get(args.a, args.user), store.get(args.b, args.user)
    versions = {r.id: {"source": r.prompt_source, "version_id": r.prompt_version_id} for r in (a, b)}
    return compare(a, b, store.graph(a.id, args.user), store.graph(b.id, args.user), versions)


def _replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("record", help="the record to run again exactly (its graph and parameters)")
    p.add_argument("--server", default="http://127.0.0.1:8188", help="the ComfyUI (with Atelier) that queues it")


def _replay(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    from ..core.base.ids import folder_id
    from ..host import wiring  # aiohttp: only the commands that talk HTTP load it

    record = folder_id("record", args.record)
    answer = asyncio.run(wiring.comfyui(args.server).call("POST", f"/atelier/generations/{record}/replay"))
    return dict(answer)


# --- the regression harness ----------------------------------------------------------------------------
def _regress_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fixtures", default="tests/fixtures/regress",
                   help="a folder of regression fixtures (YAML or JSON; default tests/fixtures/regress)")
    p.add_argument("--update", action="store_true", help="write what Atelier makes now as the expectations")
    p.add_argument("--presets", help="a presets folder to try instead of the shipped one (tiers.yaml, families.yaml, "
                                     "…)")


def _regress(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    from ..core.regress.harness import run

    if args.presets and not Path(args.presets).is_dir():
        raise invalid("--presets", args.presets, "a folder with tiers.yaml, families.yaml, …", "no such folder")
    kwargs = {"presets_dir": Path(args.presets)} if args.presets else {}
    outcomes = [o.to_dict() for o in run(Path(args.fixtures), update=args.update, **kwargs)]
    return {"fixtures": outcomes, "update": args.update,
            "failed": [o["name"] for o in outcomes if o["status"] in ("changed", "new", "error")]}


# --- scale-out ---------------------------------------------------------------------------------------
def _worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--comfy", required=True, help="this worker's ComfyUI (http://HOST:PORT); one worker per ComfyUI")
    p.add_argument("--database", help="the records' and the queue's PostgreSQL (SQLAlchemy URL; default "
                                      "ATELIER_DATABASE_URL)")
    p.add_argument("--shared", help="where the images are copied (default ATELIER_SHARED_OUTPUT, else "
                                    "ATELIER_HOME/output/atelier/shared)")
    p.add_argument("--name", help="the worker's name (default HOST/COMFY-ADDRESS)")
    p.add_argument("--concurrency", type=int, default=2, help="jobs held at once: 2 = one running in ComfyUI, one "
                                                                "waiting there")
    p.add_argument("--heartbeat-s", type=float, default=5.0, help="seconds between heartbeats")
    p.add_argument("--stalled-after-s", type=float, help="a worker silent this long is dead and its jobs run "
                                                         "elsewhere (default ATELIER_STALLED_AFTER_S, 20)")
    p.add_argument("--poll-s", type=float, default=1.0, help="how often ComfyUI's history is read while a job "
                                                              "runs quietly")


def _database(args: argparse.Namespace, atelier: Atelier) -> str:
    url = args.database or atelier.settings.database_url
    if not url or not url.startswith("postgresql"):
        raise invalid("--database", url, "a PostgreSQL URL (postgresql+psycopg://user@host/db), or "
                                         "ATELIER_DATABASE_URL")
    return str(url)


def _worker(args: argparse.Namespace, atelier: Atelier) -> None:
    """Serve jobs until Ctrl+C (or SIGTERM)."""
    import signal

    from ..host.worker import WorkerOptions, run_worker

    if not 1 <= args.concurrency <= 8:
        raise invalid("--concurrency", args.concurrency, "1-8")
    if not 0.1 <= args.heartbeat_s <= 60:
        raise invalid("--heartbeat-s", args.heartbeat_s, "0.1-60 seconds")
    stalled = args.stalled_after_s or atelier.settings.stalled_after_s
    if not args.heartbeat_s * 2 <= stalled <= 3600:
        raise invalid("--stalled-after-s", stalled, "at least twice --heartbeat-s, at most 3600 seconds")
    options = WorkerOptions(comfy_url=args.comfy, database_url=_database(args, atelier),
                            shared_dir=Path(args.shared) if args.shared else atelier.settings.shared_dir,
                            name=args.name, concurrency=args.concurrency, heartbeat_s=args.heartbeat_s,
                            stalled_after_s=stalled, poll_s=args.poll_s)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"Atelier worker {options.worker_name}: ComfyUI {options.public_comfy}, images to "
              f"{options.shared_dir} (Ctrl+C stops)", flush=True)
        await run_worker(options, stop)

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("procrastinate").setLevel(logging.WARNING)  # its INFO lines repeat each job's whole graph
    asyncio.run(serve())


def _workers_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database", help="the records' and the queue's PostgreSQL (default ATELIER_DATABASE_URL)")


def _workers(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    queued = Atelier(replace(atelier.settings, database_url=_database(args, atelier)))

    async def read() -> dict[str, Any]:
        try:
            return await queued.distributed.workers()
        finally:
            await queued.distributed.queue.close()
    return asyncio.run(read())


# --- the main job ----------------------------------------------------------------------------------
def _curate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storyboard", help="a JSON file, or lines 'start prompt | end prompt' "
                                        "(default: the shipped lighthouse storyboard)")
    p.add_argument("--tier", help="a tier or preset id (default: tiers.yaml's default, standard)")
    p.add_argument("--user", default="default", help="whose presets to use; the storyboard is theirs")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same storyboard")
    p.add_argument("--variations", type=int, help="variations per frame (default: the tier's)")
    p.add_argument("--out", help="output folder (default: ATELIER_HOME/output/storyboards/<time>)")
    p.add_argument("--force", action="store_true", help="replace the run already in --out (its files only)")
    p.add_argument("--no-enhance", action="store_true", help="use the prompts as written")


def _curate(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    from ..core.storyboard.curate import DEFAULT_STORYBOARD, curate, rule_enhancer
    from ..core.storyboard.spec import Storyboard, chain_settings

    text = _read("storyboard", args.storyboard) if args.storyboard else DEFAULT_STORYBOARD.read_text("utf-8")
    storyboard = Storyboard.from_text(text)
    preset = atelier.quality.tier(args.user, _tier(args, atelier))
    settings = chain_settings(preset.level, {"variations": args.variations})
    out = Path(args.out) if args.out else atelier.settings.storyboards_dir / time.strftime("%Y%m%d-%H%M%S")
    enhance = None if args.no_enhance else rule_enhancer()

    def progress(spec: Any, frame: Any) -> None:
        if not args.json:
            best = f"{frame.best_score:5.1f}" if frame.best_score is not None else "  -  "
            print(f"  {frame.name:<16} {frame.status:<16} best {best}  ({len(frame.attempts)} attempt(s))",
                  file=sys.stderr)

    return curate(storyboard, settings, out, preset.id, args.seed, enhance, progress, atelier.scorers,
                  owner=args.user, force=args.force)


# --- the panel -------------------------------------------------------------------------------------
def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    p.add_argument("--port", type=int, default=8189, help="the port to listen on")
    p.add_argument("--storyboards", help="a folder of storyboards, or one storyboard folder (default: where "
                                         "curate writes, ATELIER_HOME/output/storyboards)")


def _serve(args: argparse.Namespace, atelier: Atelier) -> None:
    """Atelier's routes on a standalone aiohttp server (no ComfyUI queue: pipeline runs answer 503)."""
    from ..host import wiring  # aiohttp: only the commands that talk HTTP load it

    if not 0 < args.port < 65536:
        raise invalid("--port", args.port, "a port number 1-65535")
    folder = Path(args.storyboards).resolve() if args.storyboards else atelier.settings.storyboards_dir
    if args.storyboards and not folder.is_dir():
        raise invalid("--storyboards", args.storyboards, "a folder of storyboards, or one storyboard's folder",
                      "no such folder")
    served = Atelier(atelier.settings.with_storyboards(folder))

    def listening() -> None:  # only once the port is bound: the address printed works
        print(f"Atelier panel: http://{args.host}:{args.port}/atelier/ui/  (storyboards from {folder}; "
              f"Ctrl+C stops)", flush=True)

    try:
        wiring.serve(served, args.host, args.port, on_listening=listening)
    except OSError as exc:  # e.g. the port is taken
        raise invalid("--port", args.port, "a free port on this host", f"cannot listen: {exc.strerror or exc}") \
            from None


# --- intelligent generation ------------------------------------------------------------------------
def _loras_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--folder", action="append", help="a LoRA folder (repeatable; default: ATELIER_LORAS or "
                                                     "ATELIER_HOME/models/loras)")
    p.add_argument("--family", help="only this family (sd15, sd2, sdxl, sd3, flux, flux2, unknown)")
    p.add_argument("--rescan", action="store_true", help="rebuild every card (the cache otherwise answers)")
    p.add_argument("--user", default="default", help="whose family overrides apply")


def _with_folders(args: argparse.Namespace, atelier: Atelier) -> Atelier:
    if not getattr(args, "folder", None):
        return atelier
    return Atelier(atelier.settings.with_loras([Path(f) for f in args.folder]))


def _loras(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    atelier = _with_folders(args, atelier)
    if args.rescan:
        atelier.loras.scan(args.user, force=True)
    query = {"family": args.family} if args.family else {}
    return atelier.intelligence.library_view(args.user, query)


def _analyze_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--negative", default="")
    p.add_argument("--llm-endpoint", help="a configured LLM endpoint refines the rule analysis")


def _analyze(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    body = {"prompt": args.prompt, "negative": args.negative, "llm_endpoint": args.llm_endpoint}
    analysis = asyncio.run(atelier.intelligence.analyse(body))
    return {**analysis.to_dict(), "summary": analysis.summary()}


def _recommend_loras_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--family", default="auto", help="the checkpoint's family (sd15, sdxl, flux_dev, …) or a LoRA "
                                                     "family (sd15, sdxl, flux, …)")
    p.add_argument("--checkpoint", help="checkpoint file name, for family detection")
    p.add_argument("--max-loras", type=int, default=3)
    p.add_argument("--min-confidence", type=float, default=0.5)
    p.add_argument("--no-style-mixing", action="store_true", help="at most one style LoRA")
    p.add_argument("--folder", action="append", help="a LoRA folder (repeatable)")
    p.add_argument("--user", default="default")


def _recommend_loras(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    atelier = _with_folders(args, atelier)
    decision = atelier.intelligence.decide(args.user, {
        "prompt": args.prompt, "family": args.family, "checkpoint": args.checkpoint,
        "preferences": {"max_loras": args.max_loras, "min_confidence": args.min_confidence,
                        "allow_style_mixing": not args.no_style_mixing}})
    return {"family": decision.family, "lora_family": decision.base, "analysis": decision.analysis.summary(),
            **decision.recommendations.to_dict()}


def _generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--model", help="a local diffusers folder or a checkpoint file (default: the first in "
                                   "ATELIER_HOME/models/diffusers, then models/checkpoints); nothing is downloaded")
    p.add_argument("--negative", default="")
    p.add_argument("--mode", choices=["auto", "assisted", "manual"], default="auto",
                   help="assisted: show the recommendation and ask before generating (--yes accepts it)")
    p.add_argument("--yes", action="store_true", help="assisted: accept the recommendation without asking")
    p.add_argument("--batch", type=int, default=1, help="images (1-64)")
    p.add_argument("--strategy", choices=["seed", "param", "lora"], default="seed")
    p.add_argument("--seed", type=int, help="the (base) seed; default random, recorded")
    p.add_argument("--max-time", type=float, help="seconds per image")
    p.add_argument("--max-vram", type=float, help="GB of accelerator memory")
    p.add_argument("--priority", choices=["quality", "balanced", "speed"], default="balanced")
    p.add_argument("--out", default=".", help="the folder the PNGs (and their .atelier.json) are written to")
    p.add_argument("--folder", action="append", help="a LoRA folder (repeatable)")
    p.add_argument("--user", default="default")


def _generate(args: argparse.Namespace, atelier: Atelier) -> dict[str, Any]:
    from ..core.generation.service import GenerationService
    from ..core.generation.types import BatchConfig, GenerationConstraints, PipelineConfig
    from ..host.generation import backend_for, scorer

    atelier = _with_folders(args, atelier)
    out = Path(args.out)
    if not out.is_dir():
        raise invalid("--out", args.out, "an existing folder")
    config = PipelineConfig(base_model=args.model, mode=args.mode.upper(), user=args.user,
                            constraints=GenerationConstraints(args.max_time, args.max_vram, args.priority))
    backend = backend_for(atelier, config)
    service = GenerationService(config, atelier.intelligence, atelier.quality, atelier.records, backend,
                                backend.accelerator, scorer(atelier))
    if args.mode == "assisted":
        offer = service.analyze_and_recommend(args.prompt, args.negative)
        params = offer.suggested_params
        print(f"Recommended: {offer.explanation['summary']}", file=sys.stderr)
        for lora in offer.loras:
            print(f"  LoRA {lora.name} @{lora.strength:g}: {lora.reason}", file=sys.stderr)
        print(f"  {params.tier}, {params.num_steps} steps, cfg {params.guidance_scale:g}, "
              f"{params.width}x{params.height}, {params.sampler}/{params.scheduler}", file=sys.stderr)
        if not args.yes:
            if not sys.stdin.isatty():
                raise invalid("--yes", False, "--yes to accept the recommendation (no terminal to ask on)")
            if input("Generate with these? [Y/n] ").strip().lower() not in ("", "y", "yes"):
                return {"images": [], "accepted": False}
        results = [service.generate_from_recommendations(args.prompt, offer, args.negative, args.seed)]
    elif args.batch > 1:
        results = service.generate_batch(args.prompt, BatchConfig(num_images=args.batch, base_seed=args.seed,
                                                                  variation_strategy=args.strategy,
                                                                  parallel_generation=args.strategy == "seed"),
                                         args.negative)
    else:
        results = [service.generate(args.prompt, args.negative, args.seed)]
    images = []
    for result in results:
        path = result.save(out / f"atelier_{result.id[:12]}.png")
        meta = result.metadata
        images.append({"file": str(path), "id": result.id, "seed": meta.seed, "steps": meta.steps, "cfg": meta.cfg,
                       "size": f"{meta.width}x{meta.height}", "tier": meta.tier, "time_s": meta.generation_time_s,
                       "loras": [f"{x['name']} @{x['strength']:g}" for x in meta.loras_used],
                       "summary": result.explanation.get("summary", "")})
    backend.close()
    return {"images": images, "accepted": True}


COMMANDS: tuple[Command, ...] = (
    Command("plan", "show a pipeline's stages, workflows and estimates at a tier", _plan_arguments, _plan,
            printers.plan),
    Command("enhance", "improve a prompt with the writer/critic loop", _enhance_arguments, _enhance_command,
            printers.enhanced),
    Command("compare", "compare tiers side by side", _compare_arguments, _compare, printers.compare),
    Command("recommend", "recommend a tier for a use case", _recommend_arguments,
            lambda args, atelier: atelier.quality.recommend(args.use_case, _template(args),
                                                            atelier.learning.use_case_tier(args.user, args.use_case)),
            printers.recommendation),
    Command("presets", "list built-in and custom presets", _user_argument,
            lambda args, atelier: atelier.quality.list_presets(args.user), printers.presets),
    Command("pipelines", "list pipelines", lambda p: None,
            lambda args, atelier: {"pipelines": atelier.quality.pipelines()}, printers.pipelines),
    Command("score", "score image files and rank them (best-of-N)", _score_arguments, _score, printers.scores),
    Command("run", "queue a pipeline or an API workflow file on a running ComfyUI, show its progress, download "
                   "its outputs and print the ranking", _run_arguments, _run, printers.run),
    Command("batch", "queue a batch of prompts, each at its own tier and count, on a running ComfyUI; follow it "
                     "and print each item's time and best score, and a summary per tier", _batch_arguments, _batch,
            printers.batch),
    Command("worker", "serve jobs of the job queue on one ComfyUI (scale-out: one worker per ComfyUI, all on one "
                      "PostgreSQL)", _worker_arguments, _worker),
    Command("workers", "list the scale-out workers (state, ComfyUI, last heartbeat, current job, jobs done, "
                       "failures) and the job queue", _workers_arguments, _workers, printers.workers),
    Command("diff", "compare two generation records: parameters, prompt and its version, models, seeds, graph, "
                    "outputs, and whether their hashes match", _diff_arguments, _diff, printers.record_diff),
    Command("replay", "run a record again exactly (its graph, seeds and parameters) on a ComfyUI with Atelier; the "
                      "new record has the same hash", _replay_arguments, _replay, printers.replayed),
    Command("regress", "recompute the regression fixtures (generation configs with their expected canonical "
                       "parameters and hash) and show what changed; --update accepts it", _regress_arguments,
            _regress, printers.regress, lambda result: 1 if result["failed"] and not result["update"] else 0),
    Command("curate", "the main job on embedded defaults: a storyboard enhanced, generated (Atelier's demo "
                      "renderer), scored, chained; manifest + HTML report", _curate_arguments, _curate,
            printers.curated),
    Command("loras", "list the LoRA library: each file's family and its evidence, triggers, strength, and the "
                     "files that are not readable LoRAs", _loras_arguments, _loras, printers.loras),
    Command("analyze", "analyse a prompt: subjects, style, content type, lighting, mood, complexity",
            _analyze_arguments, _analyze, printers.analysis),
    Command("recommend-loras", "recommend LoRAs of your library for a prompt and a checkpoint family, with "
                               "reasons", _recommend_loras_arguments, _recommend_loras, printers.lora_recommendations),
    Command("generate", "generate images with the intelligent pipeline on diffusers (a local model): analysis, "
            "LoRAs from your library, parameters under your limits, an explanation and a record per image",
            _generate_arguments, _generate, printers.generated),
    Command("serve", "Atelier's routes and its panel (/atelier/ui/) without ComfyUI: presets, tier comparison, "
                     "records, social context, storyboards", _serve_arguments, _serve),
)
