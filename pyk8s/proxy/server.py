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
- Health (``health.py``): one ``ProxyHealth`` for all families, served on the
  healthz address when one is given; the first family's proxier drives the
  per-Service health checks on ``healthCheckNodePort`` (one listener per Service
  whatever the families). A healthz port that cannot be bound is logged and
  retried, never fatal (as upstream).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from pyk8s.client import Client, load_config
from pyk8s.client import resources as r
from pyk8s.client.informers import SharedInformerFactory

from .health import DEFAULT_HEALTHZ_PORT, ProxyHealth, ServiceHealthServer
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
                 settings: ProxySettings = ProxySettings(), host: HostRunner | None = None,
                 healthz_address: str | None = None, service_health: bool = True):
        if not configs:
            raise ValueError("at least one NodeConfig (IP family) is needed")
        self.client = client
        host = host or HostCommands()
        # upstream: twice the sync period without applying a queued change is unhealthy
        self.health = ProxyHealth(timeout=2 * settings.sync_period)
        self.healthz_address = healthz_address
        self.service_health = ServiceHealthServer(
            self.health, addresses=_health_addresses(configs[0])) if service_health else None
        self.proxiers = [Proxier(host, cfg, settings, health=self.health,
                                 service_health=self.service_health if i == 0 else None)
                         for i, cfg in enumerate(configs)]
        self.node_name = configs[0].node_name
        self.factory = SharedInformerFactory(client)
        self._tasks: list[asyncio.Task] = []
        self._healthz_task: asyncio.Task | None = None

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
        nodes.add_event_handler(on_add=self.health.sync_node,
                                on_update=lambda old, n: self.health.sync_node(n),
                                on_delete=self.health.node_deleted)

    async def start(self) -> None:
        """Start watching and syncing; returns once the first full sync is applied."""
        self._wire()
        self._tasks = [asyncio.create_task(p.run(), name=f"proxier {p.cfg.family}")
                       for p in self.proxiers]
        if self.healthz_address:
            self._healthz_task = asyncio.create_task(self._serve_healthz(),
                                                     name="proxy healthz")
        self.factory.start()
        await self.factory.wait_for_sync()
        for p in self.proxiers:
            p.set_services_synced()
            p.set_slices_synced()
        await asyncio.gather(*(p.wait_applied(timeout=60) for p in self.proxiers))
        log.info("proxy for node %s synced (%s)", self.node_name,
                 ", ".join(p.cfg.family for p in self.proxiers))

    async def _serve_healthz(self, retry: float = 5.0) -> None:
        host, _, port = self.healthz_address.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        while True:
            try:
                await self.health.serve(host, int(port or DEFAULT_HEALTHZ_PORT))
                log.info("proxy healthz serving on %s", self.healthz_address)
                return
            except OSError as err:
                log.error("cannot serve proxy healthz on %s (retrying in %.0f s): %s",
                          self.healthz_address, retry, err)
                await asyncio.sleep(retry)  # a retry period, not synchronisation

    async def stop(self) -> None:
        await self.factory.stop()
        tasks = self._tasks + ([self._healthz_task] if self._healthz_task else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._healthz_task = [], None
        await self.health.close()
        if self.service_health is not None:
            await self.service_health.close()

    async def cleanup(self) -> None:
        for p in self.proxiers:
            await p.cleanup()

    async def wait(self) -> None:
        """Until a proxier stops (it only does when cancelled)."""
        await asyncio.gather(*self._tasks)


def _health_addresses(cfg: NodeConfig) -> tuple[str, ...]:
    """Where health checks listen: every address, or the NodePort addresses."""
    if cfg.nodeport_addresses is None:
        return ("0.0.0.0",)
    return tuple(a for a in cfg.nodeport_addresses if ":" not in a) or ("0.0.0.0",)


async def run(kubeconfig: str | None, node_name: str, *, families: tuple[str, ...] = (IPV4,),
              config: NodeConfig | None = None, settings: ProxySettings = ProxySettings(),
              host: HostRunner | None = None,
              healthz_address: str | None = f"0.0.0.0:{DEFAULT_HEALTHZ_PORT}") -> None:
    """Run the node's proxy until cancelled (the entry point of ``pyk8s proxy``).

    ``config`` supplies the flags (cluster/service CIDRs, NodePort addresses,
    masquerade); ``families`` lists the IP families to program, one table each;
    ``healthz_address`` is upstream's ``--healthz-bind-address`` (None: no server).
    """
    base = config or NodeConfig(node_name=node_name)
    configs = [dataclasses.replace(base, node_name=node_name, family=f) for f in families]
    client = Client(load_config(kubeconfig))
    server = ProxyServer(client, configs, settings=settings, host=host,
                         healthz_address=healthz_address)
    try:
        await server.start()
        await server.wait()
    finally:
        await server.stop()
        await client.close()
