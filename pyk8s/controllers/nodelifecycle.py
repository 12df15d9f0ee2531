"""Node health: Ready=Unknown for silent nodes, condition taints, NoExecute eviction.

Role: upstream's ``pkg/controller/nodelifecycle/node_lifecycle_controller.go``
(``node-lifecycle-controller``) and ``pkg/controller/tainteviction``
(``taint-eviction-controller``):

- every ``monitor_period`` the lifecycle controller looks at each node's last
  heartbeat (its Ready condition's ``lastHeartbeatTime`` changing, or its Lease in
  ``kube-node-lease`` being renewed, as seen by this controller); a node silent for
  ``grace_period`` (50 s) gets Ready, MemoryPressure, DiskPressure and PIDPressure set
  to Unknown ("Kubelet stopped posting node status."), its pods marked not Ready,
  and — rate limited per zone, and never when every node of every zone is down —
  the ``node.kubernetes.io/unreachable`` NoExecute taint (``not-ready`` for a node
  reporting Ready=False); a Ready node loses both;
- on every node change it keeps the NoSchedule taints that mirror conditions
  (not-ready, unreachable, memory/disk/pid-pressure, network-unavailable) and
  ``spec.unschedulable``;
- the taint-eviction controller deletes pods on a node with NoExecute taints they do
  not tolerate at once, and those they tolerate for ``tolerationSeconds`` once that
  time has passed, adding the ``DisruptionTarget`` condition first.

Invariants:
- Heartbeat times are this controller's own observation times (upstream's
  ``probeTimestamp``), so clock skew between nodes and the control plane is
  irrelevant; after a restart every node gets a full grace period again.
- A pod's toleration time counts from the earliest ``timeAdded`` of the node's
  current NoExecute taints (or the pod's creation, if later), which the API keeps,
  so a restarted controller evicts at the same moment.
- Taint writes are GET + PUT compare-and-swap retried on conflict; taints are
  matched by key and effect.
"""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue
from pyk8s.client.informers import NODE_NAME_INDEX, index_by_node_name
from pyk8s.client.workqueue import TokenBucket

from . import podutil
from .corecontext import ControllerContext, CoreController, retry_on_conflict, set_condition
from .nodematch import tolerates

log = logging.getLogger(__name__)

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"
LEASE_NAMESPACE = "kube-node-lease"
CONDITION_TAINTS = {
    "Ready": {"False": NOT_READY, "Unknown": UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
CONDITION_TAINT_KEYS = {k for m_ in CONDITION_TAINTS.values() for k in m_.values()}
HEALTH_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
NORMAL, PARTIAL, FULL, INITIAL = "Normal", "PartialDisruption", "FullDisruption", "Initial"


# --- pure ----------------------------------------------------------------------------------

def condition(node: dict, ctype: str) -> dict | None:
    return podutil.get_condition(node.get("status"), ctype)


def zone_key(node: dict) -> str:
    """``nodetopology.GetZoneKey``."""
    labels = m.labels(node)
    region = labels.get("topology.kubernetes.io/region") or labels.get(
        "failure-domain.beta.kubernetes.io/region", "")
    zone = labels.get("topology.kubernetes.io/zone") or labels.get(
        "failure-domain.beta.kubernetes.io/zone", "")
    return f"{region}:\x00:{zone}" if region or zone else ""


@dataclass
class NodeHealth:
    """What this controller last saw of a node (``nodeHealthData``)."""

    probe: datetime.datetime
    ready_transition: datetime.datetime
    ready: dict | None = None          # the Ready condition last seen
    lease_renew: datetime.datetime | None = None


def observe_health(node: dict, lease: dict | None, saved: NodeHealth | None,
                   now: datetime.datetime) -> tuple[NodeHealth, bool]:
    """The node's health record after looking at it now, and whether it has a Ready
    condition (nodes without one get the longer startup grace period)."""
    current = condition(node, "Ready")
    created = m.parse_time(node["metadata"]["creationTimestamp"]) \
        if node["metadata"].get("creationTimestamp") else now
    if current is None:
        health = saved or NodeHealth(probe=created, ready_transition=created)
        health.ready = None
    elif saved is None or saved.ready is None:
        health = NodeHealth(probe=now, ready_transition=now, ready=dict(current),
                            lease_renew=saved.lease_renew if saved else None)
    elif saved.ready.get("lastHeartbeatTime") != current.get("lastHeartbeatTime"):
        transition = now if saved.ready.get("lastTransitionTime") != current.get(
            "lastTransitionTime") else saved.ready_transition
        health = NodeHealth(probe=now, ready_transition=transition, ready=dict(current),
                            lease_renew=saved.lease_renew)
    else:
        health = saved
    renew = (lease or {}).get("spec", {}).get("renewTime")
    if renew:
        renewed = m.parse_time(renew)
        if health.lease_renew is None or health.lease_renew < renewed:
            # A renewed Lease is a heartbeat even when the status is not posted.
            health.lease_renew = renewed
            health.probe = now
    return health, current is not None


def mark_unknown(node: dict, now: str) -> dict:
    """A copy of ``node`` with the health conditions Unknown, as after a silent grace."""
    new = {**node, "status": dict(node.get("status") or {})}
    conds = [dict(c) for c in new["status"].get("conditions") or []]
    for ctype in HEALTH_CONDITIONS:
        cond = next((c for c in conds if c.get("type") == ctype), None)
        if cond is None:
            conds.append({"type": ctype, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                          "message": "Kubelet never posted node status.",
                          "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                          "lastTransitionTime": now})
        elif cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown",
                        message="Kubelet stopped posting node status.", lastTransitionTime=now)
    new["status"]["conditions"] = conds
    return new


def compute_zone_state(ready_statuses: list[str | None], unhealthy_threshold: float
                       ) -> tuple[int, str]:
    """``ComputeZoneState``: (not ready count, state) of one zone."""
    ready = sum(1 for s in ready_statuses if s == "True")
    not_ready = len(ready_statuses) - ready
    if ready == 0 and not_ready > 0:
        return not_ready, FULL
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return not_ready, PARTIAL
    return not_ready, NORMAL


def desired_noschedule_taints(node: dict) -> list[dict]:
    """``doNoScheduleTaintingPass``: the condition taints the node must carry."""
    out = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get(cond.get("type"), {}).get(cond.get("status"))
        if key:
            out.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        out.append({"key": UNSCHEDULABLE, "effect": "NoSchedule"})
    return out


def _same(a: dict, b: dict) -> bool:
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def noschedule_diff(node: dict) -> tuple[list[dict], list[dict]]:
    """(taints to add, taints to remove) for the NoSchedule condition taints."""
    want = desired_noschedule_taints(node)
    have = [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoSchedule"
            and (t.get("key") == UNSCHEDULABLE or t.get("key") in CONDITION_TAINT_KEYS)]
    add = [t for t in want if not any(_same(t, h) for h in have)]
    remove = [h for h in have if not any(_same(t, h) for t in want)]
    return add, remove


def swap_taints(taints: list[dict], add: list[dict], remove: list[dict], now: str) -> list[dict]:
    """``SwapNodeControllerTaint``: drop ``remove``, add ``add`` stamped ``timeAdded``."""
    kept = [t for t in taints if not any(_same(t, x) for x in remove)]
    for t in add:
        kept = [k for k in kept if not _same(k, t)]
        kept.append({**t, "timeAdded": now})
    return kept


def noexecute_taint_for(ready_status: str | None) -> tuple[dict | None, dict | None]:
    """(taint to add, opposite taint to remove) for a Ready status."""
    if ready_status == "False":
        return {"key": NOT_READY, "effect": "NoExecute"}, {"key": UNREACHABLE, "effect": "NoExecute"}
    if ready_status == "Unknown":
        return {"key": UNREACHABLE, "effect": "NoExecute"}, {"key": NOT_READY, "effect": "NoExecute"}
    return None, None


def noexecute_taints(node: dict | None) -> list[dict]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoExecute"]


def matching_tolerations(taints: list[dict], tolerations: list[dict]) -> tuple[bool, list[dict]]:
    """``GetMatchingTolerations``: all tolerated?, and the first toleration of each."""
    used = []
    for taint in taints:
        tol = next((t for t in tolerations if tolerates(t, taint)), None)
        if tol is None:
            return False, []
        used.append(tol)
    return True, used


def min_toleration_seconds(used: list[dict]) -> float:
    """``getMinTolerationTime``: 0 for none given, -1 for forever."""
    if not used:
        return 0
    best = None
    for tol in used:
        secs = tol.get("tolerationSeconds")
        if secs is None:
            continue
        if secs <= 0:
            return 0
        best = secs if best is None else min(best, secs)
    return -1 if best is None else float(best)


def eviction_time(pod: dict, node: dict | None) -> datetime.datetime | None | bool:
    """When the taint-eviction controller deletes ``pod``: a time, True (now), or None
    (never, under the node's current taints)."""
    taints = noexecute_taints(node)
    if not taints:
        return None
    ok, used = matching_tolerations(taints, (pod.get("spec") or {}).get("tolerations") or [])
    if not ok:
        return True
    wait = min_toleration_seconds(used)
    if wait < 0:
        return None
    stamps = [m.parse_time(t["timeAdded"]) for t in taints if t.get("timeAdded")]
    start = min(stamps) if stamps else None
    created = podutil.parse_ts(pod["metadata"].get("creationTimestamp"))
    if start is None or (created is not None and created > start):
        start = created
    if start is None:
        return True if wait == 0 else None
    return start + datetime.timedelta(seconds=wait)


# --- node writes ---------------------------------------------------------------------------

async def update_node_taints(client, name: str, change) -> bool:
    """GET + ``change(taints) -> taints | None`` + PUT, retried on conflict."""
    async def attempt() -> bool:
        try:
            node = await client.get(r.NODES, name)
        except ApiError as err:
            if is_not_found(err):
                return False
            raise
        new = change(list((node.get("spec") or {}).get("taints") or []))
        if new is None:
            return False
        node.setdefault("spec", {})["taints"] = new
        await client.update(r.NODES, node)
        return True
    return await retry_on_conflict(attempt)


# --- the lifecycle controller --------------------------------------------------------------

@dataclass
class _Zone:
    state: str = INITIAL
    limiter: TokenBucket | None = None
    qps: float = 0.0
    queue: dict[str, float] = field(default_factory=dict)   # node -> monotonic not-before


class NodeLifecycleController(CoreController):
    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="node-lifecycle-controller", workers=1)
        self.settings = ctx.settings.nodes
        self.recorder = ctx.recorder("node-controller")
        self.nodes = self.informer(r.NODES)
        self.leases = self.informer(r.LEASES, namespace=LEASE_NAMESPACE)
        self.pods = self.informer(r.PODS, indexers={NODE_NAME_INDEX: index_by_node_name})
        self.health: dict[str, NodeHealth] = {}
        self.known: set[str] = set()
        self.zones: dict[str, _Zone] = {}
        self.retry_mark: set[str] = set()
        self.nodes.add_event_handler(on_add=self._node, on_update=lambda o, n: self._node(n))
        self.queue.add("monitor")

    def _node(self, node: dict) -> None:
        self.enqueue(f"taints/{node['metadata']['name']}")

    async def sync(self, key: str) -> None:
        if key == "monitor":
            try:
                await self.monitor()
            finally:
                await self.taint_pass()
            raise Requeue(self.settings.monitor_period)
        await self.noschedule_pass(key.partition("/")[2])

    async def noschedule_pass(self, name: str) -> None:
        node = self.nodes.store.get(name)
        if node is None:
            return
        add, remove = noschedule_diff(node)
        if add or remove:
            now = self.now_str()
            await update_node_taints(self.client, name, lambda ts: swap_taints(ts, add, remove, now))

    # --- monitoring ------------------------------------------------------------------

    async def monitor(self) -> None:
        """``monitorNodeHealth``: one pass over all nodes."""
        nodes = self.nodes.store.list()
        names = {n["metadata"]["name"] for n in nodes}
        for node in nodes:
            name = node["metadata"]["name"]
            if name not in self.known:
                self.known.add(name)
                self.recorder.event(_node_ref(node), "Normal", reason="RegisteredNode",
                                    message=f"Registered Node {name} in Controller")
                self._zone(zone_key(node))
                await self._mark_reachable(node)
        for gone in self.known - names:
            self.known.discard(gone)
            self.health.pop(gone, None)
            for zone in self.zones.values():
                zone.queue.pop(gone, None)
        statuses: dict[str, list[str | None]] = {}
        for node in nodes:
            try:
                current = await self._update_health(node)
            except ApiError as err:
                # The next pass (monitor_period later) tries this node again.
                log.warning("node %s: updating health failed: %s", node["metadata"]["name"], err)
                current = (condition(node, "Ready") or {}).get("status")
            if EXCLUDE_DISRUPTION not in m.labels(node):
                statuses.setdefault(zone_key(node), []).append(current)
        await self._handle_disruption(statuses, nodes)

    async def _update_health(self, node: dict) -> str | None:
        """``tryUpdateNodeHealth`` + the taint and pod decisions; the current Ready."""
        name = node["metadata"]["name"]
        now = self.now()
        lease = self.leases.store.get_object(LEASE_NAMESPACE, name)
        health, has_ready = observe_health(node, lease, self.health.get(name), now)
        self.health[name] = health
        grace = self.settings.grace_period if has_ready else self.settings.startup_grace_period
        observed = condition(node, "Ready") or {"status": "Unknown"}
        current_status = observed.get("status")
        if now > health.probe + datetime.timedelta(seconds=grace):
            stale = mark_unknown(node, m.format_time(now))
            new_ready = condition(stale, "Ready")
            if new_ready != condition(node, "Ready"):
                log.info("node %s: no heartbeat for %.0f s, marking Unknown", name,
                         (now - health.probe).total_seconds())
                await self.client.update_status(r.NODES, stale)
                health.ready_transition = now
                health.ready = dict(new_ready)
            current_status = new_ready.get("status")
        await self._taint_decision(node, observed.get("status"))
        if current_status != "True" and observed.get("status") == "True":
            self.recorder.event(_node_ref(node), "Normal", reason="NodeNotReady",
                                message=f"Node {name} status is now: NodeNotReady")
            self.retry_mark.add(name)
        if name in self.retry_mark and current_status != "True":
            try:
                await self._mark_pods_not_ready(name)
                self.retry_mark.discard(name)
            except ApiError as err:
                log.warning("unable to mark all pods NotReady on node %s: %s", name, err)
        elif current_status == "True":
            self.retry_mark.discard(name)
        return current_status

    async def _taint_decision(self, node: dict, observed: str | None) -> None:
        """``processTaintBaseEviction``: queue the node for a NoExecute taint."""
        name = node["metadata"]["name"]
        zone = self._zone(zone_key(node))
        if observed in ("False", "Unknown"):
            add, opposite = noexecute_taint_for(observed)
            taints = noexecute_taints(node)
            if any(_same(t, opposite) for t in taints):
                # Already tainted the other way: swap at once, not rate limited.
                stamp = self.now_str()
                await update_node_taints(self.client, name, lambda ts: swap_taints(
                    ts, [add], [opposite], stamp))
            elif not any(_same(t, add) for t in taints):
                zone.queue.setdefault(name, 0.0)
        elif observed == "True":
            zone.queue.pop(name, None)
            if any(t.get("key") in (UNREACHABLE, NOT_READY) for t in noexecute_taints(node)):
                zone.queue[name] = -1.0   # reachable again: untaint at the next pass

    async def _mark_reachable(self, node: dict) -> None:
        name = node["metadata"]["name"]
        for zone in self.zones.values():
            zone.queue.pop(name, None)
        if any(t.get("key") in (UNREACHABLE, NOT_READY) for t in noexecute_taints(node)):
            await update_node_taints(self.client, name, lambda ts: swap_taints(
                ts, [], [{"key": UNREACHABLE, "effect": "NoExecute"},
                         {"key": NOT_READY, "effect": "NoExecute"}], ""))

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """``MarkPodsNotReady``: set each pod's Ready condition False."""
        now = self.now_str()
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, node_name):
            if podutil.node_name(pod) != node_name or not podutil.is_pod_ready(pod):
                continue
            conds = (pod.get("status") or {}).get("conditions") or []
            ready = next(c for c in conds if c.get("type") == "Ready")
            new_conds, _ = set_condition(conds, {**ready, "status": "False"}, now)
            body = {**pod, "status": {**pod["status"], "conditions": new_conds}}
            try:
                await self.client.update_status(r.PODS, body)
            except ApiError as err:
                if is_not_found(err):
                    continue
                raise
            self.recorder.event(pod, "Warning", reason="NodeNotReady", message="Node is not ready")

    # --- zones and the rate-limited taint queue ---------------------------------------

    def _zone(self, key: str) -> _Zone:
        zone = self.zones.get(key)
        if zone is None:
            zone = self.zones[key] = _Zone()
            self._set_rate(zone, self.settings.eviction_qps)
        return zone

    def _set_rate(self, zone: _Zone, qps: float) -> None:
        zone.qps = qps
        zone.limiter = TokenBucket(qps, 1, clock=self.clock) if qps > 0 else None

    def _rate_for(self, state: str, size: int) -> float:
        s = self.settings
        if state == PARTIAL:
            return s.secondary_eviction_qps if size > s.large_cluster_threshold else 0.0
        return s.eviction_qps

    async def _handle_disruption(self, statuses: dict[str, list], nodes: list[dict]) -> None:
        threshold = self.settings.unhealthy_zone_threshold
        new_states = {k: compute_zone_state(v, threshold)[1] for k, v in statuses.items()}
        all_down_now = all(s == FULL for s in new_states.values())
        for k in list(self.zones):
            if k not in statuses:
                del self.zones[k]
        all_down_before = all(z.state == FULL for z in self.zones.values())
        for k in statuses:
            self._zone(k)
        if all_down_now and all_down_before:
            return
        if all_down_now:
            # Every node is down: more likely our network or the control plane than the
            # nodes. Untaint everything and stop evicting.
            log.info("all nodes are not Ready: entering master disruption mode")
            for node in nodes:
                await self._mark_reachable(node)
            for zone in self.zones.values():
                self._set_rate(zone, 0.0)
                zone.state = FULL
            return
        if all_down_before:
            log.info("some nodes are Ready: exiting master disruption mode")
            now = self.now()
            for health in self.health.values():
                health.probe = health.ready_transition = now
        for k, zone in self.zones.items():
            state = new_states.get(k, NORMAL)
            if zone.state != state or all_down_before:
                self._set_rate(zone, self._rate_for(state, len(statuses.get(k, []))))
                zone.state = state

    async def taint_pass(self) -> None:
        """``doNoExecuteTaintingPass``: taint queued nodes as the zone's rate allows."""
        now = self.clock.monotonic()
        for zone in self.zones.values():
            for name in sorted(zone.queue, key=lambda n: zone.queue[n]):
                not_before = zone.queue[name]
                if not_before > now:
                    continue
                node = self.nodes.store.get(name)
                if node is None:
                    zone.queue.pop(name, None)
                    continue
                ready = (condition(node, "Ready") or {}).get("status")
                add, opposite = noexecute_taint_for(ready)
                if add is None:
                    zone.queue.pop(name, None)
                    if not_before < 0:
                        await self._mark_reachable(node)
                    continue
                if zone.limiter is None or not zone.limiter.try_accept():
                    break
                stamp = self.now_str()
                await update_node_taints(self.client, name, lambda ts: swap_taints(
                    ts, [add], [opposite], stamp))
                zone.queue.pop(name, None)


def _node_ref(node: dict) -> dict:
    md = node["metadata"]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": md["name"], "uid": md.get("uid", ""), "namespace": ""}}


# --- taint eviction --------------------------------------------------------------------------

class TaintEvictionController(CoreController):
    """Deletes pods from nodes with NoExecute taints they do not (or no longer) tolerate."""

    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="taint-eviction-controller",
                         workers=ctx.settings.nodes.taint_eviction_workers)
        self.recorder = ctx.recorder("taint-eviction-controller")
        self.nodes = self.informer(r.NODES)
        self.pods = self.informer(r.PODS, indexers={NODE_NAME_INDEX: index_by_node_name})
        self.pods.add_event_handler(on_add=self._pod, on_update=lambda o, n: self._pod(n))
        self.nodes.add_event_handler(on_add=self._node, on_update=self._node_update)
        self.scheduled: set[str] = set()

    def _pod(self, pod: dict) -> None:
        if podutil.node_name(pod):
            self.enqueue(pod)

    def _node(self, node: dict) -> None:
        if noexecute_taints(node):
            for pod in self.pods.store.by_index(NODE_NAME_INDEX, node["metadata"]["name"]):
                self.enqueue(pod)

    def _node_update(self, old: dict, new: dict) -> None:
        if noexecute_taints(old) != noexecute_taints(new):
            for pod in self.pods.store.by_index(NODE_NAME_INDEX, new["metadata"]["name"]):
                self.enqueue(pod)

    async def sync(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or podutil.deletion_timestamp(pod) or not podutil.node_name(pod):
            self.scheduled.discard(key)
            return
        when = eviction_time(pod, self.nodes.store.get(podutil.node_name(pod)))
        if when is None:
            if key in self.scheduled:
                self.scheduled.discard(key)
                self.recorder.event(pod, "Normal", reason="TaintManagerEviction",
                                    message=f"Cancelling deletion of Pod {key}")
            return
        if when is not True and when > self.now():
            self.scheduled.add(key)
            raise Requeue((when - self.now()).total_seconds())
        self.scheduled.discard(key)
        self.recorder.event(pod, "Normal", reason="TaintManagerEviction",
                            message=f"Marking for deletion Pod {key}")
        await evict_with_condition(self.client, pod, reason="DeletionByTaintManager",
                                   message="Taint manager: deleting due to NoExecute taint",
                                   now=self.now_str())


async def evict_with_condition(client, pod: dict, *, reason: str, message: str, now: str,
                               grace_period: int | None = None, fail: bool = False) -> None:
    """Add ``DisruptionTarget`` (and phase Failed when ``fail``) then delete the pod."""
    md = pod["metadata"]
    status = dict(pod.get("status") or {})
    conds, changed = set_condition(status.get("conditions") or [], {
        "type": "DisruptionTarget", "status": "True", "reason": reason, "message": message}, now)
    if fail and status.get("phase") not in ("Succeeded", "Failed"):
        status["phase"] = "Failed"
        changed = True
    try:
        if changed:
            status["conditions"] = conds
            await client.update_status(r.PODS, {**pod, "status": status})
        await client.delete(r.PODS, md["name"], namespace=md["namespace"],
                            grace_period_seconds=grace_period,
                            preconditions={"uid": md["uid"]})
    except ApiError as err:
        if not is_not_found(err):
            raise


def new_node_lifecycle_controller(ctx: ControllerContext) -> NodeLifecycleController:
    return NodeLifecycleController(ctx)


def new_taint_eviction_controller(ctx: ControllerContext) -> TaintEvictionController:
    return TaintEvictionController(ctx)

