"""Every route, thousands of hostile requests: a generated corpus (deterministic) over every route of the
server, with the input classes attackers and broken clients send. Nothing answers 5xx; every 4xx is JSON
naming a field; every JSON answer is strict (no NaN or Infinity)."""

from __future__ import annotations

import base64
import collections
import json
import random
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SEED = 13
CORPUS_SIZE = 5200
IDS = ["mine", "standard", "../../../bob/atelier/presets/secret", "..%2F..%2F..%2Fbob%2Fatelier%2Fpresets%2Fsecret",
       "%2e%2e%2f%2e%2e", "a%00b", "x" * 300, "%C2%B2", "%F0%9F%98%80", "a%20b", "CON", "-x", ".", "..", "%ED%A0%80",
       "0", "ultra", "bob%2Fbobs", "default%2F..%2F..%2Fx", "%25", "nope", "storyboard_generation"]
HOSTILE_STRINGS = ["", " ", "\x00", "a\x00b", "\ud800", "²", "١٢", "x" * 70000, "{{a}}" * 4000, "../../etc/passwd",
                   "<script>alert(1)</script>", "NaN", "1e999", "-1", "0", "9" * 400, "draft", "high"]
HOSTILE_VALUES: list[Any] = [None, True, False, 0, -1, 2**70, -(2**70), 1.5, 1e308, [], {}, [1, 2], {"a": 1},
                             "x", *HOSTILE_STRINGS]
QUERY_VALUES = ["", "²", "-1", "0", "1e9", "abc", "500", "501", "1", "\x00", "x" * 1500, "١٢", "9" * 40, "../x"]
CURSORS = [base64.urlsafe_b64encode(json.dumps(v).encode()).decode() for v in
           ([1e308, "x"], [10**400, "x"], [1, 2, 3], {"a": 1}, "text", [None, None], [[], {}], [1.0, 5])]
CURSORS += ["!!", "A" * 1500, "\x00"]
HEADER_VALUES = ["alice", "bob", "", "../bob", "x" * 300, "a b", "²", "default"]
IF_MATCH = ["1", "²", "W/\"3\"", "\"\"", "1e999", "-1", "9" * 50]

VALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/atelier/presets"): {"id": "fuzzy", "extends": "high", "image": {"steps": 30}},
    ("POST", "/atelier/presets/validate"): {"id": "fuzzy2", "extends": "draft"},
    ("POST", "/atelier/intelligence/decide"): {"prompt": "a fox", "family": "sd15",
                                               "constraints": {"max_time_s": 60, "priority": "speed"}},
    ("POST", "/atelier/intelligence/optimize"): {"prompt": "a fox", "family": "sdxl", "width": 512},
    ("PUT", "/atelier/loras/{lora_id}/family"): {"family": "sdxl"},
    ("PUT", "/atelier/presets/{preset_id}"): {"extends": "high", "image": {"steps": 20}},
    ("POST", "/atelier/presets/{preset_id}/apply"): {"template": {"category": "image", "model_family": "sdxl"}},
    ("POST", "/atelier/estimate"): {"pipeline": "shot_generation", "tier": "high"},
    ("POST", "/atelier/compare"): {"presets": ["draft", "ultra"], "template": {"model_family": "sd15"}},
    ("POST", "/atelier/pipelines/{name}/run"): {"tier": "draft", "checkpoint": "m.safetensors", "prompt": "a fox"},
    ("POST", "/atelier/enhance"): {"prompt": "a red fox", "iterations": 1},
    ("POST", "/atelier/social-context/build"): {"affinity": 50, "trust": 40, "requested_rating": "sfw"},
    ("POST", "/atelier/generations"): {"operation_type": "image_generation", "prompt": "a {{x}}",
                                       "variables": {"x": "fox"}, "parameters": {"seed": 1}},
    ("POST", "/atelier/generations/validate"): {"operation_type": "image_generation", "prompt": "a fox"},
    ("POST", "/atelier/generations/prompts/{family}"): {"template": "a portrait of {{name}}"},
    ("POST", "/atelier/generations/{record_id}/feedback"): {"rating": 4, "comment": "nice"},
    ("POST", "/atelier/generations/{record_id}/cancel"): None,
}


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _mutations(body: Any, rng: random.Random) -> list[bytes]:
    """Raw request bodies: the valid one, each field replaced by a hostile value, and broken JSON."""
    out: list[bytes] = []
    if isinstance(body, dict):
        out.append(json.dumps(body).encode())
        for key in body:
            for value in rng.sample(HOSTILE_VALUES, 6):
                out.append(json.dumps({**body, key: value}, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            out.append(json.dumps({**body, key: json.loads(_deep(50))}).encode())
        out.append(json.dumps({**body, "unexpected": 1}).encode())
    for raw in (_deep(1000), _deep(100_000), '{"a": NaN}', '{"a": Infinity}', "[1, 2", "\"\\ud800\"", "null", "7",
                '"text"', "{\"prompt\": \"a\\u0000b\"}", "\xff\xfe", "{}", "[]", "{\"" + "k" * 10 + "\": 1}"):
        out.append(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    out.append(b"{\"x\": \"" + b"y" * (1024 * 1024 + 10) + b"\"}")  # over the 1 MiB limit
    return out


def corpus(routes: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    requests: list[tuple[str, str, bytes | None, dict[str, str]]] = []
    while len(requests) < CORPUS_SIZE:
        for method, template in routes:
            path = template
            for name in ("preset_id", "name", "tier", "prompt_id", "record_id", "family", "storyboard_id",
                         "path:.+"):
                path = path.replace("{" + name + "}", rng.choice(IDS))
            query = ""
            if method == "GET" and rng.random() < 0.6:
                params = {key: rng.choice(QUERY_VALUES) for key in
                          rng.sample(["limit", "status", "workspace", "operation_type", "use_case", "width",
                                      "height", "model_family", "checkpoint", "batch_size", "category"], 3)}
                if rng.random() < 0.5:
                    params["cursor"] = rng.choice(CURSORS)
                query = "?" + urllib.parse.urlencode(params)  # under aiohttp's 8 KiB request line
            headers = {"comfy-user": rng.choice(HEADER_VALUES)}
            if method == "PUT":
                headers["If-Match"] = rng.choice(IF_MATCH)
            if method in ("POST", "PUT"):
                valid = VALID_BODIES.get((method, template), {"x": 1})
                for raw in rng.sample(_mutations(valid, rng), 4):
                    requests.append((method, path + query, raw, headers))
            else:
                requests.append((method, path + query, None, headers))
    return requests


def _send(base: str, method: str, path: str, raw: bytes | None, headers: dict[str, str]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(base + path, data=raw, method=method, headers={
        **headers, **({"Content-Type": "application/json"} if raw is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _strict(payload: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"non-strict JSON constant {constant}")
    return json.loads(payload, parse_constant=refuse)


def test_thousands_of_hostile_requests_get_no_5xx_and_named_4xx(server, storyboard_root, settings) -> None:
    from atelier.nodes.host import Atelier, Settings
    from atelier.nodes.server import build_routes

    routes = sorted({(r.method, r.path) for r in build_routes(Atelier(Settings.standalone(environ={})))
                     if r.method != "HEAD"})
    # state to find: alice's preset, a record, a storyboard folder
    server.post("/atelier/presets", {"id": "mine", "extends": "high"}, headers={"comfy-user": "alice"})
    home = str(settings.users_dir.parent).encode()
    rng = random.Random(SEED)
    requests = corpus(routes, rng)
    histogram: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    largest = 0
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda r: (r, _send(server.base, *r)), requests))
    for (method, path, raw, _), (status, kind, payload) in answers:
        histogram[status] += 1
        largest = max(largest, len(payload))
        where = f"{method} {path[:120]} {raw[:80] if raw else ''!r} -> {status} {payload[:200]!r}"
        if status >= 500:
            failures.append(where)
            continue
        if home in payload:
            failures.append(f"{where}: a server path in the answer")
        if "json" in kind:
            try:
                body = _strict(payload)
            except ValueError as exc:
                failures.append(f"{where}: {exc}")
                continue
            if status >= 400 and not (isinstance(body, dict) and body.get("error") and body.get("field")):
                failures.append(f"{where}: a 4xx without error and field")
        elif status >= 400 and status != 405:
            failures.append(f"{where}: a {status} that is not JSON")
    print(f"\n{len(requests)} requests over {len(routes)} routes; statuses {dict(sorted(histogram.items()))}; "
          f"largest answer {largest} bytes")
    assert len(requests) >= 5000
    assert not failures, f"{len(failures)} bad answers, e.g.:\n" + "\n".join(failures[:25])


def test_a_small_request_cannot_make_a_huge_answer_or_record(server) -> None:
    """The amplification found by hand: {{a}} x 4,000 with a 25,000-character variable (45 KB sent) made a
    100 MB answer and an 80 MB record. Now the prompt is bounded before it is built."""
    import time

    big = {"operation_type": "image_generation", "prompt": "{{a}}" * 4000, "variables": {"a": "x" * 25000}}
    worst = 0
    for path in ("/atelier/generations/validate", "/atelier/generations"):
        started = time.monotonic()
        status, body = server.post(path, big)
        assert status == 413 and body["field"] == "variables.a" and time.monotonic() - started < 2
        worst = max(worst, len(json.dumps(body)))
        fits = {**big, "variables": {"a": "x" * 4000}}  # each value allowed, the rendered prompt is not
        status, body = server.post(path, fits)
        assert status == 413 and body["field"] == "prompt" and "at most 20000" in body["accepted"]
        worst = max(worst, len(json.dumps(body)))
    assert server.get("/atelier/generations")[1]["items"] == []  # nothing was stored
    print(f"\namplification request ({len(json.dumps(big))} bytes sent): largest answer {worst} bytes")


def test_completed_records_of_any_shape_never_break_a_reader(server, record_service) -> None:
    """A record's parameters are the user's JSON: where a reader expects a mapping (quality, batch, device,
    graph nodes' inputs, scores) any JSON value may stand. Every route that reads completed records still
    answers 200 with strict JSON (regression: ``{"quality": "high"}`` made GET /telemetry a 500)."""
    store = record_service.store
    odd: list[Any] = ["high", 7, [1, 2], None, True, {"preset": ["x"]}, {"preset": {"a": 1}}]
    ids = []
    for i, value in enumerate(odd):
        parameters = {"quality": value, "tier": value, "batch": value, "device": value,
                      "graph": {"1": {"class_type": "AtelierPromptEnhance", "inputs": value}},
                      "explanation": {"analysis": value, "loras": value, "loras_filtered": value, "performance": value,
                                      "parameters": {"steps": value}, "parameter_reasons": value},
                      "seeds": value, "plan": {"stages": [{"passes": value}]} if i % 2 else value,
                      "social": {"rating": "sfw", "clamped_by": value}, "images": value}
        record = store.create("txt2img", "default", parameters, prompt=f"odd {i}", status="completed",
                              started_at=1000.0, finished_at=1000.0 + i)
        scores = {"best": value, "overall": [value, 1.0], "metrics": {"clip": value}, "weights": value}
        store.set_status(record.id, "completed", scores=scores,
                         outputs={"atelier": value}, finished_at=1000.0 + i)
        ids.append(record.id)
    paths = ["/atelier/telemetry", "/atelier/generations/telemetry", "/atelier/generations/tiers",
             "/atelier/dev/generations", "/atelier/learning", "/atelier/generations?status=completed",
             f"/atelier/generations/diff?a={ids[0]}&b={ids[1]}"]
    for record_id in ids:
        paths += [f"/atelier/generations/{record_id}", f"/atelier/generations/{record_id}/telemetry",
                  f"/atelier/generations/{record_id}/why", f"/atelier/dev/generations/{record_id}",
                  f"/atelier/generations/{record_id}/graph"]
    for path in paths:
        status, body = server.get(path)
        assert status == 200, (path, body)
        json.dumps(body, allow_nan=False)
