"""kube-proxy's health servers (upstream ``pkg/proxy/healthcheck``).

Role: ``ProxyHealth`` is the proxier health server: ``/healthz`` and ``/livez``
on ``--healthz-bind-address`` (0.0.0.0:10256), healthy unless a proxier has had a
change queued for longer than the health timeout without applying it; ``/healthz``
also turns 503 once the node is being deleted (or tainted
``ToBeDeletedByClusterAutoscaler``). ``ServiceHealthServer`` opens one HTTP
server per LoadBalancer Service with ``externalTrafficPolicy: Local`` on its
``spec.healthCheckNodePort``: external load balancers ask it whether this node has
ready endpoints of the Service, and get 200 with the count, else 503.

Invariants:
- Answers carry upstream's bodies and headers (``application/json``,
  ``X-Content-Type-Options: nosniff``); every path and method is answered, as a Go
  handler does.
- ``localEndpoints`` counts distinct local ready endpoint IPs (a pod serving two
  ports is one endpoint); terminating endpoints do not count.
- ``sync_services`` is idempotent: a Service keeps its listener while its port is
  unchanged; a port that cannot be bound is logged and retried at the next sync.
- Nothing here blocks the event loop; listeners are aiohttp sites.
"""
from __future__ import annotations

import datetime
import logging

from aiohttp import web

from pyk8s.client.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
DEFAULT_HEALTHZ_PORT = 10256
HEADERS = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}
ZERO_TIME = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)


def go_time(t: datetime.datetime) -> str:
    """``t`` as Go's ``time.Time.String()`` prints a UTC time."""
    t = t.astimezone(datetime.timezone.utc)
    text = f"{t.year:04d}-{t:%m-%d %H:%M:%S}"
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + " +0000 UTC"


class ProxyHealth:
    """The proxier health state of every IP family, and its HTTP server."""

    def __init__(self, timeout: float = 60.0, *, clock: Clock = REAL_CLOCK):
        self.timeout, self.clock = timeout, clock
        self._last_updated: dict[str, datetime.datetime] = {}
        self._oldest_pending: dict[str, float] = {}  # family -> monotonic time queued
        self.node_eligible = True  # while starting up, until a node event says otherwise
        self._runner: web.AppRunner | None = None

    def queued_update(self, family: str) -> None:
        """A change reached the proxier of ``family`` but is not applied yet."""
        self._oldest_pending.setdefault(family, self.clock.monotonic())

    def updated(self, family: str) -> None:
        """The proxier of ``family`` applied everything it had."""
        self._oldest_pending.pop(family, None)
        self._last_updated[family] = self.clock.now()

    def is_healthy(self) -> bool:
        return self._health()[0]

    def _health(self) -> tuple[bool, datetime.datetime]:
        last = max(self._last_updated.values(), default=ZERO_TIME)
        now = self.clock.monotonic()
        for family, since in self._oldest_pending.items():
            if now - since >= self.timeout:
                return False, self._last_updated.get(family, ZERO_TIME)
        return True, last

    def sync_node(self, node: dict) -> None:
        meta, spec = node.get("metadata") or {}, node.get("spec") or {}
        self.node_eligible = not meta.get("deletionTimestamp") and not any(
            t.get("key") == TO_BE_DELETED_TAINT for t in spec.get("taints") or [])

    def node_deleted(self, node: dict) -> None:
        self.node_eligible = False

    def _answer(self, healthy: bool, last: datetime.datetime, extra: str) -> web.Response:
        now = self.clock.now()
        if healthy:
            last = now  # upstream: "recent" whenever healthy, for old clients
        body = f'{{"lastUpdated": "{go_time(last)}","currentTime": "{go_time(now)}"{extra}}}'
        return web.Response(status=200 if healthy else 503, body=body.encode(),
                            headers=HEADERS)

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, last = self._health()
        eligible = self.node_eligible
        return self._answer(healthy and eligible, last,
                            f', "nodeEligible": {"true" if eligible else "false"}')

    async def _livez(self, request: web.Request) -> web.Response:
        healthy, last = self._health()
        return self._answer(healthy, last, "")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/healthz", self._healthz)
        app.router.add_route("*", "/livez", self._livez)
        return app

    async def serve(self, host: str, port: int) -> None:
        """Listen on host:port (raises OSError if the port is taken)."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _Instance:
    def __init__(self, key: tuple[str, str], port: int, runner: web.AppRunner):
        self.key, self.port, self.runner = key, port, runner
        self.endpoints = 0


class ServiceHealthServer:
    """One health-check listener per Service that has a ``healthCheckNodePort``."""

    def __init__(self, health: ProxyHealth | None = None, *,
                 addresses: tuple[str, ...] = ("0.0.0.0",)):
        self.health = health
        self.addresses = addresses or ("0.0.0.0",)
        self.services: dict[tuple[str, str], _Instance] = {}

    async def sync_services(self, wanted: dict[tuple[str, str], int]) -> None:
        """Listen for exactly the Services of ``wanted`` (Service -> port)."""
        for key, inst in list(self.services.items()):
            if wanted.get(key) != inst.port:
                log.info("closing health check of %s/%s on port %d", *key, inst.port)
                del self.services[key]
                await inst.runner.cleanup()
        for key, port in wanted.items():
            if key in self.services:
                continue
            try:
                runner = await self._listen(key, port)
            except OSError as err:
                log.error("node cannot start the health check of %s/%s on port %d: %s",
                          *key, port, err)
                continue
            log.info("health check of %s/%s listening on port %d", *key, port)
            self.services[key] = _Instance(key, port, runner)

    def sync_endpoints(self, counts: dict[tuple[str, str], int]) -> None:
        """Local ready endpoints per Service; Services left out have none."""
        for key, inst in self.services.items():
            inst.endpoints = counts.get(key, 0)

    async def _listen(self, key: tuple[str, str], port: int) -> web.AppRunner:
        app = web.Application()

        async def handle(request: web.Request) -> web.Response:
            return self._answer(key)
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            for address in self.addresses:
                await web.TCPSite(runner, address, port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    def _answer(self, key: tuple[str, str]) -> web.Response:
        inst = self.services.get(key)
        count = inst.endpoints if inst is not None else 0
        healthy = self.health.is_healthy() if self.health is not None else True
        namespace, name = key
        body = ('{\n\t"service": {\n'
                f'\t\t"namespace": "{namespace}",\n\t\t"name": "{name}"\n'
                f'\t}},\n\t"localEndpoints": {count},\n'
                f'\t"serviceProxyHealthy": {"true" if healthy else "false"}\n}}')
        return web.Response(status=200 if count and healthy else 503, body=body.encode(),
                            headers=HEADERS)

    async def close(self) -> None:
        for inst in self.services.values():
            await inst.runner.cleanup()
        self.services.clear()
