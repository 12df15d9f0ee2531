"""Waiting helpers for the client tests: fake-time stepping and polling with deadlines."""
from __future__ import annotations

import asyncio
import time

from pyk8s.client import FakeClock


async def settle(rounds: int = 100) -> None:
    """Let every runnable task run until it blocks again (fake I/O and fake time only)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def eventually(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` (sync or async) until it is truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def run_clock(clock: FakeClock, seconds: float, *, step: float = 0.25) -> None:
    """Advance fake time in small steps, letting tasks react after each."""
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(step)
        elapsed += step
        await settle()
