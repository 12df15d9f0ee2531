"""Pod predicates, victim ordering and pod templates shared by the workload controllers.

Role: upstream's ``pkg/api/v1/pod`` helpers and the parts of
``pkg/controller/controller_utils.go`` every controller uses: readiness and
availability, the two pod orderings (``ActivePods`` for jobs, ``ActivePodsWithRanks``
for ReplicaSet scale-down), ``GetPodFromTemplate``, int-or-percent scaling and
slow-start batch sizes.

Invariants:
- Pure functions over plain dicts; time is always passed in (``now``), never read.
- Orderings return a new list; the first elements are the ones to delete first,
  exactly as upstream's ``Less`` (ties keep input order, like any sort, so callers
  must not rely on the order of equal pods).
- Timestamps on objects are RFC 3339 strings; ``parse_ts`` turns them into aware
  datetimes and returns None for a missing value (Go's zero time).
"""
from __future__ import annotations

import copy
import datetime
import functools
import math
from typing import Any, Iterable, Sequence

from pyk8s.api import meta as m

SLOW_START_INITIAL_BATCH_SIZE = 1
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

# Event reasons of upstream's RealPodControl.
SUCCESSFUL_CREATE, FAILED_CREATE = "SuccessfulCreate", "FailedCreate"
SUCCESSFUL_DELETE, FAILED_DELETE = "SuccessfulDelete", "FailedDelete"

_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


# --- time --------------------------------------------------------------------------

def parse_ts(value: str | None) -> datetime.datetime | None:
    """An object timestamp as an aware datetime; None for a missing one."""
    if not value:
        return None
    return m.parse_time(value)


def format_ts(t: datetime.datetime) -> str:
    """``metav1.Time`` as serialized: RFC 3339, UTC, to the second."""
    return m.format_time(t)


# --- pod predicates ----------------------------------------------------------------

def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def node_name(pod: dict) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def deletion_timestamp(obj: dict) -> str | None:
    return (obj.get("metadata") or {}).get("deletionTimestamp")


def get_condition(status: dict | None, ctype: str) -> dict | None:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def ready_condition(pod: dict) -> dict | None:
    return get_condition(pod.get("status"), "Ready")


def is_pod_ready(pod: dict) -> bool:
    """``podutil.IsPodReady``: the Ready condition is True."""
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def is_pod_available(pod: dict, min_ready_seconds: int, now: datetime.datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (strictly before ``now``), as upstream."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_ts(ready_condition(pod).get("lastTransitionTime"))
    return since is not None and since + datetime.timedelta(seconds=min_ready_seconds) < now


def is_pod_active(pod: dict) -> bool:
    """Not Succeeded, not Failed and not being deleted (``controller.IsPodActive``)."""
    return phase(pod) not in ("Succeeded", "Failed") and deletion_timestamp(pod) is None


def is_pod_terminal(pod: dict) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_pod_terminating(pod: dict) -> bool:
    """Being deleted but not yet in a terminal phase (``controller.IsPodTerminating``)."""
    return not is_pod_terminal(pod) and deletion_timestamp(pod) is not None


def filter_active_pods(pods: Iterable[dict]) -> list[dict]:
    return [p for p in pods if is_pod_active(p)]


def count_terminating_pods(pods: Iterable[dict]) -> int:
    return sum(1 for p in pods if is_pod_terminating(p))


def pod_ready_time(pod: dict) -> datetime.datetime | None:
    if is_pod_ready(pod):
        return parse_ts(ready_condition(pod).get("lastTransitionTime"))
    return None


def max_container_restarts(pod: dict) -> int:
    return max((int(c.get("restartCount") or 0)
                for c in (pod.get("status") or {}).get("containerStatuses") or []), default=0)


def deletion_cost(pod: dict) -> int:
    """The pod-deletion-cost annotation; unparsable or out-of-range values count as 0."""
    raw = m.annotations(pod).get(POD_DELETION_COST)
    if raw is None:
        return 0
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        return 0
    return value if -(1 << 31) <= value < (1 << 31) else 0


# --- orderings ----------------------------------------------------------------------

def _after_or_zero(t1: datetime.datetime | None, t2: datetime.datetime | None) -> bool:
    """t1 after t2, a zero time counting as after any non-zero time."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _log_rank(t: datetime.datetime, now: datetime.datetime) -> int:
    # Go: int64(math.Log2(float64(now.Sub(t)))) with the duration in nanoseconds.
    delta_ns = (now - t) // datetime.timedelta(microseconds=1) * 1000
    return int(math.log2(delta_ns)) if delta_ns > 0 else -1


def _uid(pod: dict) -> str:
    return (pod.get("metadata") or {}).get("uid") or ""


def _created(pod: dict) -> datetime.datetime | None:
    return parse_ts((pod.get("metadata") or {}).get("creationTimestamp"))


def _compare_times_logarithmic(t1, t2, now, pi: dict, pj: dict) -> bool:
    if now is None or t1 is None or t2 is None:
        return _after_or_zero(t1, t2)
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    if diff == 0:
        return _uid(pi) < _uid(pj)
    return diff < 0


def _less_with_ranks(pi: dict, ri: int, pj: dict, rj: int, now: datetime.datetime | None) -> bool:
    """``ActivePodsWithRanks.Less``: True when ``pi`` should be deleted before ``pj``."""
    ni, nj = node_name(pi), node_name(pj)
    # 1. Unassigned < assigned
    if ni != nj and (not ni or not nj):
        return not ni
    # 2. PodPending < PodUnknown < PodRunning
    oi, oj = _PHASE_ORDINAL.get(phase(pi), 0), _PHASE_ORDINAL.get(phase(pj), 0)
    if oi != oj:
        return oi < oj
    # 3. Not ready < ready
    if is_pod_ready(pi) != is_pod_ready(pj):
        return not is_pod_ready(pi)
    # 4. Lower pod-deletion-cost < higher pod-deletion-cost
    ci, cj = deletion_cost(pi), deletion_cost(pj)
    if ci != cj:
        return ci < cj
    # 5. Doubled up < not doubled up: more co-located related pods goes first
    if ri != rj:
        return ri > rj
    # 6. Been ready for empty time < less time < more time (logarithmic buckets)
    if is_pod_ready(pi) and is_pod_ready(pj):
        t1, t2 = pod_ready_time(pi), pod_ready_time(pj)
        if t1 != t2:
            return _compare_times_logarithmic(t1, t2, now, pi, pj)
    # 7. Higher restart counts < lower restart counts
    if max_container_restarts(pi) != max_container_restarts(pj):
        return max_container_restarts(pi) > max_container_restarts(pj)
    # 8. Empty creation time < newer < older (logarithmic buckets)
    c1, c2 = _created(pi), _created(pj)
    if c1 != c2:
        return _compare_times_logarithmic(c1, c2, now, pi, pj)
    return False


def sort_active_pods_with_ranks(pods: Sequence[dict], ranks: Sequence[int],
                                now: datetime.datetime | None) -> list[dict]:
    """Pods ordered as upstream's ``sort.Sort(ActivePodsWithRanks)``."""
    pairs = list(zip(pods, ranks))

    def cmp(a, b):
        if _less_with_ranks(a[0], a[1], b[0], b[1], now):
            return -1
        if _less_with_ranks(b[0], b[1], a[0], a[1], now):
            return 1
        return 0

    return [p for p, _ in sorted(pairs, key=functools.cmp_to_key(cmp))]


def _less_active(pi: dict, pj: dict) -> bool:
    """``controller.ActivePods.Less`` (used by the Job controller)."""
    ni, nj = node_name(pi), node_name(pj)
    if ni != nj and (not ni or not nj):
        return not ni
    oi, oj = _PHASE_ORDINAL.get(phase(pi), 0), _PHASE_ORDINAL.get(phase(pj), 0)
    if oi != oj:
        return oi < oj
    if is_pod_ready(pi) != is_pod_ready(pj):
        return not is_pod_ready(pi)
    if is_pod_ready(pi) and is_pod_ready(pj):
        t1, t2 = pod_ready_time(pi), pod_ready_time(pj)
        if t1 != t2:
            return _after_or_zero(t1, t2)
    if max_container_restarts(pi) != max_container_restarts(pj):
        return max_container_restarts(pi) > max_container_restarts(pj)
    c1, c2 = _created(pi), _created(pj)
    if c1 != c2:
        return _after_or_zero(c1, c2)
    return False


def sort_active_pods(pods: Iterable[dict]) -> list[dict]:
    """Pods in ``sort.Sort(controller.ActivePods)`` order: least valuable first."""
    def cmp(a, b):
        return -1 if _less_active(a, b) else (1 if _less_active(b, a) else 0)
    return sorted(pods, key=functools.cmp_to_key(cmp))


def by_creation_timestamp(objs: Iterable[dict]) -> list[dict]:
    """Oldest first, name as the tie-breaker (``ReplicaSetsByCreationTimestamp``)."""
    far = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
    return sorted(objs, key=lambda o: (_created(o) or far, o["metadata"]["name"]))


# --- int or percent -----------------------------------------------------------------

class IntOrStringError(ValueError):
    """An IntOrString that is neither an integer nor ``N%``."""


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: ints as is, ``N%`` of ``total`` rounded."""
    if value is None:
        raise IntOrStringError("nil value for IntOrString")
    if isinstance(value, bool):
        raise IntOrStringError(f"invalid value for IntOrString: invalid type: {value!r}")
    if isinstance(value, int):
        return value
    is_percent = value.endswith("%")
    digits = value[:-1] if is_percent else value
    try:
        number = int(digits, 10)
    except ValueError:
        raise IntOrStringError(f'invalid value for IntOrString: invalid value "{value}"') from None
    if not is_percent:
        return number
    exact = number * total / 100
    return int(math.ceil(exact)) if round_up else int(math.floor(exact))


# --- slow start ---------------------------------------------------------------------

def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH_SIZE,
                       maximum: int | None = None) -> list[int]:
    """Batch sizes of upstream's ``slowStartBatch``: 1, 2, 4, ... summing to ``count``."""
    sizes: list[int] = []
    remaining = count
    size = min(remaining, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
        if maximum is not None:
            size = min(size, maximum)
    return sizes


# --- templates and owner references ----------------------------------------------

def new_controller_ref(owner: dict, api_version: str, kind: str) -> dict:
    """``metav1.NewControllerRef(owner, gvk)``."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def pods_prefix(controller_name: str) -> str:
    """``getPodsPrefix``: ``name-`` unless that is too long to be a name prefix."""
    prefix = f"{controller_name}-"
    return prefix if len(prefix) <= 253 else controller_name


def pod_from_template(template: dict, owner: dict, controller_ref: dict | None) -> dict:
    """``controller.GetPodFromTemplate``: a Pod to create for ``owner``."""
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {"generateName": pods_prefix(owner["metadata"]["name"])}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if controller_ref is not None:
        meta["ownerReferences"] = [dict(controller_ref)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


# --- conditions ---------------------------------------------------------------------

def filter_out_condition(conditions: list[dict] | None, ctype: str) -> list[dict]:
    return [c for c in conditions or [] if c.get("type") != ctype]
