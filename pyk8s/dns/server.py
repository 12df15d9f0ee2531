"""``pyk8s dns``: the cluster DNS server fed by shared informers.

Role: watch Services and EndpointSlices into ``ClusterRecords``, answer on UDP and
TCP at the ``kube-dns`` Service IP (bound on the node, see ``hostnet``), forward
other names to the node's resolvers with a cache, and keep the ``kube-dns``
Service in ``kube-system`` so pods and ``kubectl get svc -n kube-system`` find it.

Invariants:
- Answers for the cluster zone wait for both informers' first list: until then
  the server is not listening (a partial view would answer NXDOMAIN wrongly).
- The server never forwards to its own address (resolv.conf loops are dropped).
- ``stop`` undoes what ``start`` set up on the host: the address, its link and
  the notrack table.
"""
from __future__ import annotations

import asyncio
import logging

from pyk8s.client import ApiError, Client, is_already_exists, is_not_found, load_config
from pyk8s.client import resources as r
from pyk8s.client.informers import SharedInformerFactory

from .cache import ResponseCache
from .forwarding import Forwarder, read_resolv_conf
from .hostnet import HostShell, bind_service_ip, unbind_service_ip
from .records import DEFAULT_ZONE, ClusterRecords
from .serving import DnsServer, Resolver

log = logging.getLogger(__name__)

DNS_IP = "10.43.0.10"


def kube_dns_service(ip: str, port: int = 53) -> dict:
    """The ``kube-dns`` Service as upstream's addon manifests name and label it."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "KubeDNS"}},
        "spec": {"clusterIP": ip, "ports": [
            {"name": "dns", "port": port, "protocol": "UDP", "targetPort": port},
            {"name": "dns-tcp", "port": port, "protocol": "TCP", "targetPort": port}]},
    }


class DnsService:
    """Informers, records, resolver and listeners of one node's DNS server."""

    def __init__(self, client: Client, *, listen: tuple[str, int] = (DNS_IP, 53),
                 zone: str = DEFAULT_ZONE, upstreams: list[tuple[str, int]] | None = None,
                 resolv_conf: str = "/etc/resolv.conf", bind_address: bool = True,
                 register_service: bool = True, service_ip: str | None = None,
                 shell: HostShell | None = None, cache: ResponseCache | None = None):
        """``service_ip`` is the kube-dns ClusterIP to register and advertise
        (``ns.dns.<zone>``); it defaults to the listen address."""
        self.client, self.listen = client, listen
        self.service_ip = service_ip or listen[0]
        self.bind_address, self.register_service = bind_address, register_service
        self.shell = shell or HostShell()
        self.records = ClusterRecords(zone, dns_ips=(self.service_ip,))
        if upstreams is None:
            upstreams = read_resolv_conf(resolv_conf, exclude=[listen[0], self.service_ip])
        self.resolver = Resolver(self.records, forwarder=Forwarder(upstreams),
                                 cache=cache if cache is not None else ResponseCache())
        self.server = DnsServer(self.resolver)
        self.factory = SharedInformerFactory(client)
        self.address: tuple[str, int] | None = None
        self._bound = False

    def _wire(self) -> None:
        rec = self.records
        services = self.factory.informer(r.SERVICES)
        services.add_event_handler(on_add=rec.set_service,
                                   on_update=lambda old, new: rec.set_service(new),
                                   on_delete=rec.delete_service)
        slices = self.factory.informer(r.ENDPOINTSLICES)
        slices.add_event_handler(on_add=rec.set_slice,
                                 on_update=lambda old, new: rec.set_slice(new),
                                 on_delete=rec.delete_slice)

    async def _ensure_service(self) -> None:
        # Look first: creating an existing Service with its fixed ClusterIP fails on
        # the IP allocation (422) before the name check (409), as upstream.
        try:
            await self.client.get(r.SERVICES, "kube-dns", namespace="kube-system")
            return
        except ApiError as err:
            if not is_not_found(err):
                raise
        try:
            await self.client.create(r.SERVICES, kube_dns_service(self.service_ip),
                                     namespace="kube-system")
        except ApiError as err:
            if not is_already_exists(err):
                raise

    async def start(self) -> tuple[str, int]:
        self._wire()
        self.factory.start()
        await self.factory.wait_for_sync()
        if self.register_service:
            await self._ensure_service()
        if self.bind_address:
            self._bound = True  # so that stop() undoes a partial setup too
            await bind_service_ip(self.shell, self.listen[0], port=self.listen[1])
        self.address = await self.server.start(*self.listen)
        log.info("cluster DNS for %s serving on %s:%s", self.records.zone, *self.address)
        return self.address

    async def stop(self) -> None:
        await self.server.stop()
        await self.factory.stop()
        if self._bound:
            # Names not set up yet are absent: unbind tolerates that.
            await unbind_service_ip(self.shell, self.listen[0])
            self._bound = False


async def run(kubeconfig: str | None, listen: tuple[str, int] = (DNS_IP, 53), *,
              zone: str = DEFAULT_ZONE, resolv_conf: str = "/etc/resolv.conf",
              upstreams: list[tuple[str, int]] | None = None, bind_address: bool = True,
              register_service: bool = True) -> None:
    """Serve cluster DNS until cancelled (the entry point of ``pyk8s dns``)."""
    client = Client(load_config(kubeconfig))
    service = DnsService(client, listen=listen, zone=zone, upstreams=upstreams,
                         resolv_conf=resolv_conf, bind_address=bind_address,
                         register_service=register_service)
    try:
        await service.start()
        await asyncio.Event().wait()  # until cancelled
    finally:
        await service.stop()
        await client.close()
