"""PodDisruptionBudget status, and the eviction check the API server runs against it.

Role: upstream's ``disruption-controller`` (``pkg/controller/disruption/
disruption.go``) and the PDB half of the pods/eviction subresource
(``pkg/registry/core/pod/storage/eviction.go``):

- the controller keeps each budget's status: ``expectedPods`` (pods selected, or the
  summed scale of their controllers when a percentage or ``maxUnavailable`` is
  used), ``desiredHealthy``, ``currentHealthy`` (Ready pods not being deleted nor
  recently evicted), ``disruptionsAllowed``, ``disruptedPods`` (evictions not yet
  seen as deletions, forgotten after ``deletion_timeout``), ``observedGeneration``
  and the ``DisruptionAllowed`` condition; it also clears stale ``DisruptionTarget``
  pod conditions of pods that were not deleted after all;
- ``check_eviction`` decides an eviction: pods that cannot disrupt anything go at
  once; otherwise exactly one matching budget must allow a disruption, which the
  caller then records by writing the returned budget status.

Invariants:
- ``disruptionsAllowed`` is 0 whenever ``expectedPods`` is 0, so a budget whose
  pods appear before its first sync is safe.
- ``check_eviction`` and the status arithmetic are pure and need only ``pyk8s.api``
  and ``podutil`` (itself pure), so the API server can run them once they are moved
  under ``pyk8s/api`` (the package layers forbid apiserver -> controllers); an
  eviction is never allowed on a budget not observed at its current generation.
"""
from __future__ import annotations

import datetime
import logging

from pyk8s.api import meta as m
from pyk8s.api import selectors

from pyk8s.client import ApiError
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from pyk8s.api.eviction import (DISRUPTION_ALLOWED, EVICTION_REFUSED, MAX_DISRUPTED_PODS,  # noqa: F401
                                  EvictionDecision, allowed_condition, check_eviction,
                                  pdb_allows_eviction, pdb_selector, pdbs_for_pod,
                                  set_meta_condition)

from . import podutil
from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)

STALE_DISRUPTION_TIMEOUT = 120.0


# --- pure: selection and counting ---------------------------------------------------------

def pods_for_pdb(pdb: dict, pods: list[dict]) -> list[dict]:
    sel = pdb_selector(pdb)
    if sel is None:
        return []
    ns = pdb["metadata"].get("namespace")
    return [p for p in pods if p["metadata"].get("namespace") == ns and sel.matches(m.labels(p))]


def expected_and_desired(pdb: dict, pods: list[dict], scale_of) -> tuple[int, int, list[str]]:
    """``getExpectedPodCount``: (expected, desired healthy, unmanaged pod names).

    ``scale_of(controller_ref, namespace)`` returns (uid, replicas) of the workload
    that owns pods with that controller reference, or None; it may raise."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        expected, unmanaged = expected_scale(pods, scale_of)
        max_unavailable = podutil.scaled_value(spec["maxUnavailable"], expected, True)
        return expected, max(expected - max_unavailable, 0), unmanaged
    min_available = spec.get("minAvailable")
    if isinstance(min_available, int):
        return len(pods), min_available, []
    if isinstance(min_available, str):
        expected, unmanaged = expected_scale(pods, scale_of)
        return expected, podutil.scaled_value(min_available, expected, True), unmanaged
    return 0, 0, []


def expected_scale(pods: list[dict], scale_of) -> tuple[int, list[str]]:
    """``getExpectedScale``: the summed scale of the pods' controllers."""
    scales: dict[str, int] = {}
    seen_refs: set[str] = set()
    unmanaged: list[str] = []
    for pod in pods:
        ref = m.controller_of(pod)
        if ref is None:
            unmanaged.append(pod["metadata"]["name"])
            continue
        if ref.get("uid") in seen_refs:
            continue
        found = scale_of(ref, pod["metadata"].get("namespace"))
        if found is None:
            raise LookupError(f"found no controllers for pod \"{pod['metadata']['name']}\"")
        seen_refs.add(ref.get("uid"))
        scales[found[0]] = found[1]
    return sum(scales.values()), unmanaged


def disrupted_pod_map(pdb: dict, pods: list[dict], now: datetime.datetime,
                      timeout: float) -> tuple[dict[str, str], datetime.datetime | None, list[dict]]:
    """``buildDisruptedPodMap``: still-pending evictions, when to look again, and the
    pods that were expected to be deleted but were not."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    result, recheck, overdue = {}, None, []
    for pod in pods:
        if podutil.deletion_timestamp(pod):
            continue
        stamp = recorded.get(pod["metadata"]["name"])
        if not stamp:
            continue
        expected = m.parse_time(stamp) + datetime.timedelta(seconds=timeout)
        if expected < now:
            overdue.append(pod)
        else:
            recheck = expected if recheck is None or expected < recheck else recheck
            result[pod["metadata"]["name"]] = stamp
    return result, recheck, overdue


def count_healthy(pods: list[dict], disrupted: dict[str, str], now: datetime.datetime,
                  timeout: float) -> int:
    healthy = 0
    for pod in pods:
        if podutil.deletion_timestamp(pod):
            continue
        stamp = disrupted.get(pod["metadata"]["name"])
        if stamp and m.parse_time(stamp) + datetime.timedelta(seconds=timeout) > now:
            continue
        if podutil.is_pod_ready(pod):
            healthy += 1
    return healthy


def pdb_status(pdb: dict, *, current: int, desired: int, expected: int,
               disrupted: dict[str, str], now: str) -> dict | None:
    """``updatePdbStatus``: the new status, or None when the stored one is right."""
    allowed = current - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    old = pdb.get("status") or {}
    generation = pdb["metadata"].get("generation", 0)
    cond = allowed_condition(allowed, generation)
    old_cond = next((c for c in old.get("conditions") or [] if c.get("type") == DISRUPTION_ALLOWED),
                    None)
    cond_ok = old_cond is not None and all(old_cond.get(k) == v for k, v in cond.items())
    if (old.get("currentHealthy"), old.get("desiredHealthy"), old.get("expectedPods"),
            old.get("disruptionsAllowed"), old.get("disruptedPods") or {},
            old.get("observedGeneration")) == (current, desired, expected, allowed, disrupted,
                                               generation) and cond_ok:
        return None
    new = {"currentHealthy": current, "desiredHealthy": desired, "expectedPods": expected,
           "disruptionsAllowed": allowed, "observedGeneration": generation,
           "conditions": set_meta_condition(old.get("conditions") or [], cond, now)}
    if disrupted:
        new["disruptedPods"] = disrupted
    return new


def failsafe_status(pdb: dict, message: str, now: str) -> dict:
    """``failSafe``: no disruptions while the status cannot be computed."""
    old = pdb.get("status") or {}
    generation = pdb["metadata"].get("generation", 0)
    new = {**old, "disruptionsAllowed": 0, "observedGeneration": generation}
    new["conditions"] = set_meta_condition(old.get("conditions") or [], {
        "type": DISRUPTION_ALLOWED, "status": "False", "reason": "SyncFailed",
        "message": message, "observedGeneration": generation}, now)
    return new


# --- the controller ---------------------------------------------------------------------------

class DisruptionController(CoreController):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.disruption
        super().__init__(ctx, name="disruption-controller", workers=s.workers)
        self.timeout = s.deletion_timeout
        self.recorder = ctx.recorder("controllermanager")
        self.pdbs = self.informer(r.PODDISRUPTIONBUDGETS)
        self.pods = self.informer(r.PODS)
        self.rcs = self.informer(r.REPLICATIONCONTROLLERS)
        self.rss = self.informer(r.REPLICASETS)
        self.deployments = self.informer(r.DEPLOYMENTS)
        self.statefulsets = self.informer(r.STATEFULSETS)
        self.pdbs.add_event_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        self.pods.add_event_handler(on_add=self._pod, on_delete=self._pod,
                                    on_update=lambda o, n: (self._pod(o), self._pod(n)))

    def _pod(self, pod: dict) -> None:
        for pdb in pdbs_for_pod(pod, self.pdbs.store.list_namespace(
                pod["metadata"].get("namespace"))):
            self.enqueue(pdb)
        conds = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conds) \
                and not podutil.deletion_timestamp(pod):
            self.queue.add("stale/" + m.object_key(pod))

    async def sync(self, key: str) -> None:
        if key.startswith("stale/"):
            await self._stale_disruption(key[len("stale/"):])
            return
        pdb = self.pdbs.store.get(key)
        if pdb is None:
            return
        try:
            recheck = await self._try_sync(pdb)
        except Exception as err:  # noqa: BLE001 - fail safe, then retry
            log.warning("disruption: failed to sync pdb %s: %s", key, err)
            await self.client.update_status(r.PODDISRUPTIONBUDGETS, {
                **pdb, "status": failsafe_status(pdb, str(err), self.now_str())})
            raise
        if recheck is not None:
            raise Requeue(max((recheck - self.now()).total_seconds(), 0.0))

    def _scale_of(self, ref: dict, namespace: str):
        kind, name, uid = ref.get("kind"), ref.get("name") or "", ref.get("uid")
        group = (ref.get("apiVersion") or "").rpartition("/")[0]
        if kind == "ReplicationController" and group == "":
            rc = self.rcs.store.get_object(namespace, name)
            return (uid, (rc["spec"].get("replicas", 1))) if rc and rc["metadata"]["uid"] == uid \
                else None
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self.rss.store.get_object(namespace, name)
            if rs is None or rs["metadata"]["uid"] != uid:
                return None
            owner = m.controller_of(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                dep = self.deployments.store.get_object(namespace, owner.get("name") or "")
                if dep is None or dep["metadata"]["uid"] != owner.get("uid"):
                    return None
                return dep["metadata"]["uid"], dep["spec"].get("replicas", 1)
            return uid, rs["spec"].get("replicas", 1)
        if kind == "StatefulSet" and group == "apps":
            ss = self.statefulsets.store.get_object(namespace, name)
            return (uid, ss["spec"].get("replicas", 1)) if ss and ss["metadata"]["uid"] == uid \
                else None
        return ("scale", ref)

    async def _resolve_scales(self, pods: list[dict]) -> dict[str, tuple]:
        """Scales of controllers known only through their scale subresource."""
        out: dict[str, tuple] = {}
        for pod in pods:
            ref = m.controller_of(pod)
            if ref is None or ref.get("uid") in out:
                continue
            found = self._scale_of(ref, pod["metadata"].get("namespace"))
            if found is None or found[0] != "scale":
                continue
            try:
                scale = await self.client.get((ref.get("apiVersion") or "", ref.get("kind") or ""),
                                              ref.get("name") or "",
                                              namespace=pod["metadata"].get("namespace"),
                                              subresource="scale")
            except ApiError:
                continue  # no scale subresource (or no such object): not a controller
            if scale["metadata"].get("uid") == ref.get("uid"):
                out[ref["uid"]] = (ref["uid"], (scale.get("spec") or {}).get("replicas", 0))
        return out

    async def _try_sync(self, pdb: dict) -> datetime.datetime | None:
        pods = pods_for_pdb(pdb, self.pods.store.list_namespace(pdb["metadata"]["namespace"]))
        if not pods:
            self.recorder.event(pdb, "Normal", reason="NoPods", message="No matching pods found")
        extra = await self._resolve_scales(pods)

        def scale_of(ref, ns):
            found = self._scale_of(ref, ns)
            if found is not None and found[0] == "scale":
                return extra.get(ref.get("uid"))
            return found

        try:
            expected, desired, unmanaged = expected_and_desired(pdb, pods, scale_of)
        except (LookupError, podutil.IntOrStringError) as err:
            self.recorder.event(pdb, "Warning", reason="CalculateExpectedPodCountFailed",
                                message=f"Failed to calculate the number of expected pods: {err}")
            raise
        if unmanaged:
            sel = selectors.format_label_selector((pdb.get("spec") or {}).get("selector"))
            self.recorder.event(pdb, "Warning", reason="UnmanagedPods", message=(
                f"Pods selected by this PodDisruptionBudget (selector: {sel}) were found to be "
                f"unmanaged. As a result, the status of the PDB cannot be calculated correctly, "
                f"which may result in undefined behavior. To account for these pods please set "
                f"\".spec.minAvailable\" field of the PDB to an integer value."))
        now = self.now()
        disrupted, recheck, overdue = disrupted_pod_map(pdb, pods, now, self.timeout)
        ns = pdb["metadata"]["namespace"]
        for pod in overdue:
            self.recorder.event(pod, "Warning", reason="NotDeleted",
                                message=f"Pod was expected by PDB {ns}/{ns} to be deleted but it "
                                        f"wasn't")
        current = count_healthy(pods, disrupted, now, self.timeout)
        status = pdb_status(pdb, current=current, desired=desired, expected=expected,
                            disrupted=disrupted, now=m.format_time(now))
        if status is not None:
            await self.client.update_status(r.PODDISRUPTIONBUDGETS, {**pdb, "status": status})
        return recheck

    async def _stale_disruption(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or podutil.deletion_timestamp(pod):
            return
        conds = (pod.get("status") or {}).get("conditions") or []
        cond = next((c for c in conds if c.get("type") == "DisruptionTarget"), None)
        if cond is None or cond.get("status") != "True":
            return
        since = podutil.parse_ts(cond.get("lastTransitionTime")) or self.now()
        wait = (since - self.now()).total_seconds() + STALE_DISRUPTION_TIMEOUT
        if wait > 0:
            raise Requeue(wait)
        new_conds = [c for c in conds if c.get("type") != "DisruptionTarget"] + [{
            "type": "DisruptionTarget", "status": "False", "lastTransitionTime": self.now_str()}]
        await self.client.update_status(r.PODS, {**pod, "status": {**pod["status"],
                                                                          "conditions": new_conds}})


def new_disruption_controller(ctx: ControllerContext) -> DisruptionController:
    return DisruptionController(ctx)
