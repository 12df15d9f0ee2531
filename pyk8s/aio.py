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


class _RawFeed:
    """Stands in for aiohttp's HTTP parser on an upgraded connection."""

    def __init__(self, reader: asyncio.StreamReader):
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


def take_over_connection(request, *, limit: int = 2 ** 16) -> asyncio.StreamReader:
    """Every byte an aiohttp server ``request``'s client sends from now on, as a stream.

    For a handler about to answer ``101 Switching Protocols`` to an upgrade aiohttp
    does not know itself (SPDY/3.1, or WebSocket relayed raw): called before the 101
    leaves, so nothing the client sends in answer is parsed as HTTP. The reader pauses
    the transport itself once ``2 * limit`` bytes wait unread (aiohttp's own pausing
    asserts on a connection whose parser it no longer drives).
    """
    reader = asyncio.StreamReader(limit=limit)
    request.protocol.set_parser(_RawFeed(reader))
    reader.set_transport(request.transport)
    request.protocol.keep_alive(False)
    return reader
