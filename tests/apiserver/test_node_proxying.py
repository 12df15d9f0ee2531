"""pods/exec, pods/attach and pods/portforward through the API server to a kubelet.

The kubelet is a stand-in (fakekubelet.py) that asks for the API server's client
certificate, so these tests see what the API server sends to a node and what a client
gets back: kubectl and the official client reading the stand-in's answers through
the upgraded connection, Status errors, and RBAC on the WebSocket upgrade.
"""
import asyncio
import json
import os
import ssl
import uuid

import aiohttp
import pytest

from fakekubelet import FakeKubelet
from pyk8s.kubelet.server import self_signed, ssl_context


def tls_dir(cluster):
    return os.path.join(cluster.data_dir, "server", "tls")


def admin_ssl(cluster) -> ssl.SSLContext:
    d = tls_dir(cluster)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "server-ca.crt"))
    ctx.load_cert_chain(os.path.join(d, "client-admin.crt"), os.path.join(d, "client-admin.key"))
    return ctx


@pytest.fixture
async def kubelet(cluster, tmp_path):
    cert, key = self_signed(tmp_path, "fake-node", ["127.0.0.1"])
    # Client certificates from the cluster CA only: the API server must present its own.
    k = FakeKubelet(ssl_context(cert, key, os.path.join(tls_dir(cluster), "server-ca.crt")))
    await k.start()
    yield k
    await k.close()


def add_node(cluster, port: int) -> str:
    name = "node-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
    cluster.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": {
                        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    return name


def add_pod(cluster, ns: str, name: str, node: str = "", containers=("app",)) -> None:
    spec = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    if node:
        spec["nodeName"] = node
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))


@pytest.fixture
async def pod(cluster, ns, kubelet):
    node = await asyncio.to_thread(add_node, cluster, kubelet.port)
    await asyncio.to_thread(add_pod, cluster, ns, "web", node)
    return "web"


def ws_headers(protocol: str) -> dict:
    return {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": protocol}


async def request(cluster, method: str, path: str, headers=None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, cluster.url + path, headers=headers,
                             ssl=admin_ssl(cluster)) as r:
            body = await r.read()
            return r.status, (json.loads(body) if body else {})


async def test_kubectl_exec_runs_on_the_kubelet_with_upstreams_query(cluster, ns, pod,
                                                                     kubelet):
    r = await cluster.akubectl("exec", "-n", ns, pod, "--", "echo", "hi there")
    assert r.stdout == f"ran /exec/{ns}/{pod}/app?command=echo&command=hi+there&error=1" \
                       f"&output=1\n"
    method, _, headers = kubelet.requests[-1]
    assert method == "GET" and headers["sec-websocket-protocol"].startswith("v5.channel")
    assert "authorization" not in headers


async def test_kubectl_exec_with_stdin_streams_both_ways(cluster, ns, pod):
    r = await cluster.akubectl("exec", "-i", "-n", ns, pod, "--", "cat", input="hello\n")
    assert r.stdout.splitlines() == [f"ran /exec/{ns}/{pod}/app?command=cat&error=1&input=1"
                                     f"&output=1", "hello"]


async def test_kubectl_attach_goes_to_the_attach_endpoint(cluster, ns, pod):
    r = await cluster.akubectl("attach", "-n", ns, pod, "-c", "app")
    assert f"ran /attach/{ns}/{pod}/app?error=1&output=1" in r.stdout


async def test_python_client_exec_over_v4(cluster, ns, pod, client):
    from kubernetes import client as k8s
    from kubernetes.stream import stream

    def run():
        return stream(k8s.CoreV1Api(client).connect_get_namespaced_pod_exec, pod, ns,
                      command=["ls", "/"], stderr=True, stdin=False, stdout=True, tty=False)
    out = await asyncio.to_thread(run)
    assert out == f"ran /exec/{ns}/{pod}/app?command=ls&command=%2F&error=1&output=1\n"


async def test_portforward_websocket_is_piped_to_the_kubelet(cluster, ns, pod, kubelet):
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(
                f"{cluster.url}/api/v1/namespaces/{ns}/pods/{pod}/portforward?ports=80",
                protocols=("SPDY/3.1+portforward.k8s.io",), ssl=admin_ssl(cluster)) as ws:
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            for payload in (b"one", b"two" * 30000):
                await ws.send_bytes(payload)
                msg = await ws.receive(timeout=10)
                assert msg.data == payload
    assert kubelet.requests[-1][1] == f"/portForward/{ns}/{pod}?port=80&ports=80"


async def test_spdy_upgrade_by_post_is_piped_raw(cluster, ns, pod, kubelet):
    reader, writer = await asyncio.open_connection("127.0.0.1", cluster.port,
                                                   ssl=admin_ssl(cluster),
                                                   server_hostname="127.0.0.1")
    try:
        writer.write(f"POST /api/v1/namespaces/{ns}/pods/{pod}/exec?command=ls&stdout=true "
                     f"HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                     f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                     f"X-Stream-Protocol-Version: channel.k8s.io\r\n"
                     f"Content-Length: 0\r\n\r\n".encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
        assert head.startswith("HTTP/1.1 101 ")
        assert "X-Stream-Protocol-Version: v4.channel.k8s.io" in head
        # Bytes that would not parse as HTTP: the API server must not read them as such.
        frame = b"\x80\x03\x00\x01\x01\x00\x00\x0aspdy-frame"
        writer.write(frame)
        echoed = await asyncio.wait_for(reader.readexactly(len(frame)), 10)
        assert echoed == frame
    finally:
        writer.close()
    method, target, headers = kubelet.requests[-1]
    assert (method, target) == ("POST", f"/exec/{ns}/{pod}/app?command=ls&output=1")
    assert headers["upgrade"] == "SPDY/3.1"


async def test_errors_are_statuses_like_upstream(cluster, ns, pod, kubelet):
    base = f"/api/v1/namespaces/{ns}/pods"
    code, body = await request(cluster, "GET", f"{base}/{pod}/exec?command=ls&stdout=1")
    assert (code, body["message"]) == (400, "Upgrade request required")
    code, body = await request(cluster, "GET", f"{base}/nope/exec?command=ls",
                               ws_headers("v5.channel.k8s.io"))
    assert (code, body["reason"], body["message"]) == (404, "NotFound",
                                                       'pods "nope" not found')
    await asyncio.to_thread(add_pod, cluster, ns, "pending")
    code, body = await request(cluster, "POST", f"{base}/pending/attach?stdout=1",
                               {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"})
    assert (code, body["message"]) == (400, "pod pending does not have a host assigned")
    code, body = await request(cluster, "GET", f"{base}/{pod}/exec?container=db&command=ls",
                               ws_headers("v5.channel.k8s.io"))
    assert (code, body["message"]) == (400, f"container db is not valid for pod {pod}")
    code, body = await request(cluster, "PUT", f"{base}/{pod}/exec?command=ls")
    assert code == 405


async def test_a_kubelet_status_reaches_the_client(cluster, ns, kubelet):
    node = await asyncio.to_thread(add_node, cluster, kubelet.port)
    await asyncio.to_thread(add_pod, cluster, ns, "two", node, ("app", "broken"))
    base = f"/api/v1/namespaces/{ns}/pods/two/exec?command=ls&stdout=1"
    code, body = await request(cluster, "GET", base, ws_headers("v5.channel.k8s.io"))
    assert code == 400 and "a container name must be specified for pod two" in \
        body["message"]
    code, body = await request(cluster, "GET", base + "&container=broken",
                               ws_headers("v5.channel.k8s.io"))
    assert (code, body.get("message")) == (400, "container is broken"), body


async def test_an_unreachable_kubelet_is_a_dial_error(cluster, ns):
    from support.cluster import free_port
    node = await asyncio.to_thread(add_node, cluster, free_port())
    await asyncio.to_thread(add_pod, cluster, ns, "lost", node)
    r = await cluster.akubectl("exec", "-n", ns, "lost", "--", "ls", check=False)
    assert r.returncode != 0 and "error dialing backend" in r.stderr


async def test_websocket_exec_needs_create_as_well_as_get(cluster, ns, pod, kubelet):
    user = "u-" + uuid.uuid4().hex[:6]
    rule = lambda verbs: json.dumps({  # noqa: E731
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "execer"},
        "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs}]})
    await cluster.akubectl("apply", "-n", ns, "-f", "-", input=rule(["get"]))
    await cluster.akubectl("create", "rolebinding", "execer", "-n", ns, "--role=execer",
                           f"--user={user}")
    path = f"/api/v1/namespaces/{ns}/pods/{pod}/exec?command=ls&stdout=1"
    headers = dict(ws_headers("v5.channel.k8s.io"), **{"Impersonate-User": user})
    code, body = await request(cluster, "GET", path, headers)
    assert code == 403
    assert f'User "{user}" cannot create resource "pods/exec" in API group "" in the ' \
           f'namespace "{ns}"' in body["message"]
    await cluster.akubectl("apply", "-n", ns, "-f", "-", input=rule(["get", "create"]))

    async def allowed():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(cluster.url + path, protocols=("v5.channel.k8s.io",),
                                    headers={"Impersonate-User": user},
                                    ssl=admin_ssl(cluster)) as ws:
                return (await ws.receive(timeout=10)).data
    deadline = asyncio.get_running_loop().time() + 30  # RBAC is read from the watch cache
    while True:
        try:
            data = await allowed()
            break
        except aiohttp.WSServerHandshakeError as err:
            if err.status != 403 or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
    assert data.startswith(b"\x01ran /exec/")
    assert "impersonate-user" not in kubelet.requests[-1][2]
