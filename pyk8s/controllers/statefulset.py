"""StatefulSet decisions: ordinal identities, ordered scaling, revisions and rolling updates.

Role: the pure half of upstream's ``pkg/controller/statefulset``
(``stateful_set_control.go``, ``stateful_set_utils.go``). ``plan_update`` walks the
pods as ``updateStatefulSet`` does and returns the pod operations of this pass in
order plus the status to record; ``statefulset_controller`` performs them.

Invariants:
- Pod ``<set>-<ordinal>`` has hostname ``<set>-<ordinal>``, subdomain
  ``spec.serviceName``, labels ``statefulset.kubernetes.io/pod-name``,
  ``apps.kubernetes.io/pod-index`` and ``controller-revision-hash`` (the revision
  name), and one PVC ``<template>-<set>-<ordinal>`` per volumeClaimTemplate.
- OrderedReady: pods are created one at a time in increasing ordinal order, each only
  once its predecessors are Running, Ready and available; scale-down deletes the
  highest ordinal first and only when everything else is healthy. Parallel: all at
  once.
- RollingUpdate replaces pods from the highest ordinal down to ``partition``, one at a
  time (or ``maxUnavailable`` at a time when set), waiting for each to be healthy;
  OnDelete never deletes a pod for an update.
- ``status.currentRevision`` becomes the update revision once every pod is updated
  and ready.
"""
from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass, field

from pyk8s.api import meta as m

from . import history, podutil

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = history.CONTROLLER_REVISION_HASH
MAX_BATCH_SIZE = 500

_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# --- identity -----------------------------------------------------------------------

def parent_and_ordinal(pod: dict) -> tuple[str, int]:
    match = _ORDINAL.match(pod["metadata"].get("name") or "")
    if not match:
        return "", -1
    ordinal = int(match.group(2))
    return match.group(1), ordinal if ordinal < (1 << 31) else -1


def ordinal_of(pod: dict) -> int:
    return parent_and_ordinal(pod)[1]


def start_ordinal(sts: dict) -> int:
    return int(((sts["spec"].get("ordinals") or {}).get("start")) or 0)


def replicas_of(sts: dict) -> int:
    value = sts["spec"].get("replicas")
    return 1 if value is None else int(value)


def end_ordinal(sts: dict) -> int:
    return start_ordinal(sts) + replicas_of(sts) - 1


def in_ordinal_range(pod: dict, sts: dict) -> bool:
    return start_ordinal(sts) <= ordinal_of(pod) <= end_ordinal(sts)


def pod_name(sts: dict, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(sts: dict, template: dict, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"


def identity_matches(sts: dict, pod: dict) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    labels = m.labels(pod)
    return (ordinal >= 0 and parent == sts["metadata"]["name"]
            and pod["metadata"]["name"] == pod_name(sts, ordinal)
            and pod["metadata"].get("namespace") == sts["metadata"].get("namespace")
            and labels.get(POD_NAME_LABEL) == pod["metadata"]["name"]
            and labels.get(POD_INDEX_LABEL) == str(ordinal))


def storage_matches(sts: dict, pod: dict) -> bool:
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for template in sts["spec"].get("volumeClaimTemplates") or []:
        vol = volumes.get(template["metadata"]["name"])
        pvc = (vol or {}).get("persistentVolumeClaim")
        if not pvc or pvc.get("claimName") != claim_name(sts, template, ordinal):
            return False
    return True


def persistent_volume_claims(sts: dict, pod: dict) -> dict[str, dict]:
    """``getPersistentVolumeClaims``: template name -> the PVC this pod needs."""
    ordinal = ordinal_of(pod)
    match_labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    claims = {}
    for template in sts["spec"].get("volumeClaimTemplates") or []:
        claim = copy.deepcopy(template)
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        meta = claim.setdefault("metadata", {})
        meta["name"] = claim_name(sts, template, ordinal)
        meta["namespace"] = sts["metadata"].get("namespace")
        meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
        claim.pop("status", None)
        claims[template["metadata"]["name"]] = claim
    return claims


def update_storage(sts: dict, pod: dict) -> None:
    claims = persistent_volume_claims(sts, pod)
    spec = pod.setdefault("spec", {})
    new = [{"name": name, "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
           for name, c in claims.items()]
    new += [v for v in spec.get("volumes") or [] if v.get("name") not in claims]
    if new:
        spec["volumes"] = new


def update_identity(sts: dict, pod: dict) -> None:
    ordinal = ordinal_of(pod)
    pod["metadata"]["name"] = pod_name(sts, ordinal)
    pod["metadata"]["namespace"] = sts["metadata"].get("namespace")
    labels = pod["metadata"].setdefault("labels", {})
    labels[POD_NAME_LABEL] = pod["metadata"]["name"]
    labels[POD_INDEX_LABEL] = str(ordinal)


def new_stateful_pod(sts: dict, ordinal: int) -> dict:
    pod = podutil.pod_from_template(sts["spec"]["template"], sts,
                                    podutil.new_controller_ref(sts, "apps/v1", "StatefulSet"))
    pod["metadata"].pop("generateName", None)
    pod["metadata"]["name"] = pod_name(sts, ordinal)
    update_identity(sts, pod)
    pod["spec"]["hostname"] = pod["metadata"]["name"]
    if sts["spec"].get("serviceName"):
        pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
    update_storage(sts, pod)
    return pod


def new_versioned_pod(current_set: dict, update_set: dict, current_rev: str, update_rev: str,
                      ordinal: int) -> dict:
    """A pod at the current revision below the partition, else at the update revision."""
    strategy = current_set["spec"].get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    start = start_ordinal(current_set)
    current_replicas = int((current_set.get("status") or {}).get("currentReplicas") or 0)
    if ((strategy.get("type", "RollingUpdate") == "RollingUpdate" and rolling is None
         and ordinal < start + current_replicas)
            or (rolling is not None and ordinal < start + int(rolling.get("partition") or 0))):
        pod = new_stateful_pod(current_set, ordinal)
        pod["metadata"]["labels"][REVISION_LABEL] = current_rev
        return pod
    pod = new_stateful_pod(update_set, ordinal)
    pod["metadata"]["labels"][REVISION_LABEL] = update_rev
    return pod


# --- pod states ---------------------------------------------------------------------

def pod_revision(pod: dict) -> str:
    return m.labels(pod).get(REVISION_LABEL, "")


def is_created(pod: dict) -> bool:
    return podutil.phase(pod) != ""


def is_terminating(pod: dict) -> bool:
    return podutil.deletion_timestamp(pod) is not None


def is_running_and_ready(pod: dict) -> bool:
    return podutil.phase(pod) == "Running" and podutil.is_pod_ready(pod)


def is_running_and_available(pod: dict, min_ready: int, now: datetime.datetime) -> bool:
    return podutil.is_pod_available(pod, min_ready, now)


def is_healthy(pod: dict) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def allows_burst(sts: dict) -> bool:
    return sts["spec"].get("podManagementPolicy") == "Parallel"


def max_unavailable_of(sts: dict) -> int | None:
    """maxUnavailable when set (at least 1); None when the field is absent."""
    rolling = (sts["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    if rolling.get("maxUnavailable") is None:
        return None
    return max(podutil.scaled_value(rolling["maxUnavailable"], replicas_of(sts), False), 1)


# --- revisions ----------------------------------------------------------------------

def new_revision(sts: dict, number: int, collision_count: int) -> dict:
    rev = history.new_controller_revision(
        sts, "StatefulSet", ((sts["spec"]["template"].get("metadata") or {}).get("labels")),
        history.template_patch(sts), number, collision_count)
    if m.annotations(sts):
        rev["metadata"]["annotations"] = dict(m.annotations(sts))
    return rev


@dataclass
class Revisions:
    """``getStatefulSetRevisions``: current/update revisions and the write they need."""

    current: dict
    update: dict
    collision_count: int
    create: dict | None = None       # a new revision to create (update is this one)
    renumber: dict | None = None     # an old revision to re-number (rollback)


def statefulset_revisions(sts: dict, revisions: list[dict]) -> Revisions:
    revisions = history.sort_revisions(revisions)
    collision = int((sts.get("status") or {}).get("collisionCount") or 0)
    candidate = new_revision(sts, history.next_revision(revisions), collision)
    equal = history.find_equal_revisions(revisions, candidate)
    create = renumber = None
    if equal and history.equal_revision(revisions[-1], equal[-1]):
        update = revisions[-1]
    elif equal:
        update = copy.deepcopy(equal[-1])
        update["revision"] = candidate["revision"]
        renumber = update
    else:
        update = create = candidate
    current_name = (sts.get("status") or {}).get("currentRevision")
    current = next((r for r in revisions if r["metadata"]["name"] == current_name), update)
    return Revisions(current, update, collision, create, renumber)


def revisions_to_delete(sts: dict, pods: list[dict], revisions: list[dict],
                        current: dict | None, update: dict | None) -> list[dict]:
    """``truncateHistory``: the oldest non-live revisions beyond revisionHistoryLimit."""
    live = {r["metadata"]["name"] for r in (current, update) if r is not None}
    live |= {pod_revision(p) for p in pods}
    old = [r for r in history.sort_revisions(revisions) if r["metadata"]["name"] not in live]
    limit = int(sts["spec"].get("revisionHistoryLimit") if sts["spec"].get("revisionHistoryLimit") is not None else 10)
    return old[:max(len(old) - limit, 0)]


# --- the update pass ------------------------------------------------------------------

CREATE, DELETE, UPDATE, CREATE_CLAIMS = "create", "delete", "update", "create_claims"


@dataclass
class PodOp:
    verb: str
    pod: dict
    claims: list[dict] = field(default_factory=list)


@dataclass
class UpdatePlan:
    status: dict
    ops: list[PodOp] = field(default_factory=list)
    parallel: bool = False


def _count(status: dict, sts: dict, current: dict, update: dict, now, *pod_lists) -> None:
    min_ready = int(sts["spec"].get("minReadySeconds") or 0)
    counts = dict.fromkeys(("replicas", "readyReplicas", "availableReplicas",
                            "currentReplicas", "updatedReplicas"), 0)
    for pods in pod_lists:
        for pod in pods:
            if is_created(pod):
                counts["replicas"] += 1
            if is_running_and_ready(pod):
                counts["readyReplicas"] += 1
                if is_running_and_available(pod, min_ready, now):
                    counts["availableReplicas"] += 1
            if is_created(pod) and not is_terminating(pod):
                if pod_revision(pod) == current["metadata"]["name"]:
                    counts["currentReplicas"] += 1
                if pod_revision(pod) == update["metadata"]["name"]:
                    counts["updatedReplicas"] += 1
    status.update(counts)


class _Update:
    def __init__(self, sts, revs: Revisions, pods, now):
        self.sts, self.revs, self.pods, self.now = sts, revs, pods, now
        self.current_set = history.apply_revision(sts, revs.current)
        self.update_set = history.apply_revision(sts, revs.update)
        self.monotonic = not allows_burst(sts)
        self.plan = UpdatePlan(status={
            "observedGeneration": int(sts["metadata"].get("generation") or 0),
            "currentRevision": revs.current["metadata"]["name"],
            "updateRevision": revs.update["metadata"]["name"],
            "collisionCount": revs.collision_count,
        }, parallel=not self.monotonic)

    def count(self, *lists) -> None:
        _count(self.plan.status, self.sts, self.revs.current, self.revs.update, self.now, *lists)

    def claims_for(self, pod: dict) -> list[dict]:
        return list(persistent_volume_claims(self.sts, pod).values())

    def process_replica(self, replicas: list[dict], i: int) -> bool:
        """One replica; True means stop here (monotonic) this pass."""
        pod, sts = replicas[i], self.sts
        if podutil.phase(pod) in ("Failed", "Succeeded"):
            if not is_terminating(pod):
                self.plan.ops.append(PodOp(DELETE, pod))
            return True
        if not is_created(pod):
            self.plan.ops.append(PodOp(CREATE, pod, self.claims_for(pod)))
            if self.monotonic:
                return True
        if podutil.phase(pod) == "Pending":
            self.plan.ops.append(PodOp(CREATE_CLAIMS, pod, self.claims_for(pod)))
        if self.monotonic and (is_terminating(pod) or not is_running_and_ready(pod)
                               or not is_running_and_available(
                                   pod, int(sts["spec"].get("minReadySeconds") or 0), self.now)):
            return True
        if not is_created(pod) or (identity_matches(sts, pod) and storage_matches(sts, pod)):
            return False
        fixed = copy.deepcopy(pod)
        update_identity(self.update_set, fixed)
        update_storage(self.update_set, fixed)
        self.plan.ops.append(PodOp(UPDATE, fixed))
        return False

    def process_condemned(self, condemned: list[dict], i: int, first_unhealthy) -> bool:
        pod = condemned[i]
        if is_terminating(pod):
            return self.monotonic
        min_ready = int(self.sts["spec"].get("minReadySeconds") or 0)
        if self.monotonic and pod is not first_unhealthy and (
                not is_running_and_ready(pod) or not is_running_and_available(pod, min_ready, self.now)):
            return True
        self.plan.ops.append(PodOp(DELETE, pod))
        return True

    def run(self) -> UpdatePlan:
        sts, revs = self.sts, self.revs
        self.count(self.pods)
        start = start_ordinal(sts)
        replicas: list[dict | None] = [None] * replicas_of(sts)
        condemned = []
        for pod in self.pods:
            if in_ordinal_range(pod, sts):
                replicas[ordinal_of(pod) - start] = pod
            elif ordinal_of(pod) >= 0:
                condemned.append(pod)
        for idx in range(len(replicas)):
            if replicas[idx] is None:
                replicas[idx] = new_versioned_pod(self.current_set, self.update_set,
                                                  revs.current["metadata"]["name"],
                                                  revs.update["metadata"]["name"], start + idx)
        condemned.sort(key=ordinal_of, reverse=True)
        unhealthy = [p for p in replicas if not is_healthy(p)]
        unhealthy += [p for p in reversed(condemned) if not is_healthy(p)]
        first_unhealthy = unhealthy[0] if unhealthy else None
        if sts["metadata"].get("deletionTimestamp"):
            return self.plan
        for i in range(len(replicas)):
            if self.process_replica(replicas, i) and self.monotonic:
                self.count(replicas, condemned)
                return self.plan
        for i in range(len(condemned)):
            if self.process_condemned(condemned, i, first_unhealthy) and self.monotonic:
                self.count(replicas, condemned)
                return self.plan
        self.count(replicas, condemned)
        if (sts["spec"].get("updateStrategy") or {}).get("type") == "OnDelete":
            return self.plan
        self.rolling_update(replicas)
        return self.plan

    def rolling_update(self, replicas: list[dict]) -> None:
        rolling = (self.sts["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
        update_min = int(rolling.get("partition") or 0)
        update_name = self.revs.update["metadata"]["name"]
        max_unavailable = max_unavailable_of(self.sts)
        status = self.plan.status
        if max_unavailable is None:
            for target in range(len(replicas) - 1, update_min - 1, -1):
                pod = replicas[target]
                if pod_revision(pod) != update_name and not is_terminating(pod):
                    self.plan.ops.append(PodOp(DELETE, pod))
                    status["currentReplicas"] -= 1
                    return
                if not is_healthy(pod):
                    return
            return
        unavailable = sum(1 for p in replicas if not is_healthy(p))
        if unavailable >= max_unavailable:
            return
        to_delete = max_unavailable - unavailable
        for target in range(len(replicas) - 1, update_min - 1, -1):
            if to_delete <= 0:
                break
            pod = replicas[target]
            if pod_revision(pod) != update_name and not is_terminating(pod):
                self.plan.ops.append(PodOp(DELETE, pod))
                status["currentReplicas"] -= 1
                to_delete -= 1


def plan_update(sts: dict, revs: Revisions, pods: list[dict], now: datetime.datetime) -> UpdatePlan:
    """The pod operations and status of one ``updateStatefulSet`` pass."""
    return _Update(sts, revs, pods, now).run()


def complete_rolling_update(sts: dict, status: dict) -> None:
    strategy = (sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
    if (strategy == "RollingUpdate" and status["updatedReplicas"] == status["replicas"]
            and status["readyReplicas"] == status["replicas"]):
        status["currentReplicas"] = status["updatedReplicas"]
        status["currentRevision"] = status["updateRevision"]


_COMPARED = ("replicas", "currentReplicas", "readyReplicas", "updatedReplicas",
             "currentRevision", "availableReplicas", "updateRevision")
_OMIT_EMPTY = ("readyReplicas", "currentReplicas", "updatedReplicas", "currentRevision",
               "updateRevision", "observedGeneration")


def status_update(sts: dict, status: dict) -> dict | None:
    """The status to write after ``completeRollingUpdate``, or None if consistent."""
    status = dict(status)
    complete_rolling_update(sts, status)
    old = sts.get("status") or {}
    if (int(status["observedGeneration"]) <= int(old.get("observedGeneration") or 0)
            and "observedGeneration" in old
            and all((old.get(k) or 0) == (status.get(k) or 0) for k in _COMPARED)):
        return None
    out = {**{k: v for k, v in old.items() if k == "conditions"}, **status}
    for key in _OMIT_EMPTY:
        if not out.get(key):
            out.pop(key, None)
    return out


# --- PVC retention ---------------------------------------------------------------------

def retention_policy(sts: dict) -> tuple[str, str]:
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted") or "Retain", policy.get("whenScaled") or "Retain"


def claim_owner_refs(sts: dict, pod: dict, claim: dict) -> list[dict] | None:
    """The claim's ownerReferences under the retention policy, or None if already right."""
    refs = [dict(r) for r in m.owner_references(claim)]
    set_ref = {"apiVersion": "apps/v1", "kind": "StatefulSet",
               "name": sts["metadata"]["name"], "uid": sts["metadata"]["uid"]}
    pod_ref = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
               "uid": pod["metadata"].get("uid", "")}
    when_deleted, when_scaled = retention_policy(sts)
    scaled_down = not in_ordinal_range(pod, sts)
    want_set = when_deleted == "Delete" and not (when_scaled == "Delete" and scaled_down)
    want_pod = when_scaled == "Delete" and scaled_down and bool(pod_ref["uid"])

    def has(ref):
        return any(r.get("uid") == ref["uid"] for r in refs)

    new = [r for r in refs if r.get("uid") not in (set_ref["uid"], pod_ref["uid"])
           or (r.get("uid") == set_ref["uid"] and want_set)
           or (r.get("uid") == pod_ref["uid"] and want_pod)]
    if want_set and not has(set_ref):
        new.append(set_ref)
    if want_pod and not has(pod_ref):
        new.append(pod_ref)
    return None if new == refs else new
