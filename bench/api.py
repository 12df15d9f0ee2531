"""API benchmark: creates, gets, lists and watch delivery through HTTPS.

Starts a real `pyk8s apiserver` on SQLite in a temp dir and drives it with aiohttp
clients using the admin client certificate. Beside it, in the same run, the raw
store's durable write rate on the same disk. Prints one line per figure; a
benchmark, not a test: it asserts nothing.

Goals reported against: p99 mutating latency well under upstream's 1 s SLO at
200 creates/s (k3s on SQLite averages 1.4 s there); a list of 5,000 objects from
the cache under 100 ms.

    .venv/bin/python bench/api.py [--rate 200] [--seconds 10] [--objects 5000]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp
import orjson
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyk8s.storage.sqlite import SqliteStore  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssl_context(kubeconfig: str, tmp: str) -> ssl.SSLContext:
    cfg = yaml.safe_load(open(kubeconfig))
    user = cfg["users"][0]["user"]
    paths = {}
    for field in ("client-certificate-data", "client-key-data"):
        paths[field] = os.path.join(tmp, field)
        with open(paths[field], "wb") as f:
            f.write(base64.b64decode(user[field]))
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
    return ctx


def pct(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49] * 1000, q[98] * 1000


async def raw_store_rate(path: str, n: int = 2000, writers: int = 50) -> float:
    store = SqliteStore(path, compact_interval=0)
    await store.start()
    t0 = time.perf_counter()

    async def w(k: int) -> None:
        for i in range(n // writers):
            await store.create(f"/raw/{k}/{i}", b"x" * 512)
    await asyncio.gather(*(w(k) for k in range(writers)))
    rate = n / (time.perf_counter() - t0)
    await store.close()
    return rate


def configmap(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name, "labels": {"bench": "yes"}},
                         "data": {"payload": "x" * 400}})


async def paced_creates(session, base: str, *, rate: int, seconds: float,
                        prefix: str) -> tuple[list[float], int]:
    """Creates at a fixed arrival rate (open loop), as a load generator would."""
    lat: list[float] = []
    errors = 0
    tasks = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = int(rate * seconds)

    async def one(i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        async with session.post(f"{base}/api/v1/namespaces/default/configmaps",
                                data=configmap(f"{prefix}-{i}"),
                                headers={"Content-Type": "application/json"}) as r:
            await r.read()
            if r.status != 201:
                errors += 1
        lat.append(time.perf_counter() - t0)
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return lat, errors


async def run(args) -> None:
    with tempfile.TemporaryDirectory() as d:
        raw = await raw_store_rate(os.path.join(d, "raw.db"))
        port = free_port()
        log = open(os.path.join(d, "server.log"), "wb")
        proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "apiserver",
                                 "--data-dir", d, "--https-port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            kubeconfig = os.path.join(d, "kubeconfig.yaml")
            deadline = time.monotonic() + 60
            while not os.path.exists(kubeconfig):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("API server did not start; see its log")
                await asyncio.sleep(0.1)
            ctx = ssl_context(kubeconfig, d)
            base = f"https://127.0.0.1:{port}"
            conn = aiohttp.TCPConnector(ssl=ctx, limit=args.clients)
            async with aiohttp.ClientSession(connector=conn) as session:
                await bench_session(session, base, args, raw)
        finally:
            proc.terminate()
            proc.wait(10)


async def bench_session(session, base: str, args, raw: float) -> None:
    print(f"raw store durable writes (50 writers, same disk): {raw:,.0f}/s")
    lat, errors = await paced_creates(session, base, rate=args.rate, seconds=args.seconds,
                                      prefix="paced")
    p50, p99 = pct(lat)
    print(f"creates at {args.rate}/s for {args.seconds:.0f} s: p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, {errors} errors (SLO: p99 < 1000 ms)")
    # Saturated creates with N clients.
    n = args.objects
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(args.clients)

    async def create(i: int) -> None:
        async with sem:
            async with session.post(f"{base}/api/v1/namespaces/default/configmaps",
                                    data=configmap(f"bulk-{i}"),
                                    headers={"Content-Type": "application/json"}) as r:
                await r.read()
    await asyncio.gather(*(create(i) for i in range(n)))
    rate = n / (time.perf_counter() - t0)
    print(f"creates, {args.clients} clients: {rate:,.0f}/s ({rate / raw:.2f}x raw store)")
    glat = []

    async def get(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            async with session.get(f"{base}/api/v1/namespaces/default/configmaps/"
                                   f"bulk-{i}") as r:
                await r.read()
            glat.append(time.perf_counter() - t)
    t0 = time.perf_counter()
    await asyncio.gather(*(get(i) for i in range(min(n, 2000))))
    grate = len(glat) / (time.perf_counter() - t0)
    p50, p99 = pct(glat)
    print(f"gets, {args.clients} clients: {grate:,.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    llat = []
    for _ in range(10):
        t = time.perf_counter()
        async with session.get(f"{base}/api/v1/namespaces/default/configmaps"
                               f"?resourceVersion=0") as r:
            body = await r.read()
        llat.append(time.perf_counter() - t)
    count = len(orjson.loads(body)["items"])
    print(f"list of {count} objects from the cache: p50 {statistics.median(llat) * 1000:.0f}"
          f" ms (goal < 100 ms)")
    await watch_latency(session, base)


async def watch_latency(session, base: str, n: int = 300) -> None:
    async with session.get(f"{base}/api/v1/namespaces/default/configmaps?limit=1") as r:
        rv = orjson.loads(await r.read())["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    lat: list[float] = []
    done = asyncio.Event()

    async def consume() -> None:
        url = (f"{base}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
               f"&labelSelector=bench%3Dyes")
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=120)) as r:
            async for line in r.content:
                ev = orjson.loads(line)
                name = ev["object"]["metadata"]["name"]
                if name in sent:
                    lat.append(time.perf_counter() - sent[name])
                    if len(lat) == n:
                        done.set()
                        return
    task = asyncio.create_task(consume())
    for i in range(n):
        name = f"watched-{i}"
        sent[name] = time.perf_counter()
        async with session.post(f"{base}/api/v1/namespaces/default/configmaps",
                                data=configmap(name),
                                headers={"Content-Type": "application/json"}) as r:
            await r.read()
    await asyncio.wait_for(done.wait(), 60)
    await task
    p50, p99 = pct(lat)
    print(f"watch delivery (create sent -> event received): p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--objects", type=int, default=5000)
    p.add_argument("--clients", type=int, default=50)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
