"""Port-forward to a real nginx pod: the kubelet's /portForward in the three ways
clients arrive, our SPDY client against containerd's streaming server (a Go
spdystream peer), and what users run: kubectl port-forward and the official client."""
from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import time

import aiohttp
import pytest

from pyk8s import aio
from pyk8s.cri.remote import RemoteRuntime
from pyk8s.kubelet import spdy

from .conftest import KUBECTL, _wait
from .test_node import apply, wait_phase
from .test_portforward import WebSocketTransport

pytestmark = pytest.mark.root

REQUEST = b"GET / HTTP/1.0\r\nHost: pf\r\n\r\n"


def insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


@pytest.fixture
def nginx(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "web", [{"name": "nginx", "image": "nginx",
                                         "ports": [{"containerPort": 80}]}])
    cluster.kubectl("label", "pod", "web", "-n", ns, "app=web")
    wait_phase(cluster, ns, "web", ("Running",))
    return ns


async def fetch_over_spdy(conn: spdy.SpdyConnection, port: int, request_id: str
                          ) -> tuple[bytes, bytes]:
    """One forwarded connection as kubectl makes it: error stream, then data stream."""
    headers = {"port": str(port), "requestID": request_id}
    error = await aio.wait_for(conn.open_stream({**headers, "streamType": "error"}), 10)
    await error.close_write()
    data = await aio.wait_for(conn.open_stream({**headers, "streamType": "data"}), 10)
    await data.write(REQUEST)
    body = b""
    while chunk := await aio.wait_for(data.read(), 20):
        body += chunk
    message = b""
    while chunk := await aio.wait_for(error.read(), 20):
        message += chunk
    return body, message


async def until_nginx(attempt) -> bytes:
    """Retry `attempt` (a fresh forwarded connection) until nginx listens."""
    deadline = time.monotonic() + 30
    while True:
        body, error = await attempt()
        if b"Welcome to nginx!" in body:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"nginx never answered: {body[:200]!r} {error!r}")
        await asyncio.sleep(0.2)


def test_our_spdy_client_talks_to_containerds_streaming_server(cluster, kubelet, nginx):
    uid = cluster.json("get", "pod", "web", "-n", nginx)["metadata"]["uid"]

    async def go():
        runtime = RemoteRuntime(kubelet.socket, request_timeout=10)
        try:
            [sandbox] = await runtime.list_pod_sandboxes(labels={"io.kubernetes.pod.uid": uid})
            count = 0

            async def attempt():
                nonlocal count
                url = await runtime.port_forward(sandbox.id)
                conn, protocol = await aio.wait_for(
                    spdy.connect(url, ["portforward.k8s.io"], ssl=insecure()), 10)
                assert protocol == "portforward.k8s.io"
                try:
                    count += 1
                    await aio.wait_for(conn.ping(), 10)  # spdystream echoes our PING
                    return await fetch_over_spdy(conn, 80, str(count))
                finally:
                    await conn.close()
            assert b"200 OK" in await until_nginx(attempt)
            url = await runtime.port_forward(sandbox.id)
            conn, _ = await spdy.connect(url, ["portforward.k8s.io"], ssl=insecure())
            try:
                body, error = await fetch_over_spdy(conn, 81, "0")
            finally:
                await conn.close()
            assert body == b""
            assert error.decode().startswith(f"error forwarding port 81 to pod {sandbox.id}, "
                                             "uid : failed to execute portforward in network "
                                             "namespace")
            assert "failed to connect to localhost:81 inside namespace" in error.decode()
        finally:
            await runtime.close()
    asyncio.run(go())


def test_the_kubelet_forwards_in_all_three_client_protocols(cluster, kubelet, nginx):
    base = f"https://127.0.0.1:{kubelet.port}/portForward/{nginx}/web"

    async def tunnelled() -> tuple[bytes, bytes]:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(base, protocols=["SPDY/3.1+portforward.k8s.io"],
                                    ssl=insecure()) as ws:
                conn = spdy.SpdyConnection(*[WebSocketTransport(ws)] * 2, server=False)
                conn.start()
                try:
                    return await fetch_over_spdy(conn, 80, "0")
                finally:
                    await conn.close()

    async def plain() -> tuple[bytes, bytes]:
        conn, protocol = await aio.wait_for(
            spdy.connect(base, ["portforward.k8s.io"], ssl=insecure()), 10)
        assert protocol == "portforward.k8s.io"
        try:
            return await fetch_over_spdy(conn, 80, "0")
        finally:
            await conn.close()

    async def channels() -> tuple[bytes, bytes]:
        got: dict[int, bytes] = {}
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(base + "?port=80", protocols=["v4.channel.k8s.io"],
                                    ssl=insecure()) as ws:
                assert ws.protocol == "v4.channel.k8s.io"
                assert await aio.wait_for(ws.receive_bytes(), 10) == b"\x00\x50\x00"
                assert await aio.wait_for(ws.receive_bytes(), 10) == b"\x01\x50\x00"
                await ws.send_bytes(b"\x00" + REQUEST)
                while True:
                    message = await aio.wait_for(ws.receive(), 20)
                    if message.type != aiohttp.WSMsgType.BINARY:
                        break
                    got[message.data[0]] = got.get(message.data[0], b"") + message.data[1:]
        return got.get(0, b""), got.get(1, b"")

    async def go():
        for way in (tunnelled, plain, channels):
            assert b"Welcome to nginx!" in await until_nginx(way), way.__name__
        async with aiohttp.ClientSession() as s:
            async with s.post(base.replace("/web", "/nope"), ssl=insecure(), headers={
                    "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                    "X-Stream-Protocol-Version": "portforward.k8s.io"}) as r:
                assert r.status == 404 and (await r.json())["message"] == "pod does not exist"
    asyncio.run(go())


def kubectl_port_forward(cluster, *args: str, **env: str) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig, HOME=str(cluster.data_dir), **env)
    proc = subprocess.Popen([KUBECTL, "port-forward", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()  # blocks until kubectl listens (or exits)
    m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 80", line)
    if not m:
        proc.kill()
        raise AssertionError(f"kubectl port-forward: {line!r} {proc.stderr.read()}")
    return proc, int(m.group(1))


def http_get(port: int) -> str:
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(REQUEST)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode(errors="replace")


def test_kubectl_port_forward_to_a_pod_and_a_service(cluster, kubelet, nginx):
    cluster.kubectl("expose", "pod", "web", "-n", nginx, "--port", "80", "--name", "web")
    # kubectl 1.32 tunnels SPDY in a WebSocket; with the feature off it upgrades to
    # SPDY directly (its fallback)
    for target, env in (("pod/web", {}), ("svc/web", {}),
                        ("pod/web", {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})):
        proc, port = kubectl_port_forward(cluster, target, ":80", "-n", nginx, **env)
        try:
            def welcome():
                page = http_get(port)
                return page if "Welcome to nginx!" in page else None
            page = _wait(welcome, timeout=30, what=f"nginx via {target}")
            assert "200 OK" in page
            assert proc.poll() is None  # still forwarding after the connection closed
        finally:
            proc.terminate()
            proc.wait(10)


def test_the_official_client_port_forwards(cluster, kubelet, nginx):
    from kubernetes import client, config
    from kubernetes.stream import portforward

    api = client.CoreV1Api(config.new_client_from_config(cluster.kubeconfig))

    def once():
        pf = portforward(api.connect_get_namespaced_pod_portforward, "web", nginx, ports="80")
        sock = pf.socket(80)
        try:
            sock.settimeout(20)
            sock.sendall(REQUEST)
            out = b""
            while chunk := sock.recv(65536):
                out += chunk
            return out.decode(errors="replace") if b"Welcome to nginx!" in out else None
        finally:
            sock.close()
            pf.close()

    page = _wait(once, timeout=30, what="nginx via the python client")
    assert "200 OK" in page
