"""Generation records on real SQLite files: concurrency, crashes, migrations, hashes, prompts, pages."""

from __future__ import annotations

import base64
import dataclasses
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from atelier.nodes.core.base.errors import Conflict, InvalidInput, NotFound  # noqa: E402
from atelier.nodes.core.records.hashing import repro_hash  # noqa: E402
from atelier.nodes.core.records.store import RecordStore, make_engine, migrate, sqlite_url  # noqa: E402

PARAMS = {"steps": 20, "cfg": 7.0, "sampler_name": "euler", "seed": 123456789012345, "width": 512}


@pytest.fixture
def store(db_url: str) -> RecordStore:
    """The store on SQLite and on PostgreSQL (tests/postgres.py)."""
    store = RecordStore(db_url)
    yield store
    store.engine.dispose()


def test_hash_is_stable_where_it_must_be_and_differs_where_it_must() -> None:
    base = repro_hash(PARAMS)
    assert repro_hash(dict(reversed(list(PARAMS.items())))) == base            # key order
    assert repro_hash({**PARAMS, "cfg": 7}) == base                             # 7 == 7.0
    assert repro_hash({**PARAMS, "cfg": 0.1 + 0.2}) == repro_hash({**PARAMS, "cfg": 0.3})  # float noise
    assert repro_hash({**PARAMS, "filename_prefix": "x", "client_id": "y", "_meta": {"title": "t"}}) == base
    assert repro_hash({**PARAMS, "seed": 123456789012346}) != base              # every seed digit counts
    assert repro_hash({**PARAMS, "steps": 21}) != base
    assert repro_hash({**PARAMS, "sampler_name": "euler_ancestral"}) != base
    assert repro_hash({**PARAMS, "cfg": 7.0000001}) != repro_hash({**PARAMS, "cfg": 7.1})


def test_identical_earlier_runs_are_found(store: RecordStore) -> None:
    first = store.create("image", "u", PARAMS, prompt="a fox")
    second = store.create("image", "u", {**dict(reversed(list(PARAMS.items()))), "filename_prefix": "z"},
                          prompt="a fox")
    other = store.create("image", "u", PARAMS, prompt="a wolf")
    assert first.repro_hash == second.repro_hash != other.repro_hash
    assert store.identical(second.repro_hash, exclude=second.id) == [first.id]


def test_prompt_versions_variables_and_latest(store: RecordStore) -> None:
    store.add_prompt_version("u", "hero", "a portrait of {{ name }}")
    v2 = store.add_prompt_version("u", "hero", "a portrait of {{name}} in {{place}}")
    assert v2["version"] == 2 and v2["variables"] == ["name", "place"]
    latest = store.create("image", "u", PARAMS, prompt_family="hero", variables={"name": "Mira", "place": "Rome"})
    assert latest.prompt_text == "a portrait of Mira in Rome" and latest.prompt_source == "versioned"
    assert latest.prompt_version_id == v2["id"]
    pinned = store.create("image", "u", PARAMS, prompt_family="hero", prompt_version=1, variables={"name": "Ada"})
    assert pinned.prompt_text == "a portrait of Ada"
    with pytest.raises(InvalidInput) as missing:
        store.create("image", "u", PARAMS, prompt_family="hero", variables={"name": "Mira"})
    assert missing.value.field == "variables" and missing.value.value == "place" and "{{place}}" in missing.value.message
    with pytest.raises(NotFound):
        store.create("image", "u", PARAMS, prompt_family="villain")
    assert store.prompt_families("u") == [{"family": "hero", "latest_version": 2}]
    assert store.prompt_families("someone else") == []
    assert store.create("image", "u", PARAMS, prompt="inline {{x}}", variables={"x": 1}).prompt_source == "inline"


def test_status_moves_forward_only_and_feedback_is_validated(store: RecordStore) -> None:
    record = store.create("image", "u", PARAMS, prompt="a fox")
    store.set_status(record.id, "queued", comfy_prompt_id="p-1")
    running = store.set_status(record.id, "running")
    done = store.set_status(record.id, "completed", outputs={"images": ["a.png"]}, scores={"overall": [71.5]})
    assert running.started_at and done.finished_at >= done.started_at and done.outputs["images"]
    with pytest.raises(Conflict) as backwards:
        store.set_status(record.id, "running")
    assert backwards.value.field == "status"
    for bad in (0, 6, 2.5, "5", True):
        with pytest.raises(InvalidInput):
            store.feedback(record.id, bad)
    assert store.feedback(record.id, 4, "nice light").feedback[0].rating == 4
    with pytest.raises(NotFound):
        store.feedback("nope", 3)


def test_filters_and_cursor_pages_neither_skip_nor_repeat(store: RecordStore) -> None:
    ids = {store.create("image" if i % 2 else "video", "u", {**PARAMS, "seed": i}, workspace=f"w{i % 3}",
                        prompt="p").id for i in range(23)}
    seen: list[str] = []
    cursor = None
    while True:
        page = store.page(limit=5, cursor=cursor)
        seen += [r.id for r in page.items]
        store.create("image", "u", PARAMS, prompt="written while paging")  # newer rows do not disturb pages
        cursor = page.next_cursor
        if cursor is None:
            break
    assert set(seen) >= ids and len(seen) == len(set(seen))
    videos = store.page(operation_type="video", workspace="w0", limit=100).items
    assert videos and all(r.operation_type == "video" and r.workspace == "w0" for r in videos)
    huge = base64.urlsafe_b64encode(json.dumps([10 ** 40, "x"]).encode()).decode()  # found by the fuzz corpus
    for bad, field in [({"status": "done"}, "status"), ({"limit": 0}, "limit"), ({"cursor": "garbage!"}, "cursor"),
                       ({"cursor": huge}, "cursor")]:
        with pytest.raises(InvalidInput) as exc:
            store.page(**bad)
        assert exc.value.field == field


def test_concurrent_writers_in_threads_lose_nothing(store: RecordStore) -> None:
    errors: list[Exception] = []

    def write(worker: int) -> None:
        try:
            for i in range(25):
                record = store.create("image", f"t{worker}", {**PARAMS, "seed": worker * 100 + i}, prompt="p")
                store.set_status(record.id, "queued")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.count() == 200
    assert len(store.page(status="queued", limit=500).items) == 200


def _write_many(url: str, worker: int, count: int) -> int:
    store = RecordStore(url)
    for i in range(count):
        store.create("image", f"p{worker}", {**PARAMS, "seed": i}, prompt="from a process")
        store.add_prompt_version("team", "shared", f"version from {worker}/{i}")
    return count


def test_concurrent_writers_in_processes_lose_nothing(db_url: str) -> None:
    url = db_url
    RecordStore(url)
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        written = pool.starmap(_write_many, [(url, w, 15) for w in range(3)])
    store = RecordStore(url)
    assert store.count() == sum(written) == 45
    assert store.prompt_families("team") == [{"family": "shared", "latest_version": 45}]  # versions unique, none lost


def test_a_process_killed_mid_write_leaves_a_consistent_database(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite"
    url = sqlite_url(db)
    RecordStore(url)
    script = (f"from atelier.nodes.core.records.store import RecordStore\nstore = RecordStore({url!r})\n"
              "i = 0\nwhile True:\n    r = store.create('image', 'k', {'seed': i}, prompt='x' * 5000)\n"
              "    store.set_status(r['id'], 'queued')\n    i += 1\n")
    child = subprocess.Popen([sys.executable, "-c", script])
    time.sleep(2.5)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = RecordStore(url)
    count = store.count()
    assert count > 0
    statuses = {r.status for r in store.page(limit=500).items}
    assert statuses <= {"pending", "queued"}  # every row whole; the last one may not have moved on
    store.create("image", "k", PARAMS, prompt="after the crash")
    assert store.count() == count + 1


def test_an_older_schema_migrates_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    engine = make_engine(sqlite_url(db))
    migrate(engine, "0001")  # the first schema: no scores, no prompt versions
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO atelier_records (id, status, operation_type, workspace, user, parameters, "
                    "prompt_text, repro_hash, created_at, outputs) VALUES ('old1', 'completed', 'image', 'default', "
                    "'u', '{}', 'an old prompt', 'h', 1.0, '{}')")
    store = RecordStore(sqlite_url(db))
    old = store.get("old1")
    assert old.prompt_text == "an old prompt" and old.prompt_source == "inline" and old.scores is None
    assert store.add_prompt_version("u", "new", "works after the upgrade")["version"] == 1
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT version_num FROM atelier_alembic_version").fetchone()[0] == "0011"  # the newest: LLM calls name their workspace


def test_prompt_families_made_before_owners_become_the_default_users(tmp_path: Path) -> None:
    db = tmp_path / "families.sqlite"
    engine = make_engine(sqlite_url(db))
    migrate(engine, "0003")  # families had no owner
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO atelier_prompt_families (name, description, created_at) "
                                   "VALUES ('hero', '', 1.0)")
        connection.exec_driver_sql("INSERT INTO atelier_prompt_versions (id, family, version, template, created_at) "
                                   "VALUES ('v1', 'hero', 1, 'an old {{x}}', 1.0)")
    store = RecordStore(sqlite_url(db))
    assert store.prompt_families("default") == [{"family": "hero", "latest_version": 1}]
    assert store.create("image", "default", PARAMS, prompt_family="hero", variables={"x": "hero"}).prompt_text == "an old hero"
    assert store.prompt_families("alice") == []


def test_generation_routes(server, record_service) -> None:
    status, version = server.post("/atelier/generations/prompts/hero", {"template": "a portrait of {{name}}"})
    assert status == 201 and version["version"] == 1
    assert server.get("/atelier/generations/prompts")[1] == {"families": [{"family": "hero", "latest_version": 1}]}
    status, checked = server.post("/atelier/generations/validate", {
        "operation_type": "image_generation", "parameters": PARAMS, "prompt_family": "hero",
        "variables": {"name": "Mira"}})
    assert status == 200 and checked["prompt"] == "a portrait of Mira" and checked["identical"] == []
    status, body = server.post("/atelier/generations/validate", {
        "operation_type": "image_generation", "prompt_family": "hero"})
    assert status == 200 and body["valid"] is False  # a rule's error, with its code and field
    assert [(e["code"], e["field"]) for e in body["errors"]] == [("missing_variable", "variables.name")]
    record = record_service.create("default", {"operation_type": "image_generation", "parameters": PARAMS,
                                               "prompt_family": "hero", "variables": {"name": "Mira"}})
    status, again = server.post("/atelier/generations/validate", {
        "operation_type": "image_generation", "parameters": PARAMS, "prompt_family": "hero",
        "variables": {"name": "Mira"}})
    assert again["identical"] == [record.id]  # an identical earlier run is found
    status, listing = server.get("/atelier/generations?operation_type=image_generation&limit=10")
    assert status == 200 and [r["id"] for r in listing["items"]] == [record.id]
    assert server.get(f"/api/atelier/generations/{record.id}")[1]["prompt_text"] == "a portrait of Mira"
    status, rated = server.post(f"/atelier/generations/{record.id}/feedback", {"rating": 5, "comment": "yes"})
    assert status == 200 and rated["feedback"][0]["rating"] == 5
    for method, path, body, code, field in [
        ("POST", f"/atelier/generations/{record.id}/feedback", {"rating": 9}, 400, "rating"),
        ("POST", "/atelier/generations/nope/feedback", {"rating": 3}, 404, "id"),
        ("GET", "/atelier/generations/nope", None, 404, "id"),
        ("GET", "/atelier/generations?status=done", None, 400, "status"),
        ("GET", "/atelier/generations?limit=many", None, 400, "limit"),
        ("POST", "/atelier/generations/validate", {"operation_type": "Bad Type!"}, 400, "operation_type"),
        ("POST", "/atelier/generations/prompts/hero", {"template": ""}, 400, "template"),
    ]:
        status, answer = server.request(method, path, body)
        assert status == code and answer["field"] == field, (path, answer)


def test_comfyui_history_completes_or_fails_open_records(store: RecordStore) -> None:
    ok = store.create("image", "u", PARAMS, prompt="a fox", status="running")
    store.set_status(ok.id, "running", comfy_prompt_id="p-ok")
    bad = store.create("image", "u", PARAMS, prompt="a wolf", status="running")
    store.set_status(bad.id, "running", comfy_prompt_id="p-bad")
    gone = store.create("image", "u", PARAMS, prompt="a bear", status="queued")
    store.set_status(gone.id, "cancelled", comfy_prompt_id="p-ok")
    success = {"status": {"status_str": "success", "messages": []},
               "outputs": {"8": {"images": [{"filename": "a_00001_.png", "type": "output"},
                                            {"filename": "b_00001_.png", "subfolder": "atelier/x", "type": "output"}]},
                           "10": {"images": [{"filename": "p_00001_.png", "subfolder": "", "type": "temp"}]},
                           "9": {"text": ["x"]}}}
    assert store.finish_from_history("p-ok", success) == [ok.id]
    # ComfyUI's own names: the subfolder kept, a preview annotated (its /view finds each of them)
    assert store.get(ok.id).status == "completed" and store.get(ok.id).outputs == {
        "8": ["a_00001_.png", "atelier/x/b_00001_.png"], "10": ["p_00001_.png [temp]"]}
    assert store.get(gone.id).status == "cancelled"  # a cancelled record stays cancelled
    failure = {"status": {"status_str": "error", "messages": [
        ["execution_error", {"exception_message": "CUDA out of memory", "node_type": "KSampler"}]]}, "outputs": {}}
    store.finish_from_history("p-bad", failure)
    assert store.get(bad.id).status == "failed" and store.get(bad.id).error == "CUDA out of memory"
    assert store.finish_from_history("p-bad", failure) == []  # nothing left open
    assert store.finish_from_history("p-running", {"status": {"status_str": None}}) == []


def test_telemetry_percentiles_per_pipeline_and_tier(store: RecordStore, server, record_service) -> None:
    import sqlalchemy

    for i in range(20):
        tier = "high" if i % 2 else "draft"
        record = store.create("shot_generation", "u", {**PARAMS, "seed": i, "quality": {"preset": tier}}, prompt="p")
        store.set_status(record.id, "running")
        store.set_status(record.id, "completed")
        with store.engine.begin() as connection:  # durations 1..20 s, set directly
            connection.execute(sqlalchemy.text("UPDATE atelier_records SET started_at = 0, finished_at = :d "
                                               "WHERE id = :i"), {"d": float(i + 1), "i": record.id})
    groups = {(g["operation_type"], g["tier"]): g for g in store.telemetry()}
    draft = groups[("shot_generation", "draft")]
    assert draft["runs"] == 10 and draft["p50_s"] == 11.0 and draft["p99_s"] == 19.0
    assert groups[("shot_generation", "high")]["p95_s"] == 20.0
    assert server.get("/atelier/generations/telemetry") == (200, {"groups": []})  # the server's own (empty) store


def test_submit_and_cancel_without_a_comfyui_queue(server) -> None:
    status, record = server.post("/atelier/generations", {"operation_type": "image_generation",
                                                          "parameters": PARAMS, "prompt": "a fox"})
    assert status == 201 and record["status"] == "pending" and record["comfy_prompt_id"] is None
    status, body = server.post("/atelier/generations", {"operation_type": "image_generation", "graph": {"1": {}}})
    assert status == 400 and body["field"] == "graph" and "no ComfyUI queue" in body["error"]
    status, body = server.post("/atelier/generations", {"operation_type": "image_generation", "graph": []})
    assert status == 400 and body["field"] == "graph"
    status, cancelled = server.post(f"/atelier/generations/{record['id']}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled" and cancelled["finished_at"]
    status, body = server.post(f"/atelier/generations/{record['id']}/cancel")
    assert status == 409 and body["field"] == "status"
    assert server.post("/atelier/generations/nope/cancel")[0] == 404


def _history(status: str, start_ms: float, end_ms: float, graph: dict | None = None) -> dict:
    end = "execution_success" if status == "success" else "execution_error"
    return {"status": {"status_str": status, "messages": [
        ["execution_start", {"prompt_id": "p", "timestamp": start_ms}],
        ["execution_cached", {"nodes": ["4"], "prompt_id": "p", "timestamp": start_ms}],
        [end, {"prompt_id": "p", "timestamp": end_ms}]]},
        "outputs": {}, "prompt": [0, "p", graph or {}, {}, []]}


def test_comfyui_events_time_the_record(store: RecordStore) -> None:
    queued = store.create("image", "u", PARAMS, prompt="a fox", status="queued")
    store.set_status(queued.id, "queued", comfy_prompt_id="p-1")
    gone = store.create("image", "u", PARAMS, prompt="a wolf", status="queued")
    store.set_status(gone.id, "cancelled", comfy_prompt_id="p-1")
    assert store.mark_running("p-1") == [queued.id]  # ComfyUI started it; the cancelled one stays so
    running = store.get(queued.id)
    assert running.status == "running" and running.started_at is not None
    assert store.mark_running("p-1") == [] and store.get(gone.id).status == "cancelled"
    store.finish_from_history("p-1", _history("success", 1_700_000_000_000, 1_700_000_004_500))
    done = store.get(queued.id)
    assert done.status == "completed"
    assert (done.started_at, done.finished_at) == (1_700_000_000.0, 1_700_000_004.5)  # ComfyUI's clock
    assert store.telemetry()[0]["p50_s"] == 4.5


def test_a_completed_record_with_a_plan_teaches_the_estimator(store: RecordStore, tmp_path: Path) -> None:
    from atelier.nodes.core.quality.estimate import CalibrationStore, Estimator
    from atelier.nodes.core.records.service import calibrate_from_record

    estimator = Estimator(calibration=CalibrationStore(tmp_path / "calibration.sqlite"), device="cpu")
    params = {"steps": 20, "cfg": 7.0, "width": 512, "height": 512, "batch_size": 1}
    graph = {"3": {"class_type": "KSampler", "inputs": {}}, "4": {"class_type": "CheckpointLoaderSimple"}}
    planned = store.create("image", "u", {"quality": {"preset": "high", "family": "sd15", "category": "image",
                                                      "params": params}}, prompt="p", status="running")
    store.set_status(planned.id, "running", comfy_prompt_id="p-2")
    plain = store.create("image", "u", PARAMS, prompt="no plan", status="running")
    store.set_status(plain.id, "running", comfy_prompt_id="p-3")
    item = _history("success", 1000, 7000, graph)
    store.finish_from_history("p-2", item)
    store.finish_from_history("p-3", item)
    assert calibrate_from_record(estimator, store.get(planned.id), item, "cpu")
    assert estimator.calibration.samples("image:sd15:u2", "cpu")[0][1] == 6.0
    assert not calibrate_from_record(estimator, store.get(planned.id), item, "cpu")  # once per prompt
    assert not calibrate_from_record(estimator, store.get(plain.id), item, "cpu")  # no plan, nothing learned
    loaded = _history("success", 1000, 7000, {**graph, "5": {"class_type": "LoraLoader"}})
    assert not calibrate_from_record(estimator, dataclasses.replace(store.get(planned.id), comfy_prompt_id="p-9"), loaded, "cpu")
    lora_ran = _history("success", 1000, 7000, {**graph, "5": {"class_type": "AtelierLoraRecommend"}})
    assert not calibrate_from_record(estimator, dataclasses.replace(store.get(planned.id), comfy_prompt_id="p-8"),
                                     lora_ran, "cpu")  # it read LoRA files from disk during the run


def test_a_smart_plan_run_saved_with_its_explanation_teaches_the_estimator(store: RecordStore, tmp_path: Path) -> None:
    from atelier.nodes.core.intelligence.node import record_parameters
    from atelier.nodes.core.quality.estimate import CalibrationStore, Estimator
    from atelier.nodes.core.records.service import calibrate_from_record
    from atelier.nodes.host import Atelier, Settings

    atelier = Atelier(Settings.standalone(tmp_path / "home", environ={}))
    decision = atelier.intelligence.decide("u", {"prompt": "a lighthouse", "family": "sd15",
                                                 "checkpoint": "tiny.safetensors", "constraints": {"priority": "speed"}})
    record = store.create("image_generation", "u", record_parameters(decision.explanation, ["a.png"]),
                          prompt="a lighthouse", status="running")
    assert record.parameters["quality"] == {"preset": decision.plan.tier, "family": "sd15", "category": "image",
                                            "params": decision.plan.params}
    assert record.parameters["checkpoint"] == "tiny.safetensors"  # the tier value chart groups by it
    store.set_status(record.id, "running", comfy_prompt_id="p-4")
    graph = {"3": {"class_type": "AtelierQualitySampler", "inputs": {}}}
    item = _history("success", 1000, 3500, graph)
    store.finish_from_history("p-4", item)
    estimator = Estimator(calibration=CalibrationStore(tmp_path / "calibration.sqlite"), device="cpu")
    assert calibrate_from_record(estimator, store.get(record.id), item, "cpu")
    assert estimator.calibration.samples("image:sd15:u2", "cpu")[0][1] == 2.5
