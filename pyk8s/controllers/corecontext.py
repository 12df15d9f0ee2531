"""What the core controllers share: their typed settings, their context, small I/O helpers.

Role: every controller of ``core_manager.CONTROLLERS`` is built by a factory from one
``ControllerContext`` (client, shared informers, event broadcaster, clock, settings),
so the manager wires them all the same way and tests swap in a fake API and clock.
``CoreSettings`` holds every tunable with upstream's kube-controller-manager default
(STYLE item 8); tests pass short timeouts through it, never through code changes.

Invariants:
- Settings are frozen dataclasses; derive variants with ``dataclasses.replace``.
- ``ControllerContext.recorder(component)`` hands out one recorder per component;
  events are written in the background and never block a sync.
- ``ControllerContext.with_client(client)`` derives a controller's own context (its
  client and event broadcaster) that shares the parent's informers: each resource is
  still watched once, with the manager's identity, as upstream's shared informers.
- ``retry_on_conflict`` re-runs a read-modify-write closure on 409 Conflict only, at
  most ``attempts`` times (client-go's ``retry.RetryOnConflict`` with DefaultRetry).
- ``CoreController.run()`` starts its informers, waits for their caches and runs its
  workers until cancelled (``pyk8s.client.controller.Controller`` semantics).
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from pyk8s.api import meta as m
from pyk8s.client import Client, is_conflict
from pyk8s.client.clock import REAL_CLOCK, Clock
from pyk8s.client.controller import Controller
from pyk8s.client.events import EventBroadcaster, EventRecorder, FakeRecorder
from pyk8s.client.informers import SharedInformer, SharedInformerFactory

log = logging.getLogger(__name__)
T = TypeVar("T")


# --- settings ----------------------------------------------------------------------

@dataclass(frozen=True)
class GCSettings:
    workers: int = 20                 # --concurrent-gc-syncs
    discovery_period: float = 30.0    # how often new resources (CRDs) are looked for
    sync_timeout: float = 30.0        # longest wait for the first lists before working
    absent_owner_cache_size: int = 500
    # Resources the collector never watches (upstream's DefaultIgnoredResources).
    ignored: frozenset = frozenset({("", "events"), ("events.k8s.io", "events")})


@dataclass(frozen=True)
class NamespaceSettings:
    workers: int = 10                 # --concurrent-namespace-syncs
    # Delay after a namespace is marked for deletion, so HA API servers observe it
    # (upstream's namespaceDeletionGracePeriod).
    deletion_grace: float = 5.0
    resync_period: float = 300.0      # --namespace-sync-period


@dataclass(frozen=True)
class EndpointSettings:
    workers: int = 5                  # --concurrent-endpoint-syncs
    slice_workers: int = 5            # --concurrent-service-endpoint-syncs
    max_endpoints_per_slice: int = 100
    max_endpoints_per_subset: int = 1000   # Endpoints over-capacity truncation
    mirror_max_endpoints: int = 1000       # endpointslice-mirroring per Endpoints
    # The kubernetes Service's endpoints: API server addresses and secure port.
    apiserver_addresses: tuple = ()
    apiserver_port: int = 6443
    apiserver_resync: float = 10.0    # upstream's --endpoint-reconciler interval


@dataclass(frozen=True)
class NodeLifecycleSettings:
    monitor_period: float = 5.0             # --node-monitor-period
    grace_period: float = 50.0              # --node-monitor-grace-period (50 s since 1.32)
    startup_grace_period: float = 60.0      # --node-startup-grace-period
    eviction_qps: float = 0.1               # --node-eviction-rate
    secondary_eviction_qps: float = 0.01    # --secondary-node-eviction-rate
    large_cluster_threshold: int = 50       # --large-cluster-size-threshold
    unhealthy_zone_threshold: float = 0.55  # --unhealthy-zone-threshold
    taint_eviction_workers: int = 8


@dataclass(frozen=True)
class NodeIPAMSettings:
    cluster_cidr: str = "10.42.0.0/16"
    node_cidr_mask_size: int = 24


@dataclass(frozen=True)
class VolumeSettings:
    sync_period: float = 15.0               # --pvclaimbinder-sync-period
    storage_dir: str = "/var/lib/pyk8s/storage"   # <data-dir>/storage for local-path
    storage_class: str = "local-path"
    provisioner: str = "rancher.io/local-path"
    helper_image: str = "busybox"
    helper_namespace: str = "kube-system"


@dataclass(frozen=True)
class DisruptionSettings:
    workers: int = 1
    deletion_timeout: float = 120.0         # DisruptedPods entries expire after this


@dataclass(frozen=True)
class QuotaSettings:
    workers: int = 5                        # --concurrent-resource-quota-syncs
    resync_period: float = 300.0            # --resource-quota-sync-period


@dataclass(frozen=True)
class PodGCSettings:
    terminated_pod_threshold: int = 12500   # --terminated-pod-gc-threshold
    period: float = 20.0                    # gcCheckPeriod
    quarantine: float = 40.0                # how long a missing node must stay missing


@dataclass(frozen=True)
class ServiceAccountSettings:
    root_ca_pem: str = ""                   # published as kube-root-ca.crt
    signing_key_pem: bytes = b""            # signs legacy token Secrets when set
    token_namespace_resync: float = 300.0


@dataclass(frozen=True)
class CoreSettings:
    gc: GCSettings = GCSettings()
    namespace: NamespaceSettings = NamespaceSettings()
    endpoints: EndpointSettings = EndpointSettings()
    nodes: NodeLifecycleSettings = NodeLifecycleSettings()
    ipam: NodeIPAMSettings = NodeIPAMSettings()
    volumes: VolumeSettings = VolumeSettings()
    disruption: DisruptionSettings = DisruptionSettings()
    quota: QuotaSettings = QuotaSettings()
    podgc: PodGCSettings = PodGCSettings()
    serviceaccounts: ServiceAccountSettings = ServiceAccountSettings()
    ttl_workers: int = 5                    # --concurrent-ttl-after-finished-syncs


def replace(settings: Any, **changes: Any) -> Any:
    return dataclasses.replace(settings, **changes)


# --- context -----------------------------------------------------------------------

@dataclass
class ControllerContext:
    """Everything a controller factory needs; one per controller-manager process."""

    client: Client
    informers: SharedInformerFactory
    events: EventBroadcaster | None = None
    clock: Clock = REAL_CLOCK
    settings: CoreSettings = field(default_factory=CoreSettings)
    _recorders: dict = field(default_factory=dict)
    _children: dict = field(default_factory=dict)

    def with_client(self, client: Client) -> "ControllerContext":
        """A context for one controller that acts with its own ``client`` (its service
        account, ``--use-service-account-credentials``): the same informers, clock and
        settings, and its own event broadcaster on that client, so the events it
        records are written by its identity too. One per client, kept here."""
        key = id(client)
        child = self._children.get(key)
        if child is None:
            events = (EventBroadcaster(client, clock=self.clock)
                      if self.events is not None else None)
            child = ControllerContext(client=client, informers=self.informers, events=events,
                                      clock=self.clock, settings=self.settings)
            self._children[key] = child
        return child

    async def shutdown_events(self, timeout: float = 2.0) -> None:
        """Flush and stop this context's broadcaster and its children's."""
        children, self._children = list(self._children.values()), {}
        for ctx in [*children, self]:
            if ctx.events is not None:
                await ctx.events.shutdown(timeout=timeout)

    def recorder(self, component: str) -> EventRecorder | FakeRecorder:
        if component not in self._recorders:
            self._recorders[component] = (self.events.new_recorder(component)
                                          if self.events is not None else FakeRecorder())
        return self._recorders[component]

    def now(self) -> datetime.datetime:
        return self.clock.now()


class CoreController(Controller):
    """A ``Controller`` that knows its informers and worker count."""

    workers: int = 1

    def __init__(self, ctx: ControllerContext, *, name: str, workers: int = 1):
        super().__init__(name=name, clock=ctx.clock)
        self.ctx = ctx
        self.client = ctx.client
        self.workers = workers
        self.watched: list[SharedInformer] = []

    def informer(self, resource, **kwargs: Any) -> SharedInformer:
        inf = self.ctx.informers.informer(resource, **kwargs)
        if inf not in self.watched:
            self.watched.append(inf)
        return inf

    def now(self) -> datetime.datetime:
        return self.clock.now()

    def now_str(self) -> str:
        return m.format_time(self.clock.now())

    async def run(self, *, workers: int | None = None,  # type: ignore[override]
                  informers: Iterable[SharedInformer] | None = None) -> None:
        await super().run(workers=workers or self.workers,
                          informers=self.watched if informers is None else informers)


# --- helpers ------------------------------------------------------------------------

async def retry_on_conflict(fn: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run ``fn`` (a fresh read-modify-write) again while it fails with 409 Conflict."""
    for attempt in range(attempts):
        try:
            return await fn()
        except Exception as err:
            if not is_conflict(err) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def set_condition(conditions: list[dict], new: dict, now: str) -> tuple[list[dict], bool]:
    """Set a core-style condition (Pod, Node, Namespace): the transition time moves only
    when the status changes. Returns (conditions, changed)."""
    out, changed, found = [], False, False
    for cond in conditions:
        if cond.get("type") != new["type"]:
            out.append(cond)
            continue
        found = True
        merged = dict(cond)
        for k, v in new.items():
            if k == "lastTransitionTime":
                continue
            if merged.get(k) != v:
                merged[k] = v
                changed = True
        if cond.get("status") != new.get("status"):
            merged["lastTransitionTime"] = new.get("lastTransitionTime") or now
            changed = True
        out.append(merged)
    if not found:
        out.append({**new, "lastTransitionTime": new.get("lastTransitionTime") or now})
        changed = True
    return out, changed


# --- discovery ----------------------------------------------------------------------

@dataclass
class DiscoveredResource:
    resource: Any      # pyk8s.client.Resource
    verbs: frozenset


@dataclass
class Discovery:
    """The preferred version of every served resource, and the group-versions that
    could not be read (``ServerPreferredResources`` with ``ErrGroupDiscoveryFailed``)."""

    resources: list[DiscoveredResource]
    failed: dict[str, str]

    def error(self) -> str | None:
        """``ErrGroupDiscoveryFailed.Error()``, or None when every group was read."""
        if not self.failed:
            return None
        parts = sorted(f"{gv}: {why}" for gv, why in self.failed.items())
        return "unable to retrieve the complete list of server APIs: " + ", ".join(parts)

    def with_verbs(self, *verbs: str, namespaced: bool | None = None) -> list[Any]:
        return [d.resource for d in self.resources
                if set(verbs) <= d.verbs
                and (namespaced is None or d.resource.namespaced == namespaced)]


async def discover(client: Client) -> Discovery:
    """Read ``/api``, ``/apis`` and each preferred group-version's resource list."""
    from pyk8s.client.resources import Resource

    core = await client.request("GET", "/api")
    groups = await client.request("GET", "/apis")
    gvs = [("", v) for v in (core.get("versions") or ["v1"])[:1]]
    for g in groups.get("groups") or []:
        pv = g.get("preferredVersion") or (g.get("versions") or [{}])[0]
        if pv.get("version"):
            gvs.append((g["name"], pv["version"]))
    found: list[DiscoveredResource] = []
    failed: dict[str, str] = {}
    for group, version in gvs:
        gv = f"{group}/{version}" if group else version
        path = f"/apis/{gv}" if group else f"/api/{gv}"
        try:
            doc = await client.request("GET", path)
        except Exception as err:  # noqa: BLE001 - recorded, the others still count
            failed[gv] = str(err) or type(err).__name__
            continue
        for e in doc.get("resources") or []:
            if "/" in e.get("name", ""):
                continue
            res = Resource(group, version, e["name"], e.get("kind", ""), bool(e.get("namespaced")))
            found.append(DiscoveredResource(res, frozenset(e.get("verbs") or ())))
    return Discovery(found, failed)
