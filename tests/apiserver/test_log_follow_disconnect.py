"""`kubectl logs -f` through the API server when one end of the stream goes away.

The kubelet is a stand-in: a TLS server that answers ``/containerLogs`` with one
chunk of log and then stays quiet, as a container that prints nothing more. It
records when the API server closes its connection, so these tests see that the
client leaving closes the kubelet stream at once (not at the container's next line),
and that a kubelet vanishing mid-stream ends the user's stream cleanly instead of
a 500 traceback in the server's log.
"""
import asyncio
import json
import os
import time
import uuid

import pytest

from pyk8s.aio import wait_for
from pyk8s.kubelet.server import self_signed, ssl_context
from support.cluster import KUBECTL


class QuietLogKubelet:
    """Answers a log request with ``hello`` and then nothing; ``vanish()`` aborts
    the connection mid-stream (no final chunk), as a kubelet that died."""

    def __init__(self, context):
        self.context = context
        self.server = None
        self.port = 0
        self.requests: list[str] = []
        self.closed = asyncio.Event()  # the API server closed the log connection
        self.closed_at = 0.0
        self.writers: list[asyncio.StreamWriter] = []
        self.handlers: list[asyncio.Task] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                 ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.vanish()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        self.server.close()
        await self.server.wait_closed()

    def vanish(self) -> None:
        for w in self.writers:
            w.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.handlers.append(asyncio.current_task())
        log_stream = False
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line = head.split("\r\n", 1)[0]
            self.requests.append(line)
            if "/containerLogs/" not in line:
                # The API server's metrics scraper (/stats/summary) at any time: answered
                # at once, so only a log stream's end can count as ``closed``.
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            log_stream = True
            self.writers.append(writer)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n")
            await writer.drain()
            # quiet from now on: only the peer closing (or vanish()) ends this
            while await reader.read(65536):
                pass
            self.closed_at = time.monotonic()
            self.closed.set()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            if log_stream:
                self.closed_at = time.monotonic()
                self.closed.set()
        finally:
            writer.close()


@pytest.fixture
async def kubelet(cluster, tmp_path):
    cert, key = self_signed(tmp_path, "quiet-node", ["127.0.0.1"])
    tls = os.path.join(cluster.data_dir, "server", "tls")
    k = QuietLogKubelet(ssl_context(cert, key, os.path.join(tls, "server-ca.crt")))
    await k.start()
    yield k
    await k.close()


@pytest.fixture
async def pod(cluster, ns, kubelet):
    node = "quiet-" + uuid.uuid4().hex[:6]
    await cluster.akubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}))
    await cluster.akubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p",
                           json.dumps({"status": {
                               "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}}}))
    await cluster.akubectl("create", "-n", ns, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quiet"},
         "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}))
    yield "quiet"
    await cluster.akubectl("delete", "node", node, "--wait=false", check=False)


async def follow(cluster, ns: str, pod: str) -> asyncio.subprocess.Process:
    """`kubectl logs -f`, its first line read."""
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig, HOME=cluster.data_dir)
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "logs", "-f", "-n", ns, pod, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = await wait_for(proc.stdout.readline(), 30)
    assert line == b"hello\n"
    return proc


def server_log(cluster) -> str:
    with open(os.path.join(cluster.data_dir, "server.log"), errors="replace") as f:
        return f.read()


async def test_client_leaving_closes_the_kubelet_stream_at_once(cluster, ns, pod, kubelet):
    proc = await follow(cluster, ns, pod)
    # (the metrics API may scrape this node's /stats/summary meanwhile)
    assert any("/containerLogs/" in r and "follow=true" in r for r in kubelet.requests), \
        kubelet.requests
    assert not kubelet.closed.is_set()
    proc.terminate()
    await proc.wait()
    left = time.monotonic()
    # the container says nothing more: only noticing the client closes the stream
    await wait_for(kubelet.closed.wait(), 5)
    assert kubelet.closed_at - left < 2.0


async def test_a_kubelet_vanishing_mid_stream_ends_the_stream_cleanly(cluster, ns, pod,
                                                                     kubelet):
    before = len(server_log(cluster))
    proc = await follow(cluster, ns, pod)
    kubelet.vanish()
    rest, err = await wait_for(proc.communicate(), 15)
    assert (proc.returncode, rest, err) == (0, b"", b"")
    # the server logged no traceback for it
    added = server_log(cluster)[before:]
    assert "Traceback" not in added and "ClientPayloadError" not in added, added
    # and still serves log requests
    r = await cluster.akubectl("get", "pod", "-n", ns, pod, "-o", "name")
    assert r.stdout.strip() == f"pod/{pod}"
