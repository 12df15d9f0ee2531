"""A kubelet's `/logs/` and its static pods from a manifest URL, as users see them
through a real API server: `kubectl get --raw /api/v1/nodes/<node>/proxy/logs/...`
lists and reads the node's log directory, and a pod the manifest URL serves shows
up in `kubectl get pods` as its mirror pod.

The kubelet is pyk8s' Kubelet on FakeRuntime (no containerd) with a node identity,
its HTTPS endpoint set up as `pyk8s server` sets it up (auth.SECURE, the API
server's client certificate), its log directory a temporary one
(KubeletSettings.system_log_dir) and its manifest URL a server of the test on
127.0.0.1.
"""
import asyncio
import json
import os
import socket
import uuid

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pyk8s.client.config import load_config
from pyk8s.client.rest import Client
from pyk8s.cri.fake import FakeRuntime
from pyk8s.kubelet import syslogs
from pyk8s.kubelet.auth import SECURE, KubeletAuth
from pyk8s.kubelet.eviction import PodUsage
from pyk8s.kubelet.kubelet import Kubelet
from pyk8s.kubelet.nodestatus import MachineInfo
from pyk8s.kubelet.server import make_app, self_signed, ssl_context
from pyk8s.kubelet.settings import KubeletSettings
from security_helpers import cert_kubeconfig
from support.waiting import poll

MACHINE = MachineInfo(cpus=4, memory=8 << 30, memory_available=6 << 30,
                      filesystem=100 << 30, filesystem_available=50 << 30,
                      machine_id="m1", system_uuid="u1", boot_id="b1", kernel="6.1.0",
                      os_image="Debian GNU/Linux 12 (bookworm)", architecture="amd64",
                      hostname="logs-node")


class NoPressure:
    """Eviction signals of a node with room to spare."""

    async def observe(self):
        return {}

    async def pod_usage(self, pod):
        return PodUsage()


@pytest.fixture
async def node(cluster, ns, tmp_path):
    name = "kl-" + uuid.uuid4().hex[:6]
    kubeconfig = await asyncio.to_thread(cert_kubeconfig, cluster, f"system:node:{name}",
                                         ("system:nodes",))
    client = Client(load_config(kubeconfig))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "from-url", "namespace": ns},
           "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
    body = json.dumps({"apiVersion": "v1", "kind": "PodList", "items": [pod]}).encode()

    async def serve(request):
        return web.Response(body=body)
    app = web.Application()
    app.router.add_get("/pods", serve)
    manifests = TestServer(app, host="127.0.0.1")
    await manifests.start_server()

    logs = tmp_path / "log"
    (logs / "pods").mkdir(parents=True)
    (logs / "kubelet.log").write_text("I0101 12:00:00 kubelet started\n")
    (tmp_path / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = KubeletSettings(
        node_name=name, data_dir=tmp_path / "data", pod_cidr="10.42.251.0/24",
        node_ip="127.0.0.1", address="127.0.0.1", port=sock.getsockname()[1],
        resolv_conf=tmp_path / "resolv.conf", manifest_url=str(manifests.make_url("/pods")),
        http_check_frequency=1.0, system_log_dir=logs)
    runtime = FakeRuntime(images=["busybox", "registry.k8s.io/pause:3.9"])
    kubelet = Kubelet(settings, client=client, runtime=runtime, machine=MACHINE,
                      node_ip="127.0.0.1", read_machine=lambda: MACHINE,
                      eviction_stats=NoPressure())
    cert, key = self_signed(tmp_path / "pki", name, ["127.0.0.1"])
    ca = os.path.join(cluster.data_dir, "server", "tls", "server-ca.crt")
    callers = KubeletAuth(SECURE, client=client, node_name=name)
    runner = web.AppRunner(make_app(kubelet, setups=[syslogs.routes(settings.system_log_dir)],
                                    middlewares=[callers.middleware]), handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context(cert, key, ca)).start()
    await kubelet.start()
    try:
        yield name, ns
    finally:
        await kubelet.stop()
        await runner.cleanup()
        await client.close()
        await manifests.close()
        await cluster.akubectl("delete", "pod", f"from-url-{name}", "-n", ns,
                               "--grace-period=0", "--force", check=False)
        await cluster.akubectl("delete", "node", name, "--wait=false", check=False)


async def test_node_logs_and_a_manifest_url_pod_through_the_api(cluster, node):
    name, ns = node

    async def reachable():  # the kubelet's first status posts its address and port
        r = await cluster.akubectl("get", "node", name, "-o", "jsonpath={.status.addresses}",
                                   check=False)
        return "127.0.0.1" in r.stdout
    await poll(reachable, "the node's address", timeout=30)
    r = await cluster.akubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/logs/kubelet.log")
    assert r.stdout == "I0101 12:00:00 kubelet started\n"
    r = await cluster.akubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/logs/")
    assert r.stdout.endswith('<pre>\n<a href="kubelet.log">kubelet.log</a>\n'
                             '<a href="pods/">pods/</a>\n</pre>\n')
    r = await cluster.akubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/logs/missing.log",
                               check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
    # nothing above the log directory, however the path is written
    r = await cluster.akubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/logs/%2e%2e/"
                               "resolv.conf", check=False)
    assert "nameserver" not in r.stdout and r.returncode != 0

    mirror = f"from-url-{name}"

    async def listed():
        r = await cluster.akubectl("get", "pods", "-n", ns, "--no-headers", "-o",
                                   "custom-columns=NAME:.metadata.name,STATUS:.status.phase,"
                                   "NODE:.spec.nodeName", check=False)
        return r.stdout.split() == [mirror, "Running", name]
    await poll(listed, "the manifest URL's pod in kubectl get pods", timeout=30)
    notes = json.loads((await cluster.akubectl(
        "get", "pod", mirror, "-n", ns, "-o", "json")).stdout)["metadata"]["annotations"]
    assert notes["kubernetes.io/config.source"] == "http"
    assert notes["kubernetes.io/config.mirror"] == notes["kubernetes.io/config.hash"]
