"""`kubectl port-forward` on the kubelet: `/portForward/{namespace}/{pod}` (upstream's
server.go getPortForward and the cri/streaming/portforward package).

Role: find the pod's ready sandbox, ask the runtime for a port-forward URL on its
streaming server (CRI `PortForward`; containerd dials `localhost:<port>` inside the
pod's network namespace there), and serve the three ways clients arrive, the API
server passing each request through unchanged:

- WebSocket `SPDY/3.1+portforward.k8s.io` (kubectl 1.32's default): SPDY frames
  tunnelled in binary messages. The kubelet upgrades to SPDY on the runtime's URL
  and relays bytes: message payloads to the runtime, the runtime's bytes back as
  binary messages (what upstream's API server tunnelling handler does before its
  kubelet proxies to the runtime).
- POST `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`
  (kubectl's fallback): proxied to the runtime's URL, the runtime's 101 and then
  bytes both ways, as upstream's kubelet does (`proxyStream`).
- WebSocket `v4.channel.k8s.io` / `v4.base64.channel.k8s.io` / none (the official
  Python client, `port` or `ports` query): bridged here. Per port i, channel 2i
  carries data and 2i+1 errors; each channel's first server message is the port as
  2 bytes little-endian. The kubelet is a SPDY client of the runtime and opens an
  error and a data stream per port, with the headers kubectl would send.

Invariants:
- Every failure before the upgrade answers a Status: 404 "pod does not exist" for
  a pod this kubelet does not know, 404 when it has no ready sandbox, 400 for bad
  ports, 500 when the runtime cannot be reached; nothing is upgraded then.
- Errors while forwarding are the runtime's own text on the error stream
  (`error forwarding port 81 to pod <sandbox>, uid : failed to execute portforward
  ...`), relayed unchanged.
- PINGs are answered: by containerd's SPDY peer for the relayed ways, by our SPDY
  connection toward it and aiohttp's WebSocket autoping for the bridged one.
- Every connection to the runtime is closed when the client's ends, and the
  client's when every forwarded port is done.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import ssl as ssl_module
import struct
from typing import Callable

import aiohttp
from aiohttp import web

from pyk8s import aio
from pyk8s.cri.runtime import CRIError, Runtime, SandboxState
from pyk8s.kubelet import pods, spdy

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"               # X-Stream-Protocol-Version (v1)
TUNNEL = "SPDY/3.1+" + PROTOCOL               # WebSocket-tunnelled SPDY
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
WEBSOCKET_PROTOCOLS = (TUNNEL, V4, V4_BASE64)
CHUNK = 64 * 1024
UPGRADE_TIMEOUT = 30.0  # seconds for the runtime's streaming server to answer

FindPod = Callable[[str, str], "dict | None"]


class PortForwardError(Exception):
    """A request answered with a Status before any upgrade."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> web.Response:
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code},
            status=self.code)


def ports_from_query(query) -> list[int]:
    """The ports of a WebSocket request (upstream's NewV4Options): repeated `port`
    (the kubelet's name) or, from a pass-through of the API's options, `ports`."""
    name = "port" if "port" in query else "ports"
    values = query.getall(name, [])
    if not values:
        raise PortForwardError(400, "BadRequest", 'query parameter "port" is required')
    ports = []
    for value in values:
        if not value:
            raise PortForwardError(400, "BadRequest", 'query parameter "port" cannot be empty')
        for part in value.split(","):
            try:
                port = int(part)
                if not 0 <= port <= 65535:
                    raise ValueError
            except ValueError:
                raise PortForwardError(400, "BadRequest", f'unable to parse "{value}" as a '
                                       f'port: strconv.ParseUint: parsing "{part}": invalid '
                                       'syntax') from None
            if port < 1:
                raise PortForwardError(400, "BadRequest", f'port "{value}" must be > 0')
            ports.append(port)
    return ports


def _upgrade_kind(request: web.Request) -> str:
    connection = [t.strip() for t in request.headers.get("Connection", "").lower().split(",")]
    if "upgrade" not in connection:
        return ""
    return {"websocket": "websocket", "spdy/3.1": "spdy"}.get(
        request.headers.get("Upgrade", "").lower(), "")


class PortForwarder:
    """The port-forward route of one kubelet: its pods and its runtime."""

    def __init__(self, *, find_pod: FindPod, runtime: Runtime):
        self.find_pod, self.runtime = find_pod, runtime
        # containerd's streaming server may serve TLS with a self-signed certificate
        # on loopback; what it serves is already the runtime's to trust.
        self.runtime_ssl = ssl_module.create_default_context()
        self.runtime_ssl.check_hostname = False
        self.runtime_ssl.verify_mode = ssl_module.CERT_NONE

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/portForward/{namespace}/{pod}", self.handle)
        app.router.add_post("/portForward/{namespace}/{pod}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = _upgrade_kind(request)
        try:
            if not kind:
                raise PortForwardError(400, "BadRequest", "Upgrade request required")
            ports = ports_from_query(request.query) if kind == "websocket" and (
                self._websocket_protocol(request) != TUNNEL) else []
            url = await self.url(request.match_info["namespace"], request.match_info["pod"])
        except PortForwardError as e:
            return e.response()
        m = request.match_info
        if kind == "spdy":
            log.info("port-forward to pod %s/%s: SPDY, proxied", m["namespace"], m["pod"])
            return await self._proxy_spdy(request, url)
        if self._websocket_protocol(request) == TUNNEL:
            log.info("port-forward to pod %s/%s: SPDY in WebSocket, relayed",
                     m["namespace"], m["pod"])
            return await self._tunnel(request, url)
        log.info("port-forward to pod %s/%s: WebSocket channels, ports %s", m["namespace"],
                 m["pod"], ports)
        return await self._bridge(request, url, ports)

    @staticmethod
    def _websocket_protocol(request: web.Request) -> str:
        offered = [p.strip() for p in
                   request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        # the first offered protocol we speak, as aiohttp's handshake picks it
        return next((p for p in offered if p in WEBSOCKET_PROTOCOLS), "")

    async def url(self, namespace: str, name: str) -> str:
        """The runtime's port-forward URL for the pod's ready sandbox."""
        pod = self.find_pod(namespace, name)
        if pod is None:
            raise PortForwardError(404, "NotFound", "pod does not exist")
        try:
            sandboxes = await self.runtime.list_pod_sandboxes(
                state=SandboxState.READY, labels={pods.POD_UID_LABEL: pods.uid(pod)})
            if not sandboxes:
                raise PortForwardError(404, "NotFound",
                                       f'pod not found ("{name}_{namespace}")')
            newest = max(sandboxes, key=lambda s: s.created_at)
            return await self.runtime.port_forward(newest.id)
        except CRIError as e:
            raise PortForwardError(500, "InternalError", e.message) from None

    async def _upgrade(self, url: str, protocols: list[str]):
        try:
            return await aio.wait_for(spdy.upgrade(url, protocols, ssl=self.runtime_ssl),
                                      UPGRADE_TIMEOUT)
        except spdy.UpgradeRefused:
            raise
        except (spdy.SpdyError, OSError, TimeoutError, ssl_module.SSLError) as e:
            raise PortForwardError(500, "InternalError",
                                   f"error dialing the runtime's streaming server: {e}") from None

    # ---- plain SPDY: proxied ----------------------------------------------------------

    async def _proxy_spdy(self, request: web.Request, url: str) -> web.StreamResponse:
        protocols = [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])
                     for p in v.split(",") if p.strip()]
        try:
            reader, writer, headers = await self._upgrade(url, protocols)
        except spdy.UpgradeRefused as e:
            # the runtime's refusal (a protocol it does not speak: 403) goes back as is
            return web.Response(status=e.code or 500, body=e.body,
                                content_type=e.headers.get("content-type", "text/plain")
                                .split(";")[0])
        except PortForwardError as e:
            return e.response()
        response = aio.SwitchedResponse(status=101, reason="Switching Protocols")
        response.headers.update({"Connection": "Upgrade", "Upgrade": "SPDY/3.1"})
        if headers.get("x-stream-protocol-version"):
            response.headers["X-Stream-Protocol-Version"] = headers["x-stream-protocol-version"]
        return await aio.splice(request, response, reader, writer, limit=CHUNK)

    # ---- WebSocket-tunnelled SPDY: relayed --------------------------------------------

    async def _tunnel(self, request: web.Request, url: str) -> web.StreamResponse:
        try:
            reader, writer, _ = await self._upgrade(url, [PROTOCOL])
        except spdy.UpgradeRefused as e:
            return PortForwardError(500, "InternalError", str(e)).response()
        except PortForwardError as e:
            return e.response()
        ws = web.WebSocketResponse(protocols=(TUNNEL,), max_msg_size=0)
        try:
            await ws.prepare(request)
        except BaseException:
            writer.close()
            raise

        async def upstream() -> None:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    writer.write(message.data)
                    await writer.drain()
                elif message.type == aiohttp.WSMsgType.ERROR:
                    return

        async def downstream() -> None:
            while data := await reader.read(CHUNK):
                await ws.send_bytes(data)

        await aio.relay((upstream(), downstream()), writer)
        await ws.close()
        return ws

    # ---- WebSocket channels: bridged --------------------------------------------------

    async def _bridge(self, request: web.Request, url: str,
                      ports: list[int]) -> web.StreamResponse:
        try:
            conn, _ = await self._connect(url)
        except PortForwardError as e:
            return e.response()
        ws = web.WebSocketResponse(protocols=(V4, V4_BASE64), max_msg_size=0)
        try:
            await ws.prepare(request)
        except BaseException:
            await conn.close()
            raise
        codec = _Codec(text=ws.ws_protocol == V4_BASE64)
        bridges = [_PortBridge(ws, codec, conn, i, port) for i, port in enumerate(ports)]
        try:
            for bridge in bridges:
                await bridge.announce()
            forwarding = [asyncio.ensure_future(b.run()) for b in bridges]
            reading = asyncio.ensure_future(_dispatch(ws, codec, bridges))
            try:
                # Done when every port is done (the client is then closed) or the
                # client went away (the runtime's streams are then ended).
                done = asyncio.ensure_future(asyncio.gather(*forwarding))
                await asyncio.wait([done, reading], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (*forwarding, reading):
                    task.cancel()
                await asyncio.gather(*forwarding, reading, return_exceptions=True)
        except (ConnectionError, spdy.SpdyError) as e:
            log.debug("port-forward bridge ended: %s", e)
        finally:
            await conn.close()
            await ws.close()
        return ws

    async def _connect(self, url: str) -> tuple[spdy.SpdyConnection, str]:
        try:
            reader, writer, headers = await self._upgrade(url, [PROTOCOL])
        except spdy.UpgradeRefused as e:
            raise PortForwardError(500, "InternalError", str(e)) from None
        conn = spdy.SpdyConnection(reader, writer, server=False)
        conn.start()
        return conn, headers.get("x-stream-protocol-version", "")


class _Codec:
    """v4 channel framing: a channel byte then data (binary), or a channel digit then
    base64 (text, `v4.base64.channel.k8s.io`)."""

    def __init__(self, *, text: bool):
        self.text = text

    async def send(self, ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
        if self.text:
            await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await ws.send_bytes(bytes([channel]) + data)

    def decode(self, message: aiohttp.WSMessage) -> tuple[int, bytes] | None:
        if message.type == aiohttp.WSMsgType.BINARY and message.data:
            return message.data[0], message.data[1:]
        if message.type == aiohttp.WSMsgType.TEXT and message.data:
            try:
                if self.text:
                    return ord(message.data[0]) - ord("0"), base64.b64decode(message.data[1:])
                raw = message.data.encode()
                return raw[0], raw[1:]
            except ValueError:
                return None
        return None


class _PortBridge:
    """One forwarded port of a channel WebSocket: an error and a data stream on the
    runtime's SPDY connection, with the headers kubectl sends (requestID = index)."""

    def __init__(self, ws, codec: _Codec, conn: spdy.SpdyConnection, index: int, port: int):
        self.ws, self.codec, self.conn = ws, codec, conn
        self.index, self.port = index, port
        self.data_channel, self.error_channel = 2 * index, 2 * index + 1
        self.data: spdy.SpdyStream | None = None
        self.pending: list[bytes] = []  # client bytes before the data stream is open

    async def announce(self) -> None:
        prefix = struct.pack("<H", self.port)
        await self.codec.send(self.ws, self.data_channel, prefix)
        await self.codec.send(self.ws, self.error_channel, prefix)

    async def run(self) -> None:
        headers = {"port": str(self.port), "requestID": str(self.index)}
        error = await self.conn.open_stream({**headers, "streamType": "error"})
        await error.close_write()  # as kubectl: the error stream only reads
        data = await self.conn.open_stream({**headers, "streamType": "data"})
        while self.pending:  # what the client sent meanwhile, in order
            await data.write(self.pending.pop(0))
        self.data = data
        errors = asyncio.ensure_future(self._errors(error))
        try:
            while chunk := await data.read():
                await self.codec.send(self.ws, self.data_channel, chunk)
        finally:
            # The runtime closes the error stream once forwarding is over: its
            # message, if any, is on the client's error channel before we finish.
            try:
                await aio.wait_for(asyncio.shield(errors), 5.0)
            except TimeoutError:
                errors.cancel()

    async def _errors(self, error: spdy.SpdyStream) -> None:
        message = bytearray()
        while chunk := await error.read():
            message += chunk
        if message:
            await self.codec.send(self.ws, self.error_channel, bytes(message))

    async def feed(self, data: bytes) -> None:
        if self.data is None:
            self.pending.append(data)
            return
        try:
            await self.data.write(data)
        except spdy.SpdyError:
            pass  # the runtime ended this port; its error, if any, is on its way

    async def client_closed(self) -> None:
        if self.data is not None:
            try:
                await self.data.close_write()
            except spdy.SpdyError:
                pass


async def _dispatch(ws: web.WebSocketResponse, codec: _Codec,
                    bridges: list[_PortBridge]) -> None:
    """Client messages to their port's data stream, until the client closes."""
    by_channel = {b.data_channel: b for b in bridges}
    try:
        async for message in ws:
            decoded = codec.decode(message)
            if decoded is None:
                continue
            channel, data = decoded
            bridge = by_channel.get(channel)
            if bridge is not None and data:
                await bridge.feed(data)
    finally:
        for bridge in bridges:
            await bridge.client_closed()


def routes(kubelet) -> Callable[[web.Application], None]:
    """The `server.make_app` setup adding port-forward for `kubelet`."""
    return PortForwarder(find_pod=kubelet.informer.store.get_object,
                         runtime=kubelet.runtime).setup
