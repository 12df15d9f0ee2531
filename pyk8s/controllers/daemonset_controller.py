"""The DaemonSet controller: one pod per eligible node, rolling updates, history, status.

Role: upstream's ``DaemonSetsController``: DaemonSet, pod and node events enqueue
DaemonSets; ``sync(key)`` builds the revision history (``daemonset.construct_history``),
runs the manage loop (``pods_should_be_on_node`` for every node), then a rolling
update once the manage loop's writes were observed, trims old revisions and writes
the status.

Invariants:
- Pods are created pinned to their node through ``metadata.name`` node affinity (the
  scheduler binds them) with the daemon tolerations and the revision hash label.
- Expectations gate the manage loop and the rolling update: until the pods a pass
  created or deleted are seen, a sync only refreshes the status (without raising
  observedGeneration).
- A failed daemon pod is replaced with a per-node back-off (1 s doubling to 15 min).
"""
from __future__ import annotations

import asyncio
import logging

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.client import ApiError, is_already_exists, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import daemonset as dsc
from . import podutil
from .corecontext import ControllerContext
from .expectations import ControllerExpectations
from .workloads import WorkloadController, slow_start

log = logging.getLogger(__name__)

BURST_REPLICAS = 250
STATUS_UPDATE_RETRIES = 1


class DaemonSetController(WorkloadController):
    component = "daemonset-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 2, burst_replicas: int = BURST_REPLICAS):
        super().__init__(ctx, name="daemonset-controller", workers=workers)
        self.burst_replicas = burst_replicas
        self.expectations = ControllerExpectations(ctx.clock)
        self.backoff = dsc.FailedPodsBackoff()
        self.ds_informer = self.informer(r.DAEMONSETS)
        self.pod_informer = self.informer(r.PODS)
        self.node_informer = self.informer(r.NODES)
        self.rev_informer = self.informer(r.CONTROLLERREVISIONS)
        self.ds_informer.add_event_handler(on_add=self.enqueue, on_update=lambda o, c: self.enqueue(c),
                                           on_delete=self._delete_ds)
        self.pod_informer.add_event_handler(on_add=self._add_pod, on_update=self._update_pod,
                                            on_delete=self._delete_pod)
        self.node_informer.add_event_handler(on_add=self._node_changed,
                                             on_update=lambda o, c: self._node_changed(c, o),
                                             on_delete=self._node_changed)

    # --- handlers ------------------------------------------------------------------------

    def _delete_ds(self, ds: dict) -> None:
        self.enqueue(ds)

    def _owner(self, pod: dict, ref: dict | None = None) -> dict | None:
        return self.resolve_ref(self.ds_informer.store, pod["metadata"].get("namespace"),
                                ref if ref is not None else m.controller_of(pod), "DaemonSet")

    def _matching(self, pod: dict) -> list[dict]:
        labels = m.labels(pod)
        return [ds for ds in self.ds_informer.store.list_namespace(pod["metadata"].get("namespace"))
                if labels and selectors.label_selector_from_dict(ds["spec"].get("selector")).matches(labels)]

    def _add_pod(self, pod: dict) -> None:
        if podutil.deletion_timestamp(pod):
            self._delete_pod(pod)
            return
        if m.controller_of(pod) is not None:
            owner = self._owner(pod)
            if owner is not None:
                key = m.object_key(owner)
                self.expectations.creation_observed(key)
                self.enqueue(key)
            return
        for ds in self._matching(pod):
            self.enqueue(ds)

    def _update_pod(self, old: dict, cur: dict) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        if podutil.deletion_timestamp(cur) and not podutil.deletion_timestamp(old):
            self._delete_pod(cur)
            return
        old_ref, cur_ref = m.controller_of(old), m.controller_of(cur)
        if old_ref != cur_ref and old_ref is not None:
            owner = self._owner(old, old_ref)
            if owner is not None:
                self.enqueue(owner)
        if cur_ref is not None:
            owner = self._owner(cur)
            if owner is not None:
                self.enqueue(owner)
            return
        if m.labels(old) != m.labels(cur) or old_ref != cur_ref:
            for ds in self._matching(cur):
                self.enqueue(ds)

    def _delete_pod(self, pod: dict) -> None:
        owner = self._owner(pod)
        if owner is None:
            return
        key = m.object_key(owner)
        self.expectations.deletion_observed(key)
        self.enqueue(key)

    def _node_changed(self, node: dict, old: dict | None = None) -> None:
        for ds in self.ds_informer.store.list():
            if old is not None and dsc.node_should_run(old, ds) == dsc.node_should_run(node, ds) \
                    and m.labels(old) == m.labels(node):
                continue
            self.enqueue(ds)

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = m.split_key(key)
        ds = self.ds_informer.store.get_object(namespace, name)
        if ds is None:
            self.expectations.delete_expectations(key)
            return
        nodes = self.node_informer.store.list()
        if ds["spec"].get("selector") == {}:
            self.event(ds, "Warning", dsc.SELECTING_ALL_REASON,
                       "This daemon set is selecting all pods. A non-empty selector is required.")
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        selector = selectors.label_selector_from_dict(ds["spec"].get("selector"))
        ref = podutil.new_controller_ref(ds, "apps/v1", "DaemonSet")
        revisions = await self.claim(ds, r.DAEMONSETS, self.rev_informer.store.list_namespace(namespace),
                                     r.CONTROLLERREVISIONS, selector, ref)
        hist = await self.construct_history(ds, revisions)
        hash_ = m.labels(hist.current).get(dsc.HASH_LABEL, "")
        pods = await self.claim(ds, r.DAEMONSETS, self.pod_informer.store.list_namespace(namespace),
                                r.PODS, selector, ref)
        if not self.expectations.satisfied(key):
            await self.update_status(ds, nodes, pods, hash_, False)
            return
        requeue: float | None = None
        error: BaseException | None = None
        try:
            requeue = await self.manage(ds, key, nodes, pods, hash_)
            if self.expectations.satisfied(key) and \
                    (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
                plan = dsc.rolling_update(ds, nodes, pods, hash_, self.now())
                await self.sync_nodes(ds, key, plan.delete, plan.create_on, hash_)
            for rev in dsc.history_to_delete(ds, hist.old, pods):
                await self._delete(r.CONTROLLERREVISIONS, rev)
        except ApiError as err:
            error = err
        status_error = None
        try:
            await self.update_status(ds, nodes, pods, hash_, True)
        except ApiError as err:
            status_error = err
        if error is not None:
            raise error
        if status_error is not None:
            raise status_error
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        counters = dsc.calculate_status(ds, nodes, pods, hash_, self.now())
        if min_ready > 0 and counters["numberReady"] != counters["numberAvailable"]:
            requeue = min(requeue, min_ready) if requeue else min_ready
        if requeue:
            raise Requeue(requeue)

    async def construct_history(self, ds: dict, revisions: list[dict]) -> dsc.HistoryPlan:
        plan = dsc.construct_history(ds, revisions)
        for rev in plan.updates:
            updated = await self.client.update(r.CONTROLLERREVISIONS, rev)
            if plan.current is not None and plan.current["metadata"]["name"] == rev["metadata"]["name"]:
                plan.current = updated
        if plan.deletes:
            await self._relabel_pods(ds, plan.deletes, plan.current)
        for dup in plan.deletes:
            await self._delete(r.CONTROLLERREVISIONS, dup)
        if plan.create is not None:
            try:
                plan.current = await self.client.create(r.CONTROLLERREVISIONS, plan.create)
            except ApiError as err:
                if not is_already_exists(err):
                    raise
                meta = plan.create["metadata"]
                existing = await self.client.get(r.CONTROLLERREVISIONS, meta["name"],
                                                 namespace=meta.get("namespace"))
                if dsc.matches_revision(ds, existing):
                    plan.current = existing
                else:
                    await self._bump_collision_count(ds)
                    raise
        return plan

    async def _relabel_pods(self, ds: dict, dups: list[dict], keep: dict) -> None:
        """``dedupCurHistories``: pods of duplicate revisions take the kept one's hash."""
        keep_hash = m.labels(keep).get(dsc.HASH_LABEL)
        dup_hashes = {m.labels(d).get(dsc.HASH_LABEL) for d in dups}
        uid = ds["metadata"]["uid"]
        for pod in self.pod_informer.store.list_namespace(ds["metadata"].get("namespace")):
            if (m.controller_of(pod) or {}).get("uid") != uid:
                continue
            if m.labels(pod).get(dsc.HASH_LABEL) in dup_hashes:
                await self.pod_control.patch(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                             {"metadata": {"labels": {dsc.HASH_LABEL: keep_hash}}})

    async def _bump_collision_count(self, ds: dict) -> None:
        meta = ds["metadata"]
        fresh = await self.client.get(r.DAEMONSETS, meta["name"], namespace=meta.get("namespace"))
        if (fresh.get("status") or {}).get("collisionCount") != (ds.get("status") or {}).get("collisionCount"):
            return  # our count was stale; the retry will use the fresh one
        status = dict(fresh.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.client.update_status(r.DAEMONSETS, {**fresh, "status": status})

    async def manage(self, ds: dict, key: str, nodes: list[dict], pods: list[dict],
                     hash_: str) -> float | None:
        by_node = dsc.nodes_to_daemon_pods(pods)
        create_on, delete, requeue = [], [], None
        for node in nodes:
            plan = dsc.pods_should_be_on_node(node, by_node, ds, hash_, self.now(), self.backoff)
            create_on += plan.create_on
            delete += plan.delete
            for etype, reason, message in plan.events:
                self.event(ds, etype, reason, message)
            if plan.requeue_after is not None:
                requeue = plan.requeue_after if requeue is None else min(requeue, plan.requeue_after)
        delete += dsc.unscheduled_pods_without_node(nodes, by_node)
        await self.sync_nodes(ds, key, delete, create_on, hash_)
        return requeue

    async def sync_nodes(self, ds: dict, key: str, delete: list[dict], create_on: list[str],
                         hash_: str) -> None:
        namespace = ds["metadata"].get("namespace")
        create_n = min(len(create_on), self.burst_replicas)
        delete_n = min(len(delete), self.burst_replicas)
        self.expectations.set_expectations(key, create_n, delete_n)
        template = dsc.pod_template(ds, hash_)
        ref = podutil.new_controller_ref(ds, "apps/v1", "DaemonSet")
        errors: list[BaseException] = []

        async def create(i: int) -> None:
            pod = podutil.pod_from_template(template, ds, ref)
            dsc.pin_to_node(pod["spec"], create_on[i])
            try:
                await self.pod_control.create(namespace, pod, ds)
            except ApiError as err:
                if any(c.get("type") == "NamespaceTerminating" for c in err.details.get("causes") or []):
                    return
                self.expectations.creation_observed(key)
                raise

        _, attempted, err = await slow_start(create_n, create)
        if err is not None:
            errors.append(err)
            if create_n > attempted:
                # Never attempted: the informer will not see them.
                self.expectations.lower(key, create_n - attempted, 0)

        async def remove(pod: dict) -> None:
            try:
                await self.pod_control.delete(namespace, pod["metadata"]["name"], ds)
            except ApiError as e:
                self.expectations.deletion_observed(key)
                if not is_not_found(e):
                    raise

        results = await asyncio.gather(*(remove(p) for p in delete[:delete_n]), return_exceptions=True)
        errors += [e for e in results if isinstance(e, BaseException)]
        if errors:
            raise errors[0]

    async def update_status(self, ds: dict, nodes: list[dict], pods: list[dict], hash_: str,
                            observed: bool) -> None:
        counters = dsc.calculate_status(ds, nodes, pods, hash_, self.now())
        new = dsc.status_update(ds, counters, observed)
        if new is None:
            return
        current = ds
        for attempt in range(STATUS_UPDATE_RETRIES + 1):
            try:
                await self.client.update_status(r.DAEMONSETS, {**current, "status": new})
                return
            except ApiError:
                if attempt >= STATUS_UPDATE_RETRIES:
                    raise
                meta = ds["metadata"]
                current = await self.client.get(r.DAEMONSETS, meta["name"], namespace=meta.get("namespace"))

    async def _delete(self, res, obj: dict) -> None:
        meta = obj["metadata"]
        try:
            await self.client.delete(res, meta["name"], namespace=meta.get("namespace"))
        except ApiError as err:
            if not is_not_found(err):
                raise

