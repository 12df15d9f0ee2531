"""The Deployment controller: informers, ReplicaSet adoption and plan execution.

Role: upstream's ``DeploymentController`` (``deployment_controller.go``): Deployment,
ReplicaSet and pod events enqueue the Deployment; ``sync(key)`` claims ReplicaSets
by selector, groups their pods, asks ``deployment.plan_sync`` what this pass writes
and performs it in order, stopping at the first failure (the key is retried with
back-off). A pod deletion wakes a Recreate Deployment once its last pod is gone.

Invariants:
- The revision annotation the plan sets on the Deployment is written with a merge
  patch of the metadata, then the status through ``/status`` (this API server keeps
  metadata out of status writes).
- A hash collision (a ReplicaSet of that name exists with another template) bumps
  ``status.collisionCount`` and retries, as upstream.
- The deployment is requeued for its progress deadline when the plan asks.
"""
from __future__ import annotations

import logging

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.client import ApiError, is_already_exists, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import deployment as dep
from . import deployment_util as du
from . import podutil
from .corecontext import ControllerContext
from .workloads import WorkloadController, Writer, annotations_patch

log = logging.getLogger(__name__)


class DeploymentController(WorkloadController):
    component = "deployment-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5):
        super().__init__(ctx, name="deployment-controller", workers=workers)
        self.d_informer = self.informer(r.DEPLOYMENTS)
        self.rs_informer = self.informer(r.REPLICASETS)
        self.pod_informer = self.informer(r.PODS)
        self.d_informer.add_event_handler(on_add=self.enqueue, on_update=lambda o, c: self.enqueue(c),
                                          on_delete=self.enqueue)
        self.rs_informer.add_event_handler(on_add=self._add_rs, on_update=self._update_rs,
                                           on_delete=self._delete_rs)
        self.pod_informer.add_event_handler(on_delete=self._delete_pod)

    # --- handlers ------------------------------------------------------------------------

    def _owner(self, rs: dict, ref: dict | None = None) -> dict | None:
        return self.resolve_ref(self.d_informer.store, rs["metadata"].get("namespace"),
                                ref if ref is not None else m.controller_of(rs), "Deployment")

    def _deployments_for(self, rs: dict) -> list[dict]:
        labels = m.labels(rs)
        if not labels:
            return []
        out = []
        for d in self.d_informer.store.list_namespace(rs["metadata"].get("namespace")):
            selector = selectors.label_selector_from_dict(d["spec"].get("selector"))
            if not selector.empty and selector.matches(labels):
                out.append(d)
        return out

    def _add_rs(self, rs: dict) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._delete_rs(rs)
            return
        if m.controller_of(rs) is not None:
            owner = self._owner(rs)
            if owner is not None:
                self.enqueue(owner)
            return
        for d in self._deployments_for(rs):
            self.enqueue(d)

    def _update_rs(self, old: dict, cur: dict) -> None:
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
            return
        if m.labels(old) != m.labels(cur) or old_ref != cur_ref:
            for d in self._deployments_for(cur):
                self.enqueue(d)

    def _delete_rs(self, rs: dict) -> None:
        owner = self._owner(rs)
        if owner is not None:
            self.enqueue(owner)

    def _delete_pod(self, pod: dict) -> None:
        rs_ref = m.controller_of(pod)
        if rs_ref is None or rs_ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.store.get_object(pod["metadata"].get("namespace"), rs_ref.get("name"))
        if rs is None:
            return
        d = self._owner(rs)
        if d is None or du.strategy_type(d) != "Recreate":
            return
        if not any(self._pods_by_rs(d, self._owned_rs(d)).values()):
            self.enqueue(d)

    # --- listing -----------------------------------------------------------------------

    def _owned_rs(self, d: dict) -> list[dict]:
        uid = d["metadata"]["uid"]
        return [rs for rs in self.rs_informer.store.list_namespace(d["metadata"].get("namespace"))
                if (m.controller_of(rs) or {}).get("uid") == uid]

    def _pods_by_rs(self, d: dict, rss: list[dict]) -> dict[str, list[dict]]:
        """``getPodMapForDeployment``: pods matching d's selector, keyed by their RS uid."""
        selector = selectors.label_selector_from_dict(d["spec"].get("selector"))
        out = {rs["metadata"]["uid"]: [] for rs in rss}
        for pod in self.pod_informer.store.list_namespace(d["metadata"].get("namespace")):
            if not selector.matches(m.labels(pod)):
                continue
            ref = m.controller_of(pod)
            if ref is not None and ref.get("uid") in out:
                out[ref["uid"]].append(pod)
        return out

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = m.split_key(key)
        d = self.d_informer.store.get_object(namespace, name)
        if d is None:
            return
        rs_list = []
        if d["spec"].get("selector") != {}:
            selector = selectors.label_selector_from_dict(d["spec"].get("selector"))
            ref = podutil.new_controller_ref(d, "apps/v1", "Deployment")
            rs_list = await self.claim(d, r.DEPLOYMENTS,
                                       self.rs_informer.store.list_namespace(namespace),
                                       r.REPLICASETS, selector, ref)
        plan = dep.plan_sync(d, rs_list, self._pods_by_rs(d, rs_list), self.now())
        await self.execute(d, plan)
        if plan.requeue_rate_limited:
            self.enqueue_rate_limited(key)
        elif plan.requeue_after is not None:
            raise Requeue(plan.requeue_after)

    async def execute(self, d: dict, plan: dep.Plan) -> None:
        writer = Writer(self.client)
        current_d = d
        for action in plan.actions:
            if action.verb == dep.EVENT:
                etype, reason, message = action.event
                self.event(d, etype, reason, message)
            elif action.resource == dep.RS:
                await self._write_rs(writer, d, action)
            elif action.verb == dep.UPDATE_STATUS:
                patch = annotations_patch(current_d, action.obj)
                if patch is not None:
                    current_d = await writer.patch(r.DEPLOYMENTS, action.obj, patch)
                current_d = await writer.update_status(r.DEPLOYMENTS, action.obj)
            elif action.verb == dep.UPDATE:
                current_d = await writer.update(r.DEPLOYMENTS, action.obj)

    async def _write_rs(self, writer: Writer, d: dict, action: dep.Action) -> None:
        if action.verb == dep.UPDATE:
            await writer.update(r.REPLICASETS, action.obj)
        elif action.verb == dep.DELETE:
            await writer.delete(r.REPLICASETS, action.obj)
        elif action.verb == dep.CREATE:
            try:
                await writer.create(r.REPLICASETS, action.obj)
            except ApiError as err:
                if is_already_exists(err):
                    await self._on_collision(d, action.obj, err)
                    return
                if du.has_progress_deadline(d) and not any(
                        c.get("type") == "NamespaceTerminating" for c in err.details.get("causes") or []):
                    msg = f'Failed to create new replica set "{action.obj["metadata"]["name"]}": {err}'
                    status = dict(d.get("status") or {})
                    du.set_condition(status, du.new_condition(
                        du.PROGRESSING, "False", du.FAILED_RS_CREATE_REASON, msg, self.now()))
                    try:
                        await self.client.update_status(r.DEPLOYMENTS, {**d, "status": status})
                    except ApiError:
                        pass  # the create error is the one worth reporting
                    self.event(d, "Warning", du.FAILED_RS_CREATE_REASON, msg)
                raise

    async def _on_collision(self, d: dict, wanted: dict, err: ApiError) -> None:
        """The new ReplicaSet's name is taken: ours already, or a hash collision."""
        meta = wanted["metadata"]
        try:
            existing = await self.client.get(r.REPLICASETS, meta["name"], namespace=meta["namespace"])
        except ApiError as get_err:
            if is_not_found(get_err):
                raise err
            raise
        ref = m.controller_of(existing)
        if (ref is not None and ref.get("uid") == d["metadata"]["uid"]
                and du.equal_ignore_hash(d["spec"]["template"], existing["spec"]["template"])):
            # Ours, from a pass whose create the cache had not seen yet: look again.
            raise Requeue(0)
        status = dict(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.client.update_status(r.DEPLOYMENTS, {**d, "status": status})
        log.info("deployment %s/%s: hash collision, collisionCount now %d",
                 d["metadata"].get("namespace"), d["metadata"]["name"], status["collisionCount"])
        raise err
