"""Scale-out throughput, queue overhead and requeue time, with real ``atelier worker`` processes on a real
PostgreSQL (Debian's, started here) and fake ComfyUI processes that run each prompt for a fixed time.

    python bench/bench_scale.py [--seconds 0.5] [--jobs-per-worker 12] [--workers 1,2,4,8]

- Throughput: jobs/s with 1, 2, 4 and 8 workers (one fake ComfyUI each, ``--seconds`` per prompt), jobs queued
  in one transaction. Scaling efficiency = jobs/s with N workers / (N x jobs/s with 1 worker), the 1-worker
  run being the reference measured in the same run. Targets (issue 17): 1->4 >= 90%, 1->8 >= 80%.
- Queue overhead: one idle worker, jobs queued one at a time; enqueue (the job's row written) -> a worker
  starts it (its row says running). Targets: p50 <= 20 ms, p99 <= 100 ms.
- Requeue time: SIGKILL the worker running a job; time until another worker has taken it. Expected:
  at most stalled_after_s + heartbeat_s (the worker's settings, printed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import torchvision_shim  # noqa: E402

torchvision_shim.install()

from atelier.nodes.host import Atelier, Settings  # noqa: E402
from postgres import fresh_database, postgres_server  # noqa: E402
from scaleout_harness import cluster, graph, stats, wait_until  # noqa: E402


class Loop:
    """One event loop in a thread for the submitting side (the queue's pool lives on it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def __call__(self, coro: Any, timeout_s: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def configs(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"operation_type": "txt2img", "prompt": f"{tag} {i}", "parameters": {"tag": tag, "i": i},
             "graph": graph(i)} for i in range(n)]


def throughput(admin: str, root: Path, workers: int, jobs: int, seconds: float) -> float:
    database = fresh_database(admin)
    with cluster(database, root / f"w{workers}") as nodes:
        comfies = [nodes.comfy(seconds) for _ in range(workers)]
        for i, comfy in enumerate(comfies):
            nodes.worker(comfy.url, f"w{i}", heartbeat_s=1.0, stalled_after_s=10.0)
        client = Atelier(Settings.standalone(root / f"client{workers}", {"ATELIER_DATABASE_URL": database}))
        call = Loop()
        try:
            started = time.perf_counter()
            records = call(client.distributed.submit_many("bench", configs(jobs, "throughput")))
            store = client.records.store
            wait_until(lambda: all(store.get(r.id).status == "completed" for r in records[-workers:])
                       and all(store.get(r.id).status == "completed" for r in records), 600, "the jobs", 0.02)
            elapsed = time.perf_counter() - started
            ran = sum(sum(stats(c.url)["completed"].values()) for c in comfies)
            assert ran == jobs, (ran, jobs)  # every job ran exactly once
        finally:
            call(client.aclose())
            call.stop()
    return jobs / elapsed


def overhead(admin: str, root: Path, samples: int) -> list[float]:
    database = fresh_database(admin)
    with cluster(database, root / "overhead") as nodes:
        comfy = nodes.comfy(0.01)
        nodes.worker(comfy.url, "w0", heartbeat_s=1.0, stalled_after_s=10.0)
        client = Atelier(Settings.standalone(root / "client-overhead", {"ATELIER_DATABASE_URL": database}))
        call = Loop()
        jobs = client.distributed.store
        out = []
        try:
            for i in range(samples + 5):
                (record,) = call(client.distributed.submit_many("bench", configs(1, f"overhead{i}")))
                row = wait_until(lambda r=record: (j := jobs.job(r.id))["started_at"] and j, 30, "the job to start",
                                 0.002)
                wait_until(lambda r=record: client.records.store.get(r.id).status == "completed", 30, "the job", 0.01)
                if i >= 5:  # the first few warm the pools
                    out.append(row["started_at"] - row["enqueued_at"])
        finally:
            call(client.aclose())
            call.stop()
    return out


def requeue(admin: str, root: Path, rounds: int, heartbeat_s: float, stalled_after_s: float) -> list[float]:
    database = fresh_database(admin)
    out = []
    with cluster(database, root / "requeue") as nodes:
        a, b = nodes.comfy(3.0), nodes.comfy(3.0)
        urls = {"wa": a.url, "wb": b.url}
        procs = {name: nodes.worker(url, name, heartbeat_s, stalled_after_s, concurrency=1)
                 for name, url in urls.items()}
        client = Atelier(Settings.standalone(root / "client-requeue", {"ATELIER_DATABASE_URL": database}))
        call = Loop()
        jobs = client.distributed.store
        try:
            for i in range(rounds):
                (record,) = call(client.distributed.submit_many("bench", configs(1, f"requeue{i}")))
                holder = wait_until(lambda r=record: (j := jobs.job(r.id))["state"] == "running" and j["worker"],
                                    30, "a worker to take the job")
                wait_until(lambda h=holder: stats(urls[h])["running"], 10, "the prompt to run")
                procs[holder].kill()
                killed = time.time()
                other = "wb" if holder == "wa" else "wa"
                wait_until(lambda r=record, o=other: jobs.job(r.id)["worker"] == o, 120, "the job to move", 0.01)
                out.append(time.time() - killed)
                wait_until(lambda r=record: client.records.store.get(r.id).status == "completed", 60, "the job")
                procs[holder] = nodes.worker(urls[holder], holder, heartbeat_s, stalled_after_s, concurrency=1)
        finally:
            call(client.aclose())
            call.stop()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=0.5, help="each fake prompt's duration")
    parser.add_argument("--jobs-per-worker", type=int, default=12)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--samples", type=int, default=100, help="queue-overhead samples")
    parser.add_argument("--rounds", type=int, default=3, help="requeue rounds")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with postgres_server() as admin, tempfile.TemporaryDirectory() as tmp:
        if admin is None:
            sys.exit("no PostgreSQL here: install Debian's postgresql")
        root = Path(tmp)
        print(f"throughput: fake ComfyUIs at {args.seconds:g} s per prompt, {args.jobs_per_worker} jobs per worker, "
              f"workers at concurrency 2")
        rates = {}
        for n in counts:
            rates[n] = throughput(admin, root, n, n * args.jobs_per_worker, args.seconds)
            ideal = n / args.seconds
            print(f"  {n} worker(s): {rates[n]:6.2f} jobs/s  (ideal {ideal:5.2f}; "
                  f"{100 * rates[n] / ideal:5.1f}% of ideal)", flush=True)
        if 1 in rates:
            for n in counts:
                if n > 1:
                    target = {4: 90, 8: 80}.get(n)
                    efficiency = 100 * rates[n] / (n * rates[1])
                    print(f"  scaling efficiency 1->{n}: {efficiency:5.1f}%" +
                          (f"  (target >= {target}%)" if target else ""))
        samples = overhead(admin, root, args.samples)
        print(f"queue overhead (enqueue -> a worker starts it), {len(samples)} jobs, one idle worker: "
              f"p50 {1000 * statistics.median(samples):.1f} ms, p99 {1000 * pct(samples, 0.99):.1f} ms, "
              f"max {1000 * max(samples):.1f} ms  (targets p50 <= 20 ms, p99 <= 100 ms)")
        for heartbeat_s, stalled_after_s in ((1.0, 5.0),):
            times = requeue(admin, root, args.rounds, heartbeat_s, stalled_after_s)
            print(f"requeue after SIGKILL of the worker running a job (heartbeat {heartbeat_s:g} s, stalled after "
                  f"{stalled_after_s:g} s), {len(times)} rounds: " + ", ".join(f"{t:.1f} s" for t in times) +
                  f"  (bound {stalled_after_s + heartbeat_s:g} s + a poll; defaults 5 s / 20 s -> within 25 s)")


if __name__ == "__main__":
    main()
