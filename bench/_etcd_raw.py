"""The physical limit for the etcd backend: plain puts through aetcd, no pyk8s on top.

``bench/storage.py`` sets this rate beside EtcdStore's create rate on the same etcd in
the same run, so the printed ratio survives a noisy machine.

Invariants: keys live under a prefix of their own, removed again after timing; only
the puts are timed, all ``n`` of them acknowledged by etcd.
"""
from __future__ import annotations

import asyncio
import os
import time

import aetcd

_OPTIONS = {"grpc.enable_http_proxy": 0}  # as EtcdStore: etcd is reached directly


async def raw_put_rate(endpoint: str, *, n: int, concurrency: int, value_size: int) -> float:
    """Puts per second for ``n`` puts of ``value_size`` bytes, ``concurrency`` in flight."""
    host, _, port = endpoint.split("://", 1)[-1].rpartition(":")
    prefix = f"/bench-raw/{os.getpid()}-{time.monotonic_ns()}/".encode()
    value = b"x" * value_size
    async with aetcd.Client(host, int(port), options=_OPTIONS) as client:
        await client.get(prefix)  # open the connection before the clock starts

        async def worker(w: int) -> None:
            for i in range(w, n, concurrency):
                await client.put(prefix + b"%08d" % i, value)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
        await client.delete_prefix(prefix)
    return n / elapsed
