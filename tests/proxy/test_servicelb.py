"""ServiceLB: LoadBalancer Services get the Ready nodes' addresses as ingress."""
from __future__ import annotations

import asyncio
import time

import pytest

from pyk8s.client import Client
from pyk8s.client import resources as r
from pyk8s.client.fake import FakeAPI, FakeTransport
from pyk8s.client.informers import SharedInformer
from pyk8s.proxy.servicelb import ServiceLBController, node_ingress

from .objects import service


def node(name: str, internal: str, *, ready: bool = True, external: str | None = None) -> dict:
    addresses = [{"type": "InternalIP", "address": internal}]
    if external:
        addresses.append({"type": "ExternalIP", "address": external})
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": addresses,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def ingress(api: FakeAPI, name: str) -> list[str]:
    obj = api.get_object(r.SERVICES, name, namespace="ns")
    return [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)  # polling, bounded by the deadline


def test_external_ips_win_over_internal_and_unready_nodes_are_left_out():
    nodes = [node("a", "10.0.0.2"), node("b", "10.0.0.3", ready=False),
             node("c", "10.0.0.4", external="203.0.113.4")]
    assert node_ingress(nodes) == [{"ip": "203.0.113.4", "ipMode": "VIP"}]
    assert node_ingress(nodes[:2]) == [{"ip": "10.0.0.2", "ipMode": "VIP"}]


@pytest.fixture
async def controller():
    api = FakeAPI()
    client = Client(transport=FakeTransport(api))
    services = SharedInformer(client, r.SERVICES)
    nodes = SharedInformer(client, r.NODES)
    ctl = ServiceLBController(client, services, nodes)
    task = asyncio.create_task(ctl.run_with_informers())
    yield api
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await services.stop()
    await nodes.stop()


async def test_load_balancers_follow_the_nodes(controller):
    api = controller
    api.add(node("a", "10.0.0.2"))
    api.add(service("lb", "10.43.0.7", type="LoadBalancer", node_ports={"http": 30080}))
    api.add(service("plain", "10.43.0.8"))
    api.add(dict(service("other", "10.43.0.9", type="LoadBalancer"),
                 spec={**service("o", "10.43.0.9")["spec"], "type": "LoadBalancer",
                       "loadBalancerClass": "example.com/lb"}))
    await until(lambda: ingress(api, "lb") == ["10.0.0.2"])
    api.add(node("b", "10.0.0.3"))
    await until(lambda: ingress(api, "lb") == ["10.0.0.2", "10.0.0.3"])
    assert ingress(api, "plain") == [] and ingress(api, "other") == []
    api.remove(r.NODES, "a")
    await until(lambda: ingress(api, "lb") == ["10.0.0.3"])
