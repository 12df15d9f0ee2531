"""asyncio helpers every layer may use.

``wait_for`` is ``asyncio.wait_for`` with Python 3.12's semantics on 3.11: built on
``asyncio.timeout``, so a cancellation that arrives just as the awaited operation
finishes is never swallowed (CPython gh-86296). A swallowed cancellation leaves a
task running after its owner cancelled and awaited it: a leader that keeps renewing
its lease, a server that never stops.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import AsyncIterable, Awaitable, Coroutine, Iterable, TypeVar

from aiohttp import web

T = TypeVar("T")
log = logging.getLogger(__name__)
CHUNK = 2 ** 16


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


class SwitchedResponse(web.StreamResponse):
    """A 101 whose body is the raw upgraded stream: no chunking, no Content-Length (as
    aiohttp's own WebSocketResponse)."""

    _length_check = False


async def relay(copies: Iterable[Coroutine], writer: asyncio.StreamWriter) -> None:
    """Run the two copies of an upgraded session until either ends, then close the
    backend's ``writer``: either side closing ends the session (upstream's proxies wait
    for one copy to finish, then close both connections)."""
    tasks = [asyncio.ensure_future(c) for c in copies]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, ConnectionError):
                log.debug("relay ended: %r", result)
        writer.close()
        try:
            await wait_for(writer.wait_closed(), 5.0)
        except (OSError, TimeoutError, ssl.SSLError) as err:
            log.debug("closing the backend of a relay: %s", err)


async def splice(request, response: web.StreamResponse, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, limit: int = CHUNK) -> web.StreamResponse:
    """Answer an upgrade ``request`` with ``response`` (a 101, headers set) and copy
    bytes between its client and a backend's ``reader``/``writer`` until either side
    closes. The backend connection is closed on every path."""
    try:
        client = take_over_connection(request, limit=limit)
        response.force_close()
        await response.prepare(request)
    except BaseException:
        writer.close()
        raise

    async def to_backend() -> None:
        while data := await client.read(limit):
            writer.write(data)
            await writer.drain()

    async def to_client() -> None:
        while data := await reader.read(limit):
            await response.write(data)

    await relay((to_backend(), to_client()), writer)
    return response


# How often ``client_gone`` looks: aiohttp does not cancel a handler whose client left
# (handler_cancellation is off), and a stream with nothing to write (a quiet
# container's log) would otherwise never notice.
CLIENT_CHECK_PERIOD = 0.2


def client_left(request) -> bool:
    """Whether an aiohttp server ``request``'s connection is closed or closing."""
    return request.transport is None or request.transport.is_closing()


async def client_gone(request, period: float = CLIENT_CHECK_PERIOD) -> None:
    """Returns once an aiohttp server ``request``'s connection is closed or closing."""
    while not client_left(request):
        await asyncio.sleep(period)


async def stream_to_client(request, response: web.StreamResponse,
                           chunks: AsyncIterable[bytes]) -> bool:
    """Write ``chunks`` to the prepared ``response`` until they end (True: the caller
    may finish the response) or the client leaves (False), whichever comes first: a
    follow on a quiet source ends when its reader does, not at the source's next
    chunk. An error of the source propagates."""
    left = False

    async def copy() -> None:
        nonlocal left
        async for chunk in chunks:
            try:
                await response.write(chunk)
            except ConnectionResetError:
                left = True
                return

    copying = asyncio.ensure_future(copy())
    watching = asyncio.ensure_future(client_gone(request))
    try:
        await asyncio.wait({copying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (copying, watching):
            task.cancel()
        await asyncio.gather(copying, watching, return_exceptions=True)
    if left or (watching.done() and not watching.cancelled()):
        return False
    copying.result()
    return True
