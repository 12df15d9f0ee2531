"""SPDY/3.1 connections as Kubernetes speaks them (moby/spdystream's framing).

Role: the multiplexed byte streams under `kubectl exec/attach/port-forward`'s SPDY
transport. The kubelet is a server for clients that upgrade to `SPDY/3.1`
(port-forward, directly or tunnelled in WebSocket messages) and a client of the
container runtime's streaming server (`connect`). One `SpdyConnection` owns a byte
transport (`reader.read(n)`, `writer.write/drain/close`) and a task that reads
frames; `SpdyStream`s are the multiplexed streams on it.

Invariants:
- Frames as in the SPDY/3 draft: control frames (SYN_STREAM, SYN_REPLY, RST_STREAM,
  SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and DATA frames. Header blocks
  are zlib streams primed with the SPDY/3 dictionary: one compressor for what we
  send and one decompressor for what we read, each living as long as the
  connection (every block ends with a sync flush, as Go's framer does).
- Stream ids: odd from the client, even from the server, strictly increasing; a
  peer SYN_STREAM that breaks this is answered with RST_STREAM(PROTOCOL_ERROR).
  Every accepted stream is replied to at once (empty SYN_REPLY), as Kubernetes'
  handlers do.
- Half-close per direction: `close_write` sends an empty DATA frame with FIN;
  `read` returns b"" once the peer sent FIN or RST or the connection ended.
- PINGs the peer started (the other parity) are echoed at once: kubectl pings
  every 5 s and gives up on a connection whose pongs stop.
- Flow control: we advertise our receive window in a SETTINGS frame and, to a peer
  that does flow control, send WINDOW_UPDATE as the application consumes data (a
  WINDOW_UPDATE unread by a closing spdystream peer resets its connection and loses
  the data before it). We honour the peer's window
  (64 KiB, or its SETTINGS_INITIAL_WINDOW_SIZE) once the peer shows it does flow
  control (it sent SETTINGS or WINDOW_UPDATE). moby/spdystream never sends either
  and ignores ours: holding back at 64 KiB would stall a Go peer forever.
- Writes are serialised by one lock, so frames never interleave. The frame reader
  waits only to write PING echoes, SYN_REPLYs and RSTs, and for a stream whose
  reader fell STREAM_BUFFER_LIMIT bytes behind (back-pressure on the connection).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import struct
import zlib
from typing import Protocol
from urllib.parse import urlsplit

from pyk8s import aio


log = logging.getLogger(__name__)

VERSION = 3

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION = 1, 2, 3, 4
CANCEL, INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE = 5, 6, 7, 8
STREAM_ALREADY_CLOSED, INVALID_CREDENTIALS, FRAME_TOO_LARGE = 9, 10, 11

SETTINGS_INITIAL_WINDOW_SIZE = 7

DEFAULT_WINDOW = 64 * 1024
MAX_DATA_FRAME = 16 * 1024          # payload per DATA frame we send
STREAM_BUFFER_LIMIT = 1024 * 1024   # unread bytes per stream before the reader waits

_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer "
    "retry-after server te trailer transfer-encoding upgrade user-agent vary via "
    "warning www-authenticate method get status").split() + [
    "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0.")
# The SPDY/3 header dictionary (draft 3, section 2.6.10.1): length-prefixed words,
# then the tail. Its size and Adler-32 are the spec's; the asserts catch a typo.
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == 0xE3C6A7C2


class SpdyError(Exception):
    """A failed stream or connection (reset by the peer, refused upgrade, closed)."""


class Reader(Protocol):
    async def read(self, n: int) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...


def encode_headers(headers: dict[str, str]) -> bytes:
    """A header block (uncompressed): count, then length-prefixed lower-case names and values."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), str(value).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """The inverse of `encode_headers`; several values of one name (NUL-separated) join with ', '."""
    try:
        (count,), pos, headers = struct.unpack_from(">I", block), 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + size].decode().lower()
            pos += 4 + size
            (size,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + size].decode()
            pos += 4 + size
            if pos > len(block):
                raise SpdyError("truncated header block")
            headers[name] = ", ".join(value.split("\x00"))
        return headers
    except (struct.error, UnicodeDecodeError) as e:
        raise SpdyError(f"invalid header block: {e}") from None


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(payload)) + payload


def data_frame(stream_id: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, flags << 24 | len(payload)) + payload


class SpdyStream:
    """One multiplexed stream; made by `open_stream` or handed out by `accept_stream`."""

    def __init__(self, conn: "SpdyConnection", stream_id: int, headers: dict[str, str]):
        self.id = stream_id
        self.headers = headers
        self._conn = conn
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._changed = asyncio.Event()      # data, FIN, RST or connection end arrived
        self._drained = asyncio.Event()      # the reader may buffer again
        self._drained.set()
        self._remote_done = False            # no more data will come
        self._local_done = False             # we sent FIN (or RST)
        self._reset = False
        self._reply: asyncio.Future[None] = conn._loop.create_future()
        self._send_window = conn._peer_window
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._unacked = 0                    # bytes consumed, not yet announced

    def __repr__(self) -> str:
        return f"<SpdyStream {self.id} {self.headers}>"

    async def read(self) -> bytes:
        """The next DATA payload; b"" after the peer's FIN or RST, or the connection's end."""
        while not self._chunks:
            if self._remote_done:
                return b""
            self._changed.clear()
            await self._changed.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < STREAM_BUFFER_LIMIT:
            self._drained.set()
        await self._consumed(len(chunk))
        return chunk

    async def _consumed(self, size: int) -> None:
        # Announce consumed bytes in batches of half a window (as Go's http2 does).
        # Only to a peer that does flow control itself: moby/spdystream ignores
        # WINDOW_UPDATE, and one still unread when it closes the session (an exec'd
        # process exited) makes its kernel reset the connection, losing the tail of
        # the output and the exit status.
        if not self._conn._peer_flow_control:
            return
        self._unacked += size
        if self._unacked >= self._conn.receive_window // 2 and not self._remote_done:
            delta, self._unacked = self._unacked, 0
            await self._conn._send(control_frame(WINDOW_UPDATE, 0,
                                                 struct.pack(">II", self.id, delta)),
                                   quiet=True)

    async def write(self, data: bytes) -> None:
        """Send `data` as DATA frames, within the peer's window when it does flow control."""
        view = memoryview(data)
        while view:
            if self._local_done or self._reset:
                raise SpdyError(f"stream {self.id} is closed for writing")
            size = min(len(view), MAX_DATA_FRAME)
            if self._conn._peer_flow_control:
                while self._send_window <= 0 and not (self._reset or self._conn.closed.is_set()):
                    self._window_open.clear()
                    await self._window_open.wait()
                if self._reset or self._conn.closed.is_set():
                    raise SpdyError(f"stream {self.id} was reset")
                size = min(size, self._send_window)
                self._send_window -= size
            await self._conn._send(data_frame(self.id, 0, bytes(view[:size])))
            view = view[size:]

    async def close_write(self) -> None:
        """Half-close: an empty DATA frame with FLAG_FIN (once)."""
        if self._local_done or self._reset:
            return
        self._local_done = True
        await self._conn._send(data_frame(self.id, FLAG_FIN, b""), quiet=True)
        self._conn._maybe_forget(self)

    async def reset(self, status: int = CANCEL) -> None:
        """Abort both directions with RST_STREAM(`status`)."""
        if self._reset:
            return
        self._end(reset=True)
        await self._conn._send(control_frame(RST_STREAM, 0,
                                             struct.pack(">II", self.id, status)), quiet=True)

    # Called by the connection's reader.
    def _data(self, payload: bytes, fin: bool) -> None:
        if payload and not self._remote_done:
            self._chunks.append(payload)
            self._buffered += len(payload)
            if self._buffered >= STREAM_BUFFER_LIMIT:
                self._drained.clear()
        if fin:
            self._remote_done = True
            self._conn._maybe_forget(self)
        self._changed.set()

    def _end(self, *, reset: bool) -> None:
        """The stream is over in both directions (RST either way, or the connection's end)."""
        self._reset = self._reset or reset
        self._remote_done = self._local_done = True
        self._drained.set()
        self._changed.set()
        self._window_open.set()
        if not self._reply.done():
            self._reply.set_exception(SpdyError(f"stream {self.id} was reset"))
            self._reply.exception()  # retrieved: nobody may be waiting for it
        self._conn._streams.pop(self.id, None)

    def _grow_window(self, delta: int) -> None:
        self._send_window += delta
        if self._send_window > 0:
            self._window_open.set()


class SpdyConnection:
    """A SPDY/3.1 session over one byte transport; `server` picks the id parity."""

    def __init__(self, reader: Reader, writer: Writer, *, server: bool,
                 receive_window: int = DEFAULT_WINDOW):
        self._reader, self._writer, self.server = reader, writer, server
        self._loop = asyncio.get_running_loop()
        self.receive_window = receive_window
        self._next_id = 2 if server else 1
        self._last_peer_id = 0
        self._next_ping = 2 if server else 1
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._streams: dict[int, SpdyStream] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._compress = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8,
                                          zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)
        self._decompress = zlib.decompressobj(zdict=DICTIONARY)
        self._write_lock = asyncio.Lock()
        self._peer_window = DEFAULT_WINDOW
        self._peer_flow_control = False
        self._going_away = False
        self._task: asyncio.Task | None = None
        self.closed = asyncio.Event()

    def start(self) -> None:
        """Announce our window and start the frame-reading task."""
        if self._task is None:
            # SETTINGS goes out before anything else (written, drained with the
            # next frame), so the peer knows we do flow control before any stream.
            settings = struct.pack(">III", 1, SETTINGS_INITIAL_WINDOW_SIZE, self.receive_window)
            self._writer.write(control_frame(SETTINGS, 0, settings))
            self._task = asyncio.create_task(self._run(), name="spdy-reader")

    async def open_stream(self, headers: dict[str, str], *, fin: bool = False) -> SpdyStream:
        """SYN_STREAM with `headers`; returns once the peer replied (SpdyError on RST)."""
        if self.closed.is_set() or self._going_away:
            raise SpdyError("connection is closed")
        stream_id, self._next_id = self._next_id, self._next_id + 2
        stream = SpdyStream(self, stream_id, {k.lower(): v for k, v in headers.items()})
        self._streams[stream_id] = stream
        if fin:
            stream._local_done = True
        await self._send_headers(SYN_STREAM, FLAG_FIN if fin else 0,
                                 struct.pack(">IIBB", stream_id, 0, 0, 0), stream.headers)
        await stream._reply
        return stream

    async def accept_stream(self) -> SpdyStream | None:
        """The next stream the peer opened (already replied to); None once closed."""
        if (self.closed.is_set() or self._going_away) and self._incoming.empty():
            return None
        return await self._incoming.get()

    async def ping(self) -> None:
        """Send a PING and wait for its echo (SpdyError if the connection ends first)."""
        ping_id, self._next_ping = self._next_ping, (self._next_ping + 2) & 0x7FFFFFFF
        waiter = self._pings[ping_id] = self._loop.create_future()
        try:
            await self._send(control_frame(PING, 0, struct.pack(">I", ping_id)))
            await waiter
        finally:
            self._pings.pop(ping_id, None)

    async def close(self) -> None:
        """GOAWAY, then close the transport and end every stream."""
        if not self.closed.is_set() and not self._going_away:
            self._going_away = True
            await self._send(control_frame(GOAWAY, 0, struct.pack(">II", self._last_peer_id, 0)),
                             quiet=True)
        self._shutdown()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise

    async def wait_closed(self) -> None:
        await self.closed.wait()

    # -- writing -------------------------------------------------------------

    async def _send(self, frame: bytes, *, quiet: bool = False) -> None:
        """Write one frame; `quiet` drops it silently on a dead transport (best effort)."""
        if self.closed.is_set():
            if quiet:
                return
            raise SpdyError("connection is closed")
        async with self._write_lock:
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except (ConnectionError, OSError, RuntimeError) as e:
                self._shutdown()
                if not quiet:
                    raise SpdyError(f"connection lost: {e}") from None

    async def _send_headers(self, kind: int, flags: int, prefix: bytes,
                            headers: dict[str, str]) -> None:
        # Compress and write under one lock: the peer's decompressor must see the
        # blocks in the order our compressor produced them.
        if self.closed.is_set():
            raise SpdyError("connection is closed")
        async with self._write_lock:
            block = self._compress.compress(encode_headers(headers))
            block += self._compress.flush(zlib.Z_SYNC_FLUSH)
            try:
                self._writer.write(control_frame(kind, flags, prefix + block))
                await self._writer.drain()
            except (ConnectionError, OSError, RuntimeError) as e:
                self._shutdown()
                raise SpdyError(f"connection lost: {e}") from None

    # -- reading -------------------------------------------------------------

    async def _read_exactly(self, n: int) -> bytes:
        parts, need = [], n
        while need:
            chunk = await self._reader.read(need)
            if not chunk:
                raise EOFError
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

    async def _run(self) -> None:
        try:
            while True:
                head = await self._read_exactly(8)
                first, second = struct.unpack(">II", head)
                flags, length = second >> 24, second & 0xFFFFFF
                payload = await self._read_exactly(length) if length else b""
                if first & 0x80000000:
                    await self._control((first & 0xFFFF), flags, payload)
                else:
                    await self._on_data(first & 0x7FFFFFFF, flags, payload)
        except (EOFError, ConnectionError, OSError):
            pass
        except (SpdyError, struct.error) as e:
            log.info("spdy connection failed: %s", e)  # a frame we cannot parse
        except zlib.error as e:
            log.info("spdy header block undecodable: %s", e)
        finally:
            self._shutdown()

    def _headers(self, block: bytes) -> dict[str, str]:
        return decode_headers(self._decompress.decompress(block))

    async def _control(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == SYN_STREAM:
            stream_id, _assoc = struct.unpack_from(">II", payload)
            await self._on_syn_stream(stream_id & 0x7FFFFFFF, flags, self._headers(payload[10:]))
        elif kind == SYN_REPLY:
            (stream_id,) = struct.unpack_from(">I", payload)
            headers = self._headers(payload[4:])
            stream = self._streams.get(stream_id & 0x7FFFFFFF)
            if stream is not None and not stream._reply.done():
                stream.headers.update(headers)  # response headers complete the request's
                stream._reply.set_result(None)
                if flags & FLAG_FIN:
                    stream._data(b"", True)
        elif kind == HEADERS:
            (stream_id,) = struct.unpack_from(">I", payload)
            headers = self._headers(payload[4:])
            stream = self._streams.get(stream_id & 0x7FFFFFFF)
            if stream is not None:
                stream.headers.update(headers)
                if flags & FLAG_FIN:
                    stream._data(b"", True)
        elif kind == RST_STREAM:
            stream_id, _status = struct.unpack_from(">II", payload)
            stream = self._streams.get(stream_id & 0x7FFFFFFF)
            if stream is not None:
                stream._end(reset=True)
        elif kind == SETTINGS:
            self._on_settings(payload)
        elif kind == PING:
            (ping_id,) = struct.unpack_from(">I", payload)
            if ping_id % 2 != self._next_ping % 2:  # the peer's ping: echo it
                await self._send(control_frame(PING, 0, payload[:4]), quiet=True)
            elif (waiter := self._pings.get(ping_id)) is not None and not waiter.done():
                waiter.set_result(None)
        elif kind == GOAWAY:
            # No new streams from the peer; running ones finish, then the peer closes.
            self._going_away = True
            self._incoming.put_nowait(None)
        elif kind == WINDOW_UPDATE:
            stream_id, delta = struct.unpack_from(">II", payload)
            self._peer_flow_control = True
            stream = self._streams.get(stream_id & 0x7FFFFFFF)
            if stream is not None:
                stream._grow_window(delta & 0x7FFFFFFF)
        # Unknown control frames are ignored, as the draft asks.

    def _on_settings(self, payload: bytes) -> None:
        (count,) = struct.unpack_from(">I", payload)
        for i in range(count):
            ident, value = struct.unpack_from(">II", payload, 4 + 8 * i)
            if ident & 0xFFFFFF == SETTINGS_INITIAL_WINDOW_SIZE:
                delta, self._peer_window = value - self._peer_window, value
                self._peer_flow_control = True
                for stream in self._streams.values():
                    stream._grow_window(delta)

    async def _on_syn_stream(self, stream_id: int, flags: int, headers: dict[str, str]) -> None:
        peer_parity = 1 if self.server else 0
        if stream_id % 2 != peer_parity or stream_id <= self._last_peer_id:
            await self._send(control_frame(RST_STREAM, 0,
                                           struct.pack(">II", stream_id, PROTOCOL_ERROR)),
                             quiet=True)
            return
        self._last_peer_id = stream_id
        if self._going_away:
            await self._send(control_frame(RST_STREAM, 0,
                                           struct.pack(">II", stream_id, REFUSED_STREAM)),
                             quiet=True)
            return
        stream = SpdyStream(self, stream_id, headers)
        stream._reply.set_result(None)
        self._streams[stream_id] = stream
        if flags & FLAG_UNIDIRECTIONAL:
            stream._local_done = True
        await self._send_headers(SYN_REPLY, 0, struct.pack(">I", stream_id), {})
        if flags & FLAG_FIN:
            stream._data(b"", True)
        self._incoming.put_nowait(stream)

    async def _on_data(self, stream_id: int, flags: int, payload: bytes) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # a stream already gone (reset, finished): drop, as spdystream does
        # Back-pressure: a reader that does not keep up stalls this connection's
        # reading (TCP then pushes back on a peer that ignores our window).
        await stream._drained.wait()
        stream._data(payload, bool(flags & FLAG_FIN))

    # -- teardown ------------------------------------------------------------

    def _maybe_forget(self, stream: SpdyStream) -> None:
        if stream._local_done and stream._remote_done and not stream._chunks:
            self._streams.pop(stream.id, None)

    def _shutdown(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        try:
            self._writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass
        for stream in list(self._streams.values()):
            stream._end(reset=False)
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(SpdyError("connection closed"))
        self._incoming.put_nowait(None)


async def upgrade(url: str, protocols: list[str], *, ssl=None,
                  headers: dict[str, str] | None = None
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]]:
    """POST to `url` asking to switch to SPDY/3.1 with each of `protocols` (as
    X-Stream-Protocol-Version); returns the raw transport after the server's 101 and
    that answer's headers (lower-case names). A refusal raises `UpgradeRefused`."""
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    port = parts.port or (443 if secure else 80)
    reader, writer = await asyncio.open_connection(parts.hostname, port,
                                                   ssl=ssl if secure else None)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: Upgrade",
             "Upgrade: SPDY/3.1", "Content-Length: 0"]
    lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as e:
        writer.close()
        raise SpdyError(f"upgrade to SPDY/3.1 failed: {e}") from None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip()
    status = status_line.split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        body = b""
        try:
            length = int(fields.get("content-length", "-1"))
            body = await aio.wait_for(
                reader.readexactly(length) if 0 <= length <= 65536 else reader.read(65536), 5)
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
            pass
        writer.close()
        code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        raise UpgradeRefused(code, status_line.strip(), fields, body)
    return reader, writer, fields


class UpgradeRefused(SpdyError):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, code: int, status_line: str, headers: dict[str, str], body: bytes):
        text = body.decode(errors="replace").strip()
        super().__init__(f"unable to upgrade connection: {status_line}"
                         + (f": {text}" if text else ""))
        self.code, self.headers, self.body = code, headers, body


async def connect(url: str, protocols: list[str], *, ssl=None,
                  headers: dict[str, str] | None = None) -> tuple[SpdyConnection, str]:
    """Upgrade an HTTP/1.1 POST to `url` to SPDY/3.1 and return the started client
    connection with the X-Stream-Protocol-Version the server chose."""
    reader, writer, fields = await upgrade(url, protocols, ssl=ssl, headers=headers)
    conn = SpdyConnection(reader, writer, server=False)
    conn.start()
    return conn, fields.get("x-stream-protocol-version", "")
