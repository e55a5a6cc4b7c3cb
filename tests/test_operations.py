"""The operators' routes: the developer list's filters (a node's records among them) and its bounds."""

from __future__ import annotations

from typing import Any

GRAPH = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
         "2": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["1", 0]}}}


def test_a_nodes_records_are_filtered_like_any_list(server: Any, record_service: Any) -> None:
    store = record_service.store
    queued = store.create("txt2img", "default", {"n": 1}, "posters", prompt="a", status="queued", graph=GRAPH)
    done = store.create("txt2img", "default", {"n": 2}, "posters", prompt="b", status="completed", graph=GRAPH)
    elsewhere = store.create("img2img", "default", {"n": 3}, "covers", prompt="c", status="completed", graph=GRAPH)
    store.create("txt2img", "default", {"n": 4}, "posters", prompt="d", status="completed")  # no graph
    store.create("txt2img", "bob", {"n": 5}, "posters", prompt="e", status="completed", graph=GRAPH)

    def ids(query: str) -> list[str]:
        status, body = server.get(f"/atelier/dev/generations?{query}")
        assert status == 200, body
        return [r["id"] for r in body["items"]]

    assert ids("node_type=KSampler") == [elsewhere.id, done.id, queued.id]  # yours, newest first
    assert ids("node_type=KSampler&node_id=2&status=completed") == [elsewhere.id, done.id]
    assert ids("node_type=KSampler&status=completed&workspace=posters") == [done.id]
    assert ids("node_type=KSampler&operation_type=img2img") == [elsewhere.id]
    assert ids("node_type=KSampler&node_id=1") == []  # node 1 is the loader
    for query, field in (("node_id=2", "node_id"), ("node_type=KSampler&status=nope", "status"),
                         ("limit=" + "9" * 5000, "limit"), ("limit=0", "limit"), ("node_type=" + "x" * 200, "node_type")):
        status, body = server.get(f"/atelier/dev/generations?{query}")
        assert status == 400 and body["field"] == field, (query, body)
