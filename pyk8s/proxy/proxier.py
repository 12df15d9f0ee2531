"""The proxier: Service and EndpointSlice events in, nftables transactions out.

Role: upstream's nftables ``Proxier`` minus the informers (``server.py`` wires
those). Handlers record which Services changed; a ``SyncRunner`` (upstream's
``BoundedFrequencyRunner``) calls ``sync`` no more often than ``min_sync_period``
after a burst; ``sync`` renders only the changed Services and applies one partial
transaction, or, at start, after a failure or when the node changed, one full
transaction that atomically replaces the table.

Invariants:
- Nothing is written before both Services and EndpointSlices have synced once
  (a partial view would delete rules of Services not yet seen).
- Work per partial sync is O(changed Services): nothing iterates every Service.
- A failed transaction leaves the model invalid; the next sync is full and is
  retried after ``sync_period`` even without new events.
- Handlers never block and never raise; they may be called before ``run``.
- Network-programming latency is observed per changed Service when its change
  reached the kernel (see ``metrics``).
- With a ``ProxyHealth``, a change is "queued" from the moment it is requested until
  a sync applied it (upstream's ``QueuedUpdate``/``Updated``); with a
  ``ServiceHealthServer``, every successful sync hands it the Services with a
  ``healthCheckNodePort`` and their local ready endpoint counts (O(such Services)).
- After the rules change, UDP conntrack entries that would keep sending a client
  to a removed endpoint, or that recorded a time without endpoints, are deleted
  (upstream's ``conntrack.CleanStaleEntries``); TCP needs none (a dead endpoint
  resets the connection).
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from pyk8s import aio
from pyk8s.client.clock import REAL_CLOCK, Clock, Timer

from .endpoints import Endpoint, SliceCache, categorize, trigger_time
from .health import ProxyHealth, ServiceHealthServer
from .metrics import ProxyMetrics
from .nft import (HostRunner, HostError, ensure_service_routes, kernel_releases_chains_at_once,
                  remove_service_routes)
from .rules import NodeConfig, RuleSet, render_service
from .serviceports import IPV6, ServicePort, ServicePortName, ip_family, service_ports

log = logging.getLogger(__name__)

ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"


@dataclass(frozen=True)
class ProxySettings:
    """Tunables with kube-proxy's defaults (``--*-min-sync-period``, ``--*-sync-period``)."""

    min_sync_period: float = 1.0
    sync_period: float = 30.0  # retry delay after a failed transaction
    max_interval: float = 3600.0  # a sync runs at least this often (nftables mode)
    burst_syncs: int = 2
    stale_chain_grace: float = 1.0  # for kernels that free chains lazily
    # The link the service CIDRs are routed to so that the node itself reaches
    # ClusterIPs despite the blackhole route (see nft.ensure_service_routes); None
    # leaves routing alone.
    service_route_device: str | None = "pyk8s-svc"


class SyncRunner:
    """Calls ``fn`` when asked, at most ``burst`` times back to back, then at most once
    per ``min_interval``; at least once per ``max_interval``. Requests made while
    ``fn`` runs cause exactly one more run."""

    def __init__(self, fn: Callable[[], Awaitable[None]], *, min_interval: float,
                 max_interval: float, burst: int, clock: Clock = REAL_CLOCK):
        self.fn, self.clock = fn, clock
        self.min_interval, self.max_interval = min_interval, max_interval
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._last = clock.monotonic()
        self._requested = False
        self._waiter: asyncio.Future | None = None
        self._retry: Timer | None = None

    def run(self) -> None:
        self._requested = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def retry_after(self, delay: float) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._retry = self.clock.call_later(delay, self.run)

    def _refill(self) -> None:
        now = self.clock.monotonic()
        if self.min_interval > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._last) / self.min_interval)
        else:
            self._tokens = float(self.burst)
        self._last = now

    async def _wait_for_request(self) -> None:
        if self._requested:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiter = future
        timer = self.clock.call_later(self.max_interval,
                                      lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            timer.cancel()
            self._waiter = None

    async def loop(self) -> None:
        try:
            while True:
                await self._wait_for_request()
                self._refill()
                if self._tokens < 1:
                    await self.clock.sleep((1 - self._tokens) * self.min_interval)
                    self._refill()
                self._tokens -= 1
                self._requested = False
                try:
                    await self.fn()
                except Exception:  # a bug in fn must not stop the proxy for good
                    log.exception("sync failed unexpectedly")
                    self.retry_after(self.min_interval or 1.0)
        finally:
            if self._retry is not None:
                self._retry.cancel()


ServiceKey = tuple[str, str]


class Proxier:
    """Keeps one nftables table (``cfg.table`` of ``cfg.family``) equal to the API's Services."""

    def __init__(self, runner: HostRunner, cfg: NodeConfig,
                 settings: ProxySettings = ProxySettings(), *, clock: Clock = REAL_CLOCK,
                 metrics: ProxyMetrics | None = None, defer_chain_delete: bool | None = None,
                 health: ProxyHealth | None = None,
                 service_health: ServiceHealthServer | None = None):
        self.runner, self.cfg, self.settings, self.clock = runner, cfg, settings, clock
        self.health, self.service_health = health, service_health
        self._hc_ports: dict[ServiceKey, int] = {}  # Services with a healthCheckNodePort
        self.metrics = metrics or ProxyMetrics()
        if defer_chain_delete is None:
            defer_chain_delete = not kernel_releases_chains_at_once()
        self.ruleset = RuleSet(cfg, defer_chain_delete=defer_chain_delete)
        self._ports: dict[ServiceKey, list[ServicePort]] = {}
        self._slices = SliceCache(cfg.node_name, cfg.family)
        self._dirty: dict[ServiceKey, datetime.datetime] = {}
        self._triggers: dict[ServiceKey, list[datetime.datetime]] = {}
        self._need_full = True
        # UDP destinations of each Service and the endpoint IPs behind them, as last
        # programmed: (kind, address, port) -> IPs, kind "ip" or "nodeport".
        self._udp: dict[ServiceKey, dict[tuple[str, str, int], frozenset[str]]] = {}
        self._services_synced = self._slices_synced = False
        self._started = clock.now()
        self._idle = asyncio.Event()
        self.syncs = 0  # successful transactions, full or partial
        self.last_plan_full = False
        self._runner = SyncRunner(self.sync, min_interval=settings.min_sync_period,
                                  max_interval=settings.max_interval,
                                  burst=settings.burst_syncs, clock=clock)

    # --- informer handlers ----------------------------------------------------------

    def on_service_add(self, service: dict) -> None:
        self.on_service_update(None, service)

    def on_service_update(self, old: dict | None, service: dict) -> None:
        key = _key(service)
        ports = service_ports(service, self.cfg.family)
        if ports == self._ports.get(key, []):
            return
        if ports:
            self._ports[key] = ports
        else:
            self._ports.pop(key, None)
        if ports and ports[0].health_check_node_port:
            self._hc_ports[key] = ports[0].health_check_node_port
        else:
            self._hc_ports.pop(key, None)
        self.metrics.service_changes.inc()
        self._mark(key)

    def on_service_delete(self, service: dict) -> None:
        key = _key(service)
        self._hc_ports.pop(key, None)
        if self._ports.pop(key, None) is not None:
            self.metrics.service_changes.inc()
            self._mark(key)

    def on_slice_add(self, slice_: dict) -> None:
        self._slice_changed(slice_, removed=False)

    def on_slice_update(self, old: dict | None, slice_: dict) -> None:
        self._slice_changed(slice_, removed=False)

    def on_slice_delete(self, slice_: dict) -> None:
        self._slice_changed(slice_, removed=True)

    def _slice_changed(self, slice_: dict, *, removed: bool) -> None:
        key = self._slices.update(slice_, removed=removed)
        if key is None:
            return
        self.metrics.endpoint_changes.inc()
        # A deletion's annotation dates from the slice's last update, not from the
        # deletion: upstream does not measure it, nor do we.
        when = None if removed else trigger_time(slice_)
        if when is not None and when > self._started:
            self._triggers.setdefault(key, []).append(when)
        self._mark(key)

    def on_node_update(self, old: dict | None, node: dict) -> None:
        """The node's labels (topology) and addresses shape every Service: full sync."""
        if (node.get("metadata") or {}).get("name") != self.cfg.node_name:
            return
        labels = tuple(sorted(((node.get("metadata") or {}).get("labels") or {}).items()))
        want = IPV6 if self.cfg.family == IPV6 else None
        ips = tuple(a["address"] for a in (node.get("status") or {}).get("addresses") or []
                    if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address")
                    and ((":" in a["address"]) == (want == IPV6)))
        cfg = dataclasses.replace(self.cfg, node_labels=labels, node_ips=ips or self.cfg.node_ips)
        if cfg != self.cfg:
            self.set_config(cfg)

    def set_config(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.ruleset.cfg = cfg
        self._need_full = True
        self._idle.clear()
        self._request()

    def set_services_synced(self) -> None:
        self._services_synced = True
        self._request()

    def set_slices_synced(self) -> None:
        self._slices_synced = True
        self._request()

    @property
    def initialized(self) -> bool:
        return self._services_synced and self._slices_synced

    def _mark(self, key: ServiceKey) -> None:
        self._dirty.setdefault(key, self.clock.now())
        self._idle.clear()
        self._request()

    def _request(self) -> None:
        if self.initialized:
            if self.health is not None:
                self.health.queued_update(self.cfg.family)
            self._runner.run()

    # --- syncing --------------------------------------------------------------------

    async def run(self) -> None:
        """Sync until cancelled. The table stays in place on exit, as kube-proxy's does,
        so Services keep working across a restart; ``cleanup`` removes it."""
        if self.cfg.localhost_enabled:
            try:
                await self.runner.sysctl(ROUTE_LOCALNET, "1")
            except (HostError, OSError) as err:
                log.warning("cannot enable route_localnet, localhost NodePorts will not "
                            "work: %s", err)
        device = self.settings.service_route_device
        cidrs = tuple(c for c in self.cfg.service_cidrs if ip_family(c) == self.cfg.family)
        if device and cidrs:
            try:
                await ensure_service_routes(self.runner, cidrs, device)
            except (HostError, OSError) as err:
                log.warning("cannot route the service CIDRs to %s, the node itself will "
                            "not reach ClusterIPs: %s", device, err)
        self._request()
        await self._runner.loop()

    async def cleanup(self) -> None:
        """Remove the table and the service-route device (``pyk8s proxy --cleanup``)."""
        await self.runner.delete_table(self.cfg.ip, self.cfg.table)
        if self.settings.service_route_device:
            await remove_service_routes(self.runner, self.settings.service_route_device)
        self.ruleset.invalidate()
        self._need_full = True

    async def wait_applied(self, timeout: float = 10.0) -> None:
        """Wait until every change seen so far is in the kernel (for tests and tools)."""
        await aio.wait_for(self._idle.wait(), timeout)

    async def sync(self) -> None:
        """One sync: apply pending changes (partial) or the whole table (full)."""
        if not self.initialized:
            return
        start = self.clock.monotonic()
        await self._delete_stale_chains(start)
        dirty, self._dirty = self._dirty, {}
        triggers, self._triggers = self._triggers, {}
        full = self._need_full or not self.ruleset.valid
        if full:
            plan = self.ruleset.plan_full(
                {k: render_service(p, self._slices.endpoints(k), self.cfg)
                 for k, p in self._ports.items()})
        else:
            plan = self.ruleset.plan_partial(
                {k: (render_service(self._ports[k], self._slices.endpoints(k), self.cfg)
                     if k in self._ports else None) for k in dirty})
        try:
            if plan:
                await self.runner.apply(plan.text)
        except Exception as err:  # noqa: BLE001 - whatever failed, the changes must not be lost
            if not isinstance(err, (HostError, OSError)):
                log.exception("nftables sync failed unexpectedly")
            log.error("nftables sync failed, retrying in %ss: %s", self.settings.sync_period, err)
            self.metrics.sync_failures.inc()
            self.ruleset.invalidate()
            self._need_full = True
            # Keep the changes so their latency is measured when they do get applied.
            for k, when in dirty.items():
                self._dirty.setdefault(k, when)
            for k, times in triggers.items():
                self._triggers.setdefault(k, []).extend(times)
            self._runner.retry_after(self.settings.sync_period)
            return
        self.ruleset.commit(plan, now=self.clock.monotonic())
        self._need_full = False
        # The first sync only records the baseline: clearing every UDP Service's
        # flows at start would cost a command per Service for nothing.
        baseline = self.syncs == 0
        self.syncs += 1
        self.last_plan_full = plan.full
        self._observe(start, full, dirty, triggers)
        await self._clean_udp_conntrack(set(self._ports) | set(self._udp) if full else dirty,
                                        baseline=baseline)
        if self.health is not None:
            self.health.updated(self.cfg.family)
        await self._sync_health()
        if self.ruleset.stale_chains:
            self._runner.retry_after(self.settings.stale_chain_grace)
        if not self._dirty and not self._need_full:
            self._idle.set()

    async def _sync_health(self) -> None:
        if self.service_health is None:
            return
        await self.service_health.sync_services(dict(self._hc_ports))
        self.service_health.sync_endpoints(
            {key: local_ready_endpoints(self._slices.endpoints(key)) for key in self._hc_ports})

    async def _clean_udp_conntrack(self, keys, *, baseline: bool = False) -> None:
        family = ("-f", "ipv6") if self.cfg.family == IPV6 else ()
        for key in keys:
            old = self._udp.pop(key, {})
            new = _udp_targets(self._ports.get(key, []), self._slices.endpoints(key), self.cfg) \
                if key in self._ports else {}
            if new:
                self._udp[key] = new
            if baseline:
                continue
            commands = []
            for (kind, address, port), ips in old.items():
                match = ("--orig-dst", address, "--orig-port-dst", str(port)) if kind == "ip" \
                    else ("--orig-port-dst", str(port))
                for ip in sorted(ips - new.get((kind, address, port), frozenset())):
                    commands.append((*family, "-p", "udp", *match, "--dst-nat", ip))
            for (kind, address, port), ips in new.items():
                if ips and not old.get((kind, address, port)):
                    # Entries from while it had no endpoints (rejected or dropped).
                    commands.append((*family, "-p", "udp", "--orig-dst", address,
                                     "--orig-port-dst", str(port)) if kind == "ip"
                                    else (*family, "-p", "udp", "--orig-port-dst", str(port)))
            for args in commands:
                try:
                    await self.runner.conntrack_delete(*args)
                except (HostError, OSError) as err:
                    log.warning("cannot clear stale UDP conntrack entries (%s): %s",
                                " ".join(args), err)

    async def _delete_stale_chains(self, now: float) -> None:
        text, due = self.ruleset.plan_cleanup(now, self.settings.stale_chain_grace)
        if not due:
            return
        try:
            await self.runner.apply(text)
        except (HostError, OSError) as err:
            # The chains stay listed; a later sync (or the next full one) retries.
            log.warning("cannot delete stale chains yet: %s", err)
            return
        self.ruleset.forget_stale(due)

    def _observe(self, start: float, full: bool, dirty, triggers) -> None:
        elapsed = self.clock.monotonic() - start
        self.metrics.sync_duration.observe(elapsed)
        (self.metrics.sync_full_duration if full else self.metrics.sync_partial_duration) \
            .observe(elapsed)
        self.metrics.last_sync.set(self.clock.now().timestamp())
        now = self.clock.now()
        for key, seen in dirty.items():
            for when in triggers.get(key) or [seen]:
                self.metrics.observe_programming(key, (now - when).total_seconds())


def local_ready_endpoints(endpoints: dict[ServicePortName, list[Endpoint]]) -> int:
    """Distinct ready endpoint IPs on this node (upstream's ``LocalReadyEndpoints``)."""
    return len({ep.ip for eps in endpoints.values() for ep in eps if ep.is_local and ep.ready})


def _udp_targets(ports: list[ServicePort], endpoints: dict[ServicePortName, list[Endpoint]],
                 cfg: NodeConfig) -> dict[tuple[str, str, int], frozenset[str]]:
    """Where UDP clients of these ports send packets, and which endpoint IPs answer."""
    out: dict[tuple[str, str, int], frozenset[str]] = {}
    for svc in ports:
        if svc.protocol != "UDP":
            continue
        ips = frozenset(ep.ip for ep in categorize(endpoints.get(svc.name, []), svc,
                                                   cfg.labels).reachable)
        for address in (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_vips):
            out[("ip", address, svc.port)] = ips
        if svc.node_port:
            out[("nodeport", "", svc.node_port)] = ips
    return out


def _key(obj: dict) -> ServiceKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")
