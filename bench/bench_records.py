"""Generation records at scale: insert throughput and the latency of filtered list pages over 100k records.

    python bench/bench_records.py [--records 100000] [--url sqlite:///path | --postgres]

``--postgres`` starts a throwaway PostgreSQL server from Debian's packages (tests/postgres.py).

Inserts go through ``RecordStore.create`` (one transaction each, as the nodes and routes write) for a
measured sample; the rest of the table is bulk-loaded for setup. Pages are timed with and without
filters, first pages and deep (cursor) pages, against a reference in the same run: the same filter
on a column without an index (the prompt text).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from atelier.nodes.core.records.hashing import repro_hash
from atelier.nodes.core.records.models import STATUSES, Record
from atelier.nodes.core.records.store import RecordStore, sqlite_url
from sqlalchemy import insert
from stats import pct


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--timed-inserts", type=int, default=2000)
    parser.add_argument("--url", help="a SQLAlchemy URL (default: a temporary SQLite file)")
    parser.add_argument("--postgres", action="store_true", help="a throwaway local PostgreSQL server")
    args = parser.parse_args()
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres import fresh_database, postgres_server

        with postgres_server() as admin:
            if admin is None:
                raise SystemExit("no PostgreSQL here: install Debian's postgresql, or give --url")
            run(args, fresh_database(admin))
        return
    run(args, args.url or sqlite_url(Path(tempfile.mkdtemp(prefix="atelier-bench-records-")) / "records.sqlite"))


def run(args: argparse.Namespace, url: str) -> None:
    store = RecordStore(url)
    rng = random.Random(0)

    start = time.perf_counter()
    for i in range(args.timed_inserts):
        store.create("image_generation", "bench", {"steps": 20, "seed": i}, workspace=f"w{i % 20}", prompt=f"p {i}")
    insert_s = time.perf_counter() - start

    rows = []
    now = time.time()
    for i in range(args.records - args.timed_inserts):
        params = {"steps": 20, "seed": i, "cfg": 7}
        rows.append({"id": uuid.uuid4().hex, "status": rng.choice(STATUSES), "operation_type":
                     rng.choice(["image_generation", "storyboard", "shot_generation"]), "workspace": f"w{i % 20}",
                     "user": "bench", "parameters": params, "prompt_text": f"prompt {i}", "prompt_source": "inline",
                     "repro_hash": repro_hash(params), "created_at": now - i * 0.01, "outputs": {}, "scores": {}})
        if len(rows) == 10_000:
            with store.engine.begin() as connection:
                connection.execute(insert(Record), rows)
            rows = []
    if rows:
        with store.engine.begin() as connection:
            connection.execute(insert(Record), rows)
    total = store.count()
    with store.engine.begin() as connection:  # statistics after a bulk load (PostgreSQL's autovacuum would)
        connection.exec_driver_sql("ANALYZE")

    def timed(fn, repeats: int = 200) -> list[float]:
        out = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
        return out

    filtered = timed(lambda: store.page(status="completed", workspace=f"w{rng.randrange(20)}", limit=50))
    unfiltered = timed(lambda: store.page(limit=50))
    cursor = store.page(status="completed", limit=50).next_cursor
    for _ in range(20):
        cursor = store.page(status="completed", limit=50, cursor=cursor).next_cursor
    deep = timed(lambda: store.page(status="completed", limit=50, cursor=cursor))

    from sqlalchemy import select

    def unindexed() -> None:
        with store.session() as s:
            list(s.scalars(select(Record).where(Record.prompt_text.like("prompt 9999%")).order_by(
                Record.created_at.desc()).limit(50)))
    reference = timed(unindexed, 20)

    print(f"records benchmark: {total} records ({url.split(':')[0]})")
    print(f"  insert through RecordStore.create (one transaction each): {args.timed_inserts / insert_s:.0f} records/s")
    print(f"  filtered page (status + workspace, 50): p50 {statistics.median(filtered):.2f} ms, p99 {pct(filtered, 0.99):.2f} ms")
    print(f"  first page, no filter (50):             p50 {statistics.median(unfiltered):.2f} ms, p99 {pct(unfiltered, 0.99):.2f} ms")
    print(f"  deep cursor page (21st, filtered):      p50 {statistics.median(deep):.2f} ms, p99 {pct(deep, 0.99):.2f} ms")
    print(f"  reference, filter on an unindexed column: p50 {statistics.median(reference):.2f} ms "
          f"({statistics.median(reference) / statistics.median(filtered):.0f}x the indexed filter)")


if __name__ == "__main__":
    main()
