"""Upgrade-aware proxying: the API server passes a request on to a backend (a kubelet,
a pod, a service endpoint) and relays the answer (upstream's UpgradeAwareHandler).

Role: ``proxy`` is the one entry point. A request asking for a protocol switch
(``Connection: Upgrade`` with an ``Upgrade`` header: WebSocket, SPDY/3.1) is written
to a fresh backend connection as a raw HTTP/1.1 head; when the backend answers
``101 Switching Protocols`` its head is relayed and from then on bytes are piped both
ways until either side closes. Any other answer (a Status from the kubelet) is relayed
with its status and body. A plain request is forwarded with aiohttp's client, the
request and response bodies streamed; for resource proxies (pods, services, nodes)
``X-Forwarded-*`` headers tell the backend where it is mounted and its redirects are
rewritten under the API path, as are the links of an HTML page (upstream's proxy
transport: the attributes its atomsToAttrs table names, gzip and deflate bodies
decoded and encoded again).

Invariants:
- the caller's credentials never reach a backend: ``Authorization`` and the
  ``Impersonate-*`` headers are dropped (upstream's authentication filter removes them
  before any proxying), as are hop-by-hop headers of a plain request;
- ``upgrade_required`` (exec, attach, portforward) answers a request without an upgrade
  400 "Upgrade request required", before any backend is dialled;
- a backend that cannot be reached answers 500 InternalError "error dialing backend:
  ..." (upstream's text), never a traceback;
- after the 101 nothing but the backend's bytes is written to the client, and the
  handler returns only when the tunnel is closed on both sides.
"""
from __future__ import annotations

import asyncio
import dataclasses
import gzip
import html
import logging
import posixpath
import re
import ssl
import zlib
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .. import aio
from ..api import errors

log = logging.getLogger(__name__)

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
CREDENTIALS = ("authorization",)
HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 30.0  # seconds to wait for a backend's response head
DIAL_TIMEOUT = 10.0
CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Location:
    """Where a request goes: scheme, host, port and the path with its query."""

    scheme: str
    host: str
    port: int
    path: str  # starts with "/" (or is "" for a proxy without a trailing path)
    query: str = ""  # already encoded, without "?"
    ssl: ssl.SSLContext | None = None

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def path_qs(self) -> str:
        path = self.path or "/"
        return f"{path}?{self.query}" if self.query else path

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path_qs}"


def is_upgrade(request: web.Request) -> bool:
    """Whether the client asks for a protocol switch (upstream's httpstream.IsUpgradeRequest)."""
    tokens = {t.strip().lower() for v in request.headers.getall("Connection", [])
              for t in v.split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


def _forwarded_headers(request: web.Request, location: Location, *,
                       keep_upgrade: bool) -> CIMultiDict:
    out: CIMultiDict = CIMultiDict()
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in CREDENTIALS or lower.startswith("impersonate-") or lower == "host":
            continue
        if lower in HOP_BY_HOP and not (keep_upgrade and lower in ("connection", "upgrade")):
            continue
        if lower == "x-forwarded-for":
            continue
        out.add(name, value)
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    if peer:
        out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    elif prior:
        out["X-Forwarded-For"] = prior
    out["Host"] = location.netloc
    return out


async def _read_up_to(upstream: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body if it ends within ``limit`` bytes (True), else what was read (False)."""
    buf = bytearray()
    async for chunk in upstream.content.iter_any():
        buf += chunk
        if len(buf) > limit:
            return bytes(buf), False
    return bytes(buf), True


def _rewritten_page(raw: bytes, upstream: aiohttp.ClientResponse, location: Location,
                    request: web.Request, scheme: str, prefix: str) -> bytes:
    """The HTML page with its links under the proxy path, encoded as it came
    (unchanged when its encoding cannot be undone)."""
    encoding = upstream.headers.get("Content-Encoding", "").strip().lower()
    page = _decode(raw, encoding)
    if page is None:
        return raw

    def rewrite(url: str) -> str:
        return rewrite_location(url, backend=location, request_host=request.host,
                                scheme=scheme, prefix=prefix)
    return _encode(rewrite_html(page, rewrite), encoding)


def _backend_error(what: str, err: BaseException) -> errors.APIError:
    # upstream's responder turns a plain error into a Status with an empty reason
    return errors.APIError(500, "", f"{what}: {err or type(err).__name__}")


def _dial_error(err: BaseException) -> errors.APIError:
    return _backend_error("error dialing backend", err)


async def proxy(request: web.Request, location: Location, *,
                upgrade_required: bool = False, prefix: str | None = None
                ) -> web.StreamResponse:
    """Serve ``request`` from ``location`` (the caller has authorized it).

    ``prefix`` (the API path a resource proxy is reached under, e.g.
    ``/api/v1/namespaces/x/pods/y/proxy``) turns on upstream's proxy transport
    rewriting for plain requests: ``X-Forwarded-Uri|Host|Proto`` go to the backend,
    and a redirect to the backend's own paths comes back under the prefix.
    """
    if is_upgrade(request):
        return await _tunnel(request, location)
    if upgrade_required:
        raise errors.bad_request("Upgrade request required")
    return await _forward(request, location, prefix)


def _join(prefix: str, path: str) -> str:
    """Go's path.Join of two absolute paths, keeping ``path``'s trailing slash."""
    joined = posixpath.normpath(posixpath.join(prefix, path.lstrip("/")))
    return joined + "/" if path.endswith("/") and not joined.endswith("/") else joined


def rewrite_location(value: str, *, backend: Location, request_host: str, scheme: str,
                     prefix: str) -> str:
    """A backend's redirect as the client must follow it (upstream's rewriteURL): a
    path on the backend itself becomes the same path under the proxy prefix."""
    target = urlsplit(value)
    if (target.netloc and target.netloc not in (backend.netloc, request_host)) or \
            not target.path.startswith("/"):
        return value
    netloc, new_scheme = request_host, scheme
    if target.path.startswith(prefix):
        path = target.path
    else:
        path = _join(prefix, target.path)
    return urlunsplit((new_scheme, netloc, path, target.query, target.fragment))


# -- plain requests -------------------------------------------------------------------------

# upstream's atomsToAttrs: the attributes of each HTML element that hold a URL
LINK_ATTRS = {
    "a": ("href",), "applet": ("codebase",), "area": ("href",), "audio": ("src",),
    "base": ("href",), "blockquote": ("cite",), "body": ("background",),
    "button": ("formaction",), "command": ("icon",), "del": ("cite",), "embed": ("src",),
    "form": ("action",), "frame": ("longdesc", "src"), "head": ("profile",),
    "html": ("manifest",), "iframe": ("longdesc", "src"),
    "img": ("longdesc", "src", "usemap"), "input": ("src", "usemap", "formaction"),
    "ins": ("cite",), "link": ("href",), "object": ("classid", "codebase", "data", "usemap"),
    "q": ("cite",), "script": ("src",), "source": ("src",), "video": ("poster", "src")}
_TAG = re.compile(rb"<([a-zA-Z][a-zA-Z0-9]*)(\s[^<>]*?)?(/?)>")
_ATTR = re.compile(rb"""(\s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""")
HTML_LIMIT = 16 * 1024 * 1024  # a page rewritten in memory; a bigger one passes as is


def rewrite_html(body: bytes, rewrite: Callable[[str], str]) -> bytes:
    """Every link attribute of ``body`` passed through ``rewrite``; the rest of the
    document byte for byte."""
    def tag(m: re.Match) -> bytes:
        names = LINK_ATTRS.get(m.group(1).decode().lower())
        if not names or not m.group(2):
            return m.group(0)

        def attr(a: re.Match) -> bytes:
            if a.group(2).decode().lower() not in names:
                return a.group(0)
            raw = a.group(4)
            quoted = raw[:1] in (b'"', b"'")
            value = html.unescape((raw[1:-1] if quoted else raw).decode("utf-8", "replace"))
            new = rewrite(value)
            if new == value:
                return a.group(0)
            return a.group(1) + a.group(2) + a.group(3) + b'"' + \
                html.escape(new, quote=True).encode() + b'"'
        return b"<" + m.group(1) + _ATTR.sub(attr, m.group(2)) + m.group(3) + b">"
    return _TAG.sub(tag, body)


def _decode(body: bytes, encoding: str) -> bytes | None:
    try:
        if encoding in ("", "identity"):
            return body
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError):
        return None
    return None


def _encode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    return body


async def _forward(request: web.Request, location: Location,
                   prefix: str | None) -> web.StreamResponse:
    headers = _forwarded_headers(request, location, keep_upgrade=False)
    headers.popall("Content-Length", None)
    scheme = "https" if request.secure else "http"
    if prefix is not None:
        headers["X-Forwarded-Uri"] = _join(prefix, location.path)
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-Proto"] = scheme
    body = request.content if request.body_exists else None
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=DIAL_TIMEOUT)
    # A session per request: backends are many and short-lived (pods), and a pooled
    # connection to a pod that went away would fail the next caller.
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        try:
            upstream_cm = session.request(request.method, location.url, headers=headers,
                                          data=body, ssl=location.ssl or False,
                                          allow_redirects=False, skip_auto_headers=(
                                              "User-Agent", "Accept-Encoding", "Accept",
                                              "Content-Type"))
            upstream = await upstream_cm.__aenter__()
        except (aiohttp.ClientConnectionError, OSError, asyncio.TimeoutError) as err:
            raise _dial_error(err) from None
        try:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                    continue
                if name.lower() == "location" and prefix is not None:
                    value = rewrite_location(value, backend=location, request_host=request.host,
                                             scheme=scheme, prefix=prefix)
                resp.headers.add(name, value)
            pending = b""
            if (prefix is not None and "Location" not in upstream.headers
                    and upstream.content_type == "text/html" and request.method != "HEAD"):
                pending, complete = await _read_up_to(upstream, HTML_LIMIT)
                if complete:
                    page = await asyncio.to_thread(_rewritten_page, pending, upstream,
                                                   location, request, scheme, prefix)
                    resp.content_length = len(page)
                    await resp.prepare(request)
                    await resp.write(page)
                    await resp.write_eof()
                    return resp
            if upstream.content_length is not None and request.method != "HEAD":
                resp.content_length = upstream.content_length
            await resp.prepare(request)
            try:
                if pending:  # a page too big to rewrite goes on unchanged
                    await resp.write(pending)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            except (aiohttp.ClientError, ConnectionResetError) as err:
                # Headers are out: the client sees a short body, as with upstream.
                log.debug("proxying %s ended early: %s", location.url, err)
            return resp
        finally:
            await upstream_cm.__aexit__(None, None, None)


# -- upgrades -------------------------------------------------------------------------------

def _request_head(request: web.Request, location: Location) -> bytes:
    headers = _forwarded_headers(request, location, keep_upgrade=True)
    lines = [f"{request.method} {location.path_qs} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    text = raw.decode("latin-1").rstrip("\r\n")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed HTTP status line {status_line!r}")
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), (parts[2] if len(parts) > 2 else ""), headers


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    """The body of a non-101 answer: chunked, by Content-Length, or up to the close."""
    names = {k.lower(): v for k, v in headers}
    if "chunked" in names.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    if "content-length" in names:
        return await reader.readexactly(int(names["content-length"]))
    return await reader.read()


async def _tunnel(request: web.Request, location: Location) -> web.StreamResponse:
    body = await request.read() if request.body_exists else b""
    try:
        backend_reader, backend_writer = await aio.wait_for(asyncio.open_connection(
            location.host, location.port, ssl=location.ssl, limit=HEAD_LIMIT),
            DIAL_TIMEOUT)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as err:
        raise _dial_error(err) from None
    try:
        head = _request_head(request, location)
        if body:
            head = head.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n"
                                .encode(), 1) + body
        backend_writer.write(head)
        await backend_writer.drain()
        raw = await aio.wait_for(backend_reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        status, reason, headers = _parse_head(raw)
        if status != 101:
            payload = await aio.wait_for(_read_body(backend_reader, headers), HEAD_TIMEOUT)
            resp = web.Response(status=status, reason=reason or None, body=payload)
            for name, value in headers:
                if name.lower() in HOP_BY_HOP or name.lower() in ("content-length", "date",
                                                                  "server"):
                    continue
                resp.headers.add(name, value)
            return resp
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError, ValueError) as err:
        backend_writer.close()
        raise _backend_error("error reading from backend", err) from None
    except BaseException:
        backend_writer.close()
        raise
    return await _pipe(request, reason, headers, backend_reader, backend_writer)


async def _pipe(request: web.Request, reason: str, headers: list[tuple[str, str]],
                backend_reader: asyncio.StreamReader,
                backend_writer: asyncio.StreamWriter) -> web.StreamResponse:
    resp = aio.SwitchedResponse(status=101, reason=reason or "Switching Protocols")
    for name, value in headers:
        if name.lower() not in ("date", "server", "content-length"):
            resp.headers.add(name, value)
    return await aio.splice(request, resp, backend_reader, backend_writer, limit=CHUNK)
