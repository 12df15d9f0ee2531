"""The three watch layers: one request, list-then-watch, and the outer loop."""
from __future__ import annotations

import asyncio

import pytest

from pyk8s.client import resources as r
from pyk8s.client.settings import BackoffSettings, WatchSettings
from pyk8s.client.watching import (
    Backoff, Listed, Scope, WatchContext, list_then_watch, watch_forever,
)

from .helpers import eventually, run_clock, settle

pytestmark = pytest.mark.timeout(60)


def test_backoff_grows_caps_and_resets(clock):
    b = Backoff(BackoffSettings(jitter=0.0), clock=clock)
    assert [b.next_delay() for _ in range(8)] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    clock.advance(121)  # two quiet minutes
    assert b.next_delay() == 0.8
    jittery = Backoff(BackoffSettings(), clock=clock, rand=lambda: 0.5)
    assert jittery.next_delay() == pytest.approx(1.2)  # 0.8 plus half of 0.8


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}}


def ctx(fake_client, clock) -> WatchContext:
    return WatchContext(fake_client, Scope(r.CONFIGMAPS), settings=WatchSettings(page_size=2),
                        clock=clock, rand=lambda: 0.0)


async def test_list_then_watch_yields_listed_then_returns_on_410(fake_client, api, clock):
    for n in "abc":
        api.add(cm(n))
    items: list = []

    async def consume():
        async for item in list_then_watch(ctx(fake_client, clock),
                                          Backoff(BackoffSettings(), clock=clock)):
            items.append(item)

    task = asyncio.create_task(consume())
    await settle()
    assert isinstance(items[0], Listed) and len(items[0].items) == 3  # over two pages
    assert items[0].resource_version == "3"
    await fake_client.create(r.CONFIGMAPS, cm("d"))
    await settle()
    assert (items[1].type, items[1].object["metadata"]["name"]) == ("ADDED", "d")
    api.expire_watches()
    await asyncio.wait_for(task, 1)  # returned: the caller must relist


async def test_watch_forever_relists_after_410(fake_client, api, clock):
    api.add(cm("a"))
    listed: list[Listed] = []

    async def consume():
        async for item in watch_forever(ctx(fake_client, clock)):
            if isinstance(item, Listed):
                listed.append(item)

    task = asyncio.create_task(consume())
    try:
        await eventually(lambda: len(listed) == 1, what="the first list")
        api.add(cm("b"))
        api.expire_watches()
        await eventually(lambda: len(listed) == 2, what="the relist")
        assert [o["metadata"]["name"] for o in listed[1].items] == ["a", "b"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_broken_connection_resumes_from_the_same_version(api, clock):
    from pyk8s.client import Client, TransportError
    from pyk8s.client.fake import FakeTransport

    class Breaking(FakeTransport):
        breaks = 1

        def stream(self, request):
            if self.breaks:
                self.breaks -= 1
                raise TransportError("connection reset by peer")
            return super().stream(request)

    client = Client(transport=Breaking(api), clock=clock)
    api.add(cm("a"))
    items: list = []

    async def consume():
        async for item in list_then_watch(ctx(client, clock),
                                          Backoff(BackoffSettings(jitter=0.0), clock=clock)):
            items.append(item)

    task = asyncio.create_task(consume())
    try:
        await settle()
        api.add(cm("b"))  # happens while the watch is down
        await run_clock(clock, 0.8)  # one back-off step
        await eventually(lambda: len(items) == 2, what="the missed event")
        assert items[1].object["metadata"]["name"] == "b"
        watches = [q for _, _, q in api.requests if "watch" in q]
        assert [w["resourceVersion"] for w in watches] == ["1"]  # one real watch, from rv 1
        assert sum(1 for m, p, q in api.requests if "watch" not in q) == 1  # no relist
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
