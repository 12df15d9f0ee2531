"""kube-proxy's health servers: /healthz and /livez, and the per-Service health check
on ``healthCheckNodePort`` that external load balancers ask (127.0.0.1 only)."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from pyk8s.client import FakeClock
from pyk8s.proxy.health import ProxyHealth, ServiceHealthServer
from pyk8s.proxy.nft import FakeHost
from pyk8s.proxy.proxier import Proxier, ProxySettings
from pyk8s.proxy.rules import NodeConfig

from .apiserver import free_port
from .objects import endpoint, endpoint_slice, service

CFG = NodeConfig(node_name="n1", node_ips=("192.0.2.10",))


async def get(port: int, path: str = "/") -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
            return resp.status, dict(resp.headers), json.loads(await resp.text())


async def test_healthz_turns_unhealthy_when_a_queued_change_is_late():
    clock = FakeClock()
    health = ProxyHealth(timeout=60, clock=clock)
    port = free_port()
    await health.serve("127.0.0.1", port)
    try:
        status, headers, body = await get(port, "/healthz")
        assert status == 200 and body["nodeEligible"] is True
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Content-Type-Options"] == "nosniff"
        health.queued_update("IPv4")
        clock.advance(59)
        assert (await get(port, "/healthz"))[0] == 200
        clock.advance(1)
        status, _, body = await get(port, "/healthz")
        assert status == 503 and body["lastUpdated"] == "0001-01-01 00:00:00 +0000 UTC"
        assert (await get(port, "/livez"))[0] == 503
        health.updated("IPv4")
        assert (await get(port, "/livez"))[0] == 200
        # A node marked for deletion fails /healthz but not /livez.
        health.sync_node({"metadata": {"name": "n1"}, "spec": {"taints": [
            {"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}})
        status, _, body = await get(port, "/healthz")
        assert status == 503 and body["nodeEligible"] is False
        assert (await get(port, "/livez"))[0] == 200
    finally:
        await health.close()


def lb_local(hc_port: int) -> dict:
    return service("web", "10.43.0.5", type="LoadBalancer", node_ports={"http": 30080},
                   externalTrafficPolicy="Local", healthCheckNodePort=hc_port)


@pytest.fixture
async def proxier():
    health = ProxyHealth()
    checks = ServiceHealthServer(health, addresses=("127.0.0.1",))
    p = Proxier(FakeHost(), CFG, ProxySettings(min_sync_period=0), health=health,
                service_health=checks, defer_chain_delete=False)
    task = asyncio.create_task(p.run())
    p.set_services_synced()
    p.set_slices_synced()
    yield p
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await checks.close()


async def test_service_health_check_counts_local_ready_endpoints(proxier):
    port = free_port()
    proxier.on_service_add(lb_local(port))
    slice_ = endpoint_slice("web", [
        endpoint("10.42.0.11"), endpoint("10.42.0.12"),
        endpoint("10.42.0.13", ready=False),  # unready: not counted
        endpoint("10.42.1.14", node="n2")])  # another node's: not counted
    proxier.on_slice_add(slice_)
    await proxier.wait_applied()
    status, headers, body = await get(port, "/anything")
    assert status == 200
    assert body == {"service": {"namespace": "ns", "name": "web"}, "localEndpoints": 2,
                    "serviceProxyHealthy": True}
    assert headers["Content-Type"] == "application/json"
    # Only another node's endpoint left: this node tells the load balancer to go away.
    proxier.on_slice_update(slice_, endpoint_slice("web", [endpoint("10.42.1.14", node="n2")]))
    await proxier.wait_applied()
    status, _, body = await get(port)
    assert status == 503 and body["localEndpoints"] == 0
    # Cluster policy needs no health check: the listener closes.
    proxier.on_service_update(None, service("web", "10.43.0.5", type="LoadBalancer",
                                            node_ports={"http": 30080},
                                            externalTrafficPolicy="Cluster"))
    await proxier.wait_applied()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(port)


async def test_a_taken_port_is_retried_at_the_next_sync(proxier):
    port = free_port()
    blocker = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        proxier.on_service_add(lb_local(port))
        proxier.on_slice_add(endpoint_slice("web", [endpoint("10.42.0.11")]))
        await proxier.wait_applied()
        assert ("ns", "web") not in proxier.service_health.services
    finally:
        blocker.close()
        await blocker.wait_closed()
    proxier.on_slice_update(None, endpoint_slice("web", [endpoint("10.42.0.11"),
                                                         endpoint("10.42.0.12")]))
    await proxier.wait_applied()
    status, _, body = await get(port)
    assert status == 200 and body["localEndpoints"] == 2
