"""The proxier against a fake host and a fake clock: when it writes, and what."""
from __future__ import annotations

import asyncio
import datetime

import pytest

from pyk8s.client import FakeClock
from pyk8s.proxy.nft import FakeHost
from pyk8s.proxy.proxier import Proxier, ProxySettings, SyncRunner
from pyk8s.proxy.rules import NodeConfig

from .objects import endpoint, endpoint_slice, service

CFG = NodeConfig(node_name="n1")


async def settle(proxier: Proxier) -> None:
    """Let the sync loop run everything that is due at the current fake time."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def started(clock):
    host = FakeHost()
    proxier = Proxier(host, CFG, ProxySettings(min_sync_period=1.0, sync_period=30.0),
                      clock=clock, defer_chain_delete=False)
    task = asyncio.create_task(proxier.run())
    yield proxier, host
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nothing_is_written_before_services_and_slices_synced(started):
    proxier, host = started
    proxier.on_service_add(service("web", "10.43.0.5"))
    proxier.on_slice_add(endpoint_slice("web", [endpoint("10.42.0.11")]))
    proxier.set_services_synced()
    await settle(proxier)
    assert host.transactions == []
    proxier.set_slices_synced()
    await settle(proxier)
    assert len(host.transactions) == 1
    assert host.transactions[0].startswith("add table ip pyk8s")
    assert "dnat to 10.42.0.11:8080" in host.transactions[0]
    assert host.sysctls == {"net.ipv4.conf.all.route_localnet": "1"}
    # The service range is routed to a dropping link so the node reaches ClusterIPs.
    assert ("-4", "route", "replace", "10.43.0.0/17", "dev", "pyk8s-svc") in host.ip_commands


async def test_later_changes_are_partial_and_rate_limited(started, clock):
    proxier, host = started
    proxier.set_services_synced()
    proxier.set_slices_synced()
    await settle(proxier)
    assert len(host.transactions) == 1  # the full one, from the first of two burst tokens
    proxier.on_service_add(service("web", "10.43.0.5"))
    await settle(proxier)
    assert len(host.transactions) == 2  # the second burst token
    assert not proxier.last_plan_full
    proxier.on_slice_add(endpoint_slice("web", [endpoint("10.42.0.11")]))
    proxier.on_slice_update(None, endpoint_slice("web", [endpoint("10.42.0.11"),
                                                         endpoint("10.42.0.12")]))
    await settle(proxier)
    assert len(host.transactions) == 2  # out of tokens: waits for min_sync_period
    clock.advance(1.0)
    await settle(proxier)
    assert len(host.transactions) == 3  # both changes in one transaction
    text = host.transactions[2]
    assert "dnat to 10.42.0.11:8080" in text and "dnat to 10.42.0.12:8080" in text
    assert "add table" not in text
    await proxier.wait_applied(timeout=1)


async def test_a_failed_transaction_is_retried_as_a_full_sync(started, clock):
    proxier, host = started
    proxier.set_services_synced()
    proxier.set_slices_synced()
    await settle(proxier)
    host.fail_next = 1
    proxier.on_service_add(service("web", "10.43.0.5"))
    await settle(proxier)
    assert len(host.transactions) == 1 and proxier.metrics.sync_failures._value.get() == 1
    clock.advance(29.0)
    await settle(proxier)
    assert len(host.transactions) == 1
    clock.advance(1.0)  # sync_period after the failure
    await settle(proxier)
    assert len(host.transactions) == 2
    assert host.transactions[1].startswith("add table ip pyk8s")
    assert "10.43.0.5 . tcp . 80" in host.transactions[1]


async def test_an_unexpected_failure_loses_no_change(started, clock):
    # What CI saw: the pipe to ``nft -f -`` closed under uvloop (a RuntimeError).
    proxier, host = started
    proxier.set_services_synced()
    proxier.set_slices_synced()
    await settle(proxier)
    real_apply = host.apply
    calls = 0

    async def broken_once(text: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("unable to perform operation on <WriteUnixTransport closed=True>")
        await real_apply(text)

    host.apply = broken_once
    before = len(host.transactions)
    proxier.on_service_add(service("web", "10.43.0.5"))
    await settle(proxier)
    assert len(host.transactions) == before and proxier.metrics.sync_failures._value.get() == 1
    clock.advance(30.0)  # sync_period after the failure: the change goes in after all
    await settle(proxier)
    assert len(host.transactions) == before + 1
    assert "10.43.0.5 . tcp . 80" in host.transactions[-1]


async def test_programming_latency_is_measured_from_the_trigger_time(started, clock):
    proxier, host = started
    proxier.set_services_synced()
    proxier.set_slices_synced()
    await settle(proxier)
    proxier.on_service_add(service("web", "10.43.0.5"))
    await settle(proxier)
    clock.advance(5.0)
    trigger = (clock.now() - datetime.timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    proxier.on_slice_add(endpoint_slice("web", [endpoint("10.42.0.11")], annotations={
        "endpoints.kubernetes.io/last-change-trigger-time": trigger}))
    await settle(proxier)
    samples = [s for k, s in proxier.metrics.samples if k == ("ns", "web")]
    assert samples == [0.0, 2.0]


async def test_unchanged_and_foreign_services_cause_no_sync(started):
    proxier, host = started
    proxier.set_services_synced()
    proxier.set_slices_synced()
    await settle(proxier)
    svc = service("web", "10.43.0.5")
    proxier.on_service_add(svc)
    await settle(proxier)
    before = len(host.transactions)
    proxier.on_service_update(svc, dict(svc, metadata=dict(svc["metadata"], resourceVersion="9")))
    proxier.on_service_add(service("h", "None"))
    await settle(proxier)
    assert len(host.transactions) == before


async def test_node_label_change_forces_a_full_sync(started, clock):
    proxier, host = started
    proxier.set_services_synced()
    proxier.set_slices_synced()
    await settle(proxier)
    proxier.on_node_update(None, {"metadata": {"name": "n1", "labels": {
        "topology.kubernetes.io/zone": "a"}}, "status": {"addresses": [
            {"type": "InternalIP", "address": "192.168.1.10"}]}})
    await settle(proxier)
    assert proxier.last_plan_full and len(host.transactions) == 2
    assert proxier.cfg.node_ips == ("192.168.1.10",)
    proxier.on_node_update(None, {"metadata": {"name": "other", "labels": {"x": "y"}}})
    await settle(proxier)
    assert len(host.transactions) == 2


async def test_sync_runner_bounds_the_rate(clock):
    runs = []

    async def fn():
        runs.append(clock.monotonic())

    runner = SyncRunner(fn, min_interval=2.0, max_interval=100.0, burst=2, clock=clock)
    task = asyncio.create_task(runner.loop())
    for _ in range(5):
        runner.run()
        await settle(None)
    assert len(runs) == 2
    clock.advance(1.0)
    await settle(None)
    assert len(runs) == 2
    clock.advance(1.0)
    await settle(None)
    assert len(runs) == 3  # one token back after min_interval, and the requests collapsed
    clock.advance(100.0)
    await settle(None)
    assert len(runs) == 4  # max_interval elapsed without requests
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_stale_udp_flows_are_cleared_when_endpoints_change(started, clock):
    proxier, host = started
    dns = service("dns", "10.43.0.10", ports=(("dns", 53, "UDP"),))
    slice_ = lambda ip: endpoint_slice("dns", [endpoint(ip)], ports=(("dns", 53, "UDP"),))  # noqa: E731
    proxier.on_service_add(dns)
    proxier.on_slice_add(slice_("10.42.0.11"))
    proxier.set_services_synced()
    proxier.set_slices_synced()
    await settle(proxier)
    assert host.conntrack_deletes == []  # the first sync is the baseline
    proxier.on_slice_update(None, slice_("10.42.0.12"))
    await settle(proxier)
    assert host.conntrack_deletes == [("-p", "udp", "--orig-dst", "10.43.0.10",
                                       "--orig-port-dst", "53", "--dst-nat", "10.42.0.11")]
    host.conntrack_deletes.clear()
    proxier.on_service_add(service("late", "10.43.0.11", ports=(("dns", 53, "UDP"),)))
    clock.advance(1.0)
    await settle(proxier)
    proxier.on_slice_add(endpoint_slice("late", [endpoint("10.42.0.13")],
                                        ports=(("dns", 53, "UDP"),)))
    clock.advance(1.0)
    await settle(proxier)
    # It had no endpoints: flows recorded while it rejected traffic are cleared.
    assert host.conntrack_deletes == [("-p", "udp", "--orig-dst", "10.43.0.11",
                                       "--orig-port-dst", "53")]
