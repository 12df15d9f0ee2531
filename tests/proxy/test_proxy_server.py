"""The proxy against a real API server: Services and EndpointSlices written through the
API become rules in a test namespace's "node", and packets follow them.

No kubelet is involved: the EndpointSlices point at pods of the test's own lab.
"""
from __future__ import annotations

import asyncio
import datetime
import time
import uuid

import pytest

from pyk8s.client import resources as r
from pyk8s.proxy.nft import HostCommands
from pyk8s.proxy.proxier import ProxySettings
from pyk8s.proxy.rules import NodeConfig
from pyk8s.proxy.server import ProxyServer

from .netlab import ask, sh

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


async def eventually(check, timeout: float = 15.0):
    """Poll the async ``check`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)  # polling interval, bounded by the deadline


def slice_body(service: str, ips: list[str], *, ready: bool = True, trigger: str | None = None):
    meta = {"name": f"{service}-manual", "labels": {"kubernetes.io/service-name": service}}
    if trigger:
        meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "n1"}
                          for ip in ips]}


@pytest.fixture
async def node(lab, api_client):
    ns = "px-" + uuid.uuid4().hex[:6]
    await api_client.create(r.NAMESPACES, {"metadata": {"name": ns}})
    for i, name in enumerate(("p1", "p2")):
        await lab.serve(lab.add_pod(name, 11 + i))
    sh("ip", "-n", lab.node, "route", "add", "blackhole", "10.42.0.0/16")
    sh("ip", "-n", lab.node, "route", "add", "blackhole", "10.43.0.0/16")
    cfg = NodeConfig(node_name="n1", table="pyk8s-test-" + uuid.uuid4().hex[:6],
                     node_ips=(lab.node_ip,))
    server = ProxyServer(api_client, [cfg], settings=ProxySettings(min_sync_period=0),
                         host=HostCommands(netns=lab.node))
    yield server, ns
    await server.stop()
    await server.cleanup()
    await api_client.delete(r.NAMESPACES, ns)


async def test_services_from_the_api_are_reachable_and_follow_changes(lab, api_client, node):
    server, ns = node
    svc = await api_client.create(r.SERVICES, {
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        namespace=ns)
    cluster_ip = svc["spec"]["clusterIP"]
    node_port = svc["spec"]["ports"][0]["nodePort"]
    await api_client.create(r.ENDPOINTSLICES, slice_body("web", [lab.pods["p1"].ip]), namespace=ns)
    await server.start()  # returns after the first full sync

    assert (await ask(lab.node, cluster_ip, 80)).startswith("p1 ")
    assert (await ask(lab.client, lab.node_ip, node_port)).startswith("p1 ")

    current = await api_client.get(r.ENDPOINTSLICES, "web-manual", namespace=ns)
    current["endpoints"] = slice_body("web", [lab.pods["p2"].ip])["endpoints"]
    await api_client.update(r.ENDPOINTSLICES, current, namespace=ns)

    async def moved():
        answers = [await ask(lab.node, cluster_ip, 80) for _ in range(3)]
        return all(a.startswith("p2 ") for a in answers)
    assert await eventually(moved)
    assert not server.proxier.last_plan_full

    await api_client.delete(r.SERVICES, "web", namespace=ns)

    async def gone():
        listing = sh("ip", "netns", "exec", lab.node, "nft", "list", "table", "ip",
                     server.proxier.cfg.table).stdout
        return f"{ns}/web" not in listing and cluster_ip not in listing
    assert await eventually(gone)


async def test_network_programming_latency_is_measured(lab, api_client, node):
    server, ns = node
    await server.start()
    await api_client.create(r.SERVICES, {
        "metadata": {"name": "lat"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
        namespace=ns)
    trigger = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    await api_client.create(r.ENDPOINTSLICES,
                            slice_body("lat", [lab.pods["p1"].ip], trigger=trigger), namespace=ns)

    async def measured():
        return [s for k, s in server.proxier.metrics.samples if k == (ns, "lat")]
    samples = await eventually(measured)
    assert samples and all(0 <= s < 10 for s in samples)
