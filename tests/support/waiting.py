"""Polling with a deadline: the only way tests wait."""
import asyncio
import time


def wait_for(fn, what: str, deadline: float = 90.0, interval: float = 0.5):
    """Call ``fn`` until it returns something truthy; fail after ``deadline`` s."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def poll(check, what: str, timeout: float = 20.0, interval: float = 0.2):
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval)


async def collect_watch(store, prefix: str, revision: int, count: int,
                        deadline: float = 10.0) -> list:
    """The first ``count`` events of a store watch from ``revision``, or fail after
    ``deadline`` seconds."""
    events = []
    gen = store.watch(prefix, revision=revision)
    try:
        async with asyncio.timeout(deadline):
            async for ev in gen:
                events.append(ev)
                if len(events) == count:
                    break
    finally:
        await gen.aclose()
    return events
