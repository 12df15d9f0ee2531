"""The StatefulSet controller: informers, revisions, PVCs and ordered pod operations.

Role: upstream's ``StatefulSetController`` with ``defaultStatefulSetControl`` and
``StatefulPodControl``: claim pods and ControllerRevisions, create or re-number the
update revision, run ``statefulset.plan_update``'s pod operations (in order for
OrderedReady, in slow-start batches for Parallel), write the status, and trim the
revision history.

Invariants:
- A pod is created only after its PVCs exist (created here when missing; a claim
  being deleted blocks the pod); events are upstream's ("create Pod web-0 in
  StatefulSet web successful", "create Claim data-web-0 Pod web-0 in StatefulSet web
  success").
- Revision names collide only on a hash collision; then ``collisionCount`` grows and
  the revision is created under the next name.
- PVC owner references follow ``persistentVolumeClaimRetentionPolicy``.
"""
from __future__ import annotations

import logging

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.client import ApiError, is_already_exists, is_conflict, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import history, podutil
from . import statefulset as ss
from .corecontext import ControllerContext
from .workloads import WorkloadController, slow_start

log = logging.getLogger(__name__)

MAX_UPDATE_RETRIES = 10
MAX_COLLISIONS_PER_SYNC = 10  # a bound on the CreateControllerRevision retry loop


class StatefulSetController(WorkloadController):
    component = "statefulset-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5):
        super().__init__(ctx, name="statefulset-controller", workers=workers)
        self.set_informer = self.informer(r.STATEFULSETS)
        self.pod_informer = self.informer(r.PODS)
        self.rev_informer = self.informer(r.CONTROLLERREVISIONS)
        self.pvc_informer = self.informer(r.PERSISTENTVOLUMECLAIMS)
        self.set_informer.add_event_handler(on_add=self.enqueue, on_update=lambda o, c: self.enqueue(c),
                                            on_delete=self.enqueue)
        self.pod_informer.add_event_handler(on_add=self._pod_changed,
                                            on_update=self._update_pod, on_delete=self._pod_changed)

    # --- handlers ------------------------------------------------------------------------

    def _owner(self, pod: dict, ref: dict | None = None) -> dict | None:
        return self.resolve_ref(self.set_informer.store, pod["metadata"].get("namespace"),
                                ref if ref is not None else m.controller_of(pod), "StatefulSet")

    def _matching_sets(self, pod: dict) -> list[dict]:
        labels = m.labels(pod)
        return [s for s in self.set_informer.store.list_namespace(pod["metadata"].get("namespace"))
                if labels and selectors.label_selector_from_dict(s["spec"].get("selector")).matches(labels)]

    def _pod_changed(self, pod: dict) -> None:
        owner = self._owner(pod)
        if owner is not None:
            self.enqueue(owner)
        elif m.controller_of(pod) is None:
            for s in self._matching_sets(pod):
                self.enqueue(s)

    def _update_pod(self, old: dict, cur: dict) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
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
                min_ready = int(owner["spec"].get("minReadySeconds") or 0)
                if not podutil.is_pod_ready(old) and podutil.is_pod_ready(cur) and min_ready > 0:
                    self.enqueue_after(owner, min_ready + 1)
            return
        if m.labels(old) != m.labels(cur) or old_ref != cur_ref:
            for s in self._matching_sets(cur):
                self.enqueue(s)

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = m.split_key(key)
        sts = self.set_informer.store.get_object(namespace, name)
        if sts is None:
            return
        selector = selectors.label_selector_from_dict(sts["spec"].get("selector"))
        ref = podutil.new_controller_ref(sts, "apps/v1", "StatefulSet")
        revisions = await self.claim(sts, r.STATEFULSETS,
                                     self.rev_informer.store.list_namespace(namespace),
                                     r.CONTROLLERREVISIONS, selector, ref)
        parent = sts["metadata"]["name"]
        pods = await self.claim(sts, r.STATEFULSETS,
                                self.pod_informer.store.list_namespace(namespace), r.PODS, selector,
                                ref, extra_match=lambda p: ss.parent_and_ordinal(p)[0] == parent)
        revs = await self.revisions(sts, revisions)
        try:
            status = await self.update(sts, revs, pods)
        finally:
            await self.truncate_history(sts, pods, revisions, revs)
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        if min_ready > 0 and status.get("availableReplicas") != ss.replicas_of(sts):
            raise Requeue(min_ready)

    async def revisions(self, sts: dict, revisions: list[dict]) -> ss.Revisions:
        revs = ss.statefulset_revisions(sts, revisions)
        if revs.renumber is not None:
            revs.update = await self.client.update(r.CONTROLLERREVISIONS, revs.renumber)
        elif revs.create is not None:
            created = await self.create_revision(sts, revs)
            if revs.current is revs.create:
                revs.current = created
            revs.update = created
        return revs

    async def create_revision(self, sts: dict, revs: ss.Revisions) -> dict:
        """``CreateControllerRevision``: retry under a new name on a hash collision."""
        candidate = revs.create
        for _ in range(MAX_COLLISIONS_PER_SYNC):
            try:
                return await self.client.create(r.CONTROLLERREVISIONS, candidate)
            except ApiError as err:
                if not is_already_exists(err):
                    raise
            meta = candidate["metadata"]
            existing = await self.client.get(r.CONTROLLERREVISIONS, meta["name"],
                                             namespace=meta.get("namespace"))
            if history.raw(existing) == history.raw(candidate):
                return existing
            revs.collision_count += 1
            candidate = history.rename_for_collision(revs.create, sts["metadata"]["name"],
                                                     revs.collision_count)
        raise RuntimeError(f"{MAX_COLLISIONS_PER_SYNC} revision name collisions in one sync")

    async def update(self, sts: dict, revs: ss.Revisions, pods: list[dict]) -> dict:
        plan = ss.plan_update(sts, revs, pods, self.now())
        error: BaseException | None = None
        try:
            if plan.parallel:
                async def run(i: int) -> None:
                    await self.perform(sts, plan.ops[i])
                _, _, error = await slow_start(len(plan.ops), run, maximum=ss.MAX_BATCH_SIZE)
            else:
                for op in plan.ops:
                    await self.perform(sts, op)
        except ApiError as err:
            error = err
        final = await self.update_status(sts, plan.status)
        if error is not None:
            raise error
        return final

    # --- pod control ------------------------------------------------------------------------

    def _pod_event(self, verb: str, sts: dict, pod: dict, err: BaseException | None) -> None:
        pod_name, set_name = pod["metadata"]["name"], sts["metadata"]["name"]
        if err is None:
            self.event(sts, "Normal", f"Successful{verb.title()}",
                       f"{verb} Pod {pod_name} in StatefulSet {set_name} successful")
        else:
            self.event(sts, "Warning", f"Failed{verb.title()}",
                       f"{verb} Pod {pod_name} in StatefulSet {set_name} failed error: {err}")

    def _claim_event(self, sts: dict, pod: dict, claim: dict, err: BaseException | None) -> None:
        args = (claim["metadata"]["name"], pod["metadata"]["name"], sts["metadata"]["name"])
        if err is None:
            self.event(sts, "Normal", "SuccessfulCreate",
                       "create Claim %s Pod %s in StatefulSet %s success" % args)
        else:
            self.event(sts, "Warning", "FailedCreate",
                       "create Claim %s for Pod %s in StatefulSet %s failed error: %s" % (*args, err))

    async def perform(self, sts: dict, op: ss.PodOp) -> None:
        namespace = sts["metadata"].get("namespace")
        if op.verb in (ss.CREATE, ss.CREATE_CLAIMS):
            try:
                await self.create_claims(sts, op.pod, op.claims)
            except ApiError as err:
                if op.verb == ss.CREATE:
                    self._pod_event("create", sts, op.pod, err)
                raise
        if op.verb == ss.CREATE:
            try:
                created = await self.client.create(r.PODS, op.pod, namespace=namespace)
            except ApiError as err:
                if is_already_exists(err):
                    raise
                self._pod_event("create", sts, op.pod, err)
                raise
            await self.fix_claim_owners(sts, created)
            self._pod_event("create", sts, op.pod, None)
        elif op.verb == ss.DELETE:
            if not ss.in_ordinal_range(op.pod, sts):
                await self.fix_claim_owners(sts, op.pod)
            try:
                await self.client.delete(r.PODS, op.pod["metadata"]["name"], namespace=namespace)
            except ApiError as err:
                if is_not_found(err):
                    return
                self._pod_event("delete", sts, op.pod, err)
                raise
            self._pod_event("delete", sts, op.pod, None)
        elif op.verb == ss.UPDATE:
            try:
                await self.client.update(r.PODS, op.pod)
            except ApiError as err:
                self._pod_event("update", sts, op.pod, err)
                raise
            self._pod_event("update", sts, op.pod, None)

    async def create_claims(self, sts: dict, pod: dict, claims: list[dict]) -> None:
        errors = []
        for claim in claims:
            meta = claim["metadata"]
            existing = self.pvc_informer.store.get_object(meta["namespace"], meta["name"])
            if existing is None:
                try:
                    existing = await self.client.get(r.PERSISTENTVOLUMECLAIMS, meta["name"],
                                                     namespace=meta["namespace"])
                except ApiError as err:
                    if not is_not_found(err):
                        errors.append(err)
                        self._claim_event(sts, pod, claim, err)
                        continue
            if existing is None:
                try:
                    await self.client.create(r.PERSISTENTVOLUMECLAIMS, claim)
                    self._claim_event(sts, pod, claim, None)
                except ApiError as err:
                    if not is_already_exists(err):
                        errors.append(err)
                        self._claim_event(sts, pod, claim, err)
            elif existing["metadata"].get("deletionTimestamp"):
                errors.append(ApiError({"code": 409, "reason": "Conflict",
                                        "message": f"pvc {meta['name']} is being deleted"}))
        if errors:
            raise errors[0]

    async def fix_claim_owners(self, sts: dict, pod: dict) -> None:
        """``UpdatePodClaimForRetentionPolicy``: owner references per the retention policy."""
        for claim in ss.persistent_volume_claims(sts, pod).values():
            meta = claim["metadata"]
            live = self.pvc_informer.store.get_object(meta["namespace"], meta["name"])
            if live is None:
                continue
            refs = ss.claim_owner_refs(sts, pod, live)
            if refs is None:
                continue
            try:
                await self.client.patch(r.PERSISTENTVOLUMECLAIMS, meta["name"],
                                        namespace=meta["namespace"], patch_type="merge",
                                        body={"metadata": {"ownerReferences": refs or None}})
            except ApiError as err:
                if not is_not_found(err):
                    raise

    # --- status and history -------------------------------------------------------------

    async def update_status(self, sts: dict, status: dict) -> dict:
        new = ss.status_update(sts, status)
        if new is None:
            return sts.get("status") or {}
        current = sts
        for attempt in range(MAX_UPDATE_RETRIES):
            try:
                await self.client.update_status(r.STATEFULSETS, {**current, "status": new})
                return new
            except ApiError as err:
                if not is_conflict(err) or attempt == MAX_UPDATE_RETRIES - 1:
                    raise
                meta = sts["metadata"]
                current = await self.client.get(r.STATEFULSETS, meta["name"],
                                                namespace=meta.get("namespace"))
        return new

    async def truncate_history(self, sts: dict, pods: list[dict], revisions: list[dict],
                               revs: ss.Revisions) -> None:
        known = {rev["metadata"]["name"]: rev for rev in revisions}
        for rev in (revs.current, revs.update):
            known[rev["metadata"]["name"]] = rev
        for rev in ss.revisions_to_delete(sts, pods, list(known.values()), revs.current, revs.update):
            meta = rev["metadata"]
            try:
                await self.client.delete(r.CONTROLLERREVISIONS, meta["name"], namespace=meta.get("namespace"))
            except ApiError as err:
                if not is_not_found(err):
                    raise
