"""The kubelet's /portForward: the three ways clients arrive (WebSocket-tunnelled
SPDY, plain SPDY, v4 channels), against a stand-in for containerd's streaming
server that speaks SPDY port-forward like it (a real one: test_portforward_node.py)."""
import asyncio
import struct
from types import SimpleNamespace

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from pyk8s import aio
from pyk8s.cri.runtime import SandboxState
from pyk8s.kubelet import portforward, spdy
from pyk8s.kubelet.server import make_app

POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}}
REFUSED = ("error forwarding port 81 to pod sb-1, uid : failed to execute portforward in "
           "network namespace \"/run/netns/x\": failed to connect to localhost:81")


class WebSocketTransport:
    """reader/writer for SpdyConnection over a client WebSocket (kubectl's tunnel)."""

    def __init__(self, ws):
        self.ws, self.buffer, self.out = ws, b"", []

    async def read(self, n: int) -> bytes:
        while not self.buffer:
            message = await self.ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                return b""
            self.buffer = message.data
        chunk, self.buffer = self.buffer[:n], self.buffer[n:]
        return chunk

    def write(self, data: bytes) -> None:
        self.out.append(data)

    async def drain(self) -> None:
        data, self.out = b"".join(self.out), []
        if data:
            await self.ws.send_bytes(data)

    def close(self) -> None:
        asyncio.ensure_future(self.ws.close())


class StreamingServer:
    """Answers SPDY port-forward as containerd does: per (error, data) pair, port 80
    answers what it read, upper-cased; port 81 fails on the error stream."""

    def __init__(self):
        self.upgrades: list[str] = []
        self.server = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/portforward/tok"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.upgrades.append(head)
        if "X-Stream-Protocol-Version: portforward.k8s.io\r\n" not in head:
            body = b"unable to upgrade: unable to negotiate protocol"
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
        conn = spdy.SpdyConnection(reader, writer, server=True)
        conn.start()
        pairs: dict[str, dict] = {}
        tasks = []
        while (stream := await conn.accept_stream()) is not None:
            pair = pairs.setdefault(stream.headers["requestid"], {})
            pair[stream.headers["streamtype"]] = stream
            if len(pair) == 2:
                tasks.append(asyncio.ensure_future(self.forward(pair)))
        await asyncio.gather(*tasks, return_exceptions=True)
        await conn.close()

    async def forward(self, pair):
        data, error = pair["data"], pair["error"]
        if data.headers["port"] == "81":
            await error.write(REFUSED.encode())
        else:
            received = b""
            while chunk := await data.read():
                received += chunk
                if received.endswith(b"\r\n\r\n"):
                    break
            await data.write(b"port 80 says " + received.upper())
        await data.close_write()
        await error.close_write()


class Runtime:
    def __init__(self, url):
        self.url = url

    async def list_pod_sandboxes(self, *, state=None, labels=None, id=None):
        assert state == SandboxState.READY and labels == {"io.kubernetes.pod.uid": "u-1"}
        return [SimpleNamespace(id="sb-1", created_at=1)]

    async def port_forward(self, sandbox_id, ports=()):
        assert sandbox_id == "sb-1"
        return self.url


async def kubelet_client():
    backend = StreamingServer()
    url = await backend.start()
    forwarder = portforward.PortForwarder(
        find_pod=lambda ns, name: POD if (ns, name) == ("ns", "web") else None,
        runtime=Runtime(url))
    app = make_app(SimpleNamespace(), setups=[forwarder.setup])
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, backend


async def read_all(stream) -> bytes:
    out = b""
    while chunk := await aio.wait_for(stream.read(), 10):
        out += chunk
    return out


async def forward_over(conn: spdy.SpdyConnection, port: int, request_id: str,
                       payload: bytes) -> tuple[bytes, bytes]:
    """What kubectl does per local connection: error stream, then data stream."""
    headers = {"port": str(port), "requestID": request_id}
    error = await aio.wait_for(conn.open_stream({**headers, "streamType": "error"}), 10)
    await error.close_write()
    data = await aio.wait_for(conn.open_stream({**headers, "streamType": "data"}), 10)
    await data.write(payload)
    return await read_all(data), await read_all(error)


async def test_websocket_tunnelled_spdy_as_kubectl_1_32():
    client, backend = await kubelet_client()
    try:
        ws = await client.ws_connect("/portForward/ns/web",
                                     protocols=["SPDY/3.1+portforward.k8s.io"])
        assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
        conn = spdy.SpdyConnection(*[WebSocketTransport(ws)] * 2, server=False)
        conn.start()
        assert await forward_over(conn, 80, "0", b"get / http/1.0\r\n\r\n") == (
            b"port 80 says GET / HTTP/1.0\r\n\r\n", b"")
        data, error = await forward_over(conn, 81, "1", b"x")
        assert data == b"" and error.decode() == REFUSED
        await aio.wait_for(conn.ping(), 10)  # containerd's peer answers through the relay
        await conn.close()
        assert "POST /portforward/tok HTTP/1.1" in backend.upgrades[0]
    finally:
        await client.close()
        await backend.stop()


async def test_plain_spdy_upgrade_is_proxied_to_the_runtime():
    client, backend = await kubelet_client()
    try:
        url = str(client.make_url("/portForward/ns/web"))
        conn, protocol = await aio.wait_for(spdy.connect(url, ["portforward.k8s.io"]), 10)
        assert protocol == "portforward.k8s.io"
        assert await forward_over(conn, 80, "0", b"hello\r\n\r\n") == (
            b"port 80 says HELLO\r\n\r\n", b"")
        await conn.close()
        # a protocol the runtime does not speak: its refusal comes back
        try:
            await aio.wait_for(spdy.connect(url, ["portforward.k8s.io.v2"]), 10)
            raise AssertionError("upgrade should have been refused")
        except spdy.UpgradeRefused as e:
            assert e.code == 403 and b"unable to negotiate protocol" in e.body
    finally:
        await client.close()
        await backend.stop()


async def test_v4_channels_as_the_python_client():
    client, backend = await kubelet_client()
    try:
        ws = await client.ws_connect("/portForward/ns/web?ports=80,81",
                                     protocols=["v5.channel.k8s.io", "v4.channel.k8s.io"])
        assert ws.protocol == "v4.channel.k8s.io"
        first = [await aio.wait_for(ws.receive_bytes(), 10) for _ in range(4)]
        assert first == [bytes([0]) + struct.pack("<H", 80), bytes([1]) + struct.pack("<H", 80),
                         bytes([2]) + struct.pack("<H", 81), bytes([3]) + struct.pack("<H", 81)]
        await ws.send_bytes(b"\x00GET / HTTP/1.0\r\n\r\n")
        got: dict[int, bytes] = {}
        while True:
            message = await aio.wait_for(ws.receive(), 10)
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            got[message.data[0]] = got.get(message.data[0], b"") + message.data[1:]
        assert got == {0: b"port 80 says GET / HTTP/1.0\r\n\r\n", 3: REFUSED.encode()}
    finally:
        await client.close()
        await backend.stop()


async def test_errors_before_any_upgrade_are_statuses():
    client, backend = await kubelet_client()
    try:
        r = await client.get("/portForward/ns/nope", headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "portforward.k8s.io"})
        assert r.status == 404 and (await r.json())["message"] == "pod does not exist"
        r = await client.get("/portForward/ns/web")
        assert r.status == 400 and (await r.json())["message"] == "Upgrade request required"
        r = await client.get("/portForward/ns/web", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": "v4.channel.k8s.io"})
        assert r.status == 400
        assert (await r.json())["message"] == 'query parameter "port" is required'
        r = await client.get("/portForward/ns/web?port=0", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": "v4.channel.k8s.io"})
        assert r.status == 400 and (await r.json())["message"] == 'port "0" must be > 0'
        assert backend.upgrades == []
    finally:
        await client.close()
        await backend.stop()
