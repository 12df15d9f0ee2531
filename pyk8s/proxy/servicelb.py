"""ServiceLB: LoadBalancer Services get the nodes' addresses as ingress, like k3s's.

Role: without a cloud, a ``type: LoadBalancer`` Service would stay ``<pending>``.
As k3s's ServiceLB does, this controller writes the addresses of the cluster's
Ready nodes (their ExternalIPs if any node has one, else their InternalIPs) into
``status.loadBalancer.ingress`` with ``ipMode: VIP``; every node's proxy then
captures ``<node address>:<port>`` for the Service (the ``service-ips`` map),
so no per-Service pods are needed (k3s uses hostPort "svclb" pods instead).

Invariants:
- Only LoadBalancer Services without ``spec.loadBalancerClass`` are handled; a
  Service that stops being one has its ingress cleared (if this controller could
  have set it: no class).
- ``sync`` is level-triggered and idempotent: it writes only when the desired
  ingress differs from the status, with the resourceVersion it read (a conflict
  retries with back-off).
- A node change re-evaluates every LoadBalancer Service.
- Run it once per cluster: ``run`` (what ``pyk8s server`` starts) works only while
  holding the ``kube-system/pyk8s-servicelb`` Lease, so several servers on one
  etcd never fight over a status; a lost lease rebuilds everything on the next win.
"""
from __future__ import annotations

import logging
import socket
import uuid

from pyk8s.api import meta as m
from pyk8s.client import Client, is_not_found, load_config
from pyk8s.client import resources as r
from pyk8s.client.clock import REAL_CLOCK, Clock
from pyk8s.client.controller import Controller
from pyk8s.client.informers import SharedInformer
from pyk8s.client.leaderelection import LeaderElector, LeaseLock

log = logging.getLogger(__name__)


def _ready(node: dict) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def node_ingress(nodes: list[dict]) -> list[dict]:
    """The ingress entries for ``nodes``: ExternalIPs when any Ready node has one."""
    ready = [n for n in nodes if _ready(n) and not (n.get("spec") or {}).get("unschedulable")]

    def addresses(kind: str) -> list[str]:
        return sorted({a["address"] for n in ready
                       for a in (n.get("status") or {}).get("addresses") or []
                       if a.get("type") == kind and a.get("address")})
    ips = addresses("ExternalIP") or addresses("InternalIP")
    return [{"ip": ip, "ipMode": "VIP"} for ip in ips]


def handled(service: dict) -> bool:
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


class ServiceLBController(Controller):
    name = "servicelb"

    def __init__(self, client: Client, services: SharedInformer, nodes: SharedInformer, *,
                 clock: Clock = REAL_CLOCK):
        super().__init__(clock=clock)
        self.client, self.services, self.nodes = client, services, nodes
        services.add_event_handler(on_add=self._service_changed,
                                   on_update=lambda old, new: self._service_changed(new))
        nodes.add_event_handler(on_add=self._node_changed,
                                on_update=lambda old, new: self._node_changed(new),
                                on_delete=self._node_changed)

    def _service_changed(self, service: dict) -> None:
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        if handled(service) or (ingress and not (service.get("spec") or {}).get(
                "loadBalancerClass")):
            self.enqueue(service)

    def _node_changed(self, node: dict) -> None:
        for service in self.services.store.list():
            if handled(service):
                self.enqueue(service)

    async def sync(self, key: str) -> None:
        service = self.services.store.get(key)
        if service is None:
            return
        desired = node_ingress(self.nodes.store.list()) if handled(service) else []
        status = service.get("status") or {}
        current = (status.get("loadBalancer") or {}).get("ingress") or []
        if current == desired or (not handled(service) and not current):
            return
        body = {**service, "status": {**status, "loadBalancer": {"ingress": desired}}
                if desired else {**status, "loadBalancer": {}}}
        try:
            await self.client.update_status(r.SERVICES, body)
        except Exception as err:
            if is_not_found(err):
                return  # deleted meanwhile
            raise
        log.info("servicelb: %s ingress %s", m.object_key(service),
                 [i["ip"] for i in desired] or "cleared")

    async def run_with_informers(self, *, workers: int = 1) -> None:
        await self.run(workers=workers, informers=[self.services, self.nodes])


LEASE_NAMESPACE, LEASE_NAME = "kube-system", "pyk8s-servicelb"


async def lead(client: Client) -> None:
    """Build the controller from the API and run it until cancelled."""
    services = SharedInformer(client, r.SERVICES)
    nodes = SharedInformer(client, r.NODES)
    try:
        await ServiceLBController(client, services, nodes).run_with_informers()
    finally:
        await services.stop()
        await nodes.stop()


async def run(kubeconfig: str | None, *, leader_elect: bool = True) -> None:
    """ServiceLB for the cluster in ``kubeconfig`` until cancelled (``pyk8s server``)."""
    client = Client(load_config(kubeconfig))
    try:
        if not leader_elect:
            await lead(client)
            return
        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        lock = LeaseLock(client, namespace=LEASE_NAMESPACE, name=LEASE_NAME, identity=identity)
        while True:  # lost the lease: campaign again
            await LeaderElector(lock, on_started_leading=lambda: lead(client)).run()
            log.info("servicelb: lost the lease %s/%s", LEASE_NAMESPACE, LEASE_NAME)
    finally:
        await client.close()
