"""Leader election on a Lease with two candidates on the in-memory API and fake time."""
from __future__ import annotations

import asyncio

import pytest

from pyk8s.api.meta import parse_time
from pyk8s.client import resources as r
from pyk8s.client.errors import ApiError, status
from pyk8s.client.leaderelection import LeaderElector, LeaseLock
from pyk8s.client.settings import LeaderElectionSettings

from .helpers import run_clock, settle

pytestmark = pytest.mark.timeout(60)


class Candidate:
    def __init__(self, client, clock, identity: str, **settings):
        self.identity = identity
        self.log: list[str] = []
        self.leading = False
        self.elector = LeaderElector(
            LeaseLock(client, namespace="kube-system", name="my-controller", identity=identity),
            on_started_leading=self._lead, on_stopped_leading=self._stopped,
            on_new_leader=lambda who: self.log.append(f"leader is {who}"),
            settings=LeaderElectionSettings(**settings), clock=clock, rand=lambda: 0.0)
        self.task: asyncio.Task | None = None

    async def _lead(self) -> None:
        self.leading = True
        self.log.append("started")
        try:
            await asyncio.Event().wait()  # the leader's work: runs until cancelled
        finally:
            self.leading = False
            self.log.append("work cancelled")

    def _stopped(self) -> None:
        self.log.append("stopped")

    def start(self) -> "Candidate":
        self.task = asyncio.create_task(self.elector.run())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def lease(api) -> dict:
    return api.get_object(r.LEASES, "my-controller", namespace="kube-system")


async def test_exactly_one_of_two_candidates_leads(fake_client, api, clock):
    a = Candidate(fake_client, clock, "a").start()
    b = Candidate(fake_client, clock, "b").start()
    try:
        await settle()
        assert [a.leading, b.leading].count(True) == 1
        leader, follower = (a, b) if a.leading else (b, a)
        spec = lease(api)["spec"]
        assert spec["holderIdentity"] == leader.identity
        assert spec["leaseDurationSeconds"] == 15 and spec["leaseTransitions"] == 0
        acquired = spec["acquireTime"]
        # The loser of the create race learns who leads on its next try.
        await run_clock(clock, 2.0, step=0.5)
        assert follower.log == [f"leader is {leader.identity}"]
        for _ in range(6):  # a minute of renewals: nothing changes hands
            await run_clock(clock, 10.0, step=0.5)
            assert leader.leading and not follower.leading
        spec = lease(api)["spec"]
        assert spec["acquireTime"] == acquired and spec["leaseTransitions"] == 0
        assert (parse_time(spec["renewTime"]) - parse_time(acquired)).total_seconds() >= 58
        assert follower.elector.leader == leader.identity and not follower.elector.is_leader()
    finally:
        await a.stop()
        await b.stop()


async def test_a_leader_that_cannot_renew_steps_down_and_the_other_takes_over(
        fake_client, api, clock):
    a = Candidate(fake_client, clock, "a").start()
    await settle()
    b = Candidate(fake_client, clock, "b").start()
    await settle()
    assert a.leading and not b.leading
    cut_off = {"on": True}

    def partition(req):
        # a's renewals fail as if it lost its connection to the API server.
        if cut_off["on"] and (req.body or {}).get("spec", {}).get("holderIdentity") == "a":
            raise ApiError(status(500, "InternalError", message="etcdserver: request timed out"))
        return None

    api.prepend_reactor("update", "leases", reactor=partition)
    try:
        await run_clock(clock, 9.0, step=0.5)
        assert a.leading  # still within the renew deadline (10 s)
        await run_clock(clock, 3.0, step=0.5)
        assert not a.leading and a.log[-2:] == ["work cancelled", "stopped"]
        assert a.task.done()
        assert not b.leading  # the lease has not expired yet for b (15 s)
        await run_clock(clock, 6.0, step=0.5)
        assert b.leading
        spec = lease(api)["spec"]
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    finally:
        await a.stop()
        await b.stop()


async def test_release_on_cancel_hands_over_without_waiting(fake_client, api, clock):
    a = Candidate(fake_client, clock, "a").start()
    await settle()
    b = Candidate(fake_client, clock, "b").start()
    await settle()
    try:
        await a.stop()
        assert a.log == ["leader is a", "started", "work cancelled", "stopped"]
        spec = lease(api)["spec"]
        assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
        await run_clock(clock, 2.0, step=0.5)  # one retry period
        assert b.leading
        assert lease(api)["spec"]["leaseTransitions"] == 1
    finally:
        await b.stop()


async def test_without_release_the_successor_waits_for_expiry(fake_client, api, clock):
    a = Candidate(fake_client, clock, "a", release_on_cancel=False).start()
    await settle()
    b = Candidate(fake_client, clock, "b").start()
    await settle()
    try:
        await a.stop()
        assert lease(api)["spec"]["holderIdentity"] == "a"
        await run_clock(clock, 14.0, step=0.5)
        assert not b.leading
        await run_clock(clock, 2.5, step=0.5)
        assert b.leading
    finally:
        await b.stop()


async def test_compare_and_swap_lets_only_one_racer_win(fake_client, api, clock):
    # Both read the expired lease, then both try to take it: one update must fail.
    api.add({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "my-controller", "namespace": "kube-system"},
             "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 3}})
    a = Candidate(fake_client, clock, "a")
    b = Candidate(fake_client, clock, "b")
    results = await asyncio.gather(a.elector._try_acquire_or_renew(),
                                   b.elector._try_acquire_or_renew())
    assert sorted(results) == [False, True]
    assert lease(api)["spec"]["leaseTransitions"] == 4


def test_settings_are_checked():
    with pytest.raises(ValueError):
        LeaderElectionSettings(lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaderElectionSettings(renew_deadline=2, retry_period=2)
    s = LeaderElectionSettings()
    assert (s.lease_duration, s.renew_deadline, s.retry_period) == (15, 10, 2)
