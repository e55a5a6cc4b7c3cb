"""Faults get clear answers: what is not a regular file is skipped and named, storage failures name the cause
(a path in the user's data, the errno) without a server path, an interrupted write's temporaries are cleaned,
files get the umask's mode, and a data folder that cannot be written leaves the server running."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from conftest import Client

ALICE = {"comfy-user": "alice"}


def test_a_fifo_a_link_loop_and_a_dangling_link_are_skipped_and_named(server: Client, settings) -> None:
    assert server.post("/atelier/presets", {"id": "good", "extends": "high"}, headers=ALICE)[0] == 201
    folder = settings.users_dir / "alice" / "atelier" / "presets"
    os.mkfifo(folder / "fifo.yaml")  # opening it would block the server forever
    (folder / "loop.yaml").symlink_to(folder / "loop.yaml")
    (folder / "gone.yaml").symlink_to(folder / "nowhere.yaml")
    started = time.monotonic()
    status, body = server.get("/atelier/presets", headers=ALICE)
    assert status == 200 and time.monotonic() - started < 5
    assert {p["file"] for p in body["problems"]} == {"fifo.yaml", "loop.yaml", "gone.yaml"}
    assert all("not a regular file" in p["error"] for p in body["problems"])
    assert "good" in [p["id"] for p in body["presets"]]
    assert server.get("/atelier/presets/fifo", headers=ALICE)[0] == 404


def test_storage_failures_name_the_cause_without_a_server_path(server: Client, settings) -> None:
    user_folder = settings.users_dir / "bob"
    user_folder.parent.mkdir(parents=True, exist_ok=True)
    user_folder.write_text("a file where bob's folder should be")  # as a read-only or full disk would fail
    status, body = server.post("/atelier/presets", {"id": "mine", "extends": "high"}, headers={"comfy-user": "bob"})
    assert status == 503 and body["field"] == "storage" and body["value"].startswith("presets/bob/")
    assert "(ENOTDIR)" in body["error"] or "(EEXIST)" in body["error"]
    assert str(settings.users_dir) not in json.dumps(body)


def test_a_data_folder_that_cannot_be_written_leaves_the_server_running(tmp_path: Path) -> None:
    from atelier.nodes.host import Atelier, Settings, wiring
    from conftest import serve_app

    home = tmp_path / "home"
    home.mkdir()
    (home / "data").write_text("not a folder")  # records.sqlite and calibration.sqlite cannot be made
    for client in serve_app(wiring.app(Atelier(Settings.standalone(home, environ={})))):
        status, body = client.get("/atelier/generations")
        assert status == 503 and body["value"] == "records.sqlite" and str(home) not in json.dumps(body)
        assert client.get("/atelier/presets")[0] == 200  # estimates learn in memory; the rest works
        assert client.get("/atelier/lists")[0] == 200


def test_stale_temporaries_are_cleaned_and_files_get_the_umasks_mode(server: Client, settings) -> None:
    folder = settings.users_dir / "alice" / "atelier" / "presets"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".mine.yaml.x1.tmp", folder / ".mine.yaml.x2.tmp"
    stale.write_text("{")
    fresh.write_text("{")  # a write in progress right now
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert server.post("/atelier/presets", {"id": "mine", "extends": "high"}, headers=ALICE)[0] == 201
    assert not stale.exists() and fresh.exists()
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((folder / "mine.yaml").stat().st_mode) == 0o666 & ~umask  # 0644 with the usual 022
