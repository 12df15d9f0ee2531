"""The ReplicaSet and ReplicationController controllers: informers, expectations, sync.

Role: upstream's ``ReplicaSetController`` (``replica_set.go``): pod and ReplicaSet
events enqueue the owning ReplicaSet; ``sync(key)`` claims pods by selector, creates
or deletes pods as ``replicaset.manage`` decides (slow start, expectations) and
writes the status ``replicaset.calculate_status`` computes. The same class runs
ReplicationControllers (``kind="ReplicationController"``), as upstream does.

Invariants:
- No second create before the informer saw the first: creations and deletions are
  recorded as expectations and ``manage`` runs only once they are observed (or
  expired after 5 minutes).
- The status is written only when it changed; observedGeneration is the generation
  the sync acted on.
- A ReplicaSet being deleted gets no new pods but its status is still updated.
"""
from __future__ import annotations

import asyncio
import logging

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import podutil
from . import replicaset as rsc
from .corecontext import ControllerContext
from .expectations import ControllerExpectations, UIDTrackingExpectations
from .workloads import WorkloadController, slow_start

log = logging.getLogger(__name__)

STATUS_UPDATE_RETRIES = 1


class ReplicaSetController(WorkloadController):
    """Keeps ``spec.replicas`` pods running for every ReplicaSet (or RC)."""

    def __init__(self, ctx: ControllerContext, *, kind: str = "ReplicaSet", workers: int = 5,
                 burst_replicas: int = rsc.BURST_REPLICAS):
        self.kind = kind
        self.component = "replicaset-controller" if kind == "ReplicaSet" else "replication-controller"
        super().__init__(ctx, name=self.component, workers=workers)
        self.resource = r.REPLICASETS if kind == "ReplicaSet" else r.REPLICATIONCONTROLLERS
        self.api_version = "apps/v1" if kind == "ReplicaSet" else "v1"
        self.burst_replicas = burst_replicas
        self.expectations = UIDTrackingExpectations(ControllerExpectations(ctx.clock))
        self.rs_informer = self.informer(self.resource)
        self.pod_informer = self.informer(r.PODS)
        self.rs_informer.add_event_handler(on_add=self.enqueue, on_update=self._update_rs,
                                           on_delete=self.enqueue)
        self.pod_informer.add_event_handler(on_add=self._add_pod, on_update=self._update_pod,
                                            on_delete=self._delete_pod)

    # --- handlers ------------------------------------------------------------------------

    def _update_rs(self, old: dict, cur: dict) -> None:
        self.enqueue(cur)

    def _owner_of(self, pod: dict) -> dict | None:
        return self.resolve_ref(self.rs_informer.store, pod["metadata"].get("namespace"),
                                m.controller_of(pod), self.kind)

    def _matching_owners(self, pod: dict) -> list[dict]:
        labels = m.labels(pod)
        if not labels:
            return []
        return [rs for rs in self.rs_informer.store.list_namespace(pod["metadata"].get("namespace"))
                if not rsc.selector_of(rs).empty and rsc.selector_of(rs).matches(labels)]

    def _add_pod(self, pod: dict) -> None:
        if podutil.deletion_timestamp(pod):
            self._delete_pod(pod)
            return
        if m.controller_of(pod) is not None:
            owner = self._owner_of(pod)
            if owner is not None:
                key = m.object_key(owner)
                self.expectations.creation_observed(key)
                self.enqueue(key)
            return
        for owner in self._matching_owners(pod):
            self.enqueue(owner)

    def _update_pod(self, old: dict, cur: dict) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        label_changed = m.labels(old) != m.labels(cur)
        if podutil.deletion_timestamp(cur):
            # A pod being deleted counts as deleted for the expectations.
            self._delete_pod(cur)
            if label_changed:
                self._delete_pod(old)
            return
        old_ref, cur_ref = m.controller_of(old), m.controller_of(cur)
        ref_changed = old_ref != cur_ref
        if ref_changed and old_ref is not None:
            owner = self.resolve_ref(self.rs_informer.store, old["metadata"].get("namespace"),
                                     old_ref, self.kind)
            if owner is not None:
                self.enqueue(owner)
        if cur_ref is not None:
            owner = self._owner_of(cur)
            if owner is None:
                return
            self.enqueue(owner)
            min_ready = int(owner["spec"].get("minReadySeconds") or 0)
            if not podutil.is_pod_ready(old) and podutil.is_pod_ready(cur) and min_ready > 0:
                self.enqueue_after(owner, min_ready + 1)
            return
        if label_changed or ref_changed:
            for owner in self._matching_owners(cur):
                self.enqueue(owner)

    def _delete_pod(self, pod: dict) -> None:
        owner = self._owner_of(pod)
        if owner is None:
            return
        key = m.object_key(owner)
        self.expectations.deletion_observed(key, m.object_key(pod))
        self.enqueue(key)

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = m.split_key(key)
        rs = self.rs_informer.store.get_object(namespace, name)
        if rs is None:
            self.expectations.delete_expectations(key)
            return
        needs_sync = self.expectations.satisfied(key)
        selector = rsc.selector_of(rs)
        pods = podutil.filter_active_pods(self.pod_informer.store.list_namespace(namespace))
        ref = podutil.new_controller_ref(rs, self.api_version, self.kind)
        filtered = await self.claim(rs, self.resource, pods, r.PODS, selector, ref)
        manage_error = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self.manage(rs, key, filtered)
            except ApiError as err:
                manage_error = err
        now = self.now()
        status = rsc.calculate_status(rs, filtered, str(manage_error) if manage_error else None, now)
        final = await self.update_status(rs, status) or rs
        after = rsc.min_ready_requeue(final, final.get("status") or {},
                                      str(manage_error) if manage_error else None)
        if manage_error is not None:
            raise manage_error
        if after is not None:
            raise Requeue(after)

    def related_pods(self, rs: dict) -> list[dict]:
        """``getIndirectlyRelatedPods``: pods of every ReplicaSet sharing rs's owner."""
        ref = m.controller_of(rs)
        namespace = rs["metadata"].get("namespace")
        siblings = [rs]
        if ref is not None:
            siblings = [x for x in self.rs_informer.store.list_namespace(namespace)
                        if (m.controller_of(x) or {}).get("uid") == ref.get("uid")]
        seen, out = set(), []
        pods = self.pod_informer.store.list_namespace(namespace)
        for sibling in siblings:
            selector = rsc.selector_of(sibling)
            for pod in pods:
                uid = pod["metadata"].get("uid")
                if uid not in seen and selector.matches(m.labels(pod)):
                    seen.add(uid)
                    out.append(pod)
        return out

    async def manage(self, rs: dict, key: str, filtered: list[dict]) -> None:
        namespace = rs["metadata"].get("namespace")
        related = self.related_pods(rs) if len(filtered) > rsc.replicas_of(rs) else []
        plan = rsc.manage(rs, filtered, related, self.now(), self.burst_replicas)
        if plan.create:
            self.expectations.expect_creations(key, plan.create)
            template = rs["spec"].get("template") or {}
            ref = podutil.new_controller_ref(rs, self.api_version, self.kind)

            async def create(_: int) -> None:
                pod = podutil.pod_from_template(template, rs, ref)
                try:
                    await self.pod_control.create(namespace, pod, rs)
                except ApiError as err:
                    if any(c.get("type") == "NamespaceTerminating"
                           for c in err.details.get("causes") or []):
                        return
                    raise

            successes, _, err = await slow_start(plan.create, create)
            for _ in range(plan.create - successes):
                # Skipped and failed creations will never be observed.
                self.expectations.creation_observed(key)
            if err is not None:
                raise err
        elif plan.delete:
            self.expectations.expect_deletions(key, [m.object_key(p) for p in plan.delete])

            async def delete(pod: dict) -> None:
                try:
                    await self.pod_control.delete(namespace, pod["metadata"]["name"], rs)
                except ApiError as err:
                    self.expectations.deletion_observed(key, m.object_key(pod))
                    if not is_not_found(err):
                        raise

            results = await asyncio.gather(*(delete(p) for p in plan.delete), return_exceptions=True)
            errors = [e for e in results if isinstance(e, BaseException)]
            if errors:
                raise errors[0]

    async def update_status(self, rs: dict, status: dict) -> dict | None:
        """``updateReplicaSetStatus``: write when changed, one GET+retry on failure."""
        new_status = rsc.status_update(rs, status)
        if new_status is None:
            return None
        current = rs
        for attempt in range(STATUS_UPDATE_RETRIES + 1):
            body = {**current, "status": new_status}
            try:
                return await self.client.update_status(self.resource, body)
            except ApiError:
                if attempt >= STATUS_UPDATE_RETRIES:
                    raise
                meta = rs["metadata"]
                current = await self.client.get(self.resource, meta["name"],
                                                namespace=meta.get("namespace"))
        return None
