"""Deletes finished Jobs once their ``ttlSecondsAfterFinished`` has passed.

Role: upstream's ``ttl-after-finished-controller`` (``pkg/controller/
ttlafterfinished``): a Job with ``spec.ttlSecondsAfterFinished`` whose Complete or
Failed condition is True is deleted (propagation Foreground, so its pods go first)
when ``lastTransitionTime + ttl`` is reached; until then it is looked at again at
that moment.

Invariants:
- The decision is re-checked on a fresh GET just before deleting (the TTL may have
  been changed), and the delete carries the fresh Job's uid as a precondition.
- Jobs being deleted, unfinished Jobs and Jobs without a TTL are never touched.
"""
from __future__ import annotations

import datetime
import logging

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)


def finish_time(job: dict) -> datetime.datetime | None:
    """When the Job's Complete or Failed condition turned True, or None if unfinished."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            stamp = cond.get("lastTransitionTime")
            if not stamp:
                raise ValueError(f"unable to find the time when the Job {m.object_key(job)} "
                                 f"finished")
            return m.parse_time(stamp)
    return None


def needs_cleanup(job: dict) -> bool:
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    return ttl is not None and finish_time(job) is not None


def time_left(job: dict, now: datetime.datetime) -> float | None:
    """Seconds until the Job expires (<= 0: expired); None when it never does."""
    if job["metadata"].get("deletionTimestamp") or not needs_cleanup(job):
        return None
    finished = finish_time(job)
    if finished > now:
        log.info("job %s finished in the future; cleanup deferred (clock skew?)",
                 m.object_key(job))
    expire = finished + datetime.timedelta(seconds=job["spec"]["ttlSecondsAfterFinished"])
    return (expire - now).total_seconds()


class TTLAfterFinishedController(CoreController):
    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="ttl-after-finished-controller",
                         workers=ctx.settings.ttl_workers)
        self.jobs = self.informer(r.JOBS)
        self.jobs.add_event_handler(on_add=self._job, on_update=lambda o, n: self._job(n))

    def _job(self, job: dict) -> None:
        if not job["metadata"].get("deletionTimestamp") and needs_cleanup(job):
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        job = self.jobs.store.get(key)
        if job is None:
            return
        left = time_left(job, self.now())
        if left is None:
            return
        if left > 0:
            raise Requeue(left)
        ns, name = m.split_key(key)
        try:
            fresh = await self.client.get(r.JOBS, name, namespace=ns)
        except ApiError as err:
            if is_not_found(err):
                return
            raise
        left = time_left(fresh, self.now())
        if left is None:
            return
        if left > 0:
            raise Requeue(left)
        log.info("cleaning up finished Job %s", key)
        try:
            await self.client.delete(r.JOBS, name, namespace=ns, propagation_policy="Foreground",
                                     preconditions={"uid": fresh["metadata"]["uid"]})
        except ApiError as err:
            if not is_not_found(err):
                raise


def new_ttl_after_finished_controller(ctx: ControllerContext) -> TTLAfterFinishedController:
    return TTLAfterFinishedController(ctx)
