"""Storage benchmark: pyk8s stores beside the raw limit of the same engine, same run.

Prints one line per figure: writes/s with 1 and 50 concurrent writers (2 KB values)
and watch delivery latency p50/p99, for SQLite and (when the etcd binary exists)
etcd, each next to the raw rate (plain sqlite3 inserts with the same durability;
raw aetcd puts) as a ratio. A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/storage.py [--writes N]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyk8s.storage.sqlite import SqliteStore  # noqa: E402

VALUE = b"x" * 2048


def raw_sqlite_rate(path: str, n: int) -> float:
    """Inserts/s of one transaction per row, WAL, synchronous=FULL: the floor of
    durable single writes on this disk."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT, v BLOB)")
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"/k/{i}", VALUE))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - t0)
    conn.close()
    return rate


async def store_rate(store, n: int, writers: int, tag: str) -> float:
    per = n // writers

    async def writer(w: int) -> None:
        for i in range(per):
            await store.create(f"/bench/{tag}/{w}/{i}", VALUE)
    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return per * writers / (time.perf_counter() - t0)


async def watch_latency(store, n: int, tag: str) -> tuple[float, float]:
    """p50/p99 milliseconds from a write's acknowledgement... to its watch event."""
    start = await store.current_revision()
    sent: dict[str, float] = {}
    lat: list[float] = []
    done = asyncio.Event()

    async def consume() -> None:
        async for ev in store.watch(f"/lat/{tag}/", revision=start):
            lat.append(time.perf_counter() - sent[ev.key])
            if len(lat) == n:
                done.set()
                return
    task = asyncio.create_task(consume())
    for i in range(n):
        key = f"/lat/{tag}/{i}"
        sent[key] = time.perf_counter()
        await store.create(key, VALUE)
        await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 60)
    await task
    q = statistics.quantiles([x * 1000 for x in lat], n=100)
    return q[49], q[98]


async def bench_sqlite(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        raw = raw_sqlite_rate(os.path.join(d, "raw.db"), n)
        store = SqliteStore(os.path.join(d, "state.db"), compact_interval=0)
        await store.start()
        try:
            one = await store_rate(store, n, 1, "one")
            many = await store_rate(store, n * 5, 50, "many")
            p50, p99 = await watch_latency(store, 500, "w")
        finally:
            await store.close()
    print(f"sqlite raw durable inserts: {raw:,.0f}/s")
    print(f"sqlite store 1 writer: {one:,.0f} writes/s ({one / raw:.2f}x raw)")
    print(f"sqlite store 50 writers: {many:,.0f} writes/s ({many / raw:.2f}x raw; "
          f"grouped commits)")
    print(f"sqlite watch latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


async def bench_etcd(n: int) -> None:
    import shutil
    if not shutil.which("etcd"):
        print("etcd: skipped (no etcd binary)")
        return
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "storage"))
    from etcd_server import EtcdServer  # the tests' launcher: real etcd on loopback
    from _etcd_raw import raw_put_rate
    from pyk8s.storage.etcd import EtcdStore
    with tempfile.TemporaryDirectory() as d:
        server = EtcdServer(base_dir=d)
        server.start()
        try:
            raw1 = await raw_put_rate(server.endpoint, n=n, concurrency=1, value_size=2048)
            raw50 = await raw_put_rate(server.endpoint, n=n * 5, concurrency=50,
                                       value_size=2048)
            store = EtcdStore([server.endpoint])
            await store.start()
            try:
                one = await store_rate(store, n, 1, "one")
                many = await store_rate(store, n * 5, 50, "many")
                p50, p99 = await watch_latency(store, 500, "w")
            finally:
                await store.close()
        finally:
            server.close()
    print(f"etcd raw puts: 1 writer {raw1:,.0f}/s, 50 writers {raw50:,.0f}/s")
    print(f"etcd store 1 writer: {one:,.0f} writes/s ({one / raw1:.2f}x raw)")
    print(f"etcd store 50 writers: {many:,.0f} writes/s ({many / raw50:.2f}x raw)")
    print(f"etcd watch latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--writes", type=int, default=1000)
    args = p.parse_args()
    sys.path.insert(0, os.path.dirname(__file__))
    asyncio.run(bench_sqlite(args.writes))
    asyncio.run(bench_etcd(args.writes))


if __name__ == "__main__":
    main()
