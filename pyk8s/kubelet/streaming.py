"""`kubectl exec` and `kubectl attach` on the kubelet (upstream's server.go getExec and
getAttach, remotecommand, and the API server's WebSocket-to-SPDY stream translator).

Role: serve GET and POST `/exec/{namespace}/{pod}/{container}?command=..&input=1&
output=1&error=1&tty=1` and `/attach/{namespace}/{pod}/{container}?input=..` with
upstream's kubelet query names. The pod is looked up in the kubelet's pod informer,
its running container in the runtime; CRI `Exec`/`Attach` answer a URL on
containerd's streaming server, and then:

- a client upgrading to `SPDY/3.1` (kubectl's fallback, relayed by the API server)
  is proxied to that URL unchanged, bytes both ways, as upstream's kubelet does;
- a WebSocket client (`v5.channel.k8s.io`: kubectl 1.32; `v4.channel.k8s.io`: the
  official Python client; `channel.k8s.io`, `base64.channel.k8s.io` and `v4.base64`)
  is bridged here: the kubelet connects to containerd as a SPDY client with
  `v4.channel.k8s.io` and maps channels (0 stdin, 1 stdout, 2 stderr, 3 error,
  4 resize) to the streams of the same `streamtype`. SPDY toward containerd because
  only a stream half-close carries stdin's EOF to the process (`kubectl cp` runs
  `tar xf -`); v5's close signal (`[255, 0]`) becomes that half-close.

Invariants:
- Every error before the upgrade answers a `Status` (400 bad options, 404 unknown
  pod or no running container, 500 runtime failure); nothing is upgraded then.
- The error channel carries containerd's v4 Status unchanged for v4/v5 clients
  (kubectl reads the exit code from its `ExitCode` cause); older protocols get its
  message only on failure, as upstream's v1 status writer.
- The WebSocket is closed only after stdout and stderr ended and the status was
  sent; a client that goes away ends the SPDY session (the runtime detaches).
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import ssl
from typing import Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from pyk8s import aio
from pyk8s.cri.runtime import ContainerState, CRIError, NotFound, Runtime
from pyk8s.kubelet import pods, spdy

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_CHANNEL = 255  # v5: [255, n] closes channel n

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
WEBSOCKET_PROTOCOLS = (V5, V4, V4_BASE64, V1, V1_BASE64)
RUNTIME_PROTOCOL = V4  # what the kubelet speaks to containerd's streaming server

STREAM_TYPES = {STDIN: "stdin", STDOUT: "stdout", STDERR: "stderr", RESIZE: "resize"}
UPGRADE_TIMEOUT = 30.0  # seconds for containerd's streaming server to answer


class StreamError(Exception):
    """A request answered with a Status before any upgrade."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> web.Response:
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code},
            status=self.code)


@dataclasses.dataclass(frozen=True)
class Options:
    """What the client asked to stream (upstream's remotecommand Options)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: tuple[str, ...] = ()


def _flag(query, name: str) -> bool:
    # upstream's kubelet reads "1"; "true" is what the API server's own query uses
    return query.get(name, "").lower() in ("1", "true")


def options_from_query(query, *, exec_: bool) -> Options:
    """Options from the kubelet's query (input/output/error/tty, command repeated)."""
    tty = _flag(query, "tty")
    stdin, stdout = _flag(query, "input"), _flag(query, "output")
    # as upstream: a tty merges stderr into stdout, so stderr is dropped, not refused
    stderr = _flag(query, "error") and not tty
    if not (stdin or stdout or stderr):
        raise StreamError(400, "BadRequest",
                          "you must specify at least 1 of stdin, stdout, stderr")
    command = tuple(query.getall("command", ())) if exec_ else ()
    if exec_ and not command:
        raise StreamError(400, "BadRequest",
                          "you must specify at least one command for the container")
    return Options(stdin=stdin, stdout=stdout, stderr=stderr, tty=tty, command=command)


def _upgrade_kind(request: web.Request) -> str:
    upgrade = request.headers.get("Upgrade", "").lower()
    connection = request.headers.get("Connection", "").lower()
    if "upgrade" not in [t.strip() for t in connection.split(",")]:
        return ""
    return {"websocket": "websocket", "spdy/3.1": "spdy"}.get(upgrade, "")


def check_websocket(request: web.Request) -> None:
    """Refuse, as upstream's handshake, a client offering none of our protocols
    (one offering none at all gets `channel.k8s.io`)."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
               if p.strip()]
    if offered and not set(offered) & set(WEBSOCKET_PROTOCOLS):
        raise StreamError(400, "BadRequest", f"unable to upgrade: requested protocol(s) are "
                          f"not supported: {offered}; supports {list(WEBSOCKET_PROTOCOLS)}")
    if not web.WebSocketResponse(protocols=WEBSOCKET_PROTOCOLS).can_prepare(request).ok:
        raise StreamError(400, "BadRequest", "unable to upgrade: not a valid WebSocket "
                          "handshake")


# ---- the WebSocket channel protocols ---------------------------------------------------

class ChannelCodec:
    """Frames of one negotiated channel protocol: a channel byte, then the data
    (binary), or a channel digit then base64 (text, the `base64` variants)."""

    def __init__(self, protocol: str):
        self.protocol = protocol
        self.text = "base64" in protocol
        self.v4_status = protocol in (V5, V4, V4_BASE64)
        self.close_signal = protocol == V5

    def encode(self, channel: int, data: bytes) -> bytes | str:
        if self.text:
            return chr(ord("0") + channel) + base64.b64encode(data).decode()
        return bytes([channel]) + data

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """(channel, data) of a client message; None for an empty or bad one."""
        if self.text:
            text = message if isinstance(message, str) else message.decode("latin-1")
            if not text:
                return None
            try:
                return ord(text[0]) - ord("0"), base64.b64decode(text[1:], validate=True)
            except ValueError:
                return None
        raw = message.encode() if isinstance(message, str) else message
        if not raw:
            return None
        return raw[0], raw[1:]

    def status(self, raw: bytes) -> bytes | None:
        """What goes on the error channel for containerd's v4 status `raw`."""
        if self.v4_status:
            return raw
        try:  # v1: nothing on success, the message on failure
            status = json.loads(raw)
        except ValueError:
            return raw or None
        if status.get("status") == "Success":
            return None
        return (status.get("message") or "").encode()


# ---- the handlers ----------------------------------------------------------------------

FindPod = Callable[[str, str], "dict | None"]


class StreamingServer:
    """The exec/attach routes of one kubelet: its pods and its runtime."""

    def __init__(self, *, find_pod: FindPod, runtime: Runtime):
        self.find_pod, self.runtime = find_pod, runtime

    def setup(self, app: web.Application) -> None:
        for kind in ("exec", "attach"):
            path = f"/{kind}/{{namespace}}/{{pod}}/{{container}}"
            app.router.add_get(path, self.handle)
            app.router.add_post(path, self.handle)

    async def container_id(self, namespace: str, pod_name: str, container: str) -> str:
        """The running container `container` of the pod (upstream's findContainer)."""
        pod = self.find_pod(namespace, pod_name)
        if pod is None:
            raise StreamError(404, "NotFound", "pod does not exist")
        labels = {pods.POD_UID_LABEL: pods.uid(pod), pods.CONTAINER_NAME_LABEL: container}
        try:
            found = await self.runtime.list_containers(state=ContainerState.RUNNING,
                                                       labels=labels)
        except CRIError as e:
            raise StreamError(500, "InternalError", e.message) from None
        if not found:
            raise StreamError(404, "NotFound", f"container not found ({container!r})")
        return max(found, key=lambda c: c.created_at).id

    async def runtime_url(self, kind: str, cid: str, opts: Options) -> str:
        try:
            if kind == "exec":
                return await self.runtime.exec(cid, opts.command, tty=opts.tty,
                                               stdin=opts.stdin, stdout=opts.stdout,
                                               stderr=opts.stderr)
            return await self.runtime.attach(cid, tty=opts.tty, stdin=opts.stdin,
                                             stdout=opts.stdout, stderr=opts.stderr)
        except NotFound as e:
            raise StreamError(404, "NotFound", e.message) from None
        except CRIError as e:
            raise StreamError(500, "InternalError", e.message) from None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.path.split("/", 2)[1]
        m = request.match_info
        try:
            opts = options_from_query(request.query, exec_=kind == "exec")
            upgrade = _upgrade_kind(request)
            if not upgrade:
                raise StreamError(400, "BadRequest", "Upgrade request required")
            if upgrade == "websocket":
                check_websocket(request)
            cid = await self.container_id(m["namespace"], m["pod"], m["container"])
            url = await self.runtime_url(kind, cid, opts)
            if upgrade == "spdy":
                return await proxy_spdy(request, url)
            return await self.bridge_websocket(request, url, opts)
        except StreamError as e:
            return e.response()

    async def bridge_websocket(self, request: web.Request, url: str,
                               opts: Options) -> web.StreamResponse:
        try:
            conn, _ = await aio.wait_for(
                spdy.connect(url, [RUNTIME_PROTOCOL], ssl=_runtime_tls(url)), UPGRADE_TIMEOUT)
        except (spdy.SpdyError, OSError, TimeoutError) as e:
            raise StreamError(500, "InternalError",
                              f"error connecting to the container runtime: {e}") from None
        try:
            streams = await aio.wait_for(open_streams(conn, opts), UPGRADE_TIMEOUT)
        except (spdy.SpdyError, OSError, TimeoutError) as e:
            await conn.close()
            raise StreamError(500, "InternalError",
                              f"error creating streams to the container runtime: {e}") from None
        ws = web.WebSocketResponse(protocols=WEBSOCKET_PROTOCOLS, max_msg_size=0)
        try:
            await ws.prepare(request)
            await Bridge(ws, ChannelCodec(ws.ws_protocol or V1), conn, streams, opts).run()
        finally:
            await conn.close()
            await ws.close()
        return ws


async def open_streams(conn: spdy.SpdyConnection, opts: Options) -> dict[int, spdy.SpdyStream]:
    """The streams a v4 client opens, in upstream's order: error first."""
    streams = {ERROR: await conn.open_stream({"streamtype": "error"})}
    wanted = [(STDIN, opts.stdin), (STDOUT, opts.stdout), (STDERR, opts.stderr),
              (RESIZE, opts.tty)]
    for channel, on in wanted:
        if on:
            streams[channel] = await conn.open_stream({"streamtype": STREAM_TYPES[channel]})
    return streams


class Bridge:
    """WebSocket channels <-> containerd's SPDY streams for one session."""

    def __init__(self, ws: web.WebSocketResponse, codec: ChannelCodec,
                 conn: spdy.SpdyConnection, streams: dict[int, spdy.SpdyStream],
                 opts: Options):
        self.ws, self.codec, self.conn, self.streams, self.opts = ws, codec, conn, streams, opts

    async def send(self, channel: int, data: bytes) -> None:
        frame = self.codec.encode(channel, data)
        if isinstance(frame, str):
            await self.ws.send_str(frame)
        else:
            await self.ws.send_bytes(frame)

    async def run(self) -> None:
        # as upstream: an empty frame on the lowest writable channel says "connected"
        first = STDOUT if self.opts.stdout else STDERR if self.opts.stderr else ERROR
        await self.send(first, b"")
        client = asyncio.create_task(self.from_client(), name="exec-from-client")
        try:
            async with asyncio.TaskGroup() as group:
                for channel in (STDOUT, STDERR):
                    if channel in self.streams:
                        group.create_task(self.pump(channel))
                status = group.create_task(self.read_status())
            message = self.codec.status(status.result())
            if message is not None and not self.ws.closed:
                await self.send(ERROR, message)
        except* ConnectionError:
            pass  # the client went away; the caller ends the runtime's session
        finally:
            client.cancel()
            try:
                await client
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise

    async def pump(self, channel: int) -> None:
        """One output stream to its channel, until the runtime ends it."""
        stream = self.streams[channel]
        while data := await stream.read():
            await self.send(channel, data)

    async def read_status(self) -> bytes:
        stream, chunks = self.streams[ERROR], []
        while data := await stream.read():
            chunks.append(data)
        raw = b"".join(chunks)
        if not raw:
            # the runtime ended without a status: never let that pass for success
            raw = json.dumps({"metadata": {}, "status": "Failure", "reason": "InternalError",
                              "message": "error reading from the container runtime: the "
                                         "stream ended without a status"}).encode()
        return raw

    async def from_client(self) -> None:
        """Client frames to stdin and resize; the client's close ends the session."""
        async for msg in self.ws:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                continue
            decoded = self.codec.decode(msg.data)
            if decoded is None:
                continue
            channel, data = decoded
            if channel == CLOSE_CHANNEL and self.codec.close_signal:
                if data and data[0] == STDIN and STDIN in self.streams:
                    await self.streams[STDIN].close_write()
            elif channel in (STDIN, RESIZE) and channel in self.streams and data:
                try:
                    await self.streams[channel].write(data)
                except spdy.SpdyError:
                    # the runtime closed the stream (the process exited): drop the
                    # rest, but keep the session until its output and status are in
                    del self.streams[channel]
        # the client is gone (or its socket broke): the session is over
        await self.conn.close()


# ---- SPDY clients: a plain proxy, as upstream's kubelet (proxyStream) ------------------

_HOP_HEADERS = ("connection", "upgrade", "x-stream-protocol-version")


def _runtime_tls(url: str) -> ssl.SSLContext | None:
    """TLS for a runtime whose streaming server has it (containerd's
    enable_tls_streaming: a certificate it made itself, for a URL it handed us over
    its local socket), else None."""
    if urlsplit(url).scheme != "https":
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


async def proxy_spdy(request: web.Request, url: str) -> web.StreamResponse:
    """Forward the client's upgrade request to `url`, relay the answer and, on
    101, copy bytes both ways until either side closes."""
    parts = urlsplit(url)
    try:
        reader, writer = await aio.wait_for(asyncio.open_connection(
            parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
            ssl=_runtime_tls(url)), UPGRADE_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise StreamError(500, "InternalError",
                          f"error connecting to the container runtime: {e}") from None
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{request.method} {target} HTTP/1.1", f"Host: {parts.netloc}",
                 "Connection: Upgrade", "Upgrade: SPDY/3.1", "Content-Length: 0"]
        lines += [f"X-Stream-Protocol-Version: {v}"
                  for v in request.headers.getall("X-Stream-Protocol-Version", ())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await aio.wait_for(reader.readuntil(b"\r\n\r\n"), UPGRADE_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError,
                TimeoutError) as e:
            raise StreamError(500, "InternalError",
                              f"error upgrading the container runtime's stream: {e}") from None
        status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        fields = [tuple(s.strip() for s in line.split(":", 1)) for line in header_lines
                  if ":" in line]
        code = int(status_line.split(" ", 2)[1])
        if code != 101:
            refusal = await _relay_refusal(reader, code, fields)
            writer.close()
            return refusal
        response = aio.SwitchedResponse(status=101, reason="Switching Protocols")
        for name, value in fields:
            if name.lower() in _HOP_HEADERS:
                response.headers.add(name, value)
    except BaseException:
        writer.close()
        raise
    return await aio.splice(request, response, reader, writer)


async def _relay_refusal(reader: asyncio.StreamReader, code: int,
                         fields: list[tuple[str, str]]) -> web.Response:
    headers = {k.lower(): v for k, v in fields}
    length = int(headers.get("content-length") or 0)
    body = b""
    if length:
        try:
            body = await aio.wait_for(reader.readexactly(min(length, 1 << 16)), 5)
        except (asyncio.IncompleteReadError, OSError, TimeoutError):
            pass
    return web.Response(status=code, body=body,
                        content_type=headers.get("content-type", "text/plain").split(";")[0])


def routes(kubelet) -> Callable[[web.Application], None]:
    """The `server.make_app` setup adding exec and attach for `kubelet`."""
    server = StreamingServer(find_pod=kubelet.informer.store.get_object,
                             runtime=kubelet.runtime)
    return server.setup
