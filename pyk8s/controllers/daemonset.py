"""DaemonSet decisions: which nodes need a daemon pod, which pods go, rolling updates, status.

Role: the pure half of upstream's ``pkg/controller/daemon`` (``daemon_controller.go``
``podsShouldBeOnNode``/``NodeShouldRunDaemonPod``/``updateDaemonSetStatus``,
``update.go`` ``rollingUpdate``/``constructHistory``, ``util/daemonset_util.go``).
``daemonset_controller`` performs the plans.

Invariants:
- Daemon pods carry upstream's default tolerations (not-ready and unreachable
  NoExecute; disk/memory/pid pressure and unschedulable NoSchedule; network-unavailable
  for hostNetwork pods) and are pinned to their node through a required node affinity
  on ``metadata.name`` (matchFields), never through ``spec.nodeName``.
- A node runs the pod when its name, required affinity and NoSchedule/NoExecute
  taints allow; a pod already there keeps running while only NoSchedule taints are
  untolerated.
- Without surge, a node never keeps more than one running daemon pod (the oldest
  stays); with surge, at most one old and one new.
- Rolling updates never make more than ``maxUnavailable`` nodes unavailable, nor
  surge on more than ``maxSurge`` nodes (both rounded up from percentages); if both
  come out 0 one unavailable node is allowed.
"""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field

from pyk8s.api import meta as m

from . import hashing, history, nodematch, podutil

TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
HASH_LABEL = history.CONTROLLER_REVISION_HASH
FAILED_DAEMON_POD_REASON = "FailedDaemonPod"
SUCCEEDED_DAEMON_POD_REASON = "SucceededDaemonPod"
SELECTING_ALL_REASON = "SelectingAll"

_DEFAULT_TOLERATIONS = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
]


# --- pod templates ------------------------------------------------------------------

def _same_toleration(a: dict, b: dict) -> bool:
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value", "effect"))


def add_or_update_toleration(spec: dict, toleration: dict) -> bool:
    tolerations = spec.get("tolerations") or []
    for i, t in enumerate(tolerations):
        if _same_toleration(t, toleration):
            if t == toleration:
                return False
            tolerations[i] = toleration
            spec["tolerations"] = tolerations
            return True
    spec["tolerations"] = tolerations + [toleration]
    return True


def add_daemon_tolerations(spec: dict) -> None:
    """``AddOrUpdateDaemonPodTolerations``."""
    wanted = list(_DEFAULT_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        add_or_update_toleration(spec, {"key": key, "operator": "Exists", "effect": effect})


def template_generation(ds: dict) -> int | None:
    value = m.annotations(ds).get(TEMPLATE_GENERATION_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def pod_template(ds: dict, hash_: str) -> dict:
    """``CreatePodTemplate``: the template with tolerations and revision labels."""
    template = copy.deepcopy(ds["spec"]["template"])
    add_daemon_tolerations(template.setdefault("spec", {}))
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    generation = template_generation(ds)
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = str(generation)
    if hash_:
        labels[HASH_LABEL] = hash_
    return template


def pin_to_node(spec: dict, node_name: str) -> None:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: require ``metadata.name In [node]``."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}


def target_node_name(pod: dict) -> str | None:
    """``GetTargetNodeName``: spec.nodeName, else the pinned ``metadata.name`` affinity."""
    if podutil.node_name(pod):
        return podutil.node_name(pod)
    required = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) < 1:
        return None
    for field_req in terms[0].get("matchFields") or []:
        if (field_req.get("key") == "metadata.name" and field_req.get("operator") == "In"
                and len(field_req.get("values") or []) == 1):
            return field_req["values"][0]
    return None


# --- placement ----------------------------------------------------------------------

def node_should_run(node: dict, ds: dict) -> tuple[bool, bool]:
    """(should run a daemon pod, should keep running an existing one)."""
    spec = copy.deepcopy(ds["spec"]["template"].get("spec") or {})
    wanted_node = spec.get("nodeName")
    name = node["metadata"]["name"]
    if wanted_node and wanted_node != name:
        return False, False
    add_daemon_tolerations(spec)
    if not nodematch.required_affinity_matches(spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = spec.get("tolerations") or []
    if nodematch.find_untolerated_taint(taints, tolerations,
                                        lambda t: t.get("effect") in ("NoExecute", "NoSchedule")):
        no_execute = nodematch.find_untolerated_taint(taints, tolerations,
                                                      lambda t: t.get("effect") == "NoExecute")
        return False, no_execute is None
    return True, True


def nodes_to_daemon_pods(pods: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for pod in pods:
        node = target_node_name(pod)
        if node:
            out.setdefault(node, []).append(pod)
    return out


def sort_by_creation_and_phase(pods: list[dict]) -> list[dict]:
    """``podByCreationTimestampAndPhase``: scheduled first, then oldest, then name."""
    far = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
    return sorted(pods, key=lambda p: (
        0 if podutil.node_name(p) else 1,
        podutil.parse_ts(p["metadata"].get("creationTimestamp")) or far, p["metadata"]["name"]))


def is_pod_updated(pod: dict, hash_: str, generation: int | None) -> bool:
    labels = m.labels(pod)
    return ((generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == str(generation))
            or (bool(hash_) and labels.get(HASH_LABEL) == hash_))


def surge_count(ds: dict, number: int) -> int:
    strategy = ds["spec"].get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or rolling is None:
        return 0
    if rolling.get("maxSurge") is None:
        return 0
    return podutil.scaled_value(rolling["maxSurge"], number, True)


def unavailable_count(ds: dict, number: int) -> int:
    strategy = ds["spec"].get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or rolling is None:
        return 0
    return podutil.scaled_value(rolling.get("maxUnavailable", 1), number, True)


def allows_surge(ds: dict) -> bool:
    try:
        return surge_count(ds, 1) != 0
    except podutil.IntOrStringError:
        return False


class FailedPodsBackoff:
    """``flowcontrol.Backoff`` (1 s doubling to 15 min) for recreating failed pods."""

    def __init__(self, initial: float = 1.0, maximum: float = 900.0):
        self.initial, self.maximum = initial, maximum
        self._entries: dict[str, tuple[float, datetime.datetime]] = {}

    def _expired(self, key: str, now: datetime.datetime) -> bool:
        entry = self._entries.get(key)
        return entry is None or (now - entry[1]).total_seconds() > 2 * self.maximum

    def get(self, key: str) -> float:
        return self._entries.get(key, (0.0, None))[0]

    def in_backoff_since_update(self, key: str, now: datetime.datetime) -> bool:
        if self._expired(key, now):
            return False
        delay, last = self._entries[key]
        return (now - last).total_seconds() < delay

    def next(self, key: str, now: datetime.datetime) -> None:
        if self._expired(key, now):
            self._entries[key] = (self.initial, now)
        else:
            self._entries[key] = (min(self._entries[key][0] * 2, self.maximum), now)


@dataclass
class NodePlan:
    create_on: list[str] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


def pods_should_be_on_node(node: dict, by_node: dict[str, list[dict]], ds: dict, hash_: str,
                           now: datetime.datetime, backoff: FailedPodsBackoff) -> NodePlan:
    """``podsShouldBeOnNode``: what the manage loop does for one node."""
    plan = NodePlan()
    name = node["metadata"]["name"]
    should_run, should_continue = node_should_run(node, ds)
    pods = by_node.get(name)
    if should_run and pods is None:
        plan.create_on.append(name)
        return plan
    if should_continue:
        running = []
        for pod in pods or []:
            if podutil.deletion_timestamp(pod):
                continue
            ph, pname = podutil.phase(pod), f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
            if ph == "Failed":
                key = f"{ds['metadata'].get('uid')}/{(ds.get('status') or {}).get('observedGeneration', 0)}/{name}"
                if backoff.in_backoff_since_update(key, now):
                    plan.requeue_after = backoff.get(key)
                    continue
                backoff.next(key, now)
                plan.events.append(("Warning", FAILED_DAEMON_POD_REASON,
                                    f"Found failed daemon pod {pname} on node {name}, will try to kill it"))
                plan.delete.append(pod)
            elif ph == "Succeeded":
                plan.events.append(("Normal", SUCCEEDED_DAEMON_POD_REASON,
                                    f"Found succeeded daemon pod {pname} on node {name}, will try to delete it"))
                plan.delete.append(pod)
            else:
                running.append(pod)
        running = sort_by_creation_and_phase(running)
        if not allows_surge(ds):
            plan.delete.extend(running[1:])
            return plan
        if len(running) <= 1:
            if not running and should_run:
                plan.create_on.append(name)
            return plan
        oldest_new = oldest_old = None
        for pod in running:
            if m.labels(pod).get(HASH_LABEL) == hash_:
                if oldest_new is None:
                    oldest_new = pod
                    continue
            elif oldest_old is None:
                oldest_old = pod
                continue
            plan.delete.append(pod)
        if oldest_new is not None and oldest_old is not None:
            min_ready = int(ds["spec"].get("minReadySeconds") or 0)
            if (not podutil.is_pod_ready(oldest_old)
                    or podutil.is_pod_available(oldest_new, min_ready, now)):
                plan.delete.append(oldest_old)
        return plan
    if pods:
        plan.delete.extend(p for p in pods if not podutil.deletion_timestamp(p))
    return plan


def unscheduled_pods_without_node(nodes: list[dict], by_node: dict[str, list[dict]]) -> list[dict]:
    """``getUnscheduledPodsWithoutNode``: pending pods pinned to nodes that are gone."""
    known = {n["metadata"]["name"] for n in nodes}
    return [p for node, pods in by_node.items() if node not in known
            for p in pods if not podutil.node_name(p)]


# --- rolling update -------------------------------------------------------------------

def find_updated_pods_on_node(ds: dict, pods: list[dict], hash_: str):
    """(new pod, old pod, ok): ok is False with more than one of either kind."""
    new = old = None
    generation = template_generation(ds)
    for pod in pods:
        if podutil.deletion_timestamp(pod):
            continue
        if is_pod_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


@dataclass
class RollingPlan:
    delete: list[dict] = field(default_factory=list)
    create_on: list[str] = field(default_factory=list)


def desired_node_counts(ds: dict, nodes: list[dict], by_node: dict[str, list[dict]]):
    """``updatedDesiredNodeCounts``: (maxSurge, maxUnavailable, desired); adds empty nodes."""
    desired = 0
    for node in nodes:
        if node_should_run(node, ds)[0]:
            desired += 1
            by_node.setdefault(node["metadata"]["name"], [])
    max_unavailable = unavailable_count(ds, desired)
    max_surge = surge_count(ds, desired)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1
    return max_surge, max_unavailable, desired


def rolling_update(ds: dict, nodes: list[dict], pods: list[dict], hash_: str,
                   now: datetime.datetime) -> RollingPlan:
    """``rollingUpdate``: old pods to delete and (with surge) nodes to add a new pod to."""
    by_node = nodes_to_daemon_pods(pods)
    max_surge, max_unavailable, desired = desired_node_counts(ds, nodes, by_node)
    min_ready = int(ds["spec"].get("minReadySeconds") or 0)
    nodes_by_name = {n["metadata"]["name"]: n for n in nodes}
    plan = RollingPlan()

    def available(pod):
        return podutil.is_pod_available(pod, min_ready, now)

    if max_surge == 0:
        unavailable, replace, candidates = 0, [], []
        for name, node_pods in by_node.items():
            new, old, ok = find_updated_pods_on_node(ds, node_pods, hash_)
            if not ok or (old is None and new is None) or (old is not None and new is not None):
                unavailable += 1
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif not available(old):
                replace.append(old)
                unavailable += 1
            elif unavailable >= max_unavailable:
                continue
            else:
                candidates.append(old)
        remaining = min(max(max_unavailable - unavailable, 0), len(candidates))
        plan.delete = replace + candidates[:remaining]
        return plan

    surged, n_available = 0, 0
    allowed_new, candidate_new, should_not_run = [], [], []
    for name, node_pods in by_node.items():
        new, old, ok = find_updated_pods_on_node(ds, node_pods, hash_)
        if not ok:
            surged += 1
            continue
        if old is not None:
            n_available += available(old)
        elif new is not None:
            n_available += available(new)
        if old is None:
            continue
        node = nodes_by_name.get(name)
        if new is None:
            runs = node is not None and node_should_run(node, ds)[0]
            if not available(old):
                if not runs:
                    plan.delete.append(old)
                    continue
                allowed_new.append(name)
            else:
                if not runs:
                    should_not_run.append(old)
                    continue
                if surged >= max_surge:
                    continue
                candidate_new.append(name)
        elif not available(new):
            surged += 1
        else:
            plan.delete.append(old)
    deletable = n_available - desired
    if deletable > 0:
        plan.delete.extend(should_not_run[:min(deletable, len(should_not_run))])
    remaining = min(max(max_surge - surged, 0), len(candidate_new))
    plan.create_on = allowed_new + candidate_new[:remaining]
    return plan


# --- status ---------------------------------------------------------------------------

def calculate_status(ds: dict, nodes: list[dict], pods: list[dict], hash_: str,
                     now: datetime.datetime) -> dict:
    """The counters ``updateDaemonSetStatus`` computes (without observedGeneration)."""
    by_node = nodes_to_daemon_pods(pods)
    min_ready = int(ds["spec"].get("minReadySeconds") or 0)
    generation = template_generation(ds)
    desired = current = misscheduled = ready = updated = available = 0
    for node in nodes:
        should_run, _ = node_should_run(node, ds)
        node_pods = by_node.get(node["metadata"]["name"]) or []
        if should_run:
            desired += 1
            if not node_pods:
                continue
            current += 1
            pod = sort_by_creation_and_phase(node_pods)[0]
            if podutil.is_pod_ready(pod):
                ready += 1
                if podutil.is_pod_available(pod, min_ready, now):
                    available += 1
            if is_pod_updated(pod, hash_, generation):
                updated += 1
        elif node_pods:
            misscheduled += 1
    return {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled, "numberReady": ready,
            "updatedNumberScheduled": updated, "numberAvailable": available,
            "numberUnavailable": desired - available}


def status_update(ds: dict, counters: dict, update_observed_generation: bool) -> dict | None:
    """``storeDaemonSetStatus``: the status to write, or None when it already matches."""
    old = ds.get("status") or {}
    generation = int(ds["metadata"].get("generation") or 0)
    if (all(int(old.get(k) or 0) == v for k, v in counters.items())
            and int(old.get("observedGeneration") or 0) >= generation):
        return None
    out = {**old, **counters}
    if update_observed_generation:
        out["observedGeneration"] = generation
    for key in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable",
                "observedGeneration"):
        if not out.get(key):
            out.pop(key, None)
    return out


# --- history ----------------------------------------------------------------------------

def snapshot(ds: dict, number: int) -> dict:
    """The ControllerRevision for the current template (``snapshot``), named by hash."""
    hash_ = hashing.compute_hash(ds["spec"]["template"], (ds.get("status") or {}).get("collisionCount"))
    labels = dict((ds["spec"]["template"].get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = hash_
    meta = ds["metadata"]
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
           "metadata": {"name": f"{meta['name']}-{hash_}", "namespace": meta.get("namespace"),
                        "labels": labels,
                        "ownerReferences": [podutil.new_controller_ref(ds, "apps/v1", "DaemonSet")]},
           "data": history.template_patch(ds), "revision": number}
    if m.annotations(ds):
        rev["metadata"]["annotations"] = dict(m.annotations(ds))
    return rev


def matches_revision(ds: dict, revision: dict) -> bool:
    return hashing.go_json(history.template_patch(ds)) == history.raw(revision)


@dataclass
class HistoryPlan:
    """``constructHistory``: the current revision and the writes that get there."""

    current: dict | None
    old: list[dict]
    create: dict | None = None
    updates: list[dict] = field(default_factory=list)   # label or revision-number fixes
    deletes: list[dict] = field(default_factory=list)   # duplicate current revisions


def construct_history(ds: dict, revisions: list[dict]) -> HistoryPlan:
    updates, current_list, old = [], [], []
    for rev in revisions:
        if HASH_LABEL not in m.labels(rev):
            rev = copy.deepcopy(rev)
            rev["metadata"].setdefault("labels", {})[HASH_LABEL] = rev["metadata"]["name"]
            updates.append(rev)
        (current_list if matches_revision(ds, rev) else old).append(rev)
    number = history.max_revision(old) + 1
    if not current_list:
        created = snapshot(ds, number)
        return HistoryPlan(created, old, create=created, updates=updates)
    ordered = sorted(current_list, key=lambda r: int(r.get("revision") or 0))
    keep, dups = ordered[-1], ordered[:-1]
    if int(keep.get("revision") or 0) < number:
        keep = copy.deepcopy(keep)
        keep["revision"] = number
        updates = [u for u in updates if u["metadata"]["name"] != keep["metadata"]["name"]]
        updates.append(keep)
    return HistoryPlan(keep, old, updates=updates, deletes=dups)


def history_to_delete(ds: dict, old: list[dict], pods: list[dict]) -> list[dict]:
    """``cleanupHistory``: the oldest revisions beyond the limit no live pod uses."""
    limit = ds["spec"].get("revisionHistoryLimit")
    to_kill = len(old) - int(limit if limit is not None else 10)
    if to_kill <= 0:
        return []
    live = {m.labels(p).get(HASH_LABEL) for p in pods if m.labels(p).get(HASH_LABEL)}
    out = []
    for rev in sorted(old, key=lambda r: int(r.get("revision") or 0)):
        if to_kill <= 0:
            break
        if m.labels(rev).get(HASH_LABEL) in live:
            continue
        out.append(rev)
        to_kill -= 1
    return out
