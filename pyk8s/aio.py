"""asyncio helpers every layer may use.

``wait_for`` is ``asyncio.wait_for`` with Python 3.12's semantics on 3.11: built on
``asyncio.timeout``, so a cancellation that arrives just as the awaited operation
finishes is never swallowed (CPython gh-86296). A swallowed cancellation leaves a
task running after its owner cancelled and awaited it: a leader that keeps renewing
its lease, a server that never stops.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """Await ``aw``; raise ``TimeoutError`` (cancelling it) after ``timeout`` seconds."""
    if timeout is None:
        return await aw
    async with asyncio.timeout(max(timeout, 0)):
        return await aw
