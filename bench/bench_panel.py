"""The panel's requests, as the browser makes them, on a real aiohttp server on loopback.

    python bench/bench_panel.py [--rounds 200] [--presets 12] [--storyboards 50] [--records 2000]

What the web panel waits for, p50/p95 per request over HTTP (urllib, keep-alive off, as a browser's first
request would be), against a reference measured in the same run: GET /atelier/families, a route that only
serialises a small table (the HTTP + JSON floor of this server).

- live validation (POST /atelier/presets/validate), sent on each pause in typing (250 ms debounce);
- the tier picker on a Quality Preset node (POST /atelier/compare) with the 4 tiers and with 12 presets
  (the most it shows), on every widget change;
- the pipeline summary (GET /atelier/pipelines/storyboard_generation/summary/high);
- the storyboard list (GET /atelier/storyboards) over N saved storyboards, and one manifest;
- a records page (GET /atelier/generations?limit=50) over M records, filtered by status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web
from atelier.nodes.core.storyboard.curate import curate
from atelier.nodes.core.storyboard.spec import Storyboard, chain_settings
from atelier.nodes.host import Atelier, Settings, wiring
from stats import pct


def serve(app: web.Application) -> str:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{state['port']}"


def timed(base: str, method: str, path: str, body: Any, rounds: int) -> list[float]:
    data = json.dumps(body).encode() if body is not None else None
    out = []
    for _ in range(rounds):
        request = urllib.request.Request(base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        start = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            response.read()
            assert response.status < 400, (path, response.status)
        out.append((time.perf_counter() - start) * 1000)
    return out



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--presets", type=int, default=12)
    parser.add_argument("--storyboards", type=int, default=50)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="atelier-bench-panel-"))
    root = tmp / "storyboards"
    atelier = Atelier(Settings.standalone(tmp, environ={}).with_storyboards(root))
    service = atelier.quality
    customs = [f"custom-{i}" for i in range(max(0, args.presets - 4))]
    for i, preset in enumerate(customs):
        service.create_preset("default", {"id": preset, "extends": ["draft", "standard", "high", "ultra"][i % 4],
                                          "image": {"steps": 10 + i}})
    records = atelier.records
    for i in range(args.records):
        record = records.create("default", {"operation_type": "txt2img", "prompt": f"prompt {i}",
                                            "parameters": {"seed": i}})
        if i % 2:
            records.store.set_status(record.id, "running")
            records.store.set_status(record.id, "completed")
    board = Storyboard.from_text("a fox in snow | the fox runs\na river at dawn | fog")
    started = time.perf_counter()
    curate(board, chain_settings(1, {"variations": 2}), root / "sb-000", "draft")
    for i in range(1, args.storyboards):  # copies of one manifest: the list reads each one
        (root / f"sb-{i:03d}").mkdir()
        (root / f"sb-{i:03d}" / "manifest.json").write_bytes((root / "sb-000" / "manifest.json").read_bytes())
    print(f"setup: {len(customs) + 4} presets, {args.records} records, {args.storyboards} storyboards "
          f"({time.perf_counter() - started:.1f} s for the storyboards)")

    base = serve(wiring.app(atelier))
    template = {"model_family": "sdxl", "width": 0, "height": 0}
    cases = [
        ("reference: GET /atelier/families", "GET", "/atelier/families", None),
        ("live validation", "POST", "/atelier/presets/validate",
         {"id": "mine", "extends": "high", "image": {"steps": 40, "cfg": 6.5}}),
        ("tier picker, 4 tiers", "POST", "/atelier/compare",
         {"presets": ["draft", "standard", "high", "ultra"], "template": template}),
        (f"tier picker, {len(customs) + 4} presets", "POST", "/atelier/compare",
         {"presets": ["draft", "standard", "high", "ultra", *customs][:12], "template": template}),
        ("pipeline summary", "GET", "/atelier/pipelines/storyboard_generation/summary/high", None),
        ("presets list", "GET", "/atelier/presets", None),
        (f"storyboard list ({args.storyboards})", "GET", "/atelier/storyboards", None),
        ("storyboard manifest", "GET", "/atelier/storyboards/sb-000", None),
        (f"records page (50 of {args.records}, status filter)", "GET",
         "/atelier/generations?limit=50&status=completed", None),
    ]
    for _, method, path, body in cases:  # warm up
        timed(base, method, path, body, 5)
    reference = None
    print(f"{'request':<44} {'p50 ms':>8} {'p95 ms':>8} {'x ref':>7}")
    for label, method, path, body in cases:
        values = timed(base, method, path, body, args.rounds)
        p50 = statistics.median(values)
        reference = reference or p50
        print(f"{label:<44} {p50:8.2f} {pct(values, 0.95):8.2f} {p50 / reference:7.1f}")


if __name__ == "__main__":
    main()
