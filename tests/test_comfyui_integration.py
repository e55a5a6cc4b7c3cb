"""Opt-in: Atelier inside a real ComfyUI on the CPU, driven over HTTP.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/python python -m pytest -m comfyui

Boots ``main.py --cpu`` with a temporary base directory whose ``custom_nodes/atelier`` links to
this checkout, and a random-weight SD1.5-family checkpoint built at test time by
``tests/comfyui/make_checkpoint.py`` (cached in ``ATELIER_TEST_CACHE`` when set).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Client

pytestmark = pytest.mark.comfyui
REPO = Path(__file__).resolve().parents[1]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
CHECKPOINT = "atelier_tiny_sd15_v2.safetensors"  # v2: every tensor initialised (finite images)
POLL_MARGIN_S = 3.0  # Atelier reads ComfyUI's history every 2 s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_comfyui(base: Path) -> tuple[Client, subprocess.Popen[bytes], Any]:
    """A real ComfyUI (``--cpu``) on a free port with Atelier in its custom_nodes and the tiny checkpoint."""
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "atelier").symlink_to(REPO, target_is_directory=True)
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    cache = Path(os.environ.get("ATELIER_TEST_CACHE") or base)
    cache.mkdir(parents=True, exist_ok=True)
    built = cache / CHECKPOINT
    if not built.exists():
        subprocess.run([python, str(REPO / "tests" / "comfyui" / "make_checkpoint.py"), COMFYUI_DIR, str(built)],
                       check=True, cwd=COMFYUI_DIR, timeout=600)
    if built.parent != checkpoints:
        (checkpoints / CHECKPOINT).symlink_to(built)
    _tiny_scorer_models(base / "models")
    port = _free_port()
    log = open(base / "comfyui.log", "w")
    process = subprocess.Popen(
        [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
         "--disable-auto-launch"], cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT)
    client = Client(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            pytest.fail(f"ComfyUI exited: {(base / 'comfyui.log').read_text()[-3000:]}")
        try:
            if client.get("/system_stats")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("ComfyUI did not start within 180 s")
        time.sleep(0.5)
    client.base_dir = base  # type: ignore[attr-defined]
    return client, process, log


def _stop_comfyui(client: Client, process: subprocess.Popen[bytes], log: Any) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    shutil.rmtree(client.base_dir / "output", ignore_errors=True)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory):
    if not COMFYUI_DIR:
        pytest.skip("set COMFYUI_DIR to a ComfyUI checkout to run the integration suite")
    client, process, log = _start_comfyui(tmp_path_factory.mktemp("comfy_base"))
    yield client
    _stop_comfyui(client, process, log)


def _tiny_scorer_models(models: Path) -> None:
    """Random-weight CLIP (open_clip format), PickScore (transformers format) and aesthetic MLP, in
    the folders and under the names a user would use."""
    try:
        from safetensors.torch import save_file
        from tiny_models import aesthetic_state, open_clip_folder, transformers_clip_folder
    except ImportError:
        return
    open_clip_folder(models / "scorers" / "clip-vit-large-patch14")
    transformers_clip_folder(models / "scorers" / "PickScore_v1")
    (models / "aesthetic").mkdir(parents=True, exist_ok=True)
    save_file(aesthetic_state(), str(models / "aesthetic" / "sac+logos+ava1-l14-linearMSE.safetensors"))


def _ci_tiny(comfy: Client) -> None:
    """The small custom preset most tests generate with (created once; later posts answer 409)."""
    comfy.post("/atelier/presets", {"id": "ci-tiny", "extends": "draft", "image": {"steps": 8, "resolution_scale": 1.0}})


def _social_node(**values: Any) -> dict[str, Any]:
    inputs = {"affinity": 0, "trust": 0, "chemistry": 0, "tension": 0, "npc_id": "mira", "world": "default",
              "max_rating": "(server maximum)", "requested_rating": "sfw", "enforcement": "clamp", **values}
    return {"class_type": "AtelierSocialContext", "inputs": inputs}


def _graph(preset: str, width: int = 64, height: int = 64, batch: int = 1, seed: int = 1) -> dict[str, Any]:
    """A hand-wired graph as users build it: Quality Preset's sockets drive EmptyLatentImage and one KSampler
    (the base pass), on the test checkpoint. Node ids: 1 checkpoint, 2/3 prompts, 4 preset, 6 KSampler, 8 save."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff at dusk", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, low quality", "clip": ["1", 1]}},
        "4": {"class_type": "AtelierQualityPreset", "inputs": {"tier": preset, "model_family": "auto",
                                                               "checkpoint": CHECKPOINT, "width": width,
                                                               "height": height, "batch_size": batch}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": ["4", 5], "height": ["4", 6],
                                                           "batch_size": ["4", 7]}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["5", 0], "seed": seed,
            "steps": ["4", 1], "cfg": ["4", 2], "sampler_name": ["4", 3], "scheduler": ["4", 4], "denoise": ["4", 8]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "atelier_quality"}},
    }


def _shipped(name: str, **preset: Any) -> dict[str, Any]:
    """A shipped API workflow on the test checkpoint, its Quality Presets at 64x64 (and ``preset``)."""
    from atelier.nodes.core.storyboard.pipelines import use_checkpoint

    graph = use_checkpoint(json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text()), CHECKPOINT)
    for node in graph.values():
        if node["class_type"] == "AtelierQualityPreset":
            node["inputs"].update(width=64, height=64, **preset)
    return graph


def _run(comfy: Client, graph: dict[str, Any], timeout: float = 300) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    status, body = comfy.post("/prompt", {"prompt": graph, "client_id": str(uuid.uuid4())})
    assert status == 200, body
    prompt_id = body["prompt_id"]
    while time.monotonic() - started < timeout:
        status, history = comfy.get(f"/history/{prompt_id}")
        if status == 200 and prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            item = history[prompt_id]
            if item["status"]["status_str"] in ("success", "error"):
                return item, time.monotonic() - started
        time.sleep(0.25)
    pytest.fail(f"prompt {prompt_id} did not finish in {timeout} s")


def test_nodes_load_with_their_schema(comfy: Client) -> None:
    status, info = comfy.get("/object_info")
    assert status == 200
    node = info["AtelierQualityPreset"]
    assert node["display_name"] == "Quality Preset" and node["category"] == "Atelier/Quality"
    tiers = node["input"]["required"]["tier"][1]["options"] if isinstance(node["input"]["required"]["tier"][0], str) \
        else node["input"]["required"]["tier"][0]
    assert tiers[:4] == ["draft", "standard", "high", "ultra"]
    sampler_type = node["output"][node["output_name"].index("sampler_name")]
    assert sampler_type == info["KSampler"]["input"]["required"]["sampler_name"][0]  # so the link type-checks
    assert info["AtelierQualityStage"]["display_name"] == "Quality Stage"


def test_routes_answer_under_atelier_and_api(comfy: Client) -> None:
    for prefix in ("/atelier", "/api/atelier"):
        status, body = comfy.get(f"{prefix}/pipelines/storyboard_generation/summary/high")
        assert status == 200 and body["tier"] == "high"
        assert comfy.get(f"{prefix}/presets/ghost")[0] == 404
        assert comfy.get(f"{prefix}/recommend?use_case=print")[1]["tier"] == "ultra"
    status, body = comfy.put("/atelier/presets/high", {"image": {"steps": 1}})
    assert status == 403
    status, body = comfy.get("/atelier/generations?limit=5")  # records in ComfyUI's user directory
    assert status == 200 and "items" in body
    assert (Path(comfy.base_dir) / "user" / "atelier" / "records.sqlite").exists()  # type: ignore[attr-defined]


def test_quality_preset_drives_a_ksampler(comfy: Client) -> None:
    status, created = comfy.post("/atelier/presets", {"id": "ci-tiny", "extends": "draft",
                                                      "image": {"steps": 8, "resolution_scale": 1.0}})
    assert status in (201, 409), created
    presets = comfy.get("/object_info/AtelierQualityPreset")[1]["AtelierQualityPreset"]
    assert "ci-tiny" in json.dumps(presets["input"]["required"]["tier"])
    item, seconds = _run(comfy, _graph("ci-tiny", 64, 64, batch=2))
    assert item["status"]["status_str"] == "success", item["status"]
    images = item["outputs"]["8"]["images"]
    assert len(images) == 2
    text = item["outputs"]["4"]["text"][0]
    assert "ci-tiny" in text and "8 steps" in text and "64x64 x2" in text and "sd15 [metadata]" in text
    saved = Path(comfy.base_dir) / "output" / images[0]["filename"]  # type: ignore[attr-defined]
    from struct import unpack
    with open(saved, "rb") as png:
        header = png.read(24)
    assert unpack(">II", header[16:24]) == (64, 64)


def _recorded(comfy: Client) -> int:
    return sum(e["samples"] for e in comfy.get("/atelier/estimate/calibration")[1]["entries"])


def test_runs_calibrate_the_estimator(comfy: Client) -> None:
    """Real runs of several sizes feed the fit; a held-out run is then predicted."""
    _ci_tiny(comfy)
    _run(comfy, _graph("ci-tiny", 64, 64, 1, seed=99))  # warm-up: a checkpoint loaded from disk is not learned
    time.sleep(POLL_MARGIN_S)  # earlier runs are ingested by now
    before = _recorded(comfy)
    configs = [(64, 64, 1), (128, 128, 1), (64, 64, 4), (160, 160, 2), (96, 96, 3), (192, 192, 1), (112, 112, 2),
               (144, 144, 1)]
    for i, (w, h, b) in enumerate(configs):
        item, _ = _run(comfy, _graph("ci-tiny", w, h, b, seed=100 + i))
        assert item["status"]["status_str"] == "success"
    time.sleep(POLL_MARGIN_S)
    assert _recorded(comfy) == before + len(configs)
    # re-queueing an identical graph is served from ComfyUI's cache and must not be learned
    _run(comfy, _graph("ci-tiny", 144, 144, 1, seed=107))  # the last run: in the cache
    time.sleep(POLL_MARGIN_S)
    assert _recorded(comfy) == before + len(configs)
    estimate = comfy.post("/atelier/estimate", {"preset": "ci-tiny", "template": {
        "model_family": "sd15", "width": 128, "height": 128, "batch_size": 2}})[1]["estimate"]
    assert estimate["calibrated"]
    durations = []
    for seed in (995, 996, 997, 998, 999):  # held-out runs; the median damps this shared machine's jitter
        item, _ = _run(comfy, _graph("ci-tiny", 128, 128, 2, seed=seed))
        messages = {kind: data for kind, data in item["status"]["messages"]}
        durations.append((messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]) / 1000)
    actual = sorted(durations)[len(durations) // 2]
    error = abs(estimate["time_s"]["expected"] / actual - 1)
    print(f"\nheld-out runs {[round(d, 2) for d in durations]}s: estimated {estimate['time_s']['expected']:.2f}s, "
          f"median {actual:.2f}s, error {error:.1%}; fit {comfy.get('/atelier/estimate/calibration')[1]['entries']}")
    assert error < 0.15
    # the held-out runs changed only the seed (Quality Preset node cached, sampler ran): learned too
    time.sleep(POLL_MARGIN_S)
    assert _recorded(comfy) == before + len(configs) + len(durations)


def test_web_extension_and_workflow_templates_are_served(comfy: Client) -> None:
    status, script = comfy.get("/extensions/atelier/js/atelier_quality.js")
    assert status == 200 and "atelier.quality" in script
    assert "atelier.scores" in comfy.get("/extensions/atelier/js/atelier_scores.js")[1]
    assert "atelier.enhance" in comfy.get("/extensions/atelier/js/atelier_enhance.js")[1]
    status, templates = comfy.get("/api/workflow_templates")
    assert status == 200 and "atelier_quality_txt2img" in json.dumps(templates.get("atelier", templates))
    status, workflow = comfy.get("/api/workflow_templates/atelier/atelier_quality_txt2img.json")
    assert status == 200 and {n["type"] for n in workflow["nodes"]} >= {"AtelierQualityPreset", "AtelierQualitySampler"}


def test_unknown_tier_is_a_readable_validation_error(comfy: Client) -> None:
    status, body = comfy.post("/prompt", {"prompt": _graph("no-such-preset")})
    assert status == 400
    errors = json.dumps(body["node_errors"]["4"])
    assert "tier" in errors and "no-such-preset" in errors


def test_quality_stage_drives_a_hires_fix_pass(comfy: Client) -> None:
    """One tier for both passes: Quality Preset -> base KSampler, Quality Stage -> upscaled second KSampler."""
    status, body = comfy.post("/atelier/presets", {"id": "ci-hires", "extends": "high", "image": {
        "steps": 3, "resolution_scale": 1.0, "hires_fix": {"scale": 1.5, "steps": 2, "denoise": 0.4}}})
    assert status in (201, 409), body
    graph = _graph("ci-hires", 64, 64, 1, seed=7)
    graph["10"] = {"class_type": "AtelierQualityStage", "inputs": {"quality_preset": ["4", 0], "stage": "hires_fix"}}
    graph["11"] = {"class_type": "LatentUpscale", "inputs": {
        "samples": ["6", 0], "upscale_method": "nearest-exact", "width": ["10", 4], "height": ["10", 5], "crop": "disabled"}}
    graph["12"] = {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["11", 0], "seed": 7,
        "steps": ["10", 0], "cfg": ["10", 1], "sampler_name": ["10", 2], "scheduler": ["10", 3], "denoise": ["10", 7]}}
    graph["7"]["inputs"]["samples"] = ["12", 0]
    item, _ = _run(comfy, graph)
    assert item["status"]["status_str"] == "success", item["status"]
    saved = Path(comfy.base_dir) / "output" / item["outputs"]["8"]["images"][0]["filename"]  # type: ignore[attr-defined]
    from struct import unpack
    with open(saved, "rb") as png:
        assert unpack(">II", png.read(24)[16:24]) == (96, 96)  # 64 px x hires scale 1.5
    assert "hires 96x96 (2 steps)" in item["outputs"]["4"]["text"][0]


def _best_of_n(preset: str, threshold: float = 30.0, below: str = "warn", seed: int = 5) -> dict[str, Any]:
    graph = _shipped("atelier_best_of_n", tier=preset, batch_size=4)  # 7 KSampler, 9 score, 10 rank, 11 save
    graph["7"]["inputs"]["seed"] = seed
    graph["10"]["inputs"].update(threshold=threshold, below_threshold=below)
    return graph


def test_best_of_n_workflow_scores_ranks_and_saves_the_best(comfy: Client) -> None:
    _ci_tiny(comfy)
    item, _ = _run(comfy, _best_of_n("ci-tiny"))
    assert item["status"]["status_str"] == "success", item["status"]
    scores = item["outputs"]["9"]["atelier_scores"][0]
    assert scores["count"] == 4 and len(scores["overall"]) == 4 and not scores["failed"]
    assert "image 3: overall" in item["outputs"]["9"]["text"][0]
    selection = item["outputs"]["10"]["atelier_selection"][0]
    assert selection["best_index"] == max(range(4), key=lambda i: (scores["overall"][i], -i))
    assert selection["overall"] == scores["overall"]  # what the scored gallery shows
    assert len(item["outputs"]["11"]["images"]) == 1
    for node in ("9", "10"):  # previews for the scored galleries, in ComfyUI's temp folder
        previews = item["outputs"][node]["atelier_images"]
        assert len(previews) == 4 and {p["type"] for p in previews} == {"temp"}
        query = "&".join(f"{k}={previews[0][k]}" for k in ("filename", "subfolder", "type"))
        status, _ = comfy.get(f"/view?{query}")
        assert status == 200


def test_rank_select_blocks_only_the_downstream_branch(comfy: Client) -> None:
    _ci_tiny(comfy)
    item, _ = _run(comfy, _best_of_n("ci-tiny", threshold=100.0, below="block", seed=6))
    assert item["status"]["status_str"] == "success", item["status"]  # the queue item is not aborted
    assert item["outputs"]["10"]["atelier_selection"][0]["below_threshold"]
    assert "11" not in item["outputs"]  # SaveImage, downstream of the block, did not run


def test_model_scorers_run_inside_comfyui(comfy: Client) -> None:
    pytest.importorskip("open_clip")
    _ci_tiny(comfy)
    graph = _best_of_n("ci-tiny", seed=8)
    graph["9"]["inputs"].update(scorers="technical,clip_score,aesthetic,pickscore",
                                weights="technical=1, clip_score=1, aesthetic=1, pickscore=2")
    item, _ = _run(comfy, graph)
    assert item["status"]["status_str"] == "success", item["status"]
    scores = item["outputs"]["9"]["atelier_scores"][0]
    assert set(scores["metrics"]) == {"technical", "clip_score", "aesthetic", "pickscore"}, scores["warnings"]
    assert scores["weights"]["pickscore"] == 2.0 and len(scores["overall"]) == 4
    # a scorer whose model is absent is left out with a message naming the folder; the rest goes on
    graph["9"]["inputs"].update(scorers="technical,hpsv2", weights="")
    graph["7"]["inputs"]["seed"] = 9
    item, _ = _run(comfy, graph)
    scores = item["outputs"]["9"]["atelier_scores"][0]
    assert "hpsv2" not in scores["metrics"] and len(scores["overall"]) == 4
    assert any("HPS_v2.1_compressed.pt" in w and "scorers" in w for w in scores["warnings"])


def test_scorer_models_node_picks_a_renamed_model(comfy: Client) -> None:
    pytest.importorskip("open_clip")
    import shutil

    scorers = Path(comfy.base_dir) / "models" / "scorers"  # type: ignore[attr-defined]
    if not (scorers / "my-pickscore").exists():
        shutil.copytree(scorers / "PickScore_v1", scorers / "my-pickscore")
    options = comfy.get("/object_info/AtelierScorerModels")[1]["AtelierScorerModels"]["input"]["required"]
    assert "my-pickscore/model.safetensors" in json.dumps(options["pickscore"])
    _ci_tiny(comfy)
    graph = _best_of_n("ci-tiny", seed=12)
    graph["20"] = {"class_type": "AtelierScorerModels", "inputs": {
        "clip": "(default)", "aesthetic": "(default)", "pickscore": "my-pickscore/model.safetensors", "hpsv2": "(default)"}}
    graph["9"]["inputs"].update(scorers="technical,pickscore", models=["20", 0])
    item, _ = _run(comfy, graph)
    scores = item["outputs"]["9"]["atelier_scores"][0]
    assert "pickscore" in scores["metrics"], scores["warnings"]


def _enhanced_graph(seed: int, sampler_seed: int = 21) -> dict[str, Any]:
    graph = _graph("ci-tiny", 64, 64, 1, seed=sampler_seed)
    graph["30"] = {"class_type": "AtelierPromptEnhance", "inputs": {
        "prompt": "a lighthouse, a lighthouse, (storm:3)", "negative": "ugly", "backend": "rule",
        "endpoint": "(backend default)", "model": "", "model_family": "auto", "threshold": 85.0, "iterations": 4,
        "seed": seed, "temperature": 0.7, "keep_trace": True, "keep_llm_loaded": False,
        "quality_preset": ["4", 0]}}
    graph["2"]["inputs"]["text"] = ["30", 0]
    graph["3"]["inputs"]["text"] = ["30", 1]
    return graph


def _cached_nodes(item: dict[str, Any]) -> set[str]:
    return {n for kind, data in item["status"]["messages"] if kind == "execution_cached" for n in data["nodes"]}


def test_prompt_enhance_feeds_clip_text_encode_and_caches_by_seed(comfy: Client) -> None:
    _ci_tiny(comfy)
    item, _ = _run(comfy, _enhanced_graph(seed=1))
    assert item["status"]["status_str"] == "success", item["status"]
    text = item["outputs"]["30"]["text"][0]
    assert "(storm:1.5)" in text and text.count("lighthouse") == 1
    traces = list((Path(comfy.base_dir) / "output" / "atelier" / "traces").glob("*.json"))  # type: ignore[attr-defined]
    assert traces  # keep_trace: the trace stays under ComfyUI's output folder
    again, _ = _run(comfy, _enhanced_graph(seed=1, sampler_seed=22))
    assert "30" in _cached_nodes(again)  # same inputs and seed: ComfyUI reuses the enhancement
    other, _ = _run(comfy, _enhanced_graph(seed=2, sampler_seed=23))
    assert "30" not in _cached_nodes(other) and other["status"]["status_str"] == "success"  # a new seed re-runs
    status, body = comfy.post("/atelier/enhance", {"prompt": "a red fox", "model_family": "flux_dev"})
    assert status == 200 and body["prompt"].startswith("A red fox")


def test_prompt_enhance_node_gives_up_on_a_stalled_server_within_its_deadline(comfy: Client) -> None:
    """A server that accepts and never answers holds the node (and ComfyUI's queue) no longer than its deadline."""
    from test_deadlines_and_secrets import Stalled

    _ci_tiny(comfy)
    stalled = Stalled()
    try:
        config = Path(comfy.base_dir) / "user" / "atelier" / "llm.json"  # type: ignore[attr-defined]
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"endpoints": {"stalled": {"backend": "ollama", "url": stalled.url,
                                                                 "model": "m"}}}))
        graph = _enhanced_graph(seed=9, sampler_seed=29)
        graph["30"]["inputs"].update(backend="ollama", endpoint="stalled", timeout_s=3.0)
        item, seconds = _run(comfy, graph)
        assert item["status"]["status_str"] == "success", item["status"]
        text = item["outputs"]["30"]["text"][0]
        assert "deadline (3 s)" in text and "(storm:1.5)" in text  # the rule backend finished the job
        assert len(stalled.accepted) == 1  # no retry of the call that timed out, then the circuit was open
        print(f"\nstalled LLM server: the graph with its enhancement finished in {seconds:.1f} s (deadline 3 s)")
    finally:
        stalled.close()


def test_social_context_node_feeds_the_prompt_and_enforces_the_rating(comfy: Client) -> None:
    _ci_tiny(comfy)
    graph = _graph("ci-tiny", 64, 64, 1, seed=31)
    graph["40"] = _social_node(affinity=80, trust=80, chemistry=80, requested_rating="restricted")
    graph["3"]["inputs"]["text"] = ["40", 3]
    item, _ = _run(comfy, graph)
    assert item["status"]["status_str"] == "success", item["status"]
    assert item["outputs"]["40"]["text"][0].startswith("partner · intimacy intense · rating mature_implied")
    graph["40"]["inputs"].update(enforcement="reject", affinity=20, trust=20, chemistry=0)
    status, body = comfy.post("/prompt", {"prompt": graph})  # refused when queued: nothing runs
    assert status == 400, body
    error = json.dumps(body["node_errors"]["40"])
    assert "rating_above_max" in error and "requested rating 'restricted' exceeds the allowed 'sfw'" in error


def test_atelier_nodes_refuse_what_their_rules_reject_before_anything_runs(comfy: Client) -> None:
    """The validation rules behind the health badges also refuse the prompt when it is queued (ComfyUI's 400
    with the node's error): a LoRA of another family listed by hand, a budget no plan meets, an unknown scorer.
    A warning does not refuse, and ComfyUI's own range checks still apply to the inputs the nodes validate."""
    import sys as _sys

    _sys.path.insert(0, str(REPO / "tools"))
    import lora_files
    from atelier.nodes.core.storyboard.pipelines import use_checkpoint

    _ci_tiny(comfy)
    loras = Path(comfy.base_dir) / "models" / "loras"  # type: ignore[attr-defined]
    loras.mkdir(parents=True, exist_ok=True)
    lora_files.write_safetensors(loras / "refused_xl.safetensors", lora_files.kohya_sdxl(),
                                 lora_files.kohya_metadata("sdxl_base_v1-0", "refused xl"))
    graph = use_checkpoint(json.loads((REPO / "workflows" / "api" / "atelier_intelligent.json").read_text()),
                           CHECKPOINT)
    plan_id = next(i for i, n in graph.items() if n["class_type"] == "AtelierSmartPlan")
    lora_id = next(i for i, n in graph.items() if n["class_type"] == "AtelierLoraRecommend")
    graph[plan_id]["inputs"].update(checkpoint=CHECKPOINT, width=64, height=64)
    before = len(comfy.get("/history")[1])

    def refused(candidate: dict[str, Any], node_id: str) -> str:
        status, body = comfy.post("/prompt", {"prompt": candidate})
        assert status == 400, body
        return json.dumps(body["node_errors"][node_id])

    manual = json.loads(json.dumps(graph))
    manual[lora_id]["inputs"].update(mode="MANUAL", checkpoint_family="sd15",
                                     loras="refused_xl.safetensors:0.8\nnot_there.safetensors")
    error = refused(manual, lora_id)
    assert "lora_family" in error and "refused_xl.safetensors is a sdxl LoRA" in error, error
    assert "unknown_lora" in error and "not_there.safetensors is not in your LoRA library" in error
    budget = json.loads(json.dumps(graph))
    budget[plan_id]["inputs"].update(max_time_s=0.001)
    error = refused(budget, plan_id)
    assert "no_plan_fits" in error and "cheapest" in error, error
    ranged = json.loads(json.dumps(graph))
    ranged[plan_id]["inputs"].update(width=99999)  # a named input: Atelier checks its range for ComfyUI
    assert "width: 99999 is above the maximum 16384" in refused(ranged, plan_id)
    preset = _graph("ci-tiny", 64, 64, 1)
    preset["4"]["inputs"]["batch_size"] = 9999  # not named by Quality Preset's check: ComfyUI's own check
    assert "value_bigger_than_max" in refused(preset, "4")
    scored = _graph("ci-tiny", 64, 64, 1)
    scored["30"] = {"class_type": "AtelierVariationScore", "inputs": {
        "images": ["7", 0], "prompt": "a lighthouse", "scorers": "technical,pixel_magic", "weights": ""}}
    scored["31"] = {"class_type": "AtelierRankSelect", "inputs": {  # to an output: ComfyUI validates what it runs
        "images": ["7", 0], "scores": ["30", 0], "top_k": 1, "threshold": 0.0, "below_threshold": "warn"}}
    scored["8"]["inputs"]["images"] = ["31", 0]
    assert "unknown_scorer" in refused(scored, "30")
    assert len(comfy.get("/history")[1]) == before  # nothing was queued
    warned = _graph("ci-tiny", 64, 64, 1, seed=5)
    warned["4"]["inputs"]["model_family"] = "sdxl"  # family_mismatch: a warning on the badge, and it runs
    status, body = comfy.post("/atelier/graph/validate", {"graph": warned})
    assert body["nodes"]["4"]["issues"][0]["code"] == "family_mismatch"
    item, _ = _run(comfy, warned)
    assert item["status"]["status_str"] == "success", item["status"]


def test_record_node_persists_a_run_with_social_context(comfy: Client) -> None:
    _ci_tiny(comfy)
    graph = _graph("ci-tiny", 64, 64, 1, seed=41)
    graph["40"] = _social_node(affinity=40, trust=40, chemistry=10)
    graph["3"]["inputs"]["text"] = ["40", 3]
    graph["50"] = {"class_type": "AtelierRecordGeneration", "inputs": {
        "images": ["7", 0], "operation_type": "image_generation", "workspace": "ci", "prompt": "a lighthouse",
        "quality_preset": ["4", 0], "social_context": ["40", 0]}}
    item, _ = _run(comfy, graph)
    assert item["status"]["status_str"] == "success", item["status"]
    record_id = item["outputs"]["50"]["text"][0].split()[1]
    deadline = time.monotonic() + 10
    record = comfy.get(f"/atelier/generations/{record_id}")[1]
    while record["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.5)
        record = comfy.get(f"/atelier/generations/{record_id}")[1]
    assert record["status"] == "completed" and record["outputs"]["8"]  # history moved it on, with its images
    assert record["parameters"]["social"]["tier"] == "friend" and record["parameters"]["quality"]["preset"] == "ci-tiny"
    # per-node timings, though ComfyUI sent the run's events to another client (the one that queued it)
    drill = comfy.get(f"/atelier/dev/generations/{record_id}")[1]
    timings = drill["timings"]
    timed = {t["node"]: t for t in timings}
    assert timed["6"]["class_type"] == "KSampler" and timed["6"]["seconds"] > 0, timings
    ran = set(timed) | set(drill["cached"] or [])  # a node ComfyUI took from its cache has no time
    assert {"1", "4", "6", "7", "8", "50"} <= ran and all(t["seconds"] >= 0 for t in timings), drill
    listed = comfy.get("/atelier/generations?workspace=ci&status=completed")[1]["items"]
    assert record_id in [r["id"] for r in listed]
    again, _ = _run(comfy, graph)  # the same graph again: a new record, with the same hash
    second = again["outputs"]["50"]["text"][0]
    assert "identical earlier runs: 1" in second


def test_generations_are_queued_and_cancelled_through_comfyui(comfy: Client) -> None:
    _ci_tiny(comfy)
    config = {"operation_type": "image_generation", "workspace": "queue-test", "parameters": {"tier": "ci-tiny"},
              "prompt": "a lighthouse"}
    status, first = comfy.post("/atelier/generations", {**config, "graph": _graph("ci-tiny", 128, 128, 2, seed=61)})
    assert status == 201 and first["status"] == "queued" and first["comfy_prompt_id"]
    status, second = comfy.post("/atelier/generations", {**config, "graph": _graph("ci-tiny", 64, 64, 1, seed=62)})
    assert status == 201 and second["status"] == "queued"
    status, cancelled = comfy.post(f"/atelier/generations/{second['id']}/cancel")  # still waiting behind the first
    assert status == 200 and cancelled["status"] == "cancelled"
    deadline = time.monotonic() + 60
    record, seen = first, ["queued"]
    while record["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.25)
        record = comfy.get(f"/atelier/generations/{first['id']}")[1]
        if record["status"] != seen[-1]:
            seen.append(record["status"])
    assert seen == ["queued", "running", "completed"]  # ComfyUI's queue, then its history, moved it
    messages = dict(comfy.get(f"/history/{first['comfy_prompt_id']}")[1][first["comfy_prompt_id"]]["status"]["messages"])
    assert record["started_at"] == messages["execution_start"]["timestamp"] / 1000  # timed by ComfyUI's events
    assert record["finished_at"] == messages["execution_success"]["timestamp"] / 1000
    time.sleep(POLL_MARGIN_S)
    assert second["comfy_prompt_id"] not in comfy.get("/history")[1]  # ComfyUI never ran the cancelled one
    assert comfy.get(f"/atelier/generations/{second['id']}")[1]["status"] == "cancelled"
    bad_graph = _graph("ci-tiny", 64, 64, 1, seed=63)
    bad_graph["6"]["inputs"]["sampler_name"] = ["4", 99]  # a link to an output that does not exist
    status, body = comfy.post("/atelier/generations", {**config, "graph": bad_graph})
    assert status == 400 and body["field"] == "graph" and "ComfyUI refused the graph" in body["error"]
    failed = comfy.get("/atelier/generations?workspace=queue-test&status=failed")[1]["items"]
    assert failed and failed[0]["error"].startswith("ComfyUI refused the graph")


def test_atelier_node_schemas_match_the_static_table(comfy: Client) -> None:
    """The table CI validates workflows with (tests/test_workflows.py) is what ComfyUI serves."""
    from test_workflows import ATELIER_NODES

    info = comfy.get("/object_info")[1]
    for class_type, expected in ATELIER_NODES.items():
        spec = info[class_type]["input"]
        assert set(expected["inputs"]) == set(spec["required"]) | set(spec.get("optional", {})), class_type
        assert len(expected["outputs"]) == len(info[class_type]["output"]), class_type


def _wait_run(comfy: Client, prompt_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, run = comfy.get(f"/atelier/pipelines/runs/{prompt_id}")
        if status == 200 and run["status"] in ("completed", "failed"):
            return run
        time.sleep(0.5)
    pytest.fail(f"pipeline run {prompt_id} did not finish")


SHIPPED = ("atelier_quality_txt2img", "atelier_img2img", "atelier_prompt_enhance", "atelier_best_of_n",
           "atelier_quality_comparison", "atelier_storyboard", "atelier_shot", "atelier_sequence")
TIERS = ("draft", "standard", "high", "ultra")
TIERED = [(name, tier) for name in SHIPPED for tier in (TIERS if name != "atelier_quality_comparison" else ("all",))]


def _upload(comfy: Client, name: str, color: tuple[int, int, int] = (200, 120, 40)) -> None:
    """A 64x64 image in ComfyUI's input folder (LoadImage's list)."""
    import io
    import urllib.request

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
    boundary = "atelierboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(comfy.base + "/upload/image", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert json.loads(urllib.request.urlopen(request).read())["name"] == name


def _png_size(path: Path) -> tuple[int, int]:
    from struct import unpack

    return unpack(">II", path.read_bytes()[16:24])


@pytest.mark.parametrize(("name", "tier"), TIERED, ids=[f"{n}-{t}" for n, t in TIERED])
def test_every_shipped_workflow_runs_at_every_tier_with_the_passes_it_plans(comfy: Client, name: str,
                                                                            tier: str) -> None:
    """Each shipped workflow at each tier on the tiny checkpoint: the images have the plan's final size (the
    hires pass ran at high and ultra), Quality Sampler and the manifest list the passes that ran."""
    from atelier.nodes.core.quality.passes import final_size, sampling_passes

    if name == "atelier_img2img":
        _upload(comfy, "example.png")
    graph = _shipped(name) if tier == "all" else _shipped(name, tier=tier)
    for node in graph.values():
        if node["class_type"] == "AtelierFrameChain":  # 2 clips, 2 variations: every tier in minutes
            node["inputs"].update(variations=2, storyboard="a lighthouse | its beam\na storm | the sea")
    item, seconds = _run(comfy, graph, timeout=600)
    print(f"\n{name} at {tier}: {seconds:.1f} s")
    assert item["status"]["status_str"] == "success", item["status"]
    outputs = item["outputs"]
    saved = [i for o in outputs.values() for i in o.get("images", []) if i.get("type") == "output"]
    if tier != "all":
        params = _plan_params(tier)
        expected, expected_size = [p.name for p in sampling_passes(params)], final_size(params)
    if name in ("atelier_quality_txt2img", "atelier_img2img", "atelier_best_of_n", "atelier_shot"):
        sampler = next(k for k, n in graph.items() if n["class_type"] == "AtelierQualitySampler")
        ran = [line.split(":")[0] for line in outputs[sampler]["text"][0].splitlines()]
        assert ran == expected, (ran, expected)
        assert len(saved) == 1 and _png_size(Path(comfy.base_dir) / "output" / saved[0]["filename"]) == expected_size  # type: ignore[attr-defined]
    if name == "atelier_prompt_enhance":
        shown = next(o["text"][0] for k, o in outputs.items() if graph[k]["class_type"] == "PreviewAny")
        assert "lighthouse" in shown
    if name in ("atelier_storyboard", "atelier_sequence"):
        folder = next(o["storyboard"][0] for o in outputs.values() if "storyboard" in o)
        manifest = json.loads((Path(comfy.base_dir) / "output" / folder / "manifest.json").read_text())  # type: ignore[attr-defined]
        assert len(manifest["frames"]) == 4 and manifest["status"] == "completed"
        assert all(len(f["attempts"][0]["scores"]) == 2 for f in manifest["frames"])
        assert manifest["frames"][1]["sources"] == ["own_start"]  # no reference: the end chains from its start
        assert all([p.split(":")[0] for p in f["passes"]] == expected for f in manifest["frames"])
        assert manifest["scoring"]["ran"] and "technical" in manifest["scoring"]["ran"]
        assert manifest["continuity"]["2"] is not None  # compared with the frames before
        frames_saved = [i["filename"] for i in saved if i["filename"].startswith("clip_")]
        assert frames_saved[:2] == ["clip_001_start.png", "clip_001_end.png"]
        first = Path(comfy.base_dir) / "output" / folder / "clip_001_start.png"  # type: ignore[attr-defined]
        assert _png_size(first) == expected_size
    if name == "atelier_sequence":
        assert any(i["filename"].endswith(".webp") for o in outputs.values() for i in o.get("images", []))
    if name == "atelier_quality_comparison":
        width, height = _png_size(Path(comfy.base_dir) / "output" / saved[0]["filename"])  # type: ignore[attr-defined]
        assert width >= 2 * 48 and height >= 2 * (48 + 28)  # 2x2 tiers (draft is 48 px at 64: its scale) + labels
        labels = next(o["text"][0] for k, o in outputs.items() if graph[k]["class_type"] == "AtelierTierGrid")
        ran = [o["text"][0] for k, o in outputs.items() if graph[k]["class_type"] == "AtelierQualitySampler"]
        assert len(ran) == 4 and "refinement" in " ".join(ran) and "Ultra" in labels  # each tier its own passes


def _plan_params(tier: str) -> dict[str, Any]:
    """The image parameters the shipped workflows' Quality Preset computes at ``tier`` (64x64, the test
    checkpoint's family)."""
    from atelier.nodes.core.quality import plan as planning
    from atelier.nodes.core.quality.service import QualityService

    with tempfile.TemporaryDirectory() as home:
        service = QualityService(Path(home) / "users", Path(home) / "data")
        return planning.build_plan(service, tier, "auto", CHECKPOINT, None, 64, 64, 1).params


def test_pipelines_run_on_comfyuis_queue_with_a_reference_and_records(comfy: Client) -> None:
    _upload(comfy, "ref.png")
    status, run = comfy.post("/atelier/pipelines/storyboard_generation/run", {
        "tier": "draft", "checkpoint": CHECKPOINT, "width": 64, "height": 64, "variations": 2, "reference": "ref.png",
        "storyboard": "a fox wakes | the fox runs\nthe fox sleeps | night falls"})
    assert status == 200, run
    done = _wait_run(comfy, run["prompt_id"])
    assert done["status"] == "completed"
    manifest = done["manifests"][0]
    assert [f["sources"] for f in manifest["frames"]] == [["reference"], ["reference", "own_start"],
                                                         ["reference", "previous_end"], ["reference", "own_start"]]
    time.sleep(POLL_MARGIN_S)
    kinds = {r["operation_type"]: r["status"] for r in comfy.get(f"/atelier/pipelines/runs/{run['prompt_id']}")[1]
             ["records"]}
    assert kinds == {"storyboard_generation": "completed", "storyboard": "completed"}  # the run and the storyboard
    status, bad = comfy.post("/atelier/pipelines/storyboard_generation/run", {
        "tier": "draft", "checkpoint": "missing.safetensors", "storyboard": "a | b"})
    assert status == 400 and "ComfyUI refused the graph" in bad["error"]


def test_a_failing_scorer_keeps_the_first_image_and_the_storyboard_is_complete(comfy: Client) -> None:
    """HPSv2 asked for, its weights absent: every frame keeps its first variation (unscored, with a warning);
    no frame is lost or retried, and the manifest says the scorer failed."""
    graph = _shipped("atelier_storyboard", tier="draft")
    chain = next(n for n in graph.values() if n["class_type"] == "AtelierFrameChain")
    chain["inputs"].update(variations=2, scorers="hpsv2", storyboard="a fox | a fox asleep", seed=77)  # no HPS model
    item, _ = _run(comfy, graph)
    assert item["status"]["status_str"] == "success", item["status"]
    assert not any(".a1.select" in node for node in item["outputs"])  # no retry
    folder = next(o["storyboard"][0] for o in item["outputs"].values() if "storyboard" in o)
    manifest = json.loads((Path(comfy.base_dir) / "output" / folder / "manifest.json").read_text())  # type: ignore[attr-defined]
    assert manifest["status"] == "completed" and manifest["failed_clips"] == []
    assert [f["status"] for f in manifest["frames"]] == ["unscored", "unscored"]
    assert all(f["chosen"] == 0 and f["file"] and "kept the first usable variation" in f["warnings"][0]
               for f in manifest["frames"])
    assert "hpsv2" in manifest["scoring"]["skipped"] and manifest["scoring"]["unscored_frames"] == [
        "clip_001_start", "clip_001_end"]
    assert manifest["frames"][1]["sources"] == ["own_start"]  # its start was kept: the end chains from it


def test_a_batch_of_every_tier_runs_from_the_command_line(comfy: Client, tmp_path: Path) -> None:
    """``atelier batch FILE``: one ComfyUI prompt per item at its tier and count; each item's time and best
    score, and a summary per tier; the batch and its items recorded."""
    batch = tmp_path / "batch.yaml"
    batch.write_text("width: 64\nheight: 64\nitems:\n" + "".join(
        f"  - {{prompt: a red fox in the snow, tier: {tier}, count: 2}}\n" for tier in TIERS))
    out = subprocess.run([sys.executable, "-m", "atelier", "batch", str(batch), "--server", comfy.base,
                          "--checkpoint", CHECKPOINT, "--json"], capture_output=True, text=True, timeout=900,
                         cwd=REPO.parent)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    print(f"\nbatch: {[(i['tier'], i['time_s'], i['best_score']) for i in report['items']]}")
    assert report["status"] == "completed" and report["progress"] == {"done": 4, "total": 4}
    assert [i["tier"] for i in report["items"]] == list(TIERS)
    assert all(i["time_s"] > 0 and i["best_score"] is not None and i["count"] == 2 for i in report["items"])
    assert set(report["summary"]) == set(TIERS) and report["summary"]["ultra"]["completed"] == 1
    times = {i["tier"]: i["time_s"] for i in report["items"]}
    assert times["ultra"] > times["draft"]  # ultra runs its hires and refinement passes
    status, again = comfy.get(f"/atelier/batches/{report['id']}")
    assert status == 200 and again["status"] == "completed"


def test_cli_run_follows_progress_and_downloads(comfy: Client, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "atelier", "run", "shot_generation", "--server", comfy.base,
                          "--checkpoint", CHECKPOINT, "--tier", "draft", "--prompt", "a red fox", "--width", "64",
                          "--height", "64", "--variations", "2", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=REPO.parent)
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stdout and "<- chosen" in out.stdout and "saved" in out.stdout
    assert "[" in out.stderr and "/" in out.stderr  # the progress bar from ComfyUI's websocket
    assert list(tmp_path.glob("atelier_shot_*.png"))
    gone = subprocess.run([sys.executable, "-m", "atelier", "run", "shot_generation", "--server",
                           "http://127.0.0.1:9", "--checkpoint", CHECKPOINT], capture_output=True, text=True,
                          cwd=REPO.parent)
    assert gone.returncode == 2 and "cannot reach ComfyUI at http://127.0.0.1:9" in gone.stderr


def _open_frontend(page: Any, comfy: Client) -> None:
    """ComfyUI's frontend, loaded, with its start-up dialogs closed."""
    comfy.post("/settings/Comfy.TutorialCompleted", True)  # a new user is otherwise shown the templates dialog
    page.goto(comfy.base + "/")
    page.wait_for_function("() => window.app?.graph && window.app.extensionManager?.setting", timeout=60_000)
    page.wait_for_timeout(1000)
    while page.locator(".p-dialog-mask").count():
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


def test_the_frontend_loads_atelier_and_its_widgets_and_tab_work(comfy: Client, browser: Any) -> None:
    """ComfyUI's own frontend: Atelier's scripts load without errors; the tier picker, the pipeline summary,
    the scored galleries and the Atelier sidebar tab work; screenshots under test-artifacts/screenshots/."""
    from conftest import SCREENSHOTS

    _ci_tiny(comfy)  # a custom preset, listed in the tier combo and the picker
    workflow = json.loads((REPO / "workflows" / "atelier_best_of_n.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"] = [CHECKPOINT]
        if node["type"] == "AtelierQualityPreset":
            node["widgets_values"][:6] = ["standard", "auto", CHECKPOINT, 64, 64, 3]
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(20_000)
    atelier_errors: list[str] = []
    others: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            (atelier_errors if "atelier" in f"{where} {message.text}".lower() else others).append(message.text)

    def page_error(error: Any) -> None:
        (atelier_errors if "atelier" in f"{error.stack}".lower() else others).append(f"{error}")

    page.on("console", console)
    page.on("pageerror", page_error)
    page.on("response", lambda r: atelier_errors.append(f"{r.status} {r.url}")
            if "atelier" in r.url and r.status >= 400 else None)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _open_frontend(page, comfy)
        names = page.evaluate("() => window.app.extensions.map(e => e.name).filter(n => n.startsWith('atelier.'))")
        assert set(names) >= {"atelier.panel", "atelier.quality", "atelier.scores", "atelier.enhance"}
        page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
        page.wait_for_function("() => document.querySelectorAll('.atelier-tiers [role=radio]').length >= 5")
        tiers = page.eval_on_selector_all(".atelier-tiers [role=radio]", "els => els.map(e => e.dataset.tier)")
        assert tiers[:4] == ["draft", "standard", "high", "ultra"] and "ci-tiny" in tiers
        assert "reference" in page.inner_text(".atelier-tiers [data-tier=standard]")
        assert "× standard's time" in page.inner_text(".atelier-tiers [data-tier=ultra]")
        # each tier this user ran on this checkpoint (the batch test ran all four): its latest image and measures
        page.wait_for_function("() => [...document.querySelectorAll('.atelier-tiers .atelier-seen-image')]"
                               ".filter(i => i.complete && i.naturalWidth > 0).length >= 4")
        assert "your runs: " in page.inner_text(".atelier-tiers [data-tier=ultra]")

        # the picker with its images is taller than the viewport's share of the node: pan to it, as a user does
        preset = "window.app.graph.getNodeById(2)"
        page.evaluate(f"() => {{ const ds = window.app.canvas.ds; ds.scale = 1; ds.offset = [-{preset}.pos[0] + 40, "
                      f"-{preset}.pos[1] + 40]; window.app.canvas.setDirty(true, true); }}")
        page.wait_for_timeout(300)
        page.click(".atelier-tiers [data-tier=high]")
        tier = "() => window.app.graph.getNodeById(2).widgets.find(w => w.name === 'tier').value"
        page.wait_for_function(f"() => ({tier})() === 'high'")
        # the best-of-N workflow's node types are the shot pipeline's (its graph without the stage's suffix)
        page.wait_for_function("() => window.app.extensionManager.setting.get('Atelier.Quality.PreferredTiers')"
                               "?.shot_generation === 'high'")
        page.wait_for_function("() => document.querySelector('.atelier-plan')?.textContent.includes('High')")
        page.focus(".atelier-tiers [data-tier=high]")
        page.keyboard.press("ArrowDown")  # the picker is a radio group: arrows choose
        page.wait_for_function(f"() => ({tier})() === 'ultra'")

        page.select_option(".atelier-tier-picker select", "storyboard_generation")
        page.wait_for_selector(".atelier-tier-picker table[aria-label^='storyboard_generation']")
        stages = page.eval_on_selector_all(".atelier-tier-picker tbody tr", "rows => rows.map(r => r.dataset.stage)")
        assert stages == ["script", "keyframes", "chained_frames"]
        page.evaluate("() => { const ds = window.app.canvas.ds; ds.scale = 1; ds.offset = [-20, -200]; "
                      "window.app.canvas.setDirty(true, true); }")
        page.screenshot(path=str(SCREENSHOTS / "comfyui_tier_picker.png"))

        page.evaluate("() => { const w = window.app.graph.getNodeById(2).widgets.find(w => w.name === 'tier'); "
                      "w.value = 'ci-tiny'; w.callback?.(w.value); }")
        page.evaluate("() => { window.__atelierDone = false; window.app.api.addEventListener("
                      "'execution_success', () => { window.__atelierDone = true; }); window.app.queuePrompt(0); }")
        page.wait_for_function("() => window.__atelierDone", timeout=240_000)
        page.wait_for_function("() => document.querySelectorAll('.atelier-scored figure').length === 6")
        chosen = page.eval_on_selector_all(".atelier-scored figure.atelier-chosen img", "els => els.map(e => e.alt)")
        assert len(chosen) == 1 and chosen[0].endswith("rank 1, chosen")
        node = "window.app.graph.getNodeById(9)"
        page.evaluate(f"() => {{ const ds = window.app.canvas.ds; ds.scale = 1; ds.offset = [-{node}.pos[0] + 80, "
                      f"-{node}.pos[1] + 80]; window.app.canvas.setDirty(true, true); }}")
        page.wait_for_function("() => [...document.querySelectorAll('.atelier-scored img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(SCREENSHOTS / "comfyui_scored_gallery.png"))

        page.locator("button", has=page.locator(".pi-sliders-h")).first.click()
        page.wait_for_selector(".atelier-panel [role=tab]")
        page.wait_for_selector(".atelier-panel li[data-preset='ci-tiny']")
        page.click("#atelier-tab-compare")
        page.wait_for_selector("#atelier-panel-compare [data-testid=comparison] table")
        # what each tier measured on this user's runs (the batch test ran every tier): images from ComfyUI's /view
        value = f"#atelier-panel-compare [data-testid=tier-value] table[data-checkpoint='{CHECKPOINT}']"
        page.wait_for_selector(value)
        tiers = page.eval_on_selector_all(f"{value} tbody tr", "rows => rows.map(r => r.dataset.tier)")
        assert set(tiers) >= set(TIERS)
        page.wait_for_function("s => document.querySelectorAll(s).length >= 4", arg=f"{value} img")
        for image in page.locator(f"{value} img").all():  # lazy images load once seen
            image.scroll_into_view_if_needed()
            page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
        assert "ultra costs" in page.inner_text(f"{value} caption")
        panel = page.locator("#atelier-panel-compare")
        panel.get_by_label("Width", exact=True).fill("64")
        panel.get_by_label("Height", exact=True).fill("64")
        panel.get_by_label("Checkpoint", exact=True).fill(CHECKPOINT)
        panel.get_by_role("button", name="Render comparison").click()  # the four tiers, queued on this ComfyUI
        page.wait_for_function("() => { const i = document.querySelector('#atelier-panel-compare [data-testid=render] "
                               "img'); return i && i.complete && i.naturalWidth > 0; }", timeout=300_000)
        page.screenshot(path=str(SCREENSHOTS / "comfyui_tier_value.png"))
        panel.get_by_role("button", name="Render comparison").click()  # the same again: the earlier render
        panel.get_by_text("rendered earlier for this prompt and checkpoint").wait_for()
        page.click("#atelier-tab-records")
        page.wait_for_function("() => /record\\(s\\)|No records match/.test("
                               "document.querySelector('#atelier-panel-records [role=status]')?.textContent)")
        page.screenshot(path=str(SCREENSHOTS / "comfyui_sidebar.png"))
    finally:
        page.close()
    print(f"\nfrontend console errors not from Atelier ({len(others)}): {others}")
    assert atelier_errors == []


def test_assisted_mode_on_the_canvas_shows_recommendations_and_runs_what_the_user_accepted(
        comfy: Client, browser: Any) -> None:
    """ComfyUI's frontend, the shipped intelligent workflow: in ASSISTED mode Smart Plan shows the recommended
    tier, size and LoRAs with their reasons; the user leaves out the recommended LoRA, picks a tier and accepts;
    the accepted JSON is saved with the workflow, and the run uses exactly that (no LoRA applied, the
    differences explained)."""
    from conftest import SCREENSHOTS

    base = Path(comfy.base_dir)  # type: ignore[attr-defined]
    loras = base / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    if not (loras / "lighthouse_sd15.safetensors").exists():
        _tiny_lora(base / "models" / "checkpoints" / CHECKPOINT, loras / "lighthouse_sd15.safetensors")
    workflow = json.loads((REPO / "workflows" / "atelier_intelligent.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"] = [CHECKPOINT]
        if node["type"] == "AtelierSmartPlan":
            node["widgets_values"][2] = CHECKPOINT
            node["widgets_values"][4] = "ASSISTED"
            node["widgets_values"][8:10] = [64, 64]
        if node["type"] == "AtelierLoraRecommend":
            node["widgets_values"][1] = "ASSISTED"
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)) if "atelier" in f"{e.stack}".lower() else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if "atelier" in r.url and r.status >= 400 else None)
    try:
        _open_frontend(page, comfy)
        assert "atelier.intelligence" in page.evaluate("() => window.app.extensions.map(e => e.name)")
        page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
        page.wait_for_timeout(500)
        assert not page.get_by_text("Invalid workflow").count()  # the shipped file passes the frontend's schema
        plan = "window.app.graph.getNodeById(2)"
        page.evaluate(f"() => {{ const ds = window.app.canvas.ds; ds.scale = 1; ds.offset = [-{plan}.pos[0] + 40, "
                      f"-{plan}.pos[1] + 40]; window.app.canvas.setDirty(true, true); }}")
        assist = page.get_by_label("Smart Plan recommendations")
        use = assist.get_by_label("Use lighthouse_sd15.safetensors")
        use.wait_for(state="attached")  # loaded in ASSISTED mode: recommended at once
        page.wait_for_timeout(300)  # the node grew to fit: bring the recommendations into view, as a user scrolls
        page.evaluate("() => { const r = document.querySelector('.atelier-assist').getBoundingClientRect(); "
                      "const ds = window.app.canvas.ds; ds.offset[0] -= (r.left - 300) / ds.scale; "
                      "ds.offset[1] -= (r.top - 220) / ds.scale; window.app.canvas.setDirty(true, true); }")
        page.wait_for_timeout(300)
        assert use.is_checked() and "lighthouse" in assist.inner_text()
        assert "(recommended)" in assist.get_by_label("Tier to accept").inner_text()
        assist.get_by_text("Why these parameters").click()
        assert "priority balanced" in assist.get_by_role("list", name="Why these parameters").inner_text()
        use.uncheck()
        assist.get_by_label("Tier to accept").select_option("draft")
        assist.get_by_role("button", name="Accept").click()
        assist.get_by_text("Accepted: draft, 64x64, no LoRA.").wait_for()
        accepted = page.evaluate(f"() => JSON.parse({plan}.widgets.find(w => w.name === 'accepted').value)")
        assert accepted == {"tier": "draft", "width": 64, "height": 64, "loras": []}
        saved = page.evaluate("() => window.app.graph.serialize()")
        smart = next(n for n in saved["nodes"] if n["type"] == "AtelierSmartPlan")
        assert json.loads(smart["widgets_values"][12]) == accepted and smart["widgets_values"][4] == "ASSISTED"
        page.wait_for_timeout(300)  # the node grows to its status line
        page.screenshot(path=str(SCREENSHOTS / "comfyui_assisted.png"))
        page.evaluate("() => { window.__atelierDone = false; window.app.api.addEventListener("
                      "'execution_success', () => { window.__atelierDone = true; }); window.app.queuePrompt(0); }")
        page.wait_for_function("() => window.__atelierDone", timeout=240_000)
        saved_text = page.locator(".atelier-explanation-text", has_text="record ")
        saved_text.wait_for(state="attached")  # the Save node is off-screen: its box is laid out, not shown
        text = saved_text.text_content() or ""
        assert "LoRAs: no LoRA" in text and "you chose: left out the recommended LoRA lighthouse_sd15" in text, text
        assert "you chose: tier draft" in text, text
    finally:
        page.close()
    assert errors == []


def test_the_python_api_generates_on_comfyui_with_the_same_metadata_and_explanation(comfy: Client,
                                                                                   tmp_path: Path) -> None:
    """``atelier.api`` with ``backend="comfyui"``: the decision is made here, the graph runs on the real ComfyUI
    (the tiny checkpoint, the tiny SD1.5 LoRA from its loras folder, matched modules reported by LoRA
    Recommend), the image is fetched back, saved with its metadata and explanation, and recorded here."""
    from atelier.api import GenerationParams, IntelligentGenerationPipeline, PipelineConfig

    base = Path(comfy.base_dir)  # type: ignore[attr-defined]
    loras = base / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    if not (loras / "lighthouse_sd15.safetensors").exists():
        _tiny_lora(base / "models" / "checkpoints" / CHECKPOINT, loras / "lighthouse_sd15.safetensors")
    config = PipelineConfig(backend="comfyui", comfyui_url=comfy.base, base_model=CHECKPOINT, mode="MANUAL",
                            lora_folders=[str(loras)], timeout_s=300)
    pipeline = IntelligentGenerationPipeline(config, home=tmp_path / "home")
    offer = pipeline.analyze_and_recommend("a lighthouse on a cliff at dusk")  # recommended from the same files
    assert [x.name for x in offer.loras] == ["lighthouse_sd15.safetensors"]
    params = GenerationParams(num_steps=4, guidance_scale=7.0, width=64, height=64, sampler="euler",
                              scheduler="normal", tier="draft", hires={"width": 96, "height": 96, "steps": 2,
                                                                       "denoise": 0.5})  # small: the CPU runs it
    result = pipeline.generate("a lighthouse on a cliff at dusk", seed=5, params=params, loras=offer.loras)
    meta = result.metadata
    assert meta.backend == "comfyui" and meta.base_model == CHECKPOINT and meta.pipeline_type == "comfyui"
    used = {x["name"]: x for x in meta.loras_used}
    assert used["lighthouse_sd15.safetensors"]["matched"] == used["lighthouse_sd15.safetensors"]["modules"] > 0
    assert result.image.size == (meta.width, meta.height) == (96, 96) and meta.generation_time_s > 0
    assert [p["pass"] for p in meta.passes] == ["base", "hires"] and meta.steps == 4
    assert result.explanation["performance"]["memory"]["reason"] == "comfyui manages its own memory"
    saved = result.save(tmp_path / "lighthouse.png")
    assert saved.is_file() and (tmp_path / "lighthouse.atelier.json").is_file()
    assert pipeline.atelier.records.store.get(result.id, "default").parameters["backend"] == "comfyui"
    with pytest.raises(Exception) as missing:  # a checkpoint the server does not have
        IntelligentGenerationPipeline(PipelineConfig(backend="comfyui", comfyui_url=comfy.base,
                                                     base_model="nope.safetensors"),
                                      home=tmp_path / "home").generate("a fox")
    assert getattr(missing.value, "field", None) == "base_model"
    print(f"\nthe API on ComfyUI: {meta.generation_time_s:.2f} s, {meta.width}x{meta.height}, {meta.loras_used}")


def _tiny_lora(checkpoint: Path, path: Path) -> int:
    """A kohya SD1.5 LoRA for the test checkpoint (its attention and text-encoder projections, rank 4, random):
    built from the checkpoint's header, so every module has a weight to patch. Returns the module count."""
    import torch
    from atelier.nodes.core.base.safetensors import read_header
    from safetensors.torch import save_file

    header = read_header(checkpoint)
    state: dict[str, torch.Tensor] = {}
    generator = torch.Generator().manual_seed(7)
    patterns = (re.compile(r"^model\.diffusion_model\.(.*attn2\.to_[kv])\.weight$"),
                re.compile(r"^cond_stage_model\.transformer\.(text_model\.encoder\.layers\.[0-3]\.self_attn\.[qv]_proj)"
                           r"\.weight$"))
    for name in header.tensors:
        for index, pattern in enumerate(patterns):
            match = pattern.match(name)
            if match:
                out_dim, in_dim = header.shape(name)[:2]  # type: ignore[index]
                key = ("lora_unet_" if index == 0 else "lora_te_") + match.group(1).replace(".", "_")
                state[f"{key}.lora_down.weight"] = torch.randn(4, in_dim, generator=generator) * 0.01
                state[f"{key}.lora_up.weight"] = torch.randn(out_dim, 4, generator=generator) * 0.01
                state[f"{key}.alpha"] = torch.tensor(4.0)
    save_file(state, str(path), {"ss_base_model_version": "sd_v1", "ss_output_name": "lighthouse style",
                                 "ss_tag_frequency": json.dumps({"10_x": {"lighthouse": 12, "cliff": 5}})})
    return len(state) // 3


def test_the_intelligent_workflow_applies_a_lora_and_saves_its_explanation(comfy: Client) -> None:
    import sys as _sys

    _sys.path.insert(0, str(REPO / "tools"))
    import lora_files

    base = Path(comfy.base_dir)  # type: ignore[attr-defined]
    loras = base / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    modules = _tiny_lora(base / "models" / "checkpoints" / CHECKPOINT, loras / "lighthouse_sd15.safetensors")
    lora_files.write_safetensors(loras / "lighthouse_xl.safetensors", lora_files.kohya_sdxl(), lora_files.kohya_metadata(
        "sdxl_base_v1-0", "lighthouse xl", {"lighthouse": 30}))
    graph = json.loads((REPO / "workflows" / "api" / "atelier_intelligent.json").read_text())
    from atelier.nodes.core.storyboard.pipelines import use_checkpoint

    graph = use_checkpoint(graph, CHECKPOINT)
    plan = next(n for n in graph.values() if n["class_type"] == "AtelierSmartPlan")
    plan["inputs"].update(width=64, height=64, priority="speed", checkpoint=CHECKPOINT)
    item, seconds = _run(comfy, graph)
    assert item["status"]["status_str"] == "success", item["status"]
    saved_id = next(i for i, n in graph.items() if n["class_type"] == "AtelierSaveWithExplanation")
    image = item["outputs"][saved_id]["images"][0]
    png = base / "output" / image["subfolder"] / image["filename"]
    from PIL import Image

    with Image.open(png) as opened:
        text = opened.text  # type: ignore[attr-defined]
    explanation = json.loads(text["atelier_explanation"])
    assert "prompt" in text  # ComfyUI's own chunk stays beside ours
    applied = explanation["loras"]
    assert [x["name"] for x in applied] == ["lighthouse_sd15.safetensors"]
    assert applied[0]["modules"] == modules and applied[0]["matched"] == modules, applied[0]
    filtered = {x["name"]: x["reason"] for x in explanation["loras_filtered"]}
    assert filtered["lighthouse_xl.safetensors"] == "a SDXL LoRA (metadata), the checkpoint is SD1.5"
    assert explanation["parameters"]["tier"] == "draft" and explanation["performance"]["measured_s"] > 0
    assert json.loads(png.with_suffix(".atelier.json").read_text()) == explanation
    record_id = item["outputs"][saved_id]["text"][0].rsplit("record ", 1)[1].strip()
    record = comfy.get(f"/atelier/generations/{record_id}")[1]
    assert record["parameters"]["explanation"]["loras"][0]["name"] == "lighthouse_sd15.safetensors"
    listing = comfy.get("/atelier/loras?family=sd15")[1]
    assert [c["name"] for c in listing["cards"]] == ["lighthouse_sd15.safetensors"]
    why = comfy.get(f"/atelier/generations/{record_id}/why")[1]
    assert why["loras"]["used"][0]["matched"] == modules and why["plan"]["source"] == "Smart Plan"
    assert why["prompt"]["changed_by"] == "" and why["prompt"]["added"] == []  # this LoRA names no trigger word
    print(f"\nintelligent workflow: {seconds:.1f} s, {modules} LoRA modules applied")


def test_one_storyboard_runs_across_two_real_comfyuis_on_the_job_queue(comfy: Client, postgres_admin: str,
                                                                       tmp_path_factory: pytest.TempPathFactory,
                                                                       tmp_path: Path) -> None:
    """Scale-out on two real ComfyUIs: a storyboard on the job queue (PostgreSQL), one frame per job. The first
    frame runs on the first ComfyUI's worker; then a second worker joins and the first stops, so the chained
    frames run on the second ComfyUI, starting from the first one's image copied through shared storage."""
    pytest.importorskip("procrastinate", reason='the scale extra: pip install "atelier[scale]"')
    from atelier.nodes.host import Atelier, Settings, wiring
    from conftest import serve_app
    from postgres import fresh_database
    from scaleout_harness import cluster, wait_until

    database = fresh_database(postgres_admin)
    second, process, log = _start_comfyui(tmp_path_factory.mktemp("comfy_second"))
    try:
        with cluster(database, tmp_path / "cluster") as nodes:
            first_worker = nodes.worker(comfy.base, "first", heartbeat_s=0.5, stalled_after_s=5, concurrency=1)
            server = Atelier(Settings.standalone(tmp_path / "server", {"ATELIER_DATABASE_URL": database}))
            for api in serve_app(wiring.app(server)):
                status, run = api.post("/atelier/pipelines/storyboard_generation/run", {
                    "distributed": True, "checkpoint": CHECKPOINT, "tier": "draft", "width": 64, "height": 64,
                    "variations": 2, "seed": 5,
                    "storyboard": "a lighthouse at dusk | the beam over the sea\nstorm clouds | waves below"})
                assert status == 200 and run["frames"] == 4, run

                def frame(i: int, api: Client = api, ids: list[str] = run["jobs"]) -> dict[str, Any]:
                    return api.get(f"/atelier/generations/{ids[i]}")[1]

                wait_until(lambda: frame(0)["status"] == "completed", 300, "the first frame")
                nodes.worker(second.base, "second", heartbeat_s=0.5, stalled_after_s=5, concurrency=1)
                first_worker.stop()  # graceful: what it holds goes back to the queue (or is adopted)
                wait_until(lambda: all(frame(i)["status"] in ("completed", "failed") for i in range(4)), 600,
                           "every frame")
                frames = [frame(i) for i in range(4)]
                jobs = [api.get(f"/atelier/jobs/{f['id']}")[1] for f in frames]
        assert [f["status"] for f in frames] == ["completed"] * 4, [f.get("error") for f in frames]
        assert jobs[0]["worker"] == "first" and jobs[3]["worker"] == "second"
        for f in frames:
            (file,) = f["outputs"]["atelier"]["files"]
            assert (nodes.shared / file).read_bytes()[:4] == b"\x89PNG"
        history = second.get(f"/history/{frames[3]['comfy_prompt_id']}")[1][frames[3]["comfy_prompt_id"]]
        graph = history["prompt"][2]
        assert graph["chain.previous"]["inputs"]["image"] == f"atelier_chain_{frames[3]['id']}.png"
        assert (second.base_dir / "input" / f"atelier_chain_{frames[3]['id']}.png").is_file()  # type: ignore[attr-defined]
        print(f"\nstoryboard across two ComfyUIs: frames by {[j['worker'] for j in jobs]}")
    finally:
        _stop_comfyui(second, process, log)


def test_atelier_nodes_show_health_badges_from_validation_and_runs(comfy: Client, browser: Any) -> None:
    """In ComfyUI's frontend: each Atelier node gets ok / warning / error from POST /atelier/graph/validate as
    its inputs change, the corner summary lists the reasons, and a successful run turns the nodes ok."""
    from conftest import SCREENSHOTS

    _ci_tiny(comfy)
    workflow = json.loads((REPO / "workflows" / "atelier_best_of_n.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"] = [CHECKPOINT]
        if node["type"] == "AtelierQualityPreset":
            node["widgets_values"][:6] = ["ci-tiny", "sdxl", CHECKPOINT, 64, 64, 2]  # sdxl: not the checkpoint's
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(20_000)
    errors: list[str] = []  # the frontend's own errors (e.g. in its GraphView after a run) are not Atelier's
    page.on("pageerror", lambda e: errors.append(f"{e} {e.stack}"[:1500]) if "atelier" in f"{e.stack}".lower() else None)
    health = "id => window.app.graph.getNodeById(id).atelierHealth?.status"
    try:
        _open_frontend(page, comfy)
        assert "atelier.health" in page.evaluate("() => window.app.extensions.map(e => e.name)")
        page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
        page.evaluate("() => { const w = window.app.graph.getNodeById(9).widgets.find(w => w.name === 'scorers'); "
                      "w.value = 'technical,hpsv2'; }")
        page.wait_for_function(f"() => ({health})(2) === 'warning' && ({health})(9) === 'warning'")
        assert page.evaluate(f"() => ({health})(3)") == "ok"
        reasons = page.evaluate("() => window.app.graph.getNodeById(2).atelierHealth.reasons.join(' ')")
        assert "family_mismatch" in reasons and "sd15" in reasons
        summary = page.locator("#atelier-health-summary")
        assert "0 error(s), 2 warning(s)" in summary.inner_text()
        assert summary.locator("button[data-node='9']").get_attribute("data-status") == "warning"
        page.screenshot(path=str(SCREENSHOTS / "comfyui_health_badges.png"))
        page.evaluate("() => { const g = window.app.graph; g.getNodeById(2).widgets.find(w => w.name === "
                      "'model_family').value = 'auto'; g.getNodeById(9).widgets.find(w => w.name === 'scorers').value "
                      "= 'technical'; }")
        page.wait_for_function(f"() => ({health})(2) === 'ok' && ({health})(9) === 'ok'")
        assert "node(s) ok" in summary.inner_text()
        page.evaluate("() => { window.__atelierDone = false; window.app.api.addEventListener("
                      "'execution_success', () => { window.__atelierDone = true; }); window.app.queuePrompt(0); }")
        page.wait_for_function("() => window.__atelierDone", timeout=240_000)
        page.wait_for_function("() => window.app.graph.getNodeById(9).atelierHealth?.reasons[0]?.startsWith('ran fine')")
        assert page.evaluate(f"() => ({health})(9)") == "ok"
        # the node's context menu leads to the records it produced (the Developer view, filtered by the node)
        page.evaluate("() => { const node = window.app.graph.getNodeById(2); const options = []; "
                      "node.getExtraMenuOptions(window.app.canvas, options); "
                      "options.find(o => o?.content === 'Atelier: records of this node').callback(); }")
        page.wait_for_selector("#atelier-panel-developer")
        assert page.get_by_label("Node class").input_value() == "AtelierQualityPreset"
        assert page.get_by_label("Node id").input_value() == "2"
    finally:
        page.close()
    assert not errors, errors


def test_a_reused_generation_returns_without_queueing_and_a_replay_reproduces_its_hash(comfy: Client) -> None:
    """On a real ComfyUI: a generation with a fixed seed strategy completes; the same request with reuse answers
    that run (nothing queued); a replay queues the recorded graph again and has the same hash (and, on this
    deterministic CPU, the same image)."""
    _ci_tiny(comfy)
    config = {"operation_type": "image_generation", "workspace": "reuse-test", "parameters": {"tier": "ci-tiny"},
              "prompt": "a lighthouse at dawn", "graph": _graph("ci-tiny", 64, 64, 1, seed=0),
              "seeds": {"strategy": "fixed", "base": 77}}

    def finished(record_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            record = comfy.get(f"/atelier/generations/{record_id}")[1]
            if record["status"] in ("completed", "failed"):
                return dict(record)
            time.sleep(0.25)
        pytest.fail(f"record {record_id} did not finish")

    status, first = comfy.post("/atelier/generations", config)
    assert status == 201 and first["parameters"]["seeds"]["seeds"] == [77]
    done = finished(first["id"])
    assert done["status"] == "completed", done
    before = len(comfy.get("/history?max_items=1000")[1])
    status, reused = comfy.post("/atelier/generations", {**config, "reuse": True})
    assert status == 200 and reused["reused"] is True and reused["id"] == first["id"]
    assert len(comfy.get("/history?max_items=1000")[1]) == before and comfy.get("/queue")[1]["queue_pending"] == []
    status, replay = comfy.post(f"/atelier/generations/{first['id']}/replay")
    assert status == 201 and replay["same_hash"] is True and replay["repro_hash"] == first["repro_hash"]
    again = finished(replay["id"])
    assert again["status"] == "completed"
    original = comfy.get(f"/history/{first['comfy_prompt_id']}")[1][first["comfy_prompt_id"]]
    replayed = comfy.get(f"/history/{again['comfy_prompt_id']}")[1][again["comfy_prompt_id"]]
    assert original["prompt"][2] == replayed["prompt"][2]  # the same graph ran, seeds included
    base = Path(comfy.base_dir) / "output"  # type: ignore[attr-defined]

    def image(item: dict[str, Any]) -> bytes:
        (picture,) = [i for out in item["outputs"].values() for i in out.get("images", []) if i["type"] == "output"]
        return (base / picture.get("subfolder", "") / picture["filename"]).read_bytes()

    from PIL import Image

    with Image.open(io.BytesIO(image(original))) as a, Image.open(io.BytesIO(image(replayed))) as b:
        assert list(a.getdata()) == list(b.getdata())  # the same pixels
