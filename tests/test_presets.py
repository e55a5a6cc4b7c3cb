"""Custom presets: inheritance, merging, validation, storage and concurrency."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from atelier.nodes.core.base.errors import Conflict, InvalidInput, NotFound, ReadOnly
from atelier.nodes.core.quality.service import QualityService


def test_inheritance_any_depth_merges_per_function_type(service: QualityService) -> None:
    lib = service.library
    lib.create("ana", {"id": "base-look", "extends": "high", "image": {"steps": 40, "hires_fix": {"scale": 1.75}},
                       "text": {"temperature": 0.4}})
    lib.create("ana", {"id": "mid", "extends": "base-look", "image": {"cfg": 5.5}, "video": {"fps": 30}})
    leaf = lib.create("ana", {"id": "leaf", "extends": "mid", "level": 4, "image": {"hires_fix": {"steps": 25}}})
    assert leaf.lineage == ("leaf", "mid", "base-look", "high")
    assert leaf.level == 4
    assert (leaf.image.steps, leaf.image.cfg) == (40, 5.5)
    # nested hires_fix merges key by key through the chain
    assert (leaf.image.hires_fix.scale, leaf.image.hires_fix.steps, leaf.image.hires_fix.denoise) == (1.75, 25, 0.45)
    assert leaf.video.fps == 30 and leaf.video.frames == 72  # the rest of video from high
    assert leaf.text.temperature == 0.4 and leaf.audio.sample_rate == 44100
    assert "image.hires_fix.scale" in leaf.overridden
    # a change to a parent shows in its children
    lib.update("ana", "base-look", {"extends": "high", "image": {"steps": 44}})
    assert lib.get("ana", "leaf").image.steps == 44
    assert lib.get("ana", "leaf").image.hires_fix.scale == 1.5  # override removed from the parent


def test_cycles_and_unknown_parents_are_refused(service: QualityService) -> None:
    lib = service.library
    lib.create("u", {"id": "a", "extends": "standard"})
    lib.create("u", {"id": "b", "extends": "a"})
    with pytest.raises(InvalidInput) as cycle:
        lib.update("u", "a", {"extends": "b"})
    assert cycle.value.field == "extends" and "a -> b -> a" in cycle.value.message
    with pytest.raises(InvalidInput) as unknown:
        lib.create("u", {"id": "c", "extends": "nowhere"})
    assert unknown.value.field == "extends" and unknown.value.value == "nowhere"


def test_validation_names_the_field_and_range(service: QualityService) -> None:
    lib = service.library
    cases = [
        ({"id": "Bad Name"}, "id"),
        ({"id": "ok", "image": {"steps": 0}}, "image.steps"),
        ({"id": "ok", "image": {"cfg": 99}}, "image.cfg"),
        ({"id": "ok", "image": {"sampler": "warp_drive"}}, "image.sampler"),
        ({"id": "ok", "image": {"colour": "red"}}, "image.colour"),
        ({"id": "ok", "audio": {"sample_rate": 12345}}, "audio.sample_rate"),
        ({"id": "ok", "level": 7}, "level"),
        ({"id": "ok", "mood": "happy"}, "mood"),
    ]
    for body, field in cases:
        with pytest.raises(InvalidInput) as exc:
            lib.create("u", body)
        assert exc.value.field == field, (body, exc.value.message)
    with pytest.raises(InvalidInput) as sampler:
        lib.create("u", {"id": "ok", "image": {"sampler": "warp_drive"}})
    assert "dpmpp_2m" in sampler.value.message  # says what is accepted
    assert lib.list_all("u")[0][-1].id == "ultra"  # nothing was written


def test_builtins_are_read_only_and_ids_unique(service: QualityService) -> None:
    lib = service.library
    with pytest.raises(ReadOnly):
        lib.update("u", "high", {"image": {"steps": 5}})
    with pytest.raises(ReadOnly):
        lib.delete("u", "draft")
    with pytest.raises(Conflict):
        lib.create("u", {"id": "low"})  # an alias of draft
    lib.create("u", {"id": "mine"})
    with pytest.raises(Conflict):
        lib.create("u", {"id": "mine"})
    with pytest.raises(NotFound):
        lib.update("u", "ghost", {"id": "ghost"})
    with pytest.raises(NotFound):
        lib.get("u", "ghost")


def test_presets_are_per_user(service: QualityService) -> None:
    service.library.create("alice", {"id": "moody", "extends": "high"})
    assert "moody" in [p.id for p in service.library.list_all("alice")[0]]
    assert "moody" not in [p.id for p in service.library.list_all("bob")[0]]
    with pytest.raises(InvalidInput):
        service.library.list_all("../etc")


def test_delete_refuses_presets_with_children(service: QualityService) -> None:
    lib = service.library
    lib.create("u", {"id": "parent"})
    lib.create("u", {"id": "child", "extends": "parent"})
    with pytest.raises(Conflict) as exc:
        lib.delete("u", "parent")
    assert "child" in exc.value.message
    lib.delete("u", "child")
    lib.delete("u", "parent")
    assert [p.id for p in lib.list_all("u")[0]] == ["draft", "standard", "high", "ultra"]


def test_malformed_file_is_reported_and_the_others_load(service: QualityService) -> None:
    lib = service.library
    lib.create("u", {"id": "good", "extends": "high"})
    folder = lib.store.folder("u")
    (folder / "broken.yaml").write_text("id: broken\nimage: [unclosed\n")
    (folder / "wrongid.yaml").write_text("id: other\n")
    (folder / "badrange.yaml").write_text("id: badrange\nimage: {steps: 900}\n")
    (folder / "orphan.yaml").write_text("id: orphan\nextends: gone\n")
    presets, problems = lib.list_all("u")
    assert "good" in [p.id for p in presets]
    assert {p.file for p in problems} == {"broken.yaml", "wrongid.yaml", "badrange.yaml", "orphan.yaml"}
    assert any("image.steps" in p.error for p in problems)


def test_stale_revision_is_refused(service: QualityService) -> None:
    lib = service.library
    created = lib.create("u", {"id": "rev"})
    assert created.revision == 1
    lib.update("u", "rev", {"image": {"steps": 30}, "revision": 1})
    with pytest.raises(Conflict) as stale:
        lib.update("u", "rev", {"image": {"steps": 31}, "revision": 1})
    assert stale.value.field == "revision"
    assert lib.get("u", "rev").image.steps == 30 and lib.get("u", "rev").revision == 2


def test_concurrent_creates_in_threads_have_one_winner(service: QualityService) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        try:
            service.library.create("u", {"id": "race", "image": {"steps": 10 + i}})
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]


def _update_many(users_dir: str, worker: int, rounds: int) -> int:
    svc = QualityService(Path(users_dir))
    done = 0
    for i in range(rounds):
        while True:
            current = svc.library.get("u", "shared")
            try:
                svc.library.update("u", "shared", {"revision": current.revision,
                                                   "description": f"w{worker}-{i}"})
                done += 1
                break
            except Conflict:
                continue
    return done


def test_concurrent_updates_across_processes_lose_nothing(tmp_path: Path) -> None:
    svc = QualityService(tmp_path)
    svc.library.create("u", {"id": "shared"})
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        done = pool.starmap(_update_many, [(str(tmp_path), w, 10) for w in range(3)])
    assert sum(done) == 30
    assert svc.library.get("u", "shared").revision == 31  # every update applied exactly once
    assert not [p for p in svc.library.store.folder("u").iterdir() if p.name.endswith(".tmp")]


def test_hand_written_yaml_loads_and_written_files_are_yaml(service: QualityService) -> None:
    import yaml

    folder = service.library.store.folder("u")
    folder.mkdir(parents=True)
    (folder / "by-hand.yaml").write_text("# my look\nid: by-hand\nextends: ultra\nimage:\n  steps: 60\n"
                                         "  hires_fix: {denoise: 0.4}\n")
    preset = service.library.get("u", "by-hand")
    assert (preset.image.steps, preset.image.hires_fix.denoise, preset.image.hires_fix.scale) == (60, 0.4, 2.0)
    service.library.create("u", {"id": "written", "extends": "by-hand", "text": {"max_tokens": 99}})
    on_disk = yaml.safe_load((folder / "written.yaml").read_text())
    assert on_disk == {"id": "written", "extends": "by-hand", "revision": 1, "text": {"max_tokens": 99}}
