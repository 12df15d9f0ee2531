"""``pyk8s proxy``: proxiers fed by shared informers, as kube-proxy's ``ProxyServer``.

Role: connect to the API (a kubeconfig, or the in-cluster config), watch Services
and EndpointSlices (leaving out those another proxy implementation owns, and the
slices of headless Services) and this node's Node object, and drive one
``Proxier`` per IP family (upstream's ``MetaProxier`` for dual stack).

Invariants:
- Services and EndpointSlices each have one watch shared by every proxier.
- A proxier is told "synced" only after both informers listed once, so its first
  (full) sync holds every Service the API has.
- ``stop`` leaves the nftables tables in place (Services keep working while the
  proxy restarts); ``cleanup`` removes them, as ``kube-proxy --cleanup``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from pyk8s.client import Client, load_config
from pyk8s.client import resources as r
from pyk8s.client.informers import SharedInformerFactory

from .nft import HostCommands, HostRunner
from .proxier import Proxier, ProxySettings
from .rules import NodeConfig
from .serviceports import IPV4, LABEL_SERVICE_PROXY_NAME

log = logging.getLogger(__name__)

LABEL_HEADLESS = "service.kubernetes.io/headless"
SERVICE_SELECTOR = f"!{LABEL_SERVICE_PROXY_NAME}"
SLICE_SELECTOR = f"!{LABEL_SERVICE_PROXY_NAME},!{LABEL_HEADLESS}"


class ProxyServer:
    """The proxy of one node: informers in, one proxier per configured family."""

    def __init__(self, client: Client, configs: list[NodeConfig], *,
                 settings: ProxySettings = ProxySettings(), host: HostRunner | None = None):
        if not configs:
            raise ValueError("at least one NodeConfig (IP family) is needed")
        self.client = client
        host = host or HostCommands()
        self.proxiers = [Proxier(host, cfg, settings) for cfg in configs]
        self.node_name = configs[0].node_name
        self.factory = SharedInformerFactory(client)
        self._tasks: list[asyncio.Task] = []

    @property
    def proxier(self) -> Proxier:
        """The first (usually the only) family's proxier."""
        return self.proxiers[0]

    def _wire(self) -> None:
        services = self.factory.informer(r.SERVICES, label_selector=SERVICE_SELECTOR)
        slices = self.factory.informer(r.ENDPOINTSLICES, label_selector=SLICE_SELECTOR)
        nodes = self.factory.informer(r.NODES, field_selector=f"metadata.name={self.node_name}")
        for p in self.proxiers:
            services.add_event_handler(on_add=p.on_service_add, on_update=p.on_service_update,
                                       on_delete=p.on_service_delete)
            slices.add_event_handler(on_add=p.on_slice_add, on_update=p.on_slice_update,
                                     on_delete=p.on_slice_delete)
            nodes.add_event_handler(on_add=lambda n, p=p: p.on_node_update(None, n),
                                    on_update=p.on_node_update)

    async def start(self) -> None:
        """Start watching and syncing; returns once the first full sync is applied."""
        self._wire()
        self._tasks = [asyncio.create_task(p.run(), name=f"proxier {p.cfg.family}")
                       for p in self.proxiers]
        self.factory.start()
        await self.factory.wait_for_sync()
        for p in self.proxiers:
            p.set_services_synced()
            p.set_slices_synced()
        await asyncio.gather(*(p.wait_applied(timeout=60) for p in self.proxiers))
        log.info("proxy for node %s synced (%s)", self.node_name,
                 ", ".join(p.cfg.family for p in self.proxiers))

    async def stop(self) -> None:
        await self.factory.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def cleanup(self) -> None:
        for p in self.proxiers:
            await p.cleanup()

    async def wait(self) -> None:
        """Until a proxier stops (it only does when cancelled)."""
        await asyncio.gather(*self._tasks)


async def run(kubeconfig: str | None, node_name: str, *, families: tuple[str, ...] = (IPV4,),
              config: NodeConfig | None = None, settings: ProxySettings = ProxySettings(),
              host: HostRunner | None = None) -> None:
    """Run the node's proxy until cancelled (the entry point of ``pyk8s proxy``).

    ``config`` supplies the flags (cluster/service CIDRs, NodePort addresses,
    masquerade); ``families`` lists the IP families to program, one table each.
    """
    base = config or NodeConfig(node_name=node_name)
    configs = [dataclasses.replace(base, node_name=node_name, family=f) for f in families]
    client = Client(load_config(kubeconfig))
    server = ProxyServer(client, configs, settings=settings, host=host)
    try:
        await server.start()
        await server.wait()
    finally:
        await server.stop()
        await client.close()
