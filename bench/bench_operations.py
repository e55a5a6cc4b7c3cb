"""What operating Atelier costs a run: validating a prompt's Atelier nodes when it is queued, observing
ComfyUI's events for per-node timings, and the telemetry report over a busy database.

    python bench/bench_operations.py [--records 20000] [--calls 5000] [--events 200000]

Each number comes with a reference measured in the same run:
- node validation (``check_node`` of every Atelier node of the shipped intelligent workflow, what the nodes'
  ``validate_inputs`` do on each queued prompt) against building the Quality Preset's plan, which a run does
  anyway;
- an observed ``send_sync`` against the plain one (a put on a queue, as ComfyUI's does);
- ``GET /telemetry`` (everyone's, a records database with ``--records`` completed runs and ``--calls`` LLM
  calls) against one filtered page of records.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from atelier.nodes.comfy.runtime import observe_events
from atelier.nodes.core.quality.plan import build_plan
from atelier.nodes.core.records.models import LLMCall, Record
from atelier.nodes.core.records.timings import PromptTimings
from atelier.nodes.core.validation.rules import check_node
from atelier.nodes.host import Atelier, Settings
from sqlalchemy import insert
from stats import pct

REPO = Path(__file__).resolve().parents[1]


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def show(name: str, values: list[float], reference: list[float] | None = None) -> None:
    line = f"{name:<44} p50 {pct(values, 0.5):8.3f} ms  p99 {pct(values, 0.99):8.3f} ms"
    if reference:
        line += f"  ({pct(values, 0.5) / pct(reference, 0.5):.2f}x the reference's p50)"
    print(line)


def validation(atelier: Atelier, n: int) -> None:
    graph = json.loads((REPO / "workflows" / "api" / "atelier_intelligent.json").read_text())
    plan = next(node for node in graph.values() if node["class_type"] == "AtelierSmartPlan")
    plan["inputs"].update(checkpoint="v1-5-pruned-emaonly.safetensors", max_time_s=30.0, max_vram_gb=8.0)
    nodes = [(n["class_type"], {k: v for k, v in n["inputs"].items() if not isinstance(v, list)})
             for n in graph.values() if n["class_type"].startswith("Atelier")]
    rules = atelier.rules

    def validate() -> None:
        for kind, literal in nodes:
            check_node(rules, "default", kind, literal)

    def plan_once() -> None:
        build_plan(atelier.quality, "standard", "auto", "v1-5-pruned-emaonly.safetensors", None, 0, 0, 1)

    validate(), plan_once()  # warm
    reference = timed(plan_once, n)
    show("reference: a Quality Preset's plan", reference)
    show(f"validating the {len(nodes)} Atelier nodes of a prompt", timed(validate, n), reference)


def events(n: int) -> None:
    sink: queue.SimpleQueue[Any] = queue.SimpleQueue()
    timings = PromptTimings()
    stream = [("executing", {"node": str(i % 40), "prompt_id": f"p{i // 40}"}) for i in range(n)]

    class Server:  # ComfyUI's send_sync puts the event on its loop's queue
        def send_sync(self, event: str, data: Any, sid: Any = None) -> None:
            sink.put_nowait((event, data, sid))

    plain = Server().send_sync
    server = Server()
    observe_events(server, timings.observe)  # what Atelier does to ComfyUI's server
    observed = server.send_sync

    def run(send: Any) -> float:
        start = time.perf_counter()
        for event, data in stream:
            send(event, data)
        return (time.perf_counter() - start) / n * 1e6

    base = min(run(plain) for _ in range(3))
    watched = min(run(observed) for _ in range(3))
    print(f"{'reference: ComfyUI send_sync (queue put)':<44} {base:8.3f} µs/event")
    print(f"{'observed send_sync (per-node timings)':<44} {watched:8.3f} µs/event  (+{watched - base:.3f} µs, "
          f"{watched / base:.2f}x); a 40-node prompt sends ~200 events: +{(watched - base) * 200 / 1000:.3f} ms")


def report(atelier: Atelier, records: int, calls: int) -> None:
    store = atelier.records.store
    now = time.time()
    rng = random.Random(7)
    rows, llm = [], []
    for i in range(records):
        created = now - rng.uniform(0, 30 * 86400)
        rows.append({"id": f"{i:032x}", "operation_type": "image_generation", "user": f"user{i % 20}",
                     "workspace": f"ws{i % 7}", "status": "completed", "parameters": {"tier": rng.choice(
                         ["draft", "standard", "high", "ultra"])}, "outputs": {}, "scores": {"best": rng.uniform(0, 100)},
                     "repro_hash": f"{i:064x}", "created_at": created, "started_at": created,
                     "finished_at": created + rng.uniform(1, 60), "comfy_prompt_id": f"p{i}"})
    for i in range(calls):
        llm.append({"user": f"user{i % 20}", "created_at": now - rng.uniform(0, 30 * 86400), "endpoint": "http://llm",
                    "backend": "ollama", "ok": i % 13 != 0, "latency_ms": rng.uniform(50, 900), "prompt_tokens": 40,
                    "completion_tokens": 12, "comfy_prompt_id": f"p{rng.randrange(records)}" if i % 2 else None,
                    "workspace": None if i % 2 else "ads"})
    with store.session.begin() as s:
        for start in range(0, len(rows), 5000):
            s.execute(insert(Record), rows[start:start + 5000])
        s.execute(insert(LLMCall), llm)
    def page() -> None:
        store.page("completed", "ws3", None, 50, None, None)

    def totals() -> None:
        atelier.telemetry(None)

    reference = timed(page, 20)
    show("reference: one filtered page of records", reference)
    show(f"GET /telemetry ({records} runs, {calls} LLM calls)", timed(totals, 5), reference)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--validations", type=int, default=200)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="atelier-bench-operations-"))
    atelier = Atelier(Settings.standalone(home, environ={}))
    validation(atelier, args.validations)
    events(args.events)
    report(atelier, args.records, args.calls)


if __name__ == "__main__":
    main()
