"""Scale-out on real parts: PostgreSQL (Debian's, started by the tests), real ``atelier worker`` processes, and
fake ComfyUI processes (``fake_comfy.py``) that run prompts for a fixed time and fail on demand. Work is
submitted through Atelier's routes on a real server, as a user would; workers and ComfyUIs are killed with
SIGKILL mid-job. Every job must complete exactly once, with one record, in order where order matters."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, serve_app
from scaleout_harness import Cluster, cluster, graph, http_json, stats, wait_until

if os.environ.get("ATELIER_CI") == "1":
    import procrastinate  # noqa: F401  (CI installs the scale extra: missing is a failure, not a skip)
else:
    pytest.importorskip("procrastinate", reason='the scale extra: pip install "atelier[scale]"')

from atelier.nodes.host import Atelier, Settings, wiring  # noqa: E402

HEARTBEAT_S, STALLED_AFTER_S = 0.4, 3.0  # short for the tests, long enough for a loaded 2-core CI machine


@pytest.fixture
def database(postgres_admin: str) -> str:
    from postgres import fresh_database

    return fresh_database(postgres_admin)


@pytest.fixture
def nodes(database: str, tmp_path: Path) -> Iterator[Cluster]:
    with cluster(database, tmp_path / "cluster") as made:
        yield made


@pytest.fixture
def api(database: str, tmp_path: Path) -> Iterator[Client]:
    """Atelier's routes on a real server whose records (and job queue) are in the test's PostgreSQL."""
    yield from serve_app(wiring.app(Atelier(Settings.standalone(tmp_path / "server",
                                                                {"ATELIER_DATABASE_URL": database}))))


def submit(api: Client, n: int, user: str = "alice", **extra: Any) -> list[str]:
    ids = []
    for i in range(n):
        status, body = api.post("/atelier/generations", {"operation_type": "txt2img", "prompt": f"a fox {i}",
                                                         "parameters": {"i": i}, "graph": graph(i),
                                                         "distributed": True, **extra},
                                headers={"comfy-user": user})
        assert status == 201, body
        assert body["status"] == "queued" and body["comfy_prompt_id"]
        ids.append(body["id"])
    return ids


def record(api: Client, record_id: str, user: str = "alice") -> dict[str, Any]:
    status, body = api.get(f"/atelier/generations/{record_id}", headers={"comfy-user": user})
    assert status == 200, body
    return dict(body)


def job(api: Client, record_id: str, user: str = "alice") -> dict[str, Any]:
    status, body = api.get(f"/atelier/jobs/{record_id}", headers={"comfy-user": user})
    assert status == 200, body
    return dict(body)


def all_done(api: Client, ids: list[str], timeout_s: float = 60) -> list[dict[str, Any]]:
    wait_until(lambda: all(record(api, i)["status"] in ("completed", "failed", "cancelled") for i in ids),
               timeout_s, f"{len(ids)} records to end")
    return [record(api, i) for i in ids]


def completions(*urls: str) -> dict[str, int]:
    """How often each prompt id ran to success, over these fake ComfyUIs."""
    out: dict[str, int] = {}
    for url in urls:
        for prompt_id, n in stats(url)["completed"].items():
            out[prompt_id] = out.get(prompt_id, 0) + n
    return out


def test_jobs_spread_over_the_workers_run_once_and_land_in_shared_storage(nodes: Cluster, api: Client) -> None:
    a, b = nodes.comfy(0.4), nodes.comfy(0.4)
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    nodes.worker(b.url, "wb", HEARTBEAT_S, STALLED_AFTER_S)
    ids = submit(api, 8)
    records = all_done(api, ids)
    assert [r["status"] for r in records] == ["completed"] * 8
    done = completions(a.url, b.url)
    assert sorted(done) == sorted(r["comfy_prompt_id"] for r in records) and set(done.values()) == {1}
    assert all(n == 1 for url in (a.url, b.url) for n in stats(url)["submitted"].values())
    workers = {job(api, i)["worker"] for i in ids}
    assert workers == {"wa", "wb"}  # both took work
    for r in records:
        assert set(r["outputs"]) == {"9", "atelier"}  # ComfyUI's images by node, and what Atelier adds
        (file,) = r["outputs"]["atelier"]["files"]
        assert file.startswith(f"alice/{r['id']}/") and (nodes.shared / file).read_bytes()[:4] == b"\x89PNG"
        assert r["started_at"] is not None and r["finished_at"] >= r["started_at"]  # ComfyUI's own times
        assert "H100" in r["outputs"]["atelier"]["device"]  # what its ComfyUI runs on: the cost's device kind
        (timing,) = r["outputs"]["atelier"]["timings"]  # per node, from the websocket's executing events
        assert timing["node"] == "1" and timing["class_type"] == "EmptyLatentImage" and timing["seconds"] >= 0.3
    status, listing = api.get("/atelier/workers")
    assert status == 200 and listing["available"] is True
    by_name = {w["name"]: w for w in listing["workers"]}
    assert by_name["wa"]["jobs_done"] + by_name["wb"]["jobs_done"] == 8
    assert {w["state"] for w in by_name.values()} == {"ready"} and by_name["wa"]["comfy_url"] == a.url
    assert listing["queue"].get("succeeded") == 8
    # every job is its user's: bob sees none of alice's
    assert api.get(f"/atelier/jobs/{ids[0]}", headers={"comfy-user": "bob"})[0] == 404
    assert api.get("/atelier/jobs", headers={"comfy-user": "bob"})[1]["jobs"] == []
    assert len(api.get("/atelier/jobs", headers={"comfy-user": "alice"})[1]["jobs"]) == 8


def test_a_second_worker_for_the_same_comfyui_is_refused(nodes: Cluster) -> None:
    a = nodes.comfy(0.2)
    nodes.worker(a.url, "first", HEARTBEAT_S, STALLED_AFTER_S)
    second = nodes.worker(a.url, "second", HEARTBEAT_S, STALLED_AFTER_S, wait=False)
    assert second.process.wait(60) == 2
    assert "another worker already serves the ComfyUI at " + a.url in second.output()


def test_a_worker_killed_mid_job_hands_it_over_and_it_completes_once(nodes: Cluster, api: Client) -> None:
    """Three rounds: SIGKILL the worker running the job while its ComfyUI runs on. Another worker takes the job
    within the stall limit, adopts the prompt where it runs, and the job completes once, with one record."""
    a, b = nodes.comfy(2.0), nodes.comfy(2.0)
    workers = {"wa": nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S, concurrency=1),
               "wb": nodes.worker(b.url, "wb", HEARTBEAT_S, STALLED_AFTER_S, concurrency=1)}
    urls = {"wa": a.url, "wb": b.url}
    for round_ in range(3):
        (one,) = submit(api, 1, parameters={"round": round_})
        holder = wait_until(lambda i=one: job(api, i)["worker"] if job(api, i)["state"] == "running" else None,
                            30, "a worker to take the job")
        other = "wb" if holder == "wa" else "wa"
        wait_until(lambda h=holder: stats(urls[h])["running"] is not None, 10, "the prompt to run")
        workers[holder].kill()
        killed = time.monotonic()
        wait_until(lambda i=one, o=other: job(api, i)["worker"] == o, 30, "the other worker to take the job")
        requeued_after = time.monotonic() - killed
        (done,) = all_done(api, [one])
        assert done["status"] == "completed", done
        assert requeued_after < STALLED_AFTER_S + 4 * HEARTBEAT_S + 2.0, requeued_after
        assert completions(a.url, b.url)[done["comfy_prompt_id"]] == 1  # adopted, not run again
        assert job(api, one)["attempts"] == 2
        workers[holder] = nodes.worker(urls[holder], holder, HEARTBEAT_S, STALLED_AFTER_S, concurrency=1)
    status, page = api.get("/atelier/generations?limit=50", headers={"comfy-user": "alice"})
    assert len(page["items"]) == 3  # one record per job, never a duplicate


def test_a_comfyui_killed_mid_job_runs_the_job_once_more_elsewhere(nodes: Cluster, api: Client) -> None:
    a, b = nodes.comfy(1.5), nodes.comfy(1.5)
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S, concurrency=1)
    nodes.worker(b.url, "wb", HEARTBEAT_S, STALLED_AFTER_S, concurrency=1)
    ids = submit(api, 2)
    wait_until(lambda: stats(a.url)["running"] and stats(b.url)["running"], 20, "both ComfyUIs running a job")
    on_a = stats(a.url)["running"]
    a.kill()
    records = all_done(api, ids, 60)
    assert [r["status"] for r in records] == ["completed", "completed"]
    moved = next(r for r in records if r["comfy_prompt_id"] == on_a)
    assert job(api, moved["id"])["worker"] == "wb" and job(api, moved["id"])["attempts"] >= 2
    assert stats(b.url)["completed"][on_a] == 1
    lost = wait_until(lambda: next((w for w in api.get("/atelier/workers")[1]["workers"]
                                    if w["name"] == "wa" and w["state"] == "comfyui-unreachable"), None),
                      20, "worker wa to say its ComfyUI is gone")
    assert "does not answer" in lost["message"] and "not taking jobs" in lost["message"]


def test_cancel_reaches_the_worker_and_interrupts_the_prompt_in_its_comfyui(nodes: Cluster, api: Client) -> None:
    a = nodes.comfy(0.5, mode="hang")
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    waiting_first, running = None, None
    ids = submit(api, 3)  # with concurrency 2: one runs, one waits inside ComfyUI, one waits in the queue
    wait_until(lambda: stats(a.url)["running"], 20, "a prompt to run")
    running = next(i for i in ids if job(api, i)["state"] == "running" and record(api, i)["comfy_prompt_id"] ==
                   stats(a.url)["running"])
    waiting_first = ids[-1]
    status, body = api.post(f"/atelier/generations/{running}/cancel", headers={"comfy-user": "alice"})
    assert status == 200 and body["status"] == "cancelled"
    wait_until(lambda: any(t[2] == "interrupted" for times in stats(a.url)["times"].values() for t in times), 20,
               "the prompt to be interrupted in ComfyUI")
    status, body = api.post(f"/atelier/jobs/{waiting_first}/cancel", headers={"comfy-user": "alice"})
    assert status == 200 and body["status"] == "cancelled"
    assert job(api, running)["state"] == "cancelled" and job(api, waiting_first)["state"] == "cancelled"
    assert api.post(f"/atelier/jobs/{running}/cancel", headers={"comfy-user": "bob"})[0] == 404
    http_json(a.url + "/fake/mode", {"mode": "ok"})
    rest = [i for i in ids if i not in (running, waiting_first)]
    assert [r["status"] for r in all_done(api, rest)] == ["completed"]
    assert record(api, running)["status"] == "cancelled"  # a late word from the worker changes nothing


def test_a_refused_graph_fails_once_with_comfyuis_reason(nodes: Cluster, api: Client) -> None:
    a = nodes.comfy(0.2, mode="refuse")
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    (one,) = submit(api, 1)
    (done,) = all_done(api, [one])
    assert done["status"] == "failed" and "ComfyUI refused the graph" in done["error"]
    assert job(api, one)["attempts"] == 1 and job(api, one)["state"] == "failed"


def test_jobs_sharing_a_lock_run_in_order_beside_independent_ones(nodes: Cluster, database: str,
                                                                  tmp_path: Path) -> None:
    """A storyboard's frames (one lock) run one after another in their order; other work runs beside them."""
    a, b = nodes.comfy(0.4), nodes.comfy(0.4)
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    nodes.worker(b.url, "wb", HEARTBEAT_S, STALLED_AFTER_S)
    client = Atelier(Settings.standalone(tmp_path / "client", {"ATELIER_DATABASE_URL": database}))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def call(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    queue = client.distributed
    frames = call(queue.submit_many("alice", [{"operation_type": "storyboard_frame", "prompt": f"frame {i}",
                                               "parameters": {"frame": i}, "graph": graph(i)} for i in range(4)],
                                    group_id="sb1", lock="storyboard:sb1"))
    others = call(queue.submit_many("alice", [{"operation_type": "txt2img", "prompt": f"other {i}",
                                               "parameters": {"other": i}, "graph": graph(10 + i)}
                                              for i in range(4)]))
    store = client.records.store
    wait_until(lambda: all(store.get(r.id).status == "completed" for r in frames + others), 60, "all jobs")
    times = {**stats(a.url)["times"], **stats(b.url)["times"]}
    spans = [times[r.comfy_prompt_id][0][:2] for r in frames]
    for earlier, later in zip(spans, spans[1:], strict=False):
        assert later[0] >= earlier[1] - 0.01, spans  # each frame starts once the one before has finished
    other_spans = [times[r.comfy_prompt_id][0][:2] for r in others]
    assert any(o[0] < spans[-1][1] and o[1] > spans[0][0] for o in other_spans)  # ran beside the frames
    assert [j["position"] for j in sorted(client.distributed.store.jobs("alice", group_id="sb1"),
                                          key=lambda j: j["started_at"])] == [0, 1, 2, 3]
    call(client.aclose())
    loop.call_soon_threadsafe(loop.stop)


def test_a_distributed_batch_reports_each_items_worker_and_times(nodes: Cluster, api: Client) -> None:
    a, b = nodes.comfy(0.3), nodes.comfy(0.3)
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    nodes.worker(b.url, "wb", HEARTBEAT_S, STALLED_AFTER_S)
    status, report = api.post("/atelier/batches", {
        "checkpoint": "m.safetensors", "distributed": True,
        "items": [{"prompt": f"a lighthouse {i}", "tier": "draft" if i % 2 else "high", "count": 2}
                  for i in range(6)]}, headers={"comfy-user": "alice"})
    assert status == 201, report
    batch_id = report["id"]
    final = wait_until(lambda: (r := api.get(f"/atelier/batches/{batch_id}", headers={"comfy-user": "alice"})[1])
                       ["progress"]["done"] == 6 and r, 60, "the batch to end")
    assert final["status"] == "completed", final
    ran_on = {"wa": set(stats(a.url)["completed"]), "wb": set(stats(b.url)["completed"])}
    for item in final["items"]:  # the worker each item names is the one whose ComfyUI ran it
        assert item["prompt_id"] in ran_on[item["job"]["worker"]], (item, ran_on)
        assert item["job"]["state"] == "completed" and item["job"]["started_at"] <= item["job"]["finished_at"], item
    assert set(final["summary"]) == {"draft", "high"}
    jobs = api.get(f"/atelier/jobs?group={batch_id}", headers={"comfy-user": "alice"})[1]["jobs"]
    assert sorted(j["position"] for j in jobs) == list(range(6))


def test_without_postgresql_the_job_routes_say_why(server: Client) -> None:
    status, body = server.get("/atelier/workers")
    assert status == 200 and body["available"] is False and "PostgreSQL" in body["why"]
    status, body = server.post("/atelier/generations", {"operation_type": "txt2img", "prompt": "a fox",
                                                        "graph": graph(), "distributed": True})
    assert status == 400 and body["field"] == "distributed" and "PostgreSQL" in body["error"]
    assert server.get("/atelier/jobs/0123456789abcdef0123456789abcdef")[0] == 404


def test_a_prompt_that_never_finishes_fails_at_its_deadline_and_is_stopped(nodes: Cluster, api: Client) -> None:
    a = nodes.comfy(0.2, mode="hang")
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    (one,) = submit(api, 1, deadline_s=2)
    (done,) = all_done(api, [one], 30)
    assert done["status"] == "failed" and "did not finish within 2 s" in done["error"]
    wait_until(lambda: any(t[2] == "interrupted" for times in stats(a.url)["times"].values() for t in times), 10,
               "the prompt to be interrupted")


STORYBOARD = "a red fox in the snow | the fox asleep\nthe fox [fail] runs | the fox at the river"


def test_a_storyboards_frames_are_jobs_chained_in_order_across_workers(nodes: Cluster, api: Client) -> None:
    """Four frames on two workers: each chained frame starts from the kept image of the frame before it (uploaded
    to whichever ComfyUI runs it); a failed frame is left out of the next one, which starts from text."""
    a, b = nodes.comfy(0.3), nodes.comfy(0.3)
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    nodes.worker(b.url, "wb", HEARTBEAT_S, STALLED_AFTER_S)
    status, run = api.post("/atelier/pipelines/storyboard_generation/run", {
        "distributed": True, "checkpoint": "m.safetensors", "tier": "draft", "storyboard": STORYBOARD,
        "variations": 2, "width": 64, "height": 64}, headers={"comfy-user": "alice"})
    assert status == 200 and run["distributed"] is True and run["frames"] == 4, run
    frames = all_done(api, run["jobs"])
    assert [f["status"] for f in frames] == ["completed", "completed", "failed", "completed"]
    assert [f["parameters"]["role"] for f in frames] == ["start", "end", "start", "end"]
    graphs = {**stats(a.url)["graphs"], **stats(b.url)["graphs"]}
    uploads = {**stats(a.url).get("uploads", {}), **stats(b.url).get("uploads", {})}
    times = {**stats(a.url)["times"], **stats(b.url)["times"]}
    spans = [times[f["comfy_prompt_id"]][0][:2] for f in frames]
    assert all(later[0] >= earlier[1] - 0.01 for earlier, later in zip(spans, spans[1:], strict=False)), spans
    assert "chain.previous" not in graphs[frames[0]["comfy_prompt_id"]]  # the first frame starts from text
    chained = graphs[frames[1]["comfy_prompt_id"]]["chain.previous"]["inputs"]["image"]
    first_file = nodes.shared / frames[0]["outputs"]["atelier"]["files"][0]
    assert chained == f"atelier_chain_{frames[1]['id']}.png" and uploads[chained] == first_file.stat().st_size
    after_failure = graphs[frames[3]["comfy_prompt_id"]]
    assert "chain.previous" not in after_failure and after_failure["latent"]["class_type"] == "EmptyLatentImage"
    seeds = [graphs[f["comfy_prompt_id"]]["sample"]["inputs"]["seed"] for f in frames if f["comfy_prompt_id"] in graphs]
    assert len(set(seeds)) == len(seeds)  # every frame its own seed
    parent = wait_until(lambda: (r := record(api, run["record_id"]))["status"] != "running" and r, 20,
                        "the storyboard's run record to end")
    assert parent["status"] == "completed" and parent["error"] == "1 of 4 jobs did not complete"
    assert parent["outputs"]["atelier"]["frames"] == run["jobs"]


def test_a_distributed_storyboards_frame_graphs_are_valid_comfyui_graphs(object_info: dict[str, Any]) -> None:
    from atelier.nodes.core.quality.service import QualityService
    from atelier.nodes.core.storyboard.distributed import frame_configs
    from atelier.nodes.core.storyboard.pipelines import PipelineRun, plan_run
    from test_workflows import check_api_graph

    quality = QualityService(Path("/nonexistent-users"), Path("/nonexistent-data"))
    run = PipelineRun.parse({"checkpoint": "sd15.safetensors", "tier": "high", "storyboard": STORYBOARD,
                             "reference": "ref.png", "seed": 7})
    plan = plan_run("storyboard_generation", run, quality.tier("default", "high"), quality.tables,
                    quality.estimator)
    configs = frame_configs("storyboard_generation", run, plan, "0" * 32)
    assert [c["parameters"]["sources"] for c in configs] == [
        ["reference"], ["reference", "own_start"], ["reference", "previous_end"], ["reference", "own_start"]]
    for config in configs:
        check_api_graph(config["graph"], object_info, f"frame {config['parameters']['frame']}")
        if "chain" in config:
            check_api_graph(config["chain"]["fallback"], object_info, "fallback")
            assert config["chain"]["fallback_sources"] == ["reference"]  # the reference alone
            assert config["graph"]["chain.blend"]["inputs"]["reference"] == ["reference", 0]


def test_the_command_line_runs_a_storyboard_on_the_workers_and_lists_them(nodes: Cluster, tmp_path: Path) -> None:
    import subprocess
    import sys

    a, b = nodes.comfy(0.2), nodes.comfy(0.2)
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    nodes.worker(b.url, "wb", HEARTBEAT_S, STALLED_AFTER_S)
    board = tmp_path / "board.txt"
    board.write_text("a lighthouse at dusk | the beam over the sea\nstorm clouds | waves below\n")
    env = {**os.environ, "ATELIER_HOME": str(tmp_path / "cli"), "ATELIER_SHARED_OUTPUT": str(nodes.shared)}

    def cli(*argv: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "atelier", *argv, "--database", nodes.database_url, "--json"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    run = cli("run", "storyboard_generation", "--distributed", "--storyboard", str(board), "--checkpoint",
              "m.safetensors", "--tier", "draft", "--variations", "2")
    assert [j["state"] for j in run["jobs"]] == ["completed"] * 4 and len(run["files"]) == 4
    assert all((nodes.shared / f).is_file() for f in run["files"])
    listed = cli("workers")
    assert sorted(w["name"] for w in listed["workers"]) == ["wa", "wb"]
    assert sum(w["jobs_done"] for w in listed["workers"]) == 4 and listed["queue"]["succeeded"] == 4


def test_the_panel_lists_the_workers_and_cancels_a_job(nodes: Cluster, api: Client, browser: Any) -> None:
    from conftest import SCREENSHOTS

    a = nodes.comfy(0.5, mode="hang")
    nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    ids = submit(api, 2, user="default")  # the standalone page's user
    wait_until(lambda: stats(a.url)["running"], 20, "a prompt to run")
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{api.base}/atelier/ui/?view=workers")
    page.wait_for_selector("#atelier-panel-workers")
    page.get_by_role("table", name="Workers").wait_for()
    row = page.locator("tr[data-worker='wa']")
    assert row.get_attribute("data-state") == "ready" and a.url in row.inner_text()
    assert "1 of 1 worker(s) taking jobs." in page.locator("#atelier-panel-workers").inner_text()
    jobs = page.get_by_role("table", name="Your jobs")
    assert jobs.locator("tr[data-state='running']").count() >= 1
    page.get_by_role("button", name=f"Cancel job {ids[0]}").click()
    page.get_by_text(f"Job {ids[0][:12]} cancelled.").wait_for()
    assert record(api, ids[0], user="default")["status"] == "cancelled"
    assert page.locator(f"tr[data-job='{ids[0]}']").get_attribute("data-state") == "cancelled"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "test_the_panel_lists_the_workers_and_cancels_a_job.png"), full_page=True)
    context.close()
    assert not problems, problems


def test_a_comfyuis_credentials_never_show(nodes: Cluster, api: Client) -> None:
    a = nodes.comfy(0.2)
    secret_url = a.url.replace("http://", "http://atelier:hunter2secret@")
    worker = nodes.worker(secret_url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    (one,) = submit(api, 1)
    (done,) = all_done(api, [one])
    assert done["status"] == "completed" and done["outputs"]["atelier"]["comfy_url"] == a.url
    a.kill()
    wait_until(lambda: api.get("/atelier/workers")[1]["workers"][0]["state"] == "comfyui-unreachable", 20,
               "the worker to notice")
    seen = [json.dumps(api.get("/atelier/workers")[1]), json.dumps(done), json.dumps(job(api, one)), worker.output()]
    assert not any("hunter2secret" in text for text in seen)


def test_a_storyboard_keeps_its_order_and_completes_once_when_workers_are_killed(nodes: Cluster,
                                                                                  api: Client) -> None:
    """Two storyboards of four frames on three workers; the worker running a frame is killed twice, mid-frame.
    Every frame completes exactly once, each storyboard's frames in order, chained to the frame before."""
    comfies = [nodes.comfy(1.0) for _ in range(3)]
    names = ["w0", "w1", "w2"]
    workers = {n: nodes.worker(c.url, n, HEARTBEAT_S, STALLED_AFTER_S, concurrency=1) for n, c in zip(names, comfies,
                                                                                                    strict=True)}
    runs = []
    for board in ("a | b\nc | d", "e | f\ng | h"):
        status, run = api.post("/atelier/pipelines/storyboard_generation/run", {
            "distributed": True, "checkpoint": "m.safetensors", "tier": "draft", "storyboard": board,
            "variations": 2}, headers={"comfy-user": "alice"})
        assert status == 200, run
        runs.append(run)
    for victim_frame in (1, 2):
        target = runs[0]["jobs"][victim_frame]
        holder = wait_until(lambda t=target: job(api, t)["worker"] if job(api, t)["state"] == "running" else None,
                            60, f"frame {victim_frame} to run")
        wait_until(lambda h=holder: stats(comfies[names.index(h)].url)["running"], 10, "its prompt to run")
        workers[holder].kill()
        workers[holder] = nodes.worker(comfies[names.index(holder)].url, holder, HEARTBEAT_S, STALLED_AFTER_S,
                                       concurrency=1)
    every = [i for run in runs for i in run["jobs"]]
    records = all_done(api, every, 120)
    assert [r["status"] for r in records] == ["completed"] * 8
    done = completions(*(c.url for c in comfies))
    assert all(done[r["comfy_prompt_id"]] == 1 for r in records)  # each frame ran to success exactly once
    times = {k: v for c in comfies for k, v in stats(c.url)["times"].items()}
    for run in runs:
        frames = [record(api, i) for i in run["jobs"]]
        ends = [max(t[1] for t in times[f["comfy_prompt_id"]] if t[2] == "success") for f in frames]
        starts = [min(t[0] for t in times[f["comfy_prompt_id"]]) for f in frames]
        assert all(starts[k + 1] >= ends[k] - 0.01 for k in range(3)), (starts, ends)
        graphs = {k: v for c in comfies for k, v in stats(c.url)["graphs"].items()}
        for k in (1, 2, 3):  # chained to the frame before, however many workers died on the way
            assert graphs[frames[k]["comfy_prompt_id"]]["chain.previous"]["inputs"]["image"] == \
                f"atelier_chain_{frames[k]['id']}.png"
    status, page = api.get("/atelier/generations?limit=100", headers={"comfy-user": "alice"})
    assert len(page["items"]) == 10  # 2 storyboards + 8 frames: no duplicate


def test_a_worker_takes_jobs_again_once_its_comfyui_is_back(nodes: Cluster, api: Client) -> None:
    a = nodes.comfy(0.2)
    port = int(a.url.rsplit(":", 1)[1])
    worker = nodes.worker(a.url, "wa", HEARTBEAT_S, STALLED_AFTER_S)
    a.kill()
    wait_until(lambda: api.get("/atelier/workers")[1]["workers"][0]["state"] == "comfyui-unreachable", 20,
               "the worker to stop taking jobs")
    (waiting,) = submit(api, 1)
    time.sleep(1.0)
    assert job(api, waiting)["state"] == "queued"  # not taken while its ComfyUI is down
    back = nodes.comfy(0.2, port=port)
    (done,) = all_done(api, [waiting], 30)
    assert done["status"] == "completed" and stats(back.url)["completed"][done["comfy_prompt_id"]] == 1
    assert api.get("/atelier/workers")[1]["workers"][0]["state"] == "ready"
    assert worker.output().count("taking jobs") >= 2
