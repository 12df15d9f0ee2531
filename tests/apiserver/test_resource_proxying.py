"""pods/proxy, services/proxy and nodes/proxy through the API server.

Pods are stand-ins: an HTTP server on 127.0.0.1 that answers with what it received,
and Pod objects whose status.podIP is 127.0.0.1 (this API server runs with
PYK8S_PROXY_ALLOW_LOOPBACK=1, which lets the proxy reach loopback). The node's kubelet
is pyk8s' own kubelet HTTPS app asking for client certificates from the cluster CA.
"""
import asyncio
import gzip
import json
import os
import ssl
import uuid

import aiohttp
import pytest
from aiohttp import web

from support.cluster import KUBECTL, Cluster, free_port
from pyk8s.kubelet.server import make_app, self_signed, ssl_context


@pytest.fixture(scope="module")
def pcluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("proxy")), free_port())
    os.environ["PYK8S_PROXY_ALLOW_LOOPBACK"] = "1"
    try:
        c.start()
    finally:
        del os.environ["PYK8S_PROXY_ALLOW_LOOPBACK"]
    yield c
    c.stop()


@pytest.fixture
def pns(pcluster):
    name = "p-" + uuid.uuid4().hex[:8]
    pcluster.kubectl("create", "namespace", name)
    pcluster.kubectl("apply", "-n", name, "-f", "-", input='{"apiVersion": "v1", "kind": '
                     '"ServiceAccount", "metadata": {"name": "default"}}')
    return name


def admin_ssl(cluster) -> ssl.SSLContext:
    d = os.path.join(cluster.data_dir, "server", "tls")
    ctx = ssl.create_default_context(cafile=os.path.join(d, "server-ca.crt"))
    ctx.load_cert_chain(os.path.join(d, "client-admin.crt"), os.path.join(d, "client-admin.key"))
    return ctx


PAGE = ("<html><body><a href=\"/docs/\">docs</a> <img alt=x src='/img/x.png'/>"
        "<a href=\"http://example.com/\">out</a> <a href=\"rel.html\">rel</a>"
        "<p data-x=\"/not/a/link\">if (a<b) {}</p></body></html>")


async def echo(request: web.Request) -> web.StreamResponse:
    if request.path == "/ws":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str("echo " + msg.data)
        return ws
    if request.path == "/redirect":
        raise web.HTTPFound("/login?next=1")
    if request.path in ("/page", "/page.gz"):
        body = PAGE.encode()
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if request.path == "/page.gz":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)
    body = await request.read()
    return web.json_response(
        {"method": request.method, "path": request.path, "query": request.query_string,
         "headers": {k.lower(): v for k, v in request.headers.items()},
         "body": body.decode()},
        status=201 if request.method == "POST" else 200, headers={"X-Backend": "pod"})


@pytest.fixture
async def backend():
    runner = web.AppRunner(web.Application(), handle_signals=False)
    runner.app.router.add_route("*", "/{tail:.*}", echo)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # a port of its own: no race
    yield runner.addresses[0][1]
    await runner.cleanup()


def create(cluster, ns: str, obj: dict) -> None:
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(obj))


def add_pod(cluster, ns: str, name: str, ip: str = "127.0.0.1", ports=()) -> None:
    container = {"name": "app", "image": "nginx"}
    if ports:
        container["ports"] = [{"containerPort": p} for p in ports]
    create(cluster, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                         "spec": {"containers": [container]}})
    cluster.kubectl("patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}}))


async def raw(cluster, method: str, path: str, *, auto_decompress: bool = True, **kw):
    async with aiohttp.ClientSession(auto_decompress=auto_decompress) as s:
        async with s.request(method, cluster.url + path, ssl=admin_ssl(cluster),
                             allow_redirects=False, **kw) as r:
            return r.status, r.headers, await r.read()


async def test_kubectl_reads_a_pod_through_its_proxy(pcluster, pns, backend):
    await asyncio.to_thread(add_pod, pcluster, pns, "web")
    r = await pcluster.akubectl("get", "--raw", f"/api/v1/namespaces/{pns}/pods/web:{backend}"
                                f"/proxy/hello/world?x=1&y=two")
    seen = json.loads(r.stdout)
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/hello/world",
                                                             "x=1&y=two")
    assert "authorization" not in seen["headers"]
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["host"] == f"127.0.0.1:{backend}"
    prefix = f"/api/v1/namespaces/{pns}/pods/web:{backend}/proxy"
    assert seen["headers"]["x-forwarded-uri"] == prefix + "/hello/world"
    assert seen["headers"]["x-forwarded-proto"] == "https"


async def test_backend_redirects_come_back_under_the_proxy_path(pcluster, pns, backend):
    await asyncio.to_thread(add_pod, pcluster, pns, "web")
    prefix = f"/api/v1/namespaces/{pns}/pods/web:{backend}/proxy"
    code, headers, _ = await raw(pcluster, "GET", prefix + "/redirect")
    assert code == 302
    assert headers["Location"] == f"{pcluster.url}{prefix}/login?next=1"


async def test_pod_proxy_port_defaults_and_trailing_slash(pcluster, pns, backend):
    await asyncio.to_thread(add_pod, pcluster, pns, "declared", ports=(backend,))
    base = f"/api/v1/namespaces/{pns}/pods/declared/proxy"
    code, headers, _ = await raw(pcluster, "GET", base + "?a=b")
    assert code == 301 and headers["Location"] == base + "/?a=b"
    code, _, body = await raw(pcluster, "GET", base + "/")
    assert code == 200 and json.loads(body)["path"] == "/"


async def test_post_bodies_statuses_and_headers_pass_through(pcluster, pns, backend):
    await asyncio.to_thread(add_pod, pcluster, pns, "web")
    code, headers, body = await raw(
        pcluster, "POST", f"/api/v1/namespaces/{pns}/pods/web:{backend}/proxy/submit",
        data=b"x" * 200_000, headers={"Content-Type": "text/plain"})
    seen = json.loads(body)
    assert code == 201 and headers["X-Backend"] == "pod"
    assert seen["method"] == "POST" and seen["body"] == "x" * 200_000
    assert seen["headers"]["content-type"] == "text/plain"


async def test_websocket_through_pod_proxy(pcluster, pns, backend):
    await asyncio.to_thread(add_pod, pcluster, pns, "web")
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{pcluster.url}/api/v1/namespaces/{pns}/pods/web:{backend}"
                                f"/proxy/ws", ssl=admin_ssl(pcluster)) as ws:
            await ws.send_str("hi")
            assert (await ws.receive(timeout=10)).data == "echo hi"


async def test_unroutable_pod_addresses_are_refused(pcluster, pns):
    await asyncio.to_thread(add_pod, pcluster, pns, "linklocal", "169.254.1.1")
    r = await pcluster.akubectl("get", "--raw", f"/api/v1/namespaces/{pns}/pods/linklocal:80"
                                f"/proxy/", check=False)
    assert r.returncode != 0 and "address not allowed" in r.stderr
    r = await pcluster.akubectl("get", "--raw", f"/api/v1/namespaces/{pns}/pods/a:b:c:d"
                                f"/proxy/", check=False)
    assert 'invalid pod request "a:b:c:d"' in r.stderr


async def test_service_proxy_picks_a_ready_endpoint(pcluster, pns, backend):
    def setup():
        add_pod(pcluster, pns, "web")
        add_pod(pcluster, pns, "unready", "127.0.0.2")
        create(pcluster, pns, {"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": "svc"},
                               "spec": {"ports": [{"name": "http", "port": 80}]}})
        create(pcluster, pns, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                               "metadata": {"name": "svc-a", "labels": {
                                   "kubernetes.io/service-name": "svc"}},
                               "addressType": "IPv4",
                               "endpoints": [
                                   {"addresses": ["127.0.0.1"],
                                    "conditions": {"ready": True}, "targetRef": {
                                        "kind": "Pod", "name": "web", "namespace": pns}},
                                   {"addresses": ["127.0.0.2"],
                                    "conditions": {"ready": False}, "targetRef": {
                                        "kind": "Pod", "name": "unready",
                                        "namespace": pns}}],
                               "ports": [{"name": "http", "port": backend}]})
        create(pcluster, pns, {"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": "empty"},
                               "spec": {"ports": [{"port": 80}]}})
    await asyncio.to_thread(setup)
    base = f"/api/v1/namespaces/{pns}/services"
    for ident in ("svc:80", "svc:http", "http:svc:http") * 3:  # never the unready one
        r = await pcluster.akubectl("get", "--raw", f"{base}/{ident}/proxy/p?q=1")
        assert json.loads(r.stdout)["path"] == "/p", ident
    r = await pcluster.akubectl("get", "--raw", f"{base}/svc:81/proxy/", check=False)
    assert 'no service port 81 found for service "svc"' in r.stderr
    code, _, body = await raw(pcluster, "GET", f"{base}/empty/proxy/")
    assert code == 503
    assert json.loads(body)["message"] == 'no endpoints available for service "empty"'


class Logs:
    async def read_logs(self, namespace, pod, container=None, **kw):
        async def stream():
            yield f"log of {namespace}/{pod}/{container}\n".encode()
        return stream()


async def test_node_proxy_reaches_the_kubelet_with_the_api_servers_certificate(
        pcluster, backend, tmp_path):
    cert, key = self_signed(tmp_path, "node", ["127.0.0.1"])
    ca = os.path.join(pcluster.data_dir, "server", "tls", "server-ca.crt")
    runner = web.AppRunner(make_app(Logs()), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context(cert, key, ca)).start()
    kubelet_port = runner.addresses[0][1]
    try:
        name = "n-" + uuid.uuid4().hex[:6]
        await pcluster.akubectl("create", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
        await pcluster.akubectl("patch", "node", name, "--subresource=status",
                                "--type=merge", "-p", json.dumps({"status": {
                                    "addresses": [{"type": "InternalIP",
                                                   "address": "127.0.0.1"}],
                                    "daemonEndpoints": {"kubeletEndpoint": {
                                        "Port": kubelet_port}}}}))
        r = await pcluster.akubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/healthz")
        assert r.stdout == "ok"
        r = await pcluster.akubectl("get", "--raw", f"/api/v1/nodes/{name}:{kubelet_port}"
                                    f"/proxy/containerLogs/ns/p/c")
        assert r.stdout == "log of ns/p/c\n"
        r = await pcluster.akubectl("get", "--raw", f"/api/v1/nodes/{name}:{backend}/proxy/x")
        assert json.loads(r.stdout)["path"] == "/x"
    finally:
        await runner.cleanup()


def test_redirects_elsewhere_are_left_alone():
    from pyk8s.apiserver.proxying import Location, rewrite_location
    backend = Location("http", "10.42.0.5", 8080, "/")
    kw = dict(backend=backend, request_host="api:6443", scheme="https",
              prefix="/api/v1/namespaces/n/pods/p/proxy")
    assert rewrite_location("https://example.com/x", **kw) == "https://example.com/x"
    assert rewrite_location("relative/path", **kw) == "relative/path"
    assert rewrite_location("http://10.42.0.5:8080/a/", **kw) == \
        "https://api:6443/api/v1/namespaces/n/pods/p/proxy/a/"
    assert rewrite_location("/api/v1/namespaces/n/pods/p/proxy/b", **kw) == \
        "https://api:6443/api/v1/namespaces/n/pods/p/proxy/b"


async def test_html_links_are_rewritten_under_the_proxy_path(pcluster, pns, backend):
    await asyncio.to_thread(add_pod, pcluster, pns, "web")
    prefix = f"/api/v1/namespaces/{pns}/pods/web:{backend}/proxy"
    base = pcluster.url + prefix
    expected = (f'<html><body><a href="{base}/docs/">docs</a> <img alt=x src="{base}'
                f'/img/x.png"/><a href="http://example.com/">out</a> <a href="rel.html">'
                f'rel</a><p data-x="/not/a/link">if (a<b) {{}}</p></body></html>')
    code, headers, body = await raw(pcluster, "GET", prefix + "/page")
    assert code == 200 and body.decode() == expected
    assert int(headers["Content-Length"]) == len(body)
    code, headers, body = await raw(pcluster, "GET", prefix + "/page.gz",
                                    headers={"Accept-Encoding": "gzip"},
                                    auto_decompress=False)
    assert code == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).decode() == expected
