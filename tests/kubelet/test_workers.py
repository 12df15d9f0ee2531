"""Pod workers: one task per pod, states only move forward, grace periods only shrink."""
import asyncio
import copy

from pyk8s.client.clock import FakeClock
from pyk8s.kubelet.workers import PodWorkers, State, SyncOutcome

from .helpers import pod


class Handler:
    def __init__(self):
        self.log = []
        self.release = asyncio.Event()
        self.retry_after = None

    async def sync_pod(self, p):
        self.log.append(("sync", p["metadata"].get("resourceVersion")))
        return SyncOutcome(retry_after=self.retry_after)

    async def sync_terminating_pod(self, p, grace):
        self.log.append(("kill", grace))
        if grace > 5:
            await self.release.wait()  # a container that takes its time to stop

    async def sync_terminated_pod(self, p):
        self.log.append(("terminated",))

    async def pod_removed(self, uid, p):
        self.log.append(("removed",))


def deleted(p, grace, rv):
    p = copy.deepcopy(p)
    p["metadata"].update(deletionTimestamp="2025-01-01T00:01:00Z",
                         deletionGracePeriodSeconds=grace, resourceVersion=rv)
    return p


async def test_a_shorter_grace_period_interrupts_a_kill_in_progress():
    handler, clock = Handler(), FakeClock()
    workers = PodWorkers(handler, clock=clock)
    p = pod()
    uid = p["metadata"]["uid"]
    workers.update(p)
    await workers.wait_idle()
    workers.update(deleted(p, 30, "2"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert handler.log[-1] == ("kill", 30) and workers.state(uid) == State.TERMINATING
    workers.update(deleted(p, 2, "3"))
    await workers.wait_idle()
    assert handler.log[1:] == [("kill", 30), ("kill", 2), ("terminated",)]
    workers.remove(uid)
    await workers.wait_idle()
    assert handler.log[-1] == ("removed",) and not workers.known(uid)


async def test_updates_during_a_sync_collapse_and_timers_resync():
    handler, clock = Handler(), FakeClock()
    handler.retry_after = 10
    workers = PodWorkers(handler, clock=clock)
    p = pod()
    workers.update(p)
    for rv in ("2", "3", "4"):
        q = copy.deepcopy(p)
        q["metadata"]["resourceVersion"] = rv
        workers.update(q)
    await workers.wait_idle()
    assert handler.log == [("sync", "4")]  # the worker took the newest pod once
    clock.advance(9)
    await workers.wait_idle()
    assert len(handler.log) == 1
    clock.advance(1)
    await workers.wait_idle()
    assert len(handler.log) == 2
    await workers.stop()


async def test_a_failing_sync_is_retried_with_back_off():
    handler, clock = Handler(), FakeClock()
    calls = []

    async def failing(p):
        calls.append(clock.monotonic())
        raise RuntimeError("runtime down")

    handler.sync_pod = failing
    workers = PodWorkers(handler, clock=clock, error_backoff=1, max_error_backoff=4)
    workers.update(pod())
    await workers.wait_idle()
    for _ in range(4):
        clock.advance(clock.next_deadline() - clock.monotonic())
        await workers.wait_idle()
    assert [b - a for a, b in zip(calls, calls[1:])] == [1, 2, 4, 4]
    await workers.stop()
