"""ReplicaSet and ReplicationController decisions: how many pods to create, which to delete.

Role: the pure half of upstream's ``pkg/controller/replicaset`` (``manageReplicas``,
``getPodsToDelete``, ``calculateStatus``, ``updateReplicaSetStatus``'s no-op test);
``replicaset_controller`` executes the plans.

Invariants:
- At most ``burst_replicas`` (500) pods are created or deleted per sync; creations
  run in slow-start batches 1, 2, 4, ... and stop at the first failing batch.
- Victims are the least valuable pods first, ranked as upstream's
  ``ActivePodsWithRanks`` with the rank being how many active pods of the same
  owner's ReplicaSets share the pod's node; when every pod goes no sort happens.
- ``calculate_status`` never changes ``observedGeneration``; ``status_update`` sets
  it and returns None when the stored status already says the same (no write).
- The ReplicaFailure condition appears when a create/delete failed and goes away on
  the next clean sync, with reason FailedCreate or FailedDelete.
"""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field

from pyk8s.api import selectors

from . import podutil

BURST_REPLICAS = 500
REPLICA_FAILURE = "ReplicaFailure"


def selector_of(obj: dict) -> selectors.LabelSelector:
    """The pod selector of a ReplicaSet (LabelSelector) or ReplicationController (map)."""
    sel = (obj.get("spec") or {}).get("selector")
    if obj.get("kind") == "ReplicationController":
        return selectors.selector_from_set(sel or {})
    return selectors.label_selector_from_dict(sel)


def replicas_of(obj: dict) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


@dataclass
class ManagePlan:
    """What ``manageReplicas`` decided: create ``create`` pods or delete ``delete``."""

    create: int = 0
    delete: list[dict] = field(default_factory=list)


def pods_to_delete(filtered: list[dict], related: list[dict], diff: int,
                   now: datetime.datetime | None) -> list[dict]:
    """``getPodsToDelete``: the ``diff`` least valuable of ``filtered``."""
    if diff < len(filtered):
        on_node: dict[str, int] = {}
        for pod in related:
            if podutil.is_pod_active(pod):
                node = podutil.node_name(pod)
                on_node[node] = on_node.get(node, 0) + 1
        ranks = [on_node.get(podutil.node_name(p), 0) for p in filtered]
        filtered = podutil.sort_active_pods_with_ranks(filtered, ranks, now)
    return filtered[:diff]


def manage(rs: dict, filtered: list[dict], related: list[dict], now: datetime.datetime,
           burst_replicas: int = BURST_REPLICAS) -> ManagePlan:
    """Creates or deletes needed to bring ``filtered`` (owned, active) to spec.replicas."""
    diff = len(filtered) - replicas_of(rs)
    if diff < 0:
        return ManagePlan(create=min(-diff, burst_replicas))
    if diff > 0:
        return ManagePlan(delete=pods_to_delete(filtered, related, min(diff, burst_replicas), now))
    return ManagePlan()


# --- status -------------------------------------------------------------------------

def new_condition(ctype: str, status: str, reason: str, message: str,
                  now: datetime.datetime) -> dict:
    return {"type": ctype, "status": status, "lastTransitionTime": podutil.format_ts(now),
            "reason": reason, "message": message}


def set_condition(status: dict, cond: dict) -> None:
    """Add or replace; an existing condition with the same status and reason stays."""
    current = podutil.get_condition(status, cond["type"])
    if current and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    status["conditions"] = podutil.filter_out_condition(status.get("conditions"), cond["type"]) + [cond]


def remove_condition(status: dict, ctype: str) -> None:
    conds = podutil.filter_out_condition(status.get("conditions"), ctype)
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def calculate_status(rs: dict, filtered: list[dict], manage_error: str | None,
                     now: datetime.datetime) -> dict:
    """``calculateStatus``: counts of the owned active pods and the failure condition."""
    status = copy.deepcopy(rs.get("status") or {})
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    fully_labeled = ready = available = 0
    for pod in filtered:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if podutil.is_pod_ready(pod):
            ready += 1
            if podutil.is_pod_available(pod, min_ready, now):
                available += 1
    failure = podutil.get_condition(rs.get("status"), REPLICA_FAILURE)
    if manage_error is not None and failure is None:
        diff = len(filtered) - replicas_of(rs)
        reason = "FailedCreate" if diff < 0 else ("FailedDelete" if diff > 0 else "")
        set_condition(status, new_condition(REPLICA_FAILURE, "True", reason, manage_error, now))
    elif manage_error is None and failure is not None:
        remove_condition(status, REPLICA_FAILURE)
    status["replicas"] = len(filtered)
    status["fullyLabeledReplicas"] = fully_labeled
    status["readyReplicas"] = ready
    status["availableReplicas"] = available
    return status


_COUNTERS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
_OMIT_EMPTY = ("fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration")


def status_update(rs: dict, new_status: dict) -> dict | None:
    """The status to write (with observedGeneration), or None when nothing changed."""
    old = rs.get("status") or {}
    generation = (rs.get("metadata") or {}).get("generation") or 0
    if (all(int(old.get(k) or 0) == int(new_status.get(k) or 0) for k in _COUNTERS)
            and generation == int(old.get("observedGeneration") or 0)
            and (old.get("conditions") or []) == (new_status.get("conditions") or [])):
        return None
    out = dict(new_status)
    out["observedGeneration"] = generation
    for key in _OMIT_EMPTY:  # Go's omitempty: zero counters are not serialized
        if not out.get(key):
            out.pop(key, None)
    return out


def min_ready_requeue(rs: dict, status: dict, manage_error: str | None) -> float | None:
    """Seconds after which to look again so availability catches up with minReadySeconds."""
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    replicas = replicas_of(rs)
    if (manage_error is None and min_ready > 0
            and int(status.get("readyReplicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) != replicas):
        return float(min_ready)
    return None
