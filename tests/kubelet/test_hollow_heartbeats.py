"""The hollow nodes' heartbeats on fakes (a fake API, a fake clock, no sleeping): a
lone node keeps renewing its Lease, and a node the node lifecycle controller marked
Unknown reports Ready again, as a kubelet does."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from pyk8s.api import meta
from pyk8s.client import resources
from pyk8s.client.clock import FakeClock
from pyk8s.client.fake import FakeAPI, FakeTransport
from pyk8s.client.rest import Client
from pyk8s.kubelet import hollow


async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def _advance(clock: FakeClock, seconds: float, step: float = 0.05) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await _settle()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock) -> FakeAPI:
    return FakeAPI(clock=clock)


@contextlib.asynccontextmanager
async def beating(api: FakeAPI, clock: FakeClock, settings: hollow.HollowSettings):
    client = Client(transport=FakeTransport(api), clock=clock)
    beats = hollow.Heartbeats(client, hollow.make_nodes(settings), settings, clock=clock)
    await beats.register_all()
    beats.schedule_all()
    task = asyncio.create_task(beats.run())
    try:
        await _settle()
        yield beats
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def renew_time(api: FakeAPI, name: str) -> str:
    lease = api.get_object(resources.LEASES, name, namespace="kube-node-lease")
    return lease["spec"]["renewTime"]


def conditions(api: FakeAPI, name: str) -> dict[str, dict]:
    node = api.get_object(resources.NODES, name)
    return {c["type"]: c for c in node["status"]["conditions"]}


async def test_a_lone_node_renews_its_lease_every_period(api, clock):
    # One node: after its first renewal the heap's earliest entry is the status report
    # five minutes away; the next renewal (10 s on) must still wake the loop.
    settings = hollow.HollowSettings(count=1, prefix="lone-")
    async with beating(api, clock, settings) as beats:
        seen = []
        for _ in range(6):
            await _advance(clock, settings.lease_renew_interval)
            seen.append(renew_time(api, "lone-0"))
        assert beats.renewals >= 6
        assert len(set(seen)) == len(seen), seen   # renewed in every period


async def test_a_node_marked_unknown_reports_ready_again(api, clock):
    settings = hollow.HollowSettings(count=2, prefix="back-")
    async with beating(api, clock, settings):
        await _advance(clock, 1)
        before = conditions(api, "back-0")
        # what the node lifecycle controller writes after a silent grace period
        await _advance(clock, 5)
        stamp = meta.format_time(clock.now())
        node = api.get_object(resources.NODES, "back-0")
        for cond in node["status"]["conditions"]:
            cond.update(status="Unknown", reason="NodeStatusUnknown",
                        message="Kubelet stopped posting node status.",
                        lastTransitionTime=stamp)
        client = Client(transport=FakeTransport(api), clock=clock)
        await client.update_status(resources.NODES, node)
        await _advance(clock, 2)
        await _advance(clock, 1)   # the transition is stamped after the Unknown one
        after = conditions(api, "back-0")
        assert after["Ready"]["status"] == "True"
        assert after["Ready"]["reason"] == "KubeletReady"
        assert after["Ready"]["message"] == "kubelet is posting ready status"
        assert after["Ready"]["lastTransitionTime"] > before["Ready"]["lastTransitionTime"]
        assert after["MemoryPressure"]["status"] == "False"
        assert after["Ready"]["lastHeartbeatTime"] >= stamp
        # the other node was left alone
        assert conditions(api, "back-1")["Ready"]["lastTransitionTime"] == \
            before["Ready"]["lastTransitionTime"]


async def test_a_periodic_report_keeps_transition_times(api, clock):
    settings = hollow.HollowSettings(count=1, prefix="steady-",
                                     node_status_report_frequency=20.0)
    async with beating(api, clock, settings):
        await _advance(clock, 1)
        before = conditions(api, "steady-0")
        await _advance(clock, 45)   # two reports
        after = conditions(api, "steady-0")
        for kind, cond in after.items():
            assert cond["lastHeartbeatTime"] > before[kind]["lastHeartbeatTime"]
            assert cond["lastTransitionTime"] == before[kind]["lastTransitionTime"]
            assert cond["status"] == before[kind]["status"]
