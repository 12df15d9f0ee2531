"""Deployment arithmetic: surge and unavailability, revisions, annotations, conditions.

Role: upstream's ``pkg/controller/deployment/util/deployment_util.go`` over dicts:
``ResolveFenceposts`` (maxSurge rounds up, maxUnavailable rounds down, both zero
means one unavailable), ``NewRSNewReplicas``, proportional-scaling fractions, the
``deployment.kubernetes.io/*`` annotations (revision, revision-history,
desired-replicas, max-replicas) and the Progressing/Available conditions with
upstream's reasons.

Invariants:
- Pure; ``now`` is passed in for condition timestamps and deadline checks.
- Functions that change an object say so (``set_*``) and mutate the dict given;
  every other function leaves its arguments alone.
- Template equality ignores the pod-template-hash label and treats absent, null,
  empty map and empty list alike (``apiequality.Semantic.DeepEqual``).
"""
from __future__ import annotations

import copy
import datetime
import functools
from typing import Iterable

from . import podutil

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
POD_TEMPLATE_HASH = "pod-template-hash"
MAX_REV_HISTORY_LENGTH_IN_CHARS = 2000
MAX_INT32 = (1 << 31) - 1

# Condition types and reasons (deployment_util.go).
PROGRESSING, AVAILABLE, REPLICA_FAILURE = "Progressing", "Available", "ReplicaFailure"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_DEPLOY_REASON = "DeploymentPaused"
RESUMED_DEPLOY_REASON = "DeploymentResumed"
NEW_REPLICA_SET_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
REPLICA_SET_UPDATED_REASON = "ReplicaSetUpdated"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
ROLLBACK_REVISION_NOT_FOUND = "DeploymentRollbackRevisionNotFound"
ROLLBACK_TEMPLATE_UNCHANGED = "DeploymentRollbackTemplateUnchanged"
ROLLBACK_DONE = "DeploymentRollback"

_ANNOTATIONS_TO_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                  MAX_REPLICAS, ROLLBACK_TO})


# --- accessors ----------------------------------------------------------------------

def spec_replicas(obj: dict) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: dict, key: str) -> int:
    return int((obj.get("status") or {}).get(key) or 0)


def annotations(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("annotations") or {}


def strategy_type(d: dict) -> str:
    return ((d["spec"].get("strategy") or {}).get("type")) or "RollingUpdate"


def is_rolling_update(d: dict) -> bool:
    return strategy_type(d) == "RollingUpdate"


def min_ready_seconds(obj: dict) -> int:
    return int((obj.get("spec") or {}).get("minReadySeconds") or 0)


def has_progress_deadline(d: dict) -> bool:
    value = d["spec"].get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def has_revision_history_limit(d: dict) -> bool:
    value = d["spec"].get("revisionHistoryLimit")
    return value is not None and int(value) != MAX_INT32


# --- surge and unavailability -------------------------------------------------------

def resolve_fenceposts(max_surge, max_unavailable, desired: int) -> tuple[int, int]:
    """``ResolveFenceposts``: surge rounds up, unavailable rounds down; never both 0."""
    surge = podutil.scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = podutil.scaled_value(max_unavailable if max_unavailable is not None else 0,
                                       desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling_params(d: dict) -> tuple:
    ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")


def max_unavailable(d: dict) -> int:
    """Pods that may be unavailable during a rolling update (0 for Recreate or 0 replicas)."""
    replicas = spec_replicas(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(*_rolling_params(d), replicas)
    return min(unavailable, replicas)


def max_surge(d: dict) -> int:
    if not is_rolling_update(d):
        return 0
    surge, _ = resolve_fenceposts(*_rolling_params(d), spec_replicas(d))
    return surge


def replica_count(rss: Iterable[dict | None]) -> int:
    """Sum of spec.replicas (``GetReplicaCountForReplicaSets``)."""
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def actual_replica_count(rss: Iterable[dict | None]) -> int:
    return sum(status_int(rs, "replicas") for rs in rss if rs is not None)


def ready_replica_count(rss: Iterable[dict | None]) -> int:
    return sum(status_int(rs, "readyReplicas") for rs in rss if rs is not None)


def available_replica_count(rss: Iterable[dict | None]) -> int:
    return sum(status_int(rs, "availableReplicas") for rs in rss if rs is not None)


def new_rs_new_replicas(d: dict, all_rss: list[dict], new_rs: dict) -> int:
    """``NewRSNewReplicas``: how far the new ReplicaSet may be scaled up now."""
    if not is_rolling_update(d):
        return spec_replicas(d)
    current = replica_count(all_rss)
    max_total = spec_replicas(d) + max_surge(d)
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, spec_replicas(d) - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def is_saturated(d: dict, rs: dict | None) -> bool:
    if rs is None:
        return False
    try:
        desired = int(annotations(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    replicas = spec_replicas(d)
    return (spec_replicas(rs) == replicas and desired == replicas
            and status_int(rs, "availableReplicas") == replicas)


def _round_half_away(x: float) -> int:
    return int(x - 0.5) if x < 0 else int(x + 0.5)


def replica_set_fraction(rs: dict, d: dict) -> int:
    """``getReplicaSetFraction``: this ReplicaSet's share of a resize, before capping."""
    if spec_replicas(d) == 0:
        return -spec_replicas(rs)
    deployment_replicas = spec_replicas(d) + max_surge(d)
    try:
        annotated = int(annotations(rs)[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = status_int(d, "replicas")
    new_size = spec_replicas(rs) * deployment_replicas / annotated
    return _round_half_away(new_size) - spec_replicas(rs)


def proportion(rs: dict | None, d: dict, to_add: int, added: int) -> int:
    """``GetProportion``: replicas to add to (or remove from) ``rs`` in a resize."""
    if rs is None or spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# --- revisions and annotations ------------------------------------------------------

def revision(obj: dict) -> int:
    """The revision annotation; 0 when absent. Raises ValueError when unparsable."""
    value = annotations(obj).get(REVISION)
    return 0 if value is None else int(value, 10)


def _revisions(rss: Iterable[dict | None]) -> list[int]:
    out = []
    for rs in rss:
        if rs is None:
            continue
        try:
            out.append(revision(rs))
        except ValueError:
            continue  # upstream skips ReplicaSets whose revision does not parse
    return out


def max_revision(rss: Iterable[dict | None]) -> int:
    return max(_revisions(rss), default=0)


def last_revision(rss: Iterable[dict | None]) -> int:
    """The second highest revision (``LastRevision``): where ``undo`` goes."""
    top = second = 0
    for v in _revisions(rss):
        if v >= top:
            second, top = top, v
        elif v > second:
            second = v
    return second


def _skip(key: str) -> bool:
    return key in _ANNOTATIONS_TO_SKIP


def copy_deployment_annotations_to_rs(d: dict, rs: dict) -> bool:
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for k, v in annotations(d).items():
        if _skip(k) or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def set_deployment_annotations_to(d: dict, rollback_to_rs: dict) -> None:
    """Replace ``d``'s annotations with the ReplicaSet's, keeping the skipped ones."""
    kept = {k: v for k, v in annotations(d).items() if _skip(k)}
    for k, v in annotations(rollback_to_rs).items():
        if not _skip(k):
            kept[k] = v
    d.setdefault("metadata", {})["annotations"] = kept


def set_replicas_annotations(rs: dict, desired: int, maximum: int) -> bool:
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: dict, desired: int, maximum: int) -> bool:
    ann = annotations(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(maximum)


def set_new_rs_annotations(d: dict, new_rs: dict, new_revision: str, exists: bool,
                           limit_chars: int = MAX_REV_HISTORY_LENGTH_IN_CHARS) -> bool:
    """``SetNewReplicaSetAnnotations``: copy annotations, bump revision, keep history."""
    changed = copy_deployment_annotations_to_rs(d, new_rs)
    ann = new_rs["metadata"].setdefault("annotations", {})
    had_revision = REVISION in ann
    old_revision = ann.get(REVISION, "")
    try:
        old_int = int(old_revision, 10) if old_revision else 0
    except ValueError:
        return False
    new_int = int(new_revision, 10)
    if old_int < new_int:
        ann[REVISION] = new_revision
        changed = True
    if had_revision and old_int < new_int:
        # Rolling back to this ReplicaSet: remember the revisions it had before.
        history = ann.get(REVISION_HISTORY, "")
        old_revisions = history.split(",")
        if not old_revisions[0]:
            ann[REVISION_HISTORY] = old_revision
        else:
            total = len(history) + len(old_revision) + 1
            start = 0
            while total > limit_chars and start < len(old_revisions):
                total -= len(old_revisions[start]) + 1
                start += 1
            if total <= limit_chars:
                ann[REVISION_HISTORY] = ",".join(old_revisions[start:] + [old_revision])
    if not exists and set_replicas_annotations(new_rs, spec_replicas(d),
                                               spec_replicas(d) + max_surge(d)):
        changed = True
    return changed


def set_deployment_revision(d: dict, rev: str) -> bool:
    ann = d.setdefault("metadata", {}).setdefault("annotations", {})
    if ann.get(REVISION) != rev:
        ann[REVISION] = rev
        return True
    return False


# --- template equality and finding ReplicaSets --------------------------------------

def _semantic(value):
    if isinstance(value, dict):
        out = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _without_hash(template: dict) -> dict:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH, None)
    return _semantic(t)


def equal_ignore_hash(t1: dict, t2: dict) -> bool:
    return _without_hash(t1) == _without_hash(t2)


def find_new_replica_set(d: dict, rss: list[dict]) -> dict | None:
    """The oldest ReplicaSet whose template equals the Deployment's."""
    for rs in podutil.by_creation_timestamp(rss):
        if equal_ignore_hash(rs["spec"].get("template") or {}, d["spec"].get("template") or {}):
            return rs
    return None


def find_old_replica_sets(d: dict, rss: list[dict]) -> tuple[list[dict], list[dict]]:
    """(old ReplicaSets with pods, all old ReplicaSets)."""
    new_rs = find_new_replica_set(d, rss)
    new_uid = new_rs["metadata"]["uid"] if new_rs else None
    everything = [rs for rs in rss if rs["metadata"].get("uid") != new_uid or new_uid is None]
    return [rs for rs in everything if spec_replicas(rs) != 0], everything


def filter_active(rss: Iterable[dict | None]) -> list[dict]:
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def find_active_or_latest(new_rs: dict | None, old_rss: list[dict]) -> dict | None:
    """The only active ReplicaSet, or the newest when none is active; else None."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(podutil.by_creation_timestamp(old_rss)))
    active = filter_active(newest_first + [new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def sort_by_revision(rss: list[dict]) -> list[dict]:
    """``ReplicaSetsByRevision``: by revision, unparsable or equal ones by creation time."""
    def less(a, b):
        try:
            ra, rb = revision(a), revision(b)
        except ValueError:
            ra = rb = None
        if ra is None or ra == rb:
            return a is not b and podutil.by_creation_timestamp([b, a])[0] is a
        return ra < rb

    return sorted(rss, key=functools.cmp_to_key(
        lambda a, b: -1 if less(a, b) else (1 if less(b, a) else 0)))


def by_size(rss: list[dict], *, newer_first: bool) -> list[dict]:
    """``ReplicaSetsBySizeNewer``/``Older``: largest first, ties by age."""
    oldest_first = podutil.by_creation_timestamp(rss)
    rank = {id(rs): i for i, rs in enumerate(oldest_first)}
    return sorted(rss, key=lambda rs: (-spec_replicas(rs),
                                       -rank[id(rs)] if newer_first else rank[id(rs)]))


# --- conditions -----------------------------------------------------------------------

def new_condition(ctype: str, status: str, reason: str, message: str,
                  now: datetime.datetime) -> dict:
    ts = podutil.format_ts(now)
    return {"type": ctype, "status": status, "lastUpdateTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def get_condition(status: dict | None, ctype: str) -> dict | None:
    return podutil.get_condition(status, ctype)


def set_condition(status: dict, cond: dict) -> None:
    """``SetDeploymentCondition``: same status and reason is a no-op; keep transition time."""
    current = get_condition(status, cond["type"])
    if current and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    cond = dict(cond)
    if current and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = podutil.filter_out_condition(status.get("conditions"), cond["type"]) + [cond]


def remove_condition(status: dict, ctype: str) -> None:
    conds = podutil.filter_out_condition(status.get("conditions"), ctype)
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def rs_to_deployment_condition(cond: dict) -> dict:
    return {"type": cond["type"], "status": cond["status"],
            "lastUpdateTime": cond.get("lastTransitionTime"),
            "lastTransitionTime": cond.get("lastTransitionTime"),
            "reason": cond.get("reason", ""), "message": cond.get("message", "")}


def deployment_complete(d: dict, new_status: dict) -> bool:
    replicas = spec_replicas(d)
    return (int(new_status.get("updatedReplicas") or 0) == replicas
            and int(new_status.get("replicas") or 0) == replicas
            and int(new_status.get("availableReplicas") or 0) == replicas
            and int(new_status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: dict, new_status: dict) -> bool:
    old = d.get("status") or {}

    def g(s, k):
        return int(s.get(k) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(new_status, "replicas") - g(new_status, "updatedReplicas")
    return (g(new_status, "updatedReplicas") > g(old, "updatedReplicas")
            or new_old < old_old
            or g(new_status, "readyReplicas") > g(old, "readyReplicas")
            or g(new_status, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: dict, new_status: dict, now: datetime.datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(new_status, PROGRESSING)
    if cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = podutil.parse_ts(cond.get("lastUpdateTime"))
    if since is None:
        return True
    deadline = since + datetime.timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))
    return deadline < now
