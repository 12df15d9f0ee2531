"""The CronJob controller: requeue at the next schedule time, create and clean up Jobs.

Role: upstream's ``ControllerV2`` (``cronjob_controllerv2.go``): CronJob and Job
events enqueue the CronJob; ``sync(key)`` re-reads active Jobs missing from the
cache, asks ``cronjob.plan_sync`` for the pass's deletes, create and status, performs
them, and requeues the key for the next scheduled time (+100 ms).

Invariants:
- Job names are deterministic per scheduled time, so a create that finds its Job
  already there (an earlier pass whose status write was lost) adopts it into
  ``status.active`` instead of running twice.
- Jobs are deleted with background propagation, as upstream's ``jobControl``.
- Only Jobs whose controller reference names this CronJob are considered.
"""
from __future__ import annotations

import logging

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_already_exists, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import cronjob as cc
from .corecontext import ControllerContext
from .workloads import WorkloadController

log = logging.getLogger(__name__)


class CronJobController(WorkloadController):
    component = "cronjob-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5):
        super().__init__(ctx, name="cronjob-controller", workers=workers)
        self.cj_informer = self.informer(r.CRONJOBS)
        self.job_informer = self.informer(r.JOBS)
        self.cj_informer.add_event_handler(on_add=self.enqueue, on_update=lambda o, c: self.enqueue(c),
                                           on_delete=self.enqueue)
        self.job_informer.add_event_handler(on_add=self._job_changed,
                                            on_update=lambda o, c: self._job_changed(c, o),
                                            on_delete=self._job_changed)

    def _job_changed(self, job: dict, old: dict | None = None) -> None:
        for candidate in (job, old):
            if candidate is None:
                continue
            ref = m.controller_of(candidate)
            if ref is not None and ref.get("kind") == "CronJob":
                self.enqueue(m.key(candidate["metadata"].get("namespace"), ref.get("name")))

    def jobs_of(self, cj: dict) -> list[dict]:
        """``getJobsToBeReconciled``: Jobs whose controller reference names the CronJob."""
        name = cj["metadata"]["name"]
        return [j for j in self.job_informer.store.list_namespace(cj["metadata"].get("namespace"))
                if (m.controller_of(j) or {}).get("kind") == "CronJob"
                and (m.controller_of(j) or {}).get("name") == name]

    async def sync(self, key: str) -> None:
        namespace, name = m.split_key(key)
        cj = self.cj_informer.store.get_object(namespace, name)
        if cj is None:
            return
        jobs = self.jobs_of(cj)
        gone = []
        for ref in cc.unlisted_active(cj, jobs):
            try:
                await self.client.get(r.JOBS, ref.get("name"), namespace=ref.get("namespace") or namespace)
            except ApiError as err:
                if not is_not_found(err):
                    raise
                gone.append(ref)
        plan = cc.plan_sync(cj, jobs, self.now(), gone)
        error: BaseException | None = None
        try:
            await self.execute(plan)
        except ApiError as err:
            error = err
        if plan.update_status:
            await self.client.update_status(r.CRONJOBS, plan.cronjob)
        if error is not None:
            raise error
        if plan.requeue_after is not None:
            raise Requeue(plan.requeue_after)

    async def execute(self, plan: cc.CronPlan) -> None:
        cj = plan.cronjob
        namespace = cj["metadata"].get("namespace")
        for action in plan.actions:
            if action[0] == "event":
                _, etype, reason, message = action
                self.event(cj, etype, reason, message)
            elif action[0] == "delete":
                job = action[1]
                try:
                    await self.client.delete(r.JOBS, job["metadata"]["name"], namespace=namespace,
                                             propagation_policy="Background")
                except ApiError as err:
                    if not is_not_found(err):
                        self.event(cj, "Warning", "FailedDelete", f"Deleted job: {err}")
                        raise
            elif action[0] == "create":
                await self.create_job(plan, action[1])

    async def create_job(self, plan: cc.CronPlan, job: dict) -> None:
        cj = plan.cronjob
        namespace = cj["metadata"].get("namespace")
        try:
            created = await self.client.create(r.JOBS, job, namespace=namespace)
        except ApiError as err:
            if not is_already_exists(err):
                if not any(c.get("type") == "NamespaceTerminating" for c in err.details.get("causes") or []):
                    self.event(cj, "Warning", "FailedCreate", f"Error creating job: {err}")
                raise
            existing = await self.client.get(r.JOBS, job["metadata"]["name"], namespace=namespace)
            if (m.controller_of(existing) or {}).get("uid") != cj["metadata"].get("uid"):
                return
            if any(a.get("uid") == existing["metadata"].get("uid") for a in cj["status"].get("active") or []):
                return
            created = existing
        else:
            self.event(cj, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        cj["status"].setdefault("active", []).append(cc.job_reference(created))
