"""The Job controller: informers, pod and finalizer expectations, plan execution.

Role: upstream's ``job.Controller``: Job and pod events enqueue Jobs (pod events
batched by ``batch_period``, 1 s as upstream); ``sync(key)`` claims pods (adopting
with the tracking finalizer, releasing without it), asks ``job.plan_sync`` what the
pass does and performs it in order. Pods left with the tracking finalizer after
their Job finished or went away are cleaned up through the same queue (keys
``pod:<namespace>/<name>``, upstream's orphan queue).

Invariants:
- Creations and deletions are expectations, finalizer removals too (by pod uid): a
  pass never runs on a cache that has not seen the previous pass's writes.
- The back-off record of a Job is kept in memory, committed only once the status
  write that counts its failures succeeded (upstream's ``podBackoffStore``).
- The status is written through ``/status`` with the resourceVersion of the pass's
  previous write, so the pass's several writes never conflict with each other.
"""
from __future__ import annotations

import asyncio
import logging

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import job as jc
from . import jobutil as ju
from . import podutil
from .corecontext import ControllerContext
from .expectations import ControllerExpectations
from .workloads import WorkloadController, Writer, slow_start

log = logging.getLogger(__name__)

ORPHAN_PREFIX = "pod:"


class JobController(WorkloadController):
    component = "job-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5, batch_period: float = 1.0):
        super().__init__(ctx, name="job-controller", workers=workers)
        self.batch_period = batch_period
        self.expectations = ControllerExpectations(ctx.clock)
        self.finalizer_expectations: dict[str, set[str]] = {}
        self.backoffs: dict[str, ju.BackoffRecord] = {}
        self.job_informer = self.informer(r.JOBS)
        self.pod_informer = self.informer(r.PODS)
        self.job_informer.add_event_handler(on_add=self.enqueue, on_update=self._update_job,
                                            on_delete=self._delete_job)
        self.pod_informer.add_event_handler(on_add=self._add_pod, on_update=self._update_pod,
                                            on_delete=self._delete_pod)

    # --- handlers ------------------------------------------------------------------------

    def _update_job(self, old: dict, cur: dict) -> None:
        self.enqueue(cur)

    def _delete_job(self, job: dict) -> None:
        self.enqueue(job)
        # Pods still carrying the finalizer would otherwise never go away.
        uid = job["metadata"].get("uid")
        for pod in self.pod_informer.store.list_namespace(job["metadata"].get("namespace")):
            if (m.controller_of(pod) or {}).get("uid") == uid and ju.has_tracking_finalizer(pod):
                self.queue.add(ORPHAN_PREFIX + m.object_key(pod))

    def _owner(self, pod: dict) -> dict | None:
        return self.resolve_ref(self.job_informer.store, pod["metadata"].get("namespace"),
                                m.controller_of(pod), "Job")

    def _enqueue_batched(self, job: dict) -> None:
        self.enqueue_after(job, self.batch_period)

    def _add_pod(self, pod: dict) -> None:
        if podutil.deletion_timestamp(pod):
            self._delete_pod(pod, final=False)
            return
        ref = m.controller_of(pod)
        if ref is not None:
            job = self._owner(pod)
            if job is None:
                self._maybe_orphan(pod)
                return
            key = m.object_key(job)
            self.expectations.creation_observed(key)
            self._enqueue_batched(job)
            return
        self._maybe_orphan(pod)
        for job in self._matching_jobs(pod):
            self._enqueue_batched(job)

    def _update_pod(self, old: dict, cur: dict) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        if podutil.deletion_timestamp(cur) and not podutil.deletion_timestamp(old):
            self._delete_pod(cur, final=False)
            return
        job = self._owner(cur)
        if job is not None:
            key = m.object_key(job)
            if ju.has_tracking_finalizer(old) and not ju.has_tracking_finalizer(cur):
                self.finalizer_expectations.get(key, set()).discard(cur["metadata"].get("uid"))
            self._enqueue_batched(job)
        else:
            self._maybe_orphan(cur)
        old_ref, cur_ref = m.controller_of(old), m.controller_of(cur)
        if old_ref != cur_ref and old_ref is not None:
            prev = self.resolve_ref(self.job_informer.store, old["metadata"].get("namespace"), old_ref, "Job")
            if prev is not None:
                self._enqueue_batched(prev)
        if cur_ref is None and m.labels(old) != m.labels(cur):
            for j in self._matching_jobs(cur):
                self._enqueue_batched(j)

    def _delete_pod(self, pod: dict, final: bool = True) -> None:
        job = self._owner(pod)
        if job is None or ju.is_job_finished(job):
            self._maybe_orphan(pod)   # syncJob will not remove this finalizer
            return
        key = m.object_key(job)
        self.expectations.deletion_observed(key)
        if final or not ju.has_tracking_finalizer(pod):
            self.finalizer_expectations.get(key, set()).discard(pod["metadata"].get("uid"))
        self._enqueue_batched(job)

    def _matching_jobs(self, pod: dict) -> list[dict]:
        labels = m.labels(pod)
        return [j for j in self.job_informer.store.list_namespace(pod["metadata"].get("namespace"))
                if labels and selectors.label_selector_from_dict(j["spec"].get("selector")).matches(labels)]

    def _maybe_orphan(self, pod: dict) -> None:
        if ju.has_tracking_finalizer(pod):
            self.queue.add(ORPHAN_PREFIX + m.object_key(pod))

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        if key.startswith(ORPHAN_PREFIX):
            await self.sync_orphan_pod(key[len(ORPHAN_PREFIX):])
            return
        namespace, name = m.split_key(key)
        job = self.job_informer.store.get_object(namespace, name)
        if job is None:
            self.expectations.delete_expectations(key)
            self.finalizer_expectations.pop(key, None)
            self.backoffs.pop(key, None)
            return
        if ju.is_job_finished(job):
            self.backoffs.pop(key, None)
            return
        satisfied = self.expectations.satisfied(key)
        pods = await self.pods_for(job)
        plan = jc.plan_sync(job, pods, self.now(), satisfied=satisfied,
                            expected_rm_finalizers=set(self.finalizer_expectations.get(key, set())),
                            backoff=self.backoffs.get(key, ju.BackoffRecord()))
        await self.execute(job, key, plan)
        if plan.requeue_after is not None:
            raise Requeue(plan.requeue_after)

    async def pods_for(self, job: dict) -> list[dict]:
        """``getPodsForJob``: claimed pods; adopted ones gain the tracking finalizer."""
        selector = selectors.label_selector_from_dict(job["spec"].get("selector"))
        ref = podutil.new_controller_ref(job, "batch/v1", "Job")
        pods = await self.claim(job, r.JOBS,
                                self.pod_informer.store.list_namespace(job["metadata"].get("namespace")),
                                r.PODS, selector, ref, add_finalizer=ju.JOB_TRACKING_FINALIZER,
                                remove_finalizer=ju.JOB_TRACKING_FINALIZER)
        return pods

    async def execute(self, job: dict, key: str, plan: jc.JobPlan) -> None:
        writer = Writer(self.client)
        for action in plan.actions:
            if action.verb == "event":
                etype, reason, message = action.event
                self.event(job, etype, reason, message)
            elif action.verb == "update_status":
                await writer.update_status(r.JOBS, action.job)
                if action.saves_backoff:
                    self.backoffs[key] = plan.backoff
            elif action.verb == "delete_pods":
                await self.delete_pods(job, key, action)
            elif action.verb == "create_pods":
                await self.create_pods(job, key, action.pods)
            elif action.verb == "remove_finalizers":
                await self.remove_finalizers(key, action.pods)
        if not any(a.saves_backoff for a in plan.actions):
            self.backoffs[key] = plan.backoff

    async def create_pods(self, job: dict, key: str, pods: list[dict]) -> None:
        namespace = job["metadata"].get("namespace")
        self.expectations.expect_creations(key, len(pods))

        async def create(i: int) -> None:
            try:
                await self.pod_control.create(namespace, pods[i], job)
            except ApiError as err:
                if any(c.get("type") == "NamespaceTerminating" for c in err.details.get("causes") or []):
                    return
                self.expectations.creation_observed(key)
                raise

        _, attempted, err = await slow_start(len(pods), create)
        for _ in range(len(pods) - attempted):
            self.expectations.creation_observed(key)
        if err is not None:
            raise err

    async def delete_pods(self, job: dict, key: str, action: jc.JobAction) -> None:
        namespace = job["metadata"].get("namespace")
        if action.expect:
            self.expectations.expect_deletions(key, len(action.pods))

        async def delete(pod: dict) -> None:
            name = pod["metadata"]["name"]
            try:
                if action.remove_finalizer and ju.has_tracking_finalizer(pod):
                    await self.pod_control.patch(namespace, name, ju.remove_finalizer_patch(pod))
                await self.pod_control.delete(namespace, name, job)
            except ApiError as err:
                if action.expect:
                    self.expectations.deletion_observed(key)
                if not is_not_found(err):
                    raise

        results = await asyncio.gather(*(delete(p) for p in action.pods), return_exceptions=True)
        errors = [e for e in results if isinstance(e, BaseException)]
        if errors:
            raise errors[0]

    async def remove_finalizers(self, key: str, pods: list[dict]) -> None:
        expected = self.finalizer_expectations.setdefault(key, set())
        expected.update(p["metadata"]["uid"] for p in pods)

        async def remove(pod: dict) -> None:
            meta = pod["metadata"]
            try:
                await self.pod_control.patch(meta.get("namespace"), meta["name"], ju.remove_finalizer_patch(pod))
            except ApiError as err:
                expected.discard(meta["uid"])
                if not is_not_found(err):
                    raise

        results = await asyncio.gather(*(remove(p) for p in pods), return_exceptions=True)
        errors = [e for e in results if isinstance(e, BaseException)]
        if errors:
            raise errors[0]

    async def sync_orphan_pod(self, pod_key: str) -> None:
        """Drop the tracking finalizer of a pod whose Job is gone or finished."""
        namespace, name = m.split_key(pod_key)
        pod = self.pod_informer.store.get_object(namespace, name)
        if pod is None or not ju.has_tracking_finalizer(pod):
            return
        ref = m.controller_of(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return
            job = self._owner(pod)
            if job is not None and not ju.is_job_finished(job):
                return
        try:
            await self.pod_control.patch(namespace, name, ju.remove_finalizer_patch(pod))
        except ApiError as err:
            if not is_not_found(err):
                raise
