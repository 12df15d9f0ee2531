"""The kubelet's callers checked by a real API server: TokenReviews and
SubjectAccessReviews posted with the node's own credentials, and the API server's
way in (its client certificate) still open for `kubectl logs` and nodes/proxy.

The kubelet is pyk8s' HTTPS app with auth.SECURE (as `pyk8s server` runs it) and a
stand-in log reader; no containerd is involved.
"""
import asyncio
import json
import os
import ssl
import uuid

import aiohttp
import pytest
from aiohttp import web

from pyk8s.client.config import load_config
from pyk8s.client.rest import Client
from pyk8s.kubelet.auth import SECURE, KubeletAuth
from pyk8s.kubelet.server import make_app, self_signed, ssl_context
from security_helpers import cert_kubeconfig


class Logs:
    async def read_logs(self, namespace, pod, container=None, **kw):
        async def stream():
            yield f"log of {namespace}/{pod}/{container}\n".encode()
        return stream()


@pytest.fixture
async def kubelet(cluster, tmp_path):
    node = "kn-" + uuid.uuid4().hex[:6]
    kubeconfig = await asyncio.to_thread(cert_kubeconfig, cluster, f"system:node:{node}",
                                         ("system:nodes",))
    client = Client(load_config(kubeconfig))
    auth = KubeletAuth(SECURE, client=client, node_name=node)
    cert, key = self_signed(tmp_path, node, ["127.0.0.1"])
    ca = os.path.join(cluster.data_dir, "server", "tls", "server-ca.crt")
    runner = web.AppRunner(make_app(Logs(), middlewares=[auth.middleware]),
                           handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context(cert, key, ca)).start()
    port = runner.addresses[0][1]
    await cluster.akubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}))
    await cluster.akubectl("patch", "node", node, "--subresource=status", "--type=merge",
                           "-p", json.dumps({"status": {
                               "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    yield node, f"https://127.0.0.1:{port}"
    await runner.cleanup()
    await client.close()
    await cluster.akubectl("delete", "node", node, "--wait=false", check=False)


async def get(url: str, token: str) -> tuple[int, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    async with aiohttp.ClientSession() as s:
        async with s.get(url, ssl=ctx, headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, await r.text()


async def test_kubectl_logs_and_node_proxy_pass_the_kubelets_checks(cluster, ns, kubelet):
    node, _ = kubelet
    await cluster.akubectl("create", "-n", ns, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
         "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}}))
    r = await cluster.akubectl("logs", "-n", ns, "web")
    assert r.stdout == f"log of {ns}/web/app\n"
    r = await cluster.akubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/containerLogs/"
                               f"{ns}/web/app")
    assert r.stdout == f"log of {ns}/web/app\n"


async def test_service_account_tokens_need_nodes_proxy(cluster, ns, kubelet):
    node, url = kubelet
    for sa in ("reader", "nobody"):
        await cluster.akubectl("create", "serviceaccount", sa, "-n", ns)
    role = "kubelet-reader-" + ns
    await cluster.akubectl("create", "clusterrole", role, "--verb=get",
                           "--resource=nodes/proxy")
    await cluster.akubectl("create", "clusterrolebinding", role, f"--clusterrole={role}",
                           f"--serviceaccount={ns}:reader")
    try:
        reader = (await cluster.akubectl("create", "token", "reader", "-n", ns)).stdout.strip()
        nobody = (await cluster.akubectl("create", "token", "nobody", "-n", ns)).stdout.strip()
        # RBAC is served from the watch cache: wait until the grant is visible
        deadline = asyncio.get_running_loop().time() + 30
        while (await cluster.akubectl("auth", "can-i", "get", "nodes", "--subresource=proxy",
                                      f"--as=system:serviceaccount:{ns}:reader",
                                      check=False)).stdout.strip() != "yes":
            assert asyncio.get_running_loop().time() < deadline, "the grant never showed"
            await asyncio.sleep(0.2)
        assert await get(url + "/containerLogs/a/b/c", reader) == (200, "log of a/b/c\n")
        assert await get(url + "/containerLogs/a/b/c", nobody) == (
            403, f"Forbidden (user=system:serviceaccount:{ns}:nobody, verb=get, "
                 f"resource=nodes, subresource=proxy)")
        assert (await get(url + "/stats/summary", reader))[0] == 403  # nodes/stats
        assert await get(url + "/containerLogs/a/b/c", "not-a-token") == (401, "Unauthorized")
    finally:
        await cluster.akubectl("delete", "clusterrolebinding,clusterrole", role, check=False)
