"""Simulated ("hollow") nodes: many Nodes in one process, pods run through `FakeRuntime`.

Role: `run_hollow_nodes` (the body of `pyk8s hollow-nodes --count N`) registers N
Nodes with a fixed capacity (4 CPUs, 16Gi, 110 pods by default), the standard
labels and a zone label spread over three zones, a Ready status and a Lease in
kube-node-lease; then it keeps the leases renewed and runs the pods bound to
those nodes as a kubelet would, minus the containers: the basis of scheduler and
scale benchmarks (upstream's kubemark "hollow node").

Scale (1,000 nodes beside the control plane on two cores) shapes the design:
- ONE client and ONE pod informer (every pod with a nodeName, routed by
  `spec.nodeName`), ONE work queue with a few workers (`HollowPods`), ONE status
  manager for all pods; no per-node tasks or loops.
- `Heartbeats` is one task over a heap of deadlines: each node's Lease renewal (a
  merge patch of `renewTime`) is due every 10 s, the first ones spread evenly over
  the period so the API sees a steady ~N/10 writes a second; node status is
  posted at registration and then every `node_status_report_frequency` (5 min,
  upstream's nodeStatusReportFrequency: with leases, status is not a heartbeat).
- ONE node informer (the hollow label) shows each node as the API has it: when a
  condition there differs from what the node would report (the node lifecycle
  controller marked it Unknown after missed heartbeats), the node posts its full
  status again at once, as a kubelet does at its next status update (upstream
  compares the API's node with its own view every nodeStatusUpdateFrequency).
- A node costs a small `HollowNode` record until a pod lands on it; only then it
  gets its `FakeRuntime` (sandbox IPs from the node's podCIDR as the node-ipam
  controller assigned it, else a generated /24 of `generated_pod_cidrs`).

Pods go through the kubelet's own pure pieces, so statuses look like real ones:
`actions.compute_pod_actions` decides (restartPolicy, init containers, sandbox
changes), `runtimepods`/`podstatus` turn what `FakeRuntime` holds into the API
status (Pending, ContainerCreating, Running with a pod IP, Ready conditions,
restart counts, Succeeded/Failed), and the kubelet's `StatusManager` writes it,
finishing a graceful deletion with a grace-0 delete once the containers stopped.
Containers are simulated: init containers exit 0 as soon as they start, sidecars
(init containers with `restartPolicy: Always`) run like regular containers; a regular
container runs until the pod is deleted, unless the pod's annotation
`hollow.pyk8s.io/run-seconds` says how long it runs before it exits with
`hollow.pyk8s.io/exit-code` (default 0), after which restartPolicy and the
restart back-off (10 s doubling to 5 min, CrashLoopBackOff) apply.

Invariants:
- Nothing here blocks the loop or touches the disk; every wait is on the injected
  clock; at most `request_concurrency` heartbeat requests and `status_concurrency`
  status writes are in flight.
- A node that vanishes from the API (404 on its lease or status) is registered
  again with its Lease; a lease that vanished is created again.
- No hollow node ever runs a real process: probes, volumes, env and logs are not
  simulated (readiness follows "running", as for a container without probes).
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import heapq
import ipaddress
import itertools
import logging
from pathlib import Path
from typing import Mapping

from pyk8s.api import meta as metautil
from pyk8s.api.strategicpatch import create_two_way_merge_patch
from pyk8s.client import resources
from pyk8s.client.clock import REAL_CLOCK, Clock
from pyk8s.client.controller import Controller, Requeue
from pyk8s.client.errors import ApiError, is_already_exists, is_not_found
from pyk8s.client.informers import SharedInformer
from pyk8s.client.transport import TransportError
from pyk8s.cri.fake import FakeRuntime
from pyk8s.cri.runtime import CRIError, RuntimeCondition, RuntimeStatus, VersionInfo
from pyk8s.kubelet import actions, nodestatus, pods, podstatus, runtimepods
from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.nodelease import NAMESPACE as LEASE_NAMESPACE
from pyk8s.kubelet.podstatus import StartFailure
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.statusmanager import StatusManager
from pyk8s.kubelet.syncing import CRASH_LOOP_BACK_OFF, backoff_key, go_duration

log = logging.getLogger(__name__)

RUN_SECONDS = "hollow.pyk8s.io/run-seconds"
EXIT_CODE = "hollow.pyk8s.io/exit-code"
HOLLOW_LABEL = "pyk8s.io/hollow-node"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
RUNTIME_NAME = "fake"
DEFAULT_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110"}
NEXT_STEP = 0.001  # "sync again at once" as a requeue delay


@dataclasses.dataclass(frozen=True, kw_only=True)
class HollowSettings:
    """Tunables of the hollow nodes; defaults follow the kubelet's flags where they exist."""

    count: int
    prefix: str = "hollow-node-"
    capacity: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_CAPACITY))
    region: str = "hollow"
    zones: tuple[str, ...] = ("hollow-a", "hollow-b", "hollow-c")
    # InternalIPs of the nodes (.1 of this range is node 0) and the pod ranges used
    # when the node-ipam controller assigned none (one /24 per node).
    node_ips: str = "10.250.0.0/16"
    generated_pod_cidrs: str = "10.128.0.0/10"
    node_lease_duration: int = 40
    node_lease_renew_fraction: float = 0.25
    node_lease_max_backoff: float = 7.0
    node_status_report_frequency: float = 300.0
    # How late a due heartbeat may be batched with the ones after it.
    heartbeat_tick: float = 0.05
    registration_concurrency: int = 16
    request_concurrency: int = 32
    status_concurrency: int = 16
    status_sync_period: float = 10.0
    pod_workers: int = 8
    container_backoff_initial: float = 10.0
    container_backoff_max: float = 300.0
    minimum_grace_period: int = 2

    @property
    def lease_renew_interval(self) -> float:
        return self.node_lease_duration * self.node_lease_renew_fraction

    def node_name(self, index: int) -> str:
        return f"{self.prefix}{index}"


@dataclasses.dataclass(eq=False, slots=True)
class HollowNode:
    """What one hollow node keeps: its identity and, once it runs pods, a runtime."""

    index: int
    name: str
    ip: str
    zone: str
    uid: str = ""
    pod_cidr: str = ""
    runtime: FakeRuntime | None = None


# ---- the Node and its Lease -----------------------------------------------------------

def _machine(node: HollowNode, settings: HollowSettings) -> nodestatus.MachineInfo:
    ident = f"{node.index:032x}"
    return nodestatus.MachineInfo(
        cpus=0, memory=0, memory_available=1 << 62, filesystem=1 << 40,
        filesystem_available=1 << 40, machine_id=ident, system_uuid=ident, boot_id=ident,
        kernel="hollow", os_image="pyk8s hollow node", architecture="amd64",
        hostname=node.name)


_RUNTIME_VERSION = VersionInfo(version="0.1.0", runtime_name=RUNTIME_NAME,
                               runtime_version="0.1.0", runtime_api_version="v1")
_RUNTIME_READY = RuntimeStatus(conditions=(RuntimeCondition(type="RuntimeReady", status=True),
                                           RuntimeCondition(type="NetworkReady", status=True)))


def node_status(node: HollowNode, settings: HollowSettings, now: str) -> dict:
    """The node's status as a kubelet posts it, with the configured capacity."""
    kubelet = KubeletSettings(node_name=node.name, data_dir=Path("/nonexistent"),
                              max_pods=int(settings.capacity.get("pods", 110)))
    status = nodestatus.node_status(kubelet, _machine(node, settings), node_ip=node.ip,
                                    version=_RUNTIME_VERSION, runtime=_RUNTIME_READY)
    status["capacity"] = dict(settings.capacity)
    status["allocatable"] = dict(settings.capacity)
    status["conditions"] = nodestatus.stamp_conditions(status["conditions"], [], now)
    return status


def node_object(node: HollowNode, settings: HollowSettings, now: str) -> dict:
    labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": "amd64", REGION_LABEL: settings.region,
              ZONE_LABEL: node.zone, HOLLOW_LABEL: "true"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": labels,
                         "annotations": {
                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {}, "status": node_status(node, settings, now)}


def lease_object(node: HollowNode, settings: HollowSettings, renew_time: str) -> dict:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": node.name, "namespace": LEASE_NAMESPACE},
             "spec": {"holderIdentity": node.name,
                      "leaseDurationSeconds": settings.node_lease_duration,
                      "renewTime": renew_time}}
    if node.uid:
        lease["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}]
    return lease


def _condition_statuses(node: dict) -> dict[str, str]:
    return {c.get("type"): c.get("status")
            for c in (node.get("status") or {}).get("conditions") or []}


class Heartbeats:
    """Registers the nodes, then renews every Lease from one task (a heap of deadlines)."""

    # RESYNC: a one-off status report because the API's status differs from ours
    LEASE, STATUS, RESYNC = "lease", "status", "resync"

    def __init__(self, client, nodes: list[HollowNode], settings: HollowSettings, *,
                 clock: Clock = REAL_CLOCK):
        self.client, self.nodes, self.settings, self.clock = client, nodes, settings, clock
        self.by_name = {n.name: n for n in nodes}
        self.informer = SharedInformer(client, resources.NODES,
                                       label_selector=f"{HOLLOW_LABEL}=true", clock=clock)
        self.informer.add_event_handler(on_add=self._observed,
                                        on_update=lambda old, new: self._observed(new))
        self._resyncing: set[int] = set()
        self._running = False
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._slots = asyncio.Semaphore(settings.request_concurrency)
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        self._failures: dict[tuple[str, int], float] = {}
        self.renewals = 0  # successful lease renewals, for tests and benchmarks

    def _now(self) -> str:
        return metautil.format_time(self.clock.now())

    def _wanted_conditions(self, node: HollowNode) -> list[dict]:
        """What the node reports, without timestamps."""
        return [{k: v for k, v in c.items() if k not in ("lastHeartbeatTime",
                                                          "lastTransitionTime")}
                for c in node_status(node, self.settings, "")["conditions"]]

    def _observed(self, obj: dict) -> None:
        """The API's view of a node changed: pick up its podCIDR, and report the status
        again if a condition there is not what the node reports (marked Unknown)."""
        node = self.by_name.get(obj["metadata"]["name"])
        if node is None:
            return
        node.pod_cidr = node.pod_cidr or (obj.get("spec") or {}).get("podCIDR") or ""
        if not self._running or node.index in self._resyncing:
            return
        have = _condition_statuses(obj)
        if any(have.get(c["type"]) != c["status"] for c in self._wanted_conditions(node)):
            log.info("hollow node %s: the API shows Ready=%s; reporting status again",
                     node.name, have.get("Ready"))
            self._resyncing.add(node.index)
            self._schedule(self.clock.monotonic(), self.RESYNC, node.index)

    # ---- registration -------------------------------------------------------------

    async def register(self, node: HollowNode) -> None:
        """Create the Node (with its status) and its Lease; adopt existing ones."""
        now = self.clock.now()
        wanted = node_object(node, self.settings, metautil.format_time(now))
        try:
            created = await self.client.create(resources.NODES, wanted)
        except ApiError as e:
            if not is_already_exists(e):
                raise
            created = await self.client.get(resources.NODES, node.name)
            patch = create_two_way_merge_patch(
                {"metadata": {"labels": {}}, "status": created.get("status") or {}},
                {"metadata": {"labels": wanted["metadata"]["labels"]},
                 "status": wanted["status"]}, nodestatus.NODE_SCHEMA)
            await self.client.patch(resources.NODES, node.name, body=patch,
                                    patch_type="strategic")
            await self.client.patch(resources.NODES, node.name, body=patch,
                                    patch_type="strategic", subresource="status")
        node.uid = created["metadata"].get("uid", "")
        node.pod_cidr = (created.get("spec") or {}).get("podCIDR") or node.pod_cidr
        try:
            await self.client.create(resources.LEASES,
                                      lease_object(node, self.settings, metautil.micro_time(now)),
                                      namespace=LEASE_NAMESPACE)
        except ApiError as e:
            if not is_already_exists(e):
                raise

    async def register_all(self) -> None:
        slots = asyncio.Semaphore(self.settings.registration_concurrency)

        async def one(node: HollowNode) -> None:
            async with slots:
                await self._retrying(self.register, node)

        await asyncio.gather(*(one(n) for n in self.nodes))

    async def _retrying(self, fn, node: HollowNode) -> None:
        delay = 0.2
        while True:
            try:
                return await fn(node)
            except (ApiError, TransportError) as e:
                log.warning("hollow node %s: %s; retrying in %.1fs", node.name, e, delay)
                await self.clock.sleep(delay)
                delay = min(delay * 2, self.settings.node_lease_max_backoff)

    # ---- the heartbeat loop ----------------------------------------------------------

    def _schedule(self, at: float, kind: str, index: int) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, index))
        self._wake.set()

    def schedule_all(self) -> None:
        """Spread the first renewals (and status reports) evenly over their periods."""
        start, n = self.clock.monotonic(), max(len(self.nodes), 1)
        lease, report = self.settings.lease_renew_interval, \
            self.settings.node_status_report_frequency
        for node in self.nodes:
            self._schedule(start + lease * (node.index % n) / n, self.LEASE, node.index)
            self._schedule(start + report * (node.index % n) / n + report, self.STATUS,
                           node.index)

    async def run(self) -> None:
        """Fire due heartbeats until cancelled."""
        self._running = True
        self.informer.start()
        try:
            while True:
                # Cleared before looking at the heap, so a beat scheduled from now on
                # (a renewal one period on, a retry) wakes the wait even when it is due
                # before the deadline being waited for.
                self._wake.clear()
                if not self._heap:
                    await self._wake.wait()
                    continue
                wait = self._heap[0][0] - self.clock.monotonic()
                if wait > 0:
                    timer = self.clock.call_later(wait, self._wake.set)
                    try:
                        await self._wake.wait()
                    finally:
                        timer.cancel()
                    continue
                limit = self.clock.monotonic() + self.settings.heartbeat_tick
                while self._heap and self._heap[0][0] <= limit:
                    due, _, kind, index = heapq.heappop(self._heap)
                    await self._slots.acquire()
                    task = asyncio.create_task(self._beat(due, kind, index))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
        finally:
            self._running = False
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await self.informer.stop()

    async def _beat(self, due: float, kind: str, index: int) -> None:
        node = self.nodes[index]
        try:
            try:
                if kind == self.LEASE:
                    await self.renew_lease(node)
                    period: float | None = self.settings.lease_renew_interval
                else:
                    await self.report_status(node)
                    period = None if kind == self.RESYNC else \
                        self.settings.node_status_report_frequency
            finally:
                self._slots.release()
        except (ApiError, TransportError) as e:
            # as the kubelet's lease controller: retry soon, doubling to the cap
            delay = min(self._failures.get((kind, index), 0.1) * 2,
                        self.settings.node_lease_max_backoff)
            self._failures[(kind, index)] = delay
            log.warning("hollow node %s: %s failed, retrying in %.1fs: %s", node.name, kind,
                        delay, e)
            self._schedule(self.clock.monotonic() + delay, kind, index)
            return
        self._failures.pop((kind, index), None)
        if period is None:
            self._resyncing.discard(index)
            return
        # next beat one period after the planned one, so the spread does not drift;
        # a node that fell behind (an overloaded server) starts a fresh period
        self._schedule(max(due + period, self.clock.monotonic()), kind, index)

    async def renew_lease(self, node: HollowNode) -> None:
        """One merge patch of renewTime: no read, no conflict, no cached object."""
        renew = metautil.micro_time(self.clock.now())
        body = {"spec": {"holderIdentity": node.name, "renewTime": renew,
                         "leaseDurationSeconds": self.settings.node_lease_duration}}
        try:
            await self.client.patch(resources.LEASES, node.name, body=body,
                                    namespace=LEASE_NAMESPACE, patch_type="merge")
        except ApiError as e:
            if not is_not_found(e):
                raise
            await self._recreate(node)
        self.renewals += 1

    async def _recreate(self, node: HollowNode) -> None:
        """The lease (or the whole node) is gone: register again."""
        try:
            await self.client.get(resources.NODES, node.name)
        except ApiError as e:
            if not is_not_found(e):
                raise
            log.info("hollow node %s was deleted; registering it again", node.name)
        await self.register(node)

    async def report_status(self, node: HollowNode) -> None:
        """A status report: every condition posted with its lastHeartbeatTime moved, and
        its lastTransitionTime too where the API shows another status."""
        now = self._now()
        seen = self.informer.store.get(node.name)
        have = _condition_statuses(seen) if seen is not None else {}
        conditions = []
        for cond in self._wanted_conditions(node):
            cond = dict(cond, lastHeartbeatTime=now)
            if seen is not None and have.get(cond["type"]) != cond["status"]:
                cond["lastTransitionTime"] = now
            conditions.append(cond)
        try:
            await self.client.patch(resources.NODES, node.name,
                                    body={"status": {"conditions": conditions}},
                                    patch_type="strategic", subresource="status")
        except ApiError as e:
            if not is_not_found(e):
                raise
            await self.register(node)


# ---- pods ------------------------------------------------------------------------------

_VOLATILE_META = ("resourceVersion", "managedFields", "generation")


def _spec_or_meta_changed(old: dict, new: dict) -> bool:
    if old.get("spec") != new.get("spec"):
        return True
    strip = lambda m: {k: v for k, v in (m or {}).items() if k not in _VOLATILE_META}  # noqa: E731
    return strip(old.get("metadata")) != strip(new.get("metadata"))


def _annotation_number(pod: dict, key: str) -> float | None:
    try:
        value = (pods.meta(pod).get("annotations") or {}).get(key)
        return float(value) if value is not None else None
    except ValueError:
        return None


def _ns(clock: Clock) -> int:
    return int(clock.now().timestamp() * 1e9)


@dataclasses.dataclass(slots=True)
class _Known:
    uid: str
    node: str


class HollowPods(Controller):
    """Runs the pods bound to hollow nodes: one informer, one queue, a few workers."""

    name = "hollow-pods"

    def __init__(self, client, nodes: Mapping[str, HollowNode], settings: HollowSettings, *,
                 clock: Clock = REAL_CLOCK):
        super().__init__(clock=clock)
        self.client, self.nodes, self.settings = client, nodes, settings
        self.informer = SharedInformer(client, resources.PODS, field_selector="spec.nodeName!=",
                                       clock=clock)
        self.informer.add_event_handler(on_add=self._on_add, on_update=self._on_update,
                                        on_delete=self._on_delete)
        self.pods_by_uid: dict[str, dict] = {}
        self.known: dict[str, _Known] = {}  # pod key -> what the runtime holds
        self.status_manager = StatusManager(client, clock=clock, get_pod=self.pods_by_uid.get,
                                            sync_period=settings.status_sync_period,
                                            concurrency=settings.status_concurrency)
        self.backoff = Backoff(settings.container_backoff_initial,
                               settings.container_backoff_max, clock=clock)
        self.start_failures: dict[str, dict[str, StartFailure]] = {}

    # ---- handlers: route by nodeName, enqueue -----------------------------------------

    def _ours(self, pod: dict) -> bool:
        return pods.spec(pod).get("nodeName") in self.nodes

    def _on_add(self, pod: dict) -> None:
        if self._ours(pod):
            self.pods_by_uid[pods.uid(pod)] = pod
            self.enqueue(pod)

    def _on_update(self, old: dict, new: dict) -> None:
        if not self._ours(new):
            return
        self.pods_by_uid[pods.uid(new)] = new
        # our own status writes come back as updates: nothing to do for them
        if pods.uid(old) != pods.uid(new) or _spec_or_meta_changed(old, new):
            self.enqueue(new)

    def _on_delete(self, pod: dict) -> None:
        if self._ours(pod):
            self.pods_by_uid.pop(pods.uid(pod), None)
            self.enqueue(pod)

    # ---- lifecycle ---------------------------------------------------------------------

    async def run_all(self) -> None:
        manager = asyncio.create_task(self.status_manager.run(), name="hollow status manager")
        try:
            await self.run(workers=self.settings.pod_workers, informers=[self.informer])
        finally:
            manager.cancel()
            await self.informer.stop()
            await asyncio.gather(manager, return_exceptions=True)

    # ---- the runtime of a node ---------------------------------------------------------

    async def _runtime(self, node: HollowNode) -> FakeRuntime:
        if node.runtime is None:
            if not node.pod_cidr:
                # the node-ipam controller may have assigned one since registration
                found = await self.client.get(resources.NODES, node.name)
                node.pod_cidr = (found.get("spec") or {}).get("podCIDR") or ""
            cidr = node.pod_cidr or self._generated_cidr(node.index)
            node.runtime = FakeRuntime(pod_cidr=cidr, clock=lambda: _ns(self.clock),
                                       stop_exit_code=0, runtime_name=RUNTIME_NAME)
        return node.runtime

    def _generated_cidr(self, index: int) -> str:
        """The node's /24 of `generated_pod_cidrs`, by its index."""
        base = ipaddress.ip_network(self.settings.generated_pod_cidrs)
        return str(ipaddress.ip_network((int(base.network_address) + (index << 8), 24)))

    # ---- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        pod = self.informer.store.get(key)
        known = self.known.get(key)
        if known is not None and (pod is None or pods.uid(pod) != known.uid):
            await self._forget(key, known)
        if pod is None or not self._ours(pod):
            return
        node = self.nodes[pods.spec(pod)["nodeName"]]
        runtime = await self._runtime(node)
        self.known[key] = _Known(uid=pods.uid(pod), node=node.name)
        try:
            retry = await self._sync_pod(pod, node, runtime)
        finally:
            runtime.calls.clear()  # FakeRuntime's test log would grow forever
        if retry is not None:
            raise Requeue(retry)

    async def _status(self, pod: dict, runtime: FakeRuntime) -> runtimepods.RuntimePodStatus:
        m = pods.meta(pod)
        return await runtimepods.get_pod_status(runtime, pods.uid(pod), m.get("name", ""),
                                                m.get("namespace", ""))

    def _generate(self, pod: dict, node: HollowNode, status: runtimepods.RuntimePodStatus, *,
                  terminal: bool) -> dict:
        uid = pods.uid(pod)
        old = self.status_manager.get(uid) or pod.get("status") or {}
        return podstatus.generate(pod, status, old=old, terminal=terminal,
                                  runtime_name=RUNTIME_NAME, host_ips=[node.ip],
                                  start_failures=self.start_failures.get(uid, {}))

    async def _sync_pod(self, pod: dict, node: HollowNode, runtime: FakeRuntime
                        ) -> float | None:
        """One pass of the pod worker; returns when to look again (None: on a change)."""
        uid = pods.uid(pod)
        cached = self.status_manager.statuses.get(uid)
        if cached is not None and cached.finished:
            return None  # terminated; the status manager finishes a deletion
        status = await self._status(pod, runtime)
        if self._simulate_exits(pod, runtime, status):
            status = await self._status(pod, runtime)
        api_status = self._generate(pod, node, status, terminal=False)
        if pods.deletion_requested(pod) or api_status["phase"] in ("Succeeded", "Failed"):
            await self._terminate(pod, node, runtime, status)
            return None
        wait = await self._act(pod, runtime, status)
        status = await self._status(pod, runtime)
        self.status_manager.set_pod_status(pod, self._generate(pod, node, status,
                                                               terminal=False))
        waits = [w for w in (wait, self._next_exit(pod, status)) if w is not None]
        return min(waits) if waits else None

    def _simulate_exits(self, pod: dict, runtime: FakeRuntime,
                        status: runtimepods.RuntimePodStatus) -> bool:
        """End the containers whose simulated run is over; True if any did."""
        run = _annotation_number(pod, RUN_SECONDS)
        if run is None:
            return False
        code = int(_annotation_number(pod, EXIT_CODE) or 0)
        now, ended = _ns(self.clock), False
        for record in status.running_containers:
            if now >= record.started_at + run * 1e9:
                runtime.exit_container(record.id, code)
                ended = True
        return ended

    def _next_exit(self, pod: dict, status: runtimepods.RuntimePodStatus) -> float | None:
        """Seconds until the next simulated exit, if the pod has a run time."""
        run = _annotation_number(pod, RUN_SECONDS)
        started = [c.started_at for c in status.running_containers]
        if run is None or not started:
            return None
        return max(min(started) + run * 1e9 - _ns(self.clock), 0) / 1e9 + 0.001

    async def _act(self, pod: dict, runtime: FakeRuntime,
                   status: runtimepods.RuntimePodStatus) -> float | None:
        """Carry out `compute_pod_actions`; returns when to sync again (a back-off or
        the next init step), None when only a change needs a sync."""
        changes = actions.compute_pod_actions(pod, status)
        if changes.nothing:
            return None
        if changes.kill_pod:
            await self._kill(pod, runtime, status, grace=None)
        for cid in changes.containers_to_kill:
            await runtime.stop_container(cid, timeout=self._grace(pod))
        sandbox_id, attempt = changes.sandbox_id, changes.attempt
        if changes.create_sandbox:
            try:
                sandbox_id = await runtime.run_pod_sandbox(self._sandbox_config(pod, attempt))
            except CRIError as e:
                log.warning("pod %s: sandbox: %s", pods.full_name(pod), e.message)
                return self.settings.container_backoff_initial
        if changes.init_containers_to_start:
            # a simulated init container succeeds at once, a sidecar keeps running: go
            # on with the next step
            waits = [await self._start(pod, runtime, status, sandbox_id,
                                       pods.init_containers(pod)[index], pods.INIT)
                     for index in changes.init_containers_to_start]
            if any(w is None for w in waits):
                return NEXT_STEP
            return min(waits)  # every start waits out its back-off
        waits = [await self._start(pod, runtime, status, sandbox_id,
                                   pods.containers(pod)[index], pods.REGULAR)
                 for index in changes.containers_to_start]
        return min((w for w in waits if w is not None), default=None)

    def _sandbox_config(self, pod: dict, attempt: int) -> dict:
        m = pods.meta(pod)
        network = "NODE" if pods.is_host_network(pod) else "POD"
        return {"metadata": {"name": m.get("name", ""), "namespace": m.get("namespace", ""),
                             "uid": m.get("uid", ""), "attempt": attempt},
                "labels": pods.sandbox_labels(pod),
                "linux": {"security_context": {"namespace_options": {"network": network}}}}

    async def _start(self, pod: dict, runtime: FakeRuntime,
                     status: runtimepods.RuntimePodStatus, sandbox_id: str, container: dict,
                     container_type: str) -> float | None:
        """Create and start one container, after its restart back-off."""
        uid, name = pods.uid(pod), container["name"]
        latest = status.latest(name)
        if latest is not None and latest.exited:
            key = backoff_key(pod, container)
            finished = datetime.datetime.fromtimestamp(latest.finished_at / 1e9,
                                                       datetime.timezone.utc)
            wait = self.backoff.remaining(key, finished)
            if wait > 0:
                self.start_failures.setdefault(uid, {})[name] = StartFailure(
                    CRASH_LOOP_BACK_OFF, f"back-off {go_duration(self.backoff.get(key))} "
                                         f"restarting failed container={name} "
                                         f"pod={pods.full_name(pod)}")
                return wait
            self.backoff.next(key, finished)
        image = container.get("image", "")
        if await runtime.image_status(image) is None:
            await runtime.pull_image(image)
        restart_count = latest.restart_count + 1 if latest is not None else 0
        config = {"metadata": {"name": name, "attempt": restart_count},
                  "image": {"image": image},
                  "labels": pods.container_labels(pod, container),
                  "annotations": pods.container_annotations(
                      pod, container, restart_count=restart_count,
                      container_type=container_type)}
        sandbox_config = self._sandbox_config(pod, 0)
        cid = await runtime.create_container(sandbox_id, config, sandbox_config)
        await runtime.start_container(cid)
        if container_type == pods.INIT and not actions.is_restartable(container):
            runtime.exit_container(cid, 0)
        self.start_failures.get(uid, {}).pop(name, None)
        return None

    def _grace(self, pod: dict, override: int | None = None) -> int:
        if override is not None:
            return max(int(override), 0)
        return max(pods.termination_grace_period(pod), self.settings.minimum_grace_period)

    async def _kill(self, pod: dict, runtime: FakeRuntime,
                    status: runtimepods.RuntimePodStatus, *, grace: int | None) -> None:
        """Stop the running containers (a fake process honours SIGTERM at once), then
        the sandboxes, which returns the pod IP."""
        for record in status.running_containers:
            await runtime.stop_container(record.id, timeout=self._grace(pod, grace))
        for sandbox in status.sandboxes:
            await runtime.stop_pod_sandbox(sandbox.id)

    async def _terminate(self, pod: dict, node: HollowNode, runtime: FakeRuntime,
                         status: runtimepods.RuntimePodStatus) -> None:
        """Deleted or done: kill, report the final status, let the status manager
        delete the pod (grace 0) once the API has seen it terminal."""
        grace = pods.meta(pod).get("deletionGracePeriodSeconds")
        await self._kill(pod, runtime, status, grace=grace)
        status = await self._status(pod, runtime)
        self.status_manager.set_pod_status(pod, self._generate(pod, node, status,
                                                               terminal=True))
        self.status_manager.terminate_pod(pod)

    async def _forget(self, key: str, known: _Known) -> None:
        """The pod left the API (or was replaced): drop everything held for it."""
        self.known.pop(key, None)
        node = self.nodes.get(known.node)
        if node is not None and node.runtime is not None:
            status = await runtimepods.get_pod_status(node.runtime, known.uid)
            for record in status.containers:
                await node.runtime.remove_container(record.id)
            for sandbox in status.sandboxes:
                await node.runtime.remove_pod_sandbox(sandbox.id)
            node.runtime.calls.clear()
        self.status_manager.forget(known.uid)
        self.start_failures.pop(known.uid, None)
        self.backoff.forget_containing(f"_{known.uid}_")


# ---- the whole set -----------------------------------------------------------------------

def make_nodes(settings: HollowSettings) -> list[HollowNode]:
    ips = ipaddress.ip_network(settings.node_ips).hosts()
    return [HollowNode(index=i, name=settings.node_name(i), ip=str(next(ips)),
                       zone=settings.zones[i % len(settings.zones)])
            for i in range(settings.count)]


class HollowNodes:
    """N hollow nodes on one client: registration, heartbeats and pods."""

    def __init__(self, client, settings: HollowSettings, *, clock: Clock = REAL_CLOCK):
        self.client, self.settings, self.clock = client, settings, clock
        self.nodes = make_nodes(settings)
        self.heartbeats = Heartbeats(client, self.nodes, settings, clock=clock)
        self.pods = HollowPods(client, {n.name: n for n in self.nodes}, settings, clock=clock)
        self.registered = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Register every node, then heartbeat and run pods until `stop` is set."""
        tasks = {asyncio.create_task(self.pods.run_all(), name="hollow pods"),
                 asyncio.create_task(self._heartbeat(), name="hollow heartbeats")}
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(tasks | {stopping},
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                task.result()  # a crashed loop is an error, not a quiet stop
        finally:
            for task in tasks | {stopping}:
                task.cancel()
            await asyncio.gather(*tasks, stopping, return_exceptions=True)

    async def _heartbeat(self) -> None:
        await self.heartbeats.register_all()
        log.info("registered %d hollow nodes", len(self.nodes))
        self.registered.set()
        self.heartbeats.schedule_all()
        await self.heartbeats.run()


async def run_hollow_nodes(kubeconfig: str, *, count: int, prefix: str = "hollow-node-",
                           capacity: dict | None = None, stop: asyncio.Event,
                           settings: HollowSettings | None = None) -> None:
    """`pyk8s hollow-nodes`: run `count` hollow nodes against the cluster of `kubeconfig`
    until `stop` is set. `capacity` replaces the default {"cpu": "4", "memory":
    "16Gi", "pods": "110"} (capacity and allocatable alike). Nodes and leases stay
    registered after the stop, as a stopped kubelet's do (they turn NotReady)."""
    from pyk8s.client.config import load_config
    from pyk8s.client.rest import Client

    settings = dataclasses.replace(
        settings or HollowSettings(count=count), count=count, prefix=prefix,
        capacity=dict(capacity) if capacity is not None else dict(DEFAULT_CAPACITY))
    client = Client(load_config(kubeconfig))
    try:
        await HollowNodes(client, settings).run(stop)
    finally:
        await client.close()
