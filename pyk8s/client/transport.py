"""The HTTP seam of the client: one request in, one response (or stream) out.

Role: ``Transport`` is what ``rest.Client`` speaks to; ``AiohttpTransport`` talks
HTTPS to a real API server with a ``ClientConfig``, and ``fake.FakeTransport`` answers
from an in-memory API (STYLE item 5: httpx's ``BaseTransport`` / ``MockTransport``).

Invariants:
- A transport never interprets Kubernetes semantics: status codes and bodies are
  handed back as they came; only failures to get any answer raise
  ``TransportError`` (connection refused, TLS, timeouts, a stream cut mid-line).
- ``stream`` yields one watch line at a time however the server chunks them, and
  raises ``TransportError`` when nothing arrives for ``read_timeout`` seconds.
- An ``AiohttpTransport`` opens its session lazily inside the running loop and owns
  it until ``close()``.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import KW_ONLY, dataclass, field
from typing import AsyncIterator, Mapping, Protocol

import aiohttp

from .config import ClientConfig


class TransportError(Exception):
    """No (complete) answer from the server."""


@dataclass
class Request:
    method: str
    path: str
    _: KW_ONLY
    params: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    content_type: str | None = None
    accept: str = "application/json"
    timeout: float | None = None       # the whole exchange (plain requests)
    read_timeout: float | None = None  # the longest silence on a stream


@dataclass
class Response:
    status: int
    _: KW_ONLY
    headers: Mapping[str, str]
    body: bytes


class StreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body; for answers that are not a stream (errors)."""

    def lines(self) -> AsyncIterator[bytes]:
        """The non-empty lines of the body until the server ends it."""


class Transport(Protocol):
    """Carries requests to an API server.

    ``request`` returns the complete answer whatever its status. ``stream`` is an
    async context manager over a long-lived answer (a watch); leaving the block
    closes the connection. Both raise ``TransportError`` only when no answer came.
    """

    async def request(self, request: Request) -> Response: ...

    def stream(self, request: Request) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        ...

    async def close(self) -> None: ...


class _AiohttpStream:
    def __init__(self, resp: aiohttp.ClientResponse, read_timeout: float | None):
        self._resp = resp
        self._read_timeout = read_timeout
        self.status = resp.status
        self.headers = resp.headers

    async def read(self) -> bytes:
        return await self._resp.read()

    async def lines(self) -> AsyncIterator[bytes]:
        buf = b""
        content = self._resp.content
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races with the read finishing, and the watch would
                # then outlive its informer's stop().
                async with asyncio.timeout(self._read_timeout):
                    chunk = await content.readany()
            except asyncio.TimeoutError:
                raise TransportError(f"no data for {self._read_timeout} s") from None
            except (aiohttp.ClientError, OSError) as err:
                raise TransportError(str(err) or type(err).__name__) from err
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
        if buf.strip():
            raise TransportError("stream ended in the middle of a line")


class AiohttpTransport:
    """HTTPS to the server a ``ClientConfig`` names."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context or False, limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=None,
                headers={"User-Agent": self.config.user_agent})
        return self._session

    def _kwargs(self, request: Request) -> dict:
        headers = {"Accept": request.accept, **self.config.auth_headers()}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        kwargs = dict(params=request.params, data=request.body, headers=headers)
        if self.config.tls_server_name:
            kwargs["server_hostname"] = self.config.tls_server_name
        return kwargs

    async def request(self, request: Request) -> Response:
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=request.timeout or self.config.timeout)
        try:
            async with session.request(request.method, self.config.server + request.path,
                                       timeout=timeout, **self._kwargs(request)) as resp:
                body = await resp.read()
                return Response(resp.status, headers=resp.headers, body=body)
        except asyncio.TimeoutError:
            raise TransportError(f"{request.method} {request.path}: timed out") from None
        except (aiohttp.ClientError, OSError) as err:
            raise TransportError(f"{request.method} {request.path}: {err}") from err

    @contextlib.asynccontextmanager
    async def stream(self, request: Request) -> AsyncIterator[StreamResponse]:
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=None, connect=self.config.timeout)
        try:
            resp = await session.request(request.method, self.config.server + request.path,
                                         timeout=timeout, **self._kwargs(request))
        except asyncio.TimeoutError:
            raise TransportError(f"{request.method} {request.path}: timed out") from None
        except (aiohttp.ClientError, OSError) as err:
            raise TransportError(f"{request.method} {request.path}: {err}") from err
        try:
            yield _AiohttpStream(resp, request.read_timeout)
        finally:
            resp.close()

    async def close_connections(self) -> None:
        """Drop every pooled connection, in-flight requests and watches included, so
        the next request handshakes again: after the client certificate in
        ``config.ssl_context`` changed (client-go's connection-rotating dialer)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
