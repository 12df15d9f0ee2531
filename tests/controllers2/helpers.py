"""Waiting helpers for the core-controller tests: fake-time stepping, polling with a
deadline, and running controllers as background tasks."""
from __future__ import annotations

import asyncio
import contextlib
import time

from pyk8s.client import FakeClock


async def settle(rounds: int = 200) -> None:
    """Let every runnable task run until it blocks again (fake I/O and fake time only)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def run_clock(clock: FakeClock, seconds: float, *, step: float = 1.0) -> None:
    """Advance fake time in steps, letting tasks react after each."""
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(step)
        elapsed += step
        await settle()


async def eventually(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` (sync or async) until truthy or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(*controllers):
    """Run controllers in the background for the duration of the block."""
    tasks = [asyncio.create_task(c.run()) for c in controllers]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for c in controllers:
            for inf in c.watched:
                await inf.stop()
        for r in results:
            if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError):
                raise r
