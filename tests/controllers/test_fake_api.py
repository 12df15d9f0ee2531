"""Controllers against the in-memory API: expectations, slow start, ReplicaFailure, Jobs."""
import asyncio
import time

import pytest

from pyk8s.client import Client, FakeClock
from pyk8s.client import resources as r
from pyk8s.client.errors import ApiError, status
from pyk8s.client.fake import FakeAPI, FakeTransport
from pyk8s.client.informers import SharedInformerFactory
from pyk8s.controllers.corecontext import ControllerContext
from pyk8s.controllers.job_controller import JobController
from pyk8s.controllers.replicaset_controller import ReplicaSetController

from .builders import template


async def until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def env():
    clock = FakeClock()
    api = FakeAPI(clock=clock)
    client = Client(transport=FakeTransport(api), clock=clock)
    ctx = ControllerContext(client=client, informers=SharedInformerFactory(client, clock=clock),
                            clock=clock)
    return api, ctx


def rs(replicas):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": template()}}


async def running(controller):
    task = asyncio.create_task(controller.run())
    await asyncio.sleep(0)
    return task


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_replicaset_never_creates_twice(env):
    api, ctx = env
    api.add(rs(5))
    c = ReplicaSetController(ctx)
    task = await running(c)
    try:
        await until(lambda: len(api.objects(r.PODS, "default")) == 5, what="5 pods")
        for _ in range(50):               # status writes and pod events re-sync the key
            await asyncio.sleep(0.01)
        assert len(api.objects(r.PODS, "default")) == 5
        creates = [req for req in api.requests if req[0] == "POST" and req[1].endswith("/pods")]
        assert len(creates) == 5
        # The status counts the pods once the informer has seen them: a later write.
        await until(lambda: (api.get_object(r.REPLICASETS, "web", namespace="default")
                             .get("status") or {}).get("replicas") == 5, what="status.replicas 5")
        stored = api.get_object(r.REPLICASETS, "web", namespace="default")
        assert stored["status"]["observedGeneration"] == 1
        events = ctx.recorder("replicaset-controller").events
        assert sum(e.startswith("Normal SuccessfulCreate Created pod: web-") for e in events) == 5
    finally:
        await stop(task)


async def test_failed_creates_stop_the_slow_start_and_set_replica_failure(env):
    api, ctx = env
    attempts = []

    def quota(req):
        if req.verb == "create" and req.resource == r.PODS:
            attempts.append(1)
            raise ApiError(status(403, "Forbidden", message='pods "web-x" is forbidden: exceeded quota'))

    api.prepend_reactor("create", "pods", reactor=quota)
    api.add(rs(10))
    c = ReplicaSetController(ctx)
    passes = []   # the create attempts of each finished pass
    manage = c.manage

    async def counting(*args):
        before = len(attempts)
        try:
            await manage(*args)
        finally:
            passes.append(len(attempts) - before)

    c.manage = counting
    task = await running(c)
    try:
        await until(lambda: (api.get_object(r.REPLICASETS, "web", namespace="default").get("status") or {})
                    .get("conditions"), what="ReplicaFailure")
        cond = api.get_object(r.REPLICASETS, "web", namespace="default")["status"]["conditions"][0]
        assert (cond["type"], cond["reason"]) == ("ReplicaFailure", "FailedCreate")
        assert "exceeded quota" in cond["message"]
        # Each pass stops after its first batch (of one) failed: one attempt per pass.
        # (Counted per finished pass: the condition's write wakes another pass, which may
        # have begun but not yet tried when the condition is seen.)
        assert passes and set(passes) == {1} and len(passes) < 10
        assert any(e.startswith("Warning FailedCreate Error creating: ")
                   for e in ctx.recorder("replicaset-controller").events)
    finally:
        await stop(task)


async def test_job_runs_pods_to_completion(env):
    api, ctx = env
    api.add({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default",
                                                                   "uid": "job-uid"},
             "spec": {"completions": 2, "parallelism": 2, "backoffLimit": 6,
                      "selector": {"matchLabels": {"job": "pi"}},
                      "template": {"metadata": {"labels": {"job": "pi"}},
                                   "spec": {"restartPolicy": "Never",
                                            "containers": [{"name": "c", "image": "busybox"}]}}}})
    c = JobController(ctx, batch_period=0.0)
    task = await running(c)
    try:
        await until(lambda: len(api.objects(r.PODS, "default")) == 2, what="2 pods")
        for pod in api.objects(r.PODS, "default"):
            await ctx.client.patch(r.PODS, pod["metadata"]["name"], namespace="default",
                                   subresource="status", body={"status": {"phase": "Succeeded"}})
        await until(lambda: any(cond["type"] == "Complete" for cond in
                                (api.get_object(r.JOBS, "pi", namespace="default").get("status") or {})
                                .get("conditions") or []), what="Complete")
        job = api.get_object(r.JOBS, "pi", namespace="default")
        assert job["status"]["succeeded"] == 2
        for pod in api.objects(r.PODS, "default"):
            assert "batch.kubernetes.io/job-tracking" not in (pod["metadata"].get("finalizers") or [])
    finally:
        await stop(task)
