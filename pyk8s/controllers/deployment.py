"""Deployment decisions: one ``syncDeployment`` pass as an ordered list of writes.

Role: the pure half of upstream's ``pkg/controller/deployment`` (``sync.go``,
``rolling.go``, ``recreate.go``, ``rollback.go``, ``progress.go``). ``plan_sync``
takes a Deployment, the ReplicaSets it owns and their pods, and the time, and
returns the writes upstream would make in that pass, in order: create/update/delete
ReplicaSets, write the Deployment's status (with its revision annotation), clear a
rollback annotation, and the events (``ScalingReplicaSet`` "Scaled up replica set x
from 0 to 3", ...). ``deployment_controller`` performs them and stops at the first
failure, as upstream returns at the first error.

Invariants:
- Inputs are never mutated; the plan carries full objects to write.
- A write is planned only when something changes (``SetDeploymentCondition`` and
  status equality rules as upstream), so a steady Deployment plans nothing.
- A rolling update never plans more than ``replicas + maxSurge`` pods nor fewer than
  ``replicas - maxUnavailable`` available ones (upstream's fenceposts).
- When a later step of the same pass reads a ReplicaSet an earlier step wrote, it
  sees the written version (upstream re-reads it from the API response).
"""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field

from . import deployment_util as du
from . import hashing, podutil

CREATE, UPDATE, UPDATE_STATUS, DELETE, EVENT = "create", "update", "update_status", "delete", "event"
RS, DEPLOYMENT = "replicasets", "deployments"


@dataclass
class Action:
    """One write: ``verb`` on ``resource`` with ``obj``; events carry (type, reason, message)."""

    verb: str
    resource: str
    obj: dict
    event: tuple[str, str, str] | None = None


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None  # look again after this many seconds
    requeue_rate_limited: bool = False  # look again soon, with back-off


_STATUS_OMIT_EMPTY = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                      "availableReplicas", "unavailableReplicas")


def normalize_status(status: dict | None) -> dict:
    """A status as Go serializes it: zero counters and empty conditions omitted."""
    out = {k: v for k, v in (status or {}).items() if v is not None}
    for key in _STATUS_OMIT_EMPTY:
        if not out.get(key):
            out.pop(key, None)
    if not out.get("conditions"):
        out.pop("conditions", None)
    return out


def _name(obj: dict) -> str:
    return obj["metadata"]["name"]


class _Sync:
    """One pass of ``syncDeployment``; methods mirror upstream's, writes go to ``plan``."""

    def __init__(self, d: dict, rs_list: list[dict], pod_map: dict[str, list[dict]],
                 now: datetime.datetime):
        self.d = copy.deepcopy(d)
        self.d.setdefault("status", {})
        self.rs_list = [copy.deepcopy(rs) for rs in rs_list]
        self.pod_map = pod_map
        self.now = now
        self.plan = Plan()

    # -- recording ---------------------------------------------------------------------

    def _write(self, verb: str, resource: str, obj: dict) -> None:
        self.plan.actions.append(Action(verb, resource, copy.deepcopy(obj)))

    def _event(self, etype: str, reason: str, message: str) -> None:
        self.plan.actions.append(Action(EVENT, DEPLOYMENT, self.d, (etype, reason, message)))

    def _replace_rs(self, rs: dict) -> None:
        self.rs_list = [rs if _name(x) == _name(rs) else x for x in self.rs_list]

    def _update_status(self) -> None:
        self.d["status"] = normalize_status(self.d["status"])
        self._write(UPDATE_STATUS, DEPLOYMENT, self.d)

    # -- entry -------------------------------------------------------------------------

    def run(self) -> Plan:
        d = self.d
        selector = d["spec"].get("selector")
        if selector == {}:
            self._event("Warning", "SelectingAll",
                        "This deployment is selecting all pods. A non-empty selector is required.")
            if du.status_int(d, "observedGeneration") < int(d["metadata"].get("generation") or 0):
                d["status"]["observedGeneration"] = d["metadata"]["generation"]
                self._update_status()
            return self.plan
        if d["metadata"].get("deletionTimestamp"):
            self.sync_status_only()
            return self.plan
        self.check_paused_conditions()
        if d["spec"].get("paused"):
            self.sync()
        elif get_rollback_to(d) is not None:
            self.rollback()
        elif self.is_scaling_event():
            self.sync()
        elif du.strategy_type(d) == "Recreate":
            self.rollout_recreate()
        else:
            self.rollout_rolling()
        return self.plan

    # -- revisions and the new ReplicaSet -------------------------------------------

    def get_all(self, create: bool) -> tuple[dict | None, list[dict]]:
        """``getAllReplicaSetsAndSyncRevision``: (new RS or None, all old RSes)."""
        _, all_old = du.find_old_replica_sets(self.d, self.rs_list)
        return self.get_new_rs(all_old, create), all_old

    def get_new_rs(self, old_rss: list[dict], create: bool) -> dict | None:
        d = self.d
        existing = du.find_new_replica_set(d, self.rs_list)
        new_revision = str(du.max_revision(old_rss) + 1)
        if existing is not None:
            rs = copy.deepcopy(existing)
            annotations_updated = du.set_new_rs_annotations(d, rs, new_revision, True)
            if annotations_updated or du.min_ready_seconds(rs) != du.min_ready_seconds(d):
                rs["spec"]["minReadySeconds"] = du.min_ready_seconds(d)
                self._write(UPDATE, RS, rs)
                self._replace_rs(rs)
                return rs
            needs_update = du.set_deployment_revision(d, du.annotations(rs).get(du.REVISION, ""))
            if du.has_progress_deadline(d) and du.get_condition(d["status"], du.PROGRESSING) is None:
                du.set_condition(d["status"], du.new_condition(
                    du.PROGRESSING, "True", du.FOUND_NEW_RS_REASON,
                    f'Found new replica set "{_name(rs)}"', self.now))
                needs_update = True
            if needs_update:
                self._update_status()
            return rs
        if not create:
            return None
        new_rs = build_new_replica_set(d, old_rss, new_revision)
        self._write(CREATE, RS, new_rs)
        self.rs_list.append(new_rs)
        replicas = du.spec_replicas(new_rs)
        if replicas > 0:
            self._event("Normal", "ScalingReplicaSet",
                        f"Scaled up replica set {_name(new_rs)} from 0 to {replicas}")
        du.set_deployment_revision(d, new_revision)
        if du.has_progress_deadline(d):
            du.set_condition(d["status"], du.new_condition(
                du.PROGRESSING, "True", du.NEW_REPLICA_SET_REASON,
                f'Created new replica set "{_name(new_rs)}"', self.now))
        self._update_status()
        return new_rs

    # -- scaling -----------------------------------------------------------------------

    def scale_rs(self, rs: dict, new_scale: int, operation: str) -> tuple[bool, dict]:
        d = self.d
        replicas, maximum = du.spec_replicas(d), du.spec_replicas(d) + du.max_surge(d)
        size_changes = du.spec_replicas(rs) != new_scale
        if not size_changes and not du.replicas_annotations_need_update(rs, replicas, maximum):
            return False, rs
        old_scale = du.spec_replicas(rs)
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = new_scale
        du.set_replicas_annotations(updated, replicas, maximum)
        self._write(UPDATE, RS, updated)
        self._replace_rs(updated)
        if size_changes:
            self._event("Normal", "ScalingReplicaSet",
                        f"Scaled {operation} replica set {_name(updated)} from {old_scale} to {new_scale}")
        return size_changes, updated

    def scale_and_record(self, rs: dict, new_scale: int) -> tuple[bool, dict]:
        if du.spec_replicas(rs) == new_scale:
            return False, rs
        return self.scale_rs(rs, new_scale, "up" if du.spec_replicas(rs) < new_scale else "down")

    def scale(self, new_rs: dict | None, old_rss: list[dict]) -> None:
        """Proportional scaling of every active ReplicaSet on a resize (``scale``)."""
        d = self.d
        replicas = du.spec_replicas(d)
        active_or_latest = du.find_active_or_latest(new_rs, old_rss)
        if active_or_latest is not None:
            if du.spec_replicas(active_or_latest) != replicas:
                self.scale_and_record(active_or_latest, replicas)
            return
        if du.is_saturated(d, new_rs):
            for old in du.filter_active(old_rss):
                self.scale_and_record(old, 0)
            return
        if not du.is_rolling_update(d):
            return
        all_rss = du.filter_active(old_rss + [new_rs])
        allowed = replicas + du.max_surge(d) if replicas > 0 else 0
        to_add = allowed - du.replica_count(all_rss)
        operation = ""
        if to_add > 0:
            all_rss = du.by_size(all_rss, newer_first=True)
            operation = "up"
        elif to_add < 0:
            all_rss = du.by_size(all_rss, newer_first=False)
            operation = "down"
        added = 0
        sizes: dict[str, int] = {}
        for rs in all_rss:
            if to_add != 0:
                share = du.proportion(rs, d, to_add, added)
                sizes[_name(rs)] = du.spec_replicas(rs) + share
                added += share
            else:
                sizes[_name(rs)] = du.spec_replicas(rs)
        for i, rs in enumerate(all_rss):
            if i == 0 and to_add != 0:
                sizes[_name(rs)] = max(sizes[_name(rs)] + to_add - added, 0)
            self.scale_rs(rs, sizes[_name(rs)], operation)

    # -- sync (paused, scaling events) -----------------------------------------------

    def sync(self) -> None:
        new_rs, old_rss = self.get_all(False)
        self.scale(new_rs, old_rss)
        self.cleanup_deployment(old_rss)
        self.sync_deployment_status(old_rss + [new_rs], new_rs)

    def sync_status_only(self) -> None:
        new_rs, old_rss = self.get_all(False)
        self.sync_deployment_status(old_rss + [new_rs], new_rs)

    def is_scaling_event(self) -> bool:
        new_rs, old_rss = self.get_all(False)
        for rs in du.filter_active(old_rss + [new_rs]):
            try:
                desired = int(du.annotations(rs)[du.DESIRED_REPLICAS])
            except (KeyError, ValueError):
                continue
            if desired != du.spec_replicas(self.d):
                return True
        return False

    def cleanup_deployment(self, old_rss: list[dict]) -> None:
        """Delete the oldest scaled-down ReplicaSets beyond revisionHistoryLimit."""
        d = self.d
        if not du.has_revision_history_limit(d):
            return
        alive = [rs for rs in old_rss if rs is not None and not rs["metadata"].get("deletionTimestamp")]
        diff = len(alive) - int(d["spec"]["revisionHistoryLimit"])
        if diff <= 0:
            return
        for rs in du.sort_by_revision(alive)[:diff]:
            meta = rs["metadata"]
            if (du.status_int(rs, "replicas") != 0 or du.spec_replicas(rs) != 0
                    or int(meta.get("generation") or 0) > du.status_int(rs, "observedGeneration")
                    or meta.get("deletionTimestamp")):
                continue
            self._write(DELETE, RS, rs)

    # -- rolling update ----------------------------------------------------------------

    def rollout_rolling(self) -> None:
        new_rs, old_rss = self.get_all(True)
        all_rss = old_rss + [new_rs]
        if self.reconcile_new_rs(all_rss, new_rs):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if self.reconcile_old_rss(all_rss, du.filter_active(old_rss), new_rs):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if du.deployment_complete(self.d, self.d["status"]):
            self.cleanup_deployment(old_rss)
        self.sync_rollout_status(all_rss, new_rs)

    def reconcile_new_rs(self, all_rss: list[dict], new_rs: dict) -> bool:
        replicas = du.spec_replicas(self.d)
        if du.spec_replicas(new_rs) == replicas:
            return False
        if du.spec_replicas(new_rs) > replicas:
            return self.scale_and_record(new_rs, replicas)[0]
        return self.scale_and_record(new_rs, du.new_rs_new_replicas(self.d, all_rss, new_rs))[0]

    def reconcile_old_rss(self, all_rss: list[dict], old_rss: list[dict], new_rs: dict) -> bool:
        if du.replica_count(old_rss) == 0:
            return False
        d = self.d
        min_available = du.spec_replicas(d) - du.max_unavailable(d)
        new_unavailable = du.spec_replicas(new_rs) - du.status_int(new_rs, "availableReplicas")
        max_scaled_down = du.replica_count(all_rss) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old_rss, cleaned = self.cleanup_unhealthy_replicas(old_rss, max_scaled_down)
        scaled_down = self.scale_down_old_for_rolling(old_rss + [new_rs], old_rss)
        return cleaned + scaled_down > 0

    def cleanup_unhealthy_replicas(self, old_rss: list[dict], max_cleanup: int) -> tuple[list[dict], int]:
        """Scale down old ReplicaSets by their unavailable pods first (oldest first)."""
        old_rss = podutil.by_creation_timestamp(old_rss)
        total = 0
        for i, rs in enumerate(old_rss):
            if total >= max_cleanup:
                break
            replicas, available = du.spec_replicas(rs), du.status_int(rs, "availableReplicas")
            if replicas == 0 or replicas == available:
                continue
            count = min(max_cleanup - total, replicas - available)
            _, old_rss[i] = self.scale_and_record(rs, replicas - count)
            total += count
        return old_rss, total

    def scale_down_old_for_rolling(self, all_rss: list[dict], old_rss: list[dict]) -> int:
        d = self.d
        min_available = du.spec_replicas(d) - du.max_unavailable(d)
        available = du.available_replica_count(all_rss)
        if available <= min_available:
            return 0
        total, target = 0, available - min_available
        for rs in podutil.by_creation_timestamp(old_rss):
            if total >= target:
                break
            if du.spec_replicas(rs) == 0:
                continue
            count = min(du.spec_replicas(rs), target - total)
            self.scale_and_record(rs, du.spec_replicas(rs) - count)
            total += count
        return total

    # -- recreate ----------------------------------------------------------------------

    def rollout_recreate(self) -> None:
        new_rs, old_rss = self.get_all(False)
        all_rss = old_rss + [new_rs]
        active_old = du.filter_active(old_rss)
        scaled = False
        for i, rs in enumerate(active_old):
            did, active_old[i] = self.scale_and_record(rs, 0)
            scaled = scaled or did
        if scaled or self.old_pods_running(new_rs, old_rss):
            self.sync_rollout_status(all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = self.get_all(True)
            all_rss = old_rss + [new_rs]
        self.scale_and_record(new_rs, du.spec_replicas(self.d))
        if du.deployment_complete(self.d, self.d["status"]):
            self.cleanup_deployment(old_rss)
        self.sync_rollout_status(all_rss, new_rs)

    def old_pods_running(self, new_rs: dict | None, old_rss: list[dict]) -> bool:
        if du.actual_replica_count(old_rss) > 0:
            return True
        new_uid = new_rs["metadata"].get("uid") if new_rs else None
        for uid, pods in self.pod_map.items():
            if new_uid is not None and uid == new_uid:
                continue
            if any(podutil.phase(p) not in ("Failed", "Succeeded") for p in pods):
                return True
        return False

    # -- status and progress --------------------------------------------------------

    def calculate_status(self, all_rss: list[dict | None], new_rs: dict | None) -> dict:
        d = self.d
        available = du.available_replica_count(all_rss)
        unavailable = max(du.replica_count(all_rss) - available, 0)
        status = {
            "observedGeneration": int(d["metadata"].get("generation") or 0),
            "replicas": du.actual_replica_count(all_rss),
            "updatedReplicas": du.actual_replica_count([new_rs]),
            "readyReplicas": du.ready_replica_count(all_rss),
            "availableReplicas": available,
            "unavailableReplicas": unavailable,
            "conditions": copy.deepcopy(d["status"].get("conditions") or []),
        }
        if d["status"].get("collisionCount") is not None:
            status["collisionCount"] = d["status"]["collisionCount"]
        if available >= du.spec_replicas(d) - du.max_unavailable(d):
            cond = du.new_condition(du.AVAILABLE, "True", du.MINIMUM_REPLICAS_AVAILABLE,
                                    "Deployment has minimum availability.", self.now)
        else:
            cond = du.new_condition(du.AVAILABLE, "False", du.MINIMUM_REPLICAS_UNAVAILABLE,
                                    "Deployment does not have minimum availability.", self.now)
        du.set_condition(status, cond)
        return status

    def sync_deployment_status(self, all_rss: list[dict | None], new_rs: dict | None) -> None:
        new_status = self.calculate_status(all_rss, new_rs)
        if normalize_status(self.d["status"]) == normalize_status(new_status):
            return
        self.d["status"] = new_status
        self._update_status()

    def sync_rollout_status(self, all_rss: list[dict | None], new_rs: dict | None) -> None:
        d, now = self.d, self.now
        new_status = self.calculate_status(all_rss, new_rs)
        if not du.has_progress_deadline(d):
            du.remove_condition(new_status, du.PROGRESSING)
        current = du.get_condition(d["status"], du.PROGRESSING)
        complete_before = (new_status["replicas"] == new_status["updatedReplicas"]
                           and current is not None and current.get("reason") == du.NEW_RS_AVAILABLE_REASON)
        if du.has_progress_deadline(d) and not complete_before:
            subject = (f'ReplicaSet "{_name(new_rs)}"' if new_rs is not None
                       else f'Deployment "{_name(d)}"')
            if du.deployment_complete(d, new_status):
                du.set_condition(new_status, du.new_condition(
                    du.PROGRESSING, "True", du.NEW_RS_AVAILABLE_REASON,
                    f"{subject} has successfully progressed.", now))
            elif du.deployment_progressing(d, new_status):
                cond = du.new_condition(du.PROGRESSING, "True", du.REPLICA_SET_UPDATED_REASON,
                                        f"{subject} is progressing.", now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(new_status, du.PROGRESSING)
                du.set_condition(new_status, cond)
            elif du.deployment_timed_out(d, new_status, now):
                du.set_condition(new_status, du.new_condition(
                    du.PROGRESSING, "False", du.TIMED_OUT_REASON,
                    f"{subject} has timed out progressing.", now))
        failures = replica_failures(all_rss, new_rs)
        if failures:
            du.set_condition(new_status, failures[0])
        else:
            du.remove_condition(new_status, du.REPLICA_FAILURE)
        if normalize_status(d["status"]) == normalize_status(new_status):
            self.requeue_stuck(new_status)
            return
        d["status"] = new_status
        self._update_status()

    def requeue_stuck(self, new_status: dict) -> None:
        d = self.d
        current = du.get_condition(d["status"], du.PROGRESSING)
        if not du.has_progress_deadline(d) or current is None:
            return
        if du.deployment_complete(d, new_status) or current.get("reason") == du.TIMED_OUT_REASON:
            return
        since = podutil.parse_ts(current.get("lastUpdateTime")) or self.now
        after = (since + datetime.timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))
                 - self.now).total_seconds()
        if after < 1:
            self.plan.requeue_rate_limited = True
        else:
            self.plan.requeue_after = after + 1

    def check_paused_conditions(self) -> None:
        d = self.d
        if not du.has_progress_deadline(d):
            return
        cond = du.get_condition(d["status"], du.PROGRESSING)
        if cond is not None and cond.get("reason") == du.TIMED_OUT_REASON:
            return
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED_DEPLOY_REASON
        if d["spec"].get("paused") and not paused_cond:
            du.set_condition(d["status"], du.new_condition(
                du.PROGRESSING, "Unknown", du.PAUSED_DEPLOY_REASON, "Deployment is paused", self.now))
        elif not d["spec"].get("paused") and paused_cond:
            du.set_condition(d["status"], du.new_condition(
                du.PROGRESSING, "Unknown", du.RESUMED_DEPLOY_REASON, "Deployment is resumed", self.now))
        else:
            return
        self._update_status()

    # -- rollback (the deprecated.deployment.rollback.to annotation) -------------------

    def rollback(self) -> None:
        d = self.d
        new_rs, old_rss = self.get_all(True)
        all_rss = old_rss + [new_rs]
        target = get_rollback_to(d)
        if target == 0:
            target = du.last_revision(all_rss)
            if target == 0:
                self._event("Warning", du.ROLLBACK_REVISION_NOT_FOUND, "Unable to find last revision.")
                self.update_and_clear_rollback_to()
                return
        for rs in all_rss:
            try:
                if du.revision(rs) != target:
                    continue
            except ValueError:
                continue
            if not du.equal_ignore_hash(d["spec"]["template"], rs["spec"]["template"]):
                set_from_rs_template(d, rs["spec"]["template"])
                du.set_deployment_annotations_to(d, rs)
                self.update_and_clear_rollback_to()
                self._event("Normal", du.ROLLBACK_DONE,
                            f'Rolled back deployment "{_name(d)}" to revision {target}')
            else:
                self._event("Warning", du.ROLLBACK_TEMPLATE_UNCHANGED,
                            f'The rollback revision contains the same template as current deployment "{_name(d)}"')
                self.update_and_clear_rollback_to()
            return
        self._event("Warning", du.ROLLBACK_REVISION_NOT_FOUND, "Unable to find the revision to rollback to.")
        self.update_and_clear_rollback_to()

    def update_and_clear_rollback_to(self) -> None:
        (self.d["metadata"].get("annotations") or {}).pop(du.ROLLBACK_TO, None)
        self._write(UPDATE, DEPLOYMENT, self.d)


def replica_failures(all_rss: list[dict | None], new_rs: dict | None) -> list[dict]:
    """ReplicaFailure conditions of the new ReplicaSet, else of any ReplicaSet."""
    def of(rs):
        return [du.rs_to_deployment_condition(c) for c in (rs.get("status") or {}).get("conditions") or []
                if c.get("type") == du.REPLICA_FAILURE]
    if new_rs is not None and of(new_rs):
        return of(new_rs)
    return [c for rs in all_rss if rs is not None for c in of(rs)]


def get_rollback_to(d: dict) -> int | None:
    value = du.annotations(d).get(du.ROLLBACK_TO)
    if not value:
        return None
    try:
        return int(value, 10)
    except ValueError:
        return None


def set_from_rs_template(d: dict, template: dict) -> None:
    """``SetFromReplicaSetTemplate``: the RS's template minus its pod-template-hash."""
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(du.POD_TEMPLATE_HASH, None)
    d["spec"]["template"] = t


def build_new_replica_set(d: dict, old_rss: list[dict], new_revision: str) -> dict:
    """The new ReplicaSet for ``d``'s template: name ``<deployment>-<pod-template-hash>``."""
    template = copy.deepcopy(d["spec"]["template"])
    pth = hashing.compute_hash(d["spec"]["template"], (d.get("status") or {}).get("collisionCount"))
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = dict(template["metadata"].get("labels") or {})
    template["metadata"]["labels"][du.POD_TEMPLATE_HASH] = pth
    selector = copy.deepcopy(d["spec"].get("selector") or {})
    selector["matchLabels"] = dict(selector.get("matchLabels") or {})
    selector["matchLabels"][du.POD_TEMPLATE_HASH] = pth
    meta = d["metadata"]
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{meta['name']}-{pth}", "namespace": meta.get("namespace"),
                     "labels": dict(template["metadata"]["labels"]),
                     "ownerReferences": [podutil.new_controller_ref(d, "apps/v1", "Deployment")]},
        "spec": {"replicas": 0, "selector": selector, "template": template},
    }
    if du.min_ready_seconds(d):
        rs["spec"]["minReadySeconds"] = du.min_ready_seconds(d)
    rs["spec"]["replicas"] = du.new_rs_new_replicas(d, old_rss + [rs], rs)
    du.set_new_rs_annotations(d, rs, new_revision, False)
    return rs


def plan_sync(d: dict, rs_list: list[dict], pod_map: dict[str, list[dict]],
              now: datetime.datetime) -> Plan:
    """What one ``syncDeployment`` pass writes for ``d`` (see the module docstring)."""
    return _Sync(d, rs_list, pod_map, now).run()
