"""The storage contract, run unchanged against every backend (see conftest.store)."""
import asyncio

import pytest
from support.waiting import collect_watch

from pyk8s.storage import (Compacted, Conflict, EventType, FutureRevision, KeyExists,
                           KeyNotFound)

WATCH_DEADLINE = 10.0


collect = collect_watch


async def test_create_get_and_revisions_increase(store):
    r1 = await store.create("/registry/pods/default/a", b'{"a":1}')
    r2 = await store.create("/registry/pods/default/b", b'{"b":1}')
    assert r2 > r1 > 0
    kv = await store.get("/registry/pods/default/a")
    assert (kv.key, kv.value, kv.revision) == ("/registry/pods/default/a", b'{"a":1}', r1)
    assert await store.current_revision() == r2


async def test_create_existing_key_fails_and_keeps_value(store):
    await store.create("/k/x", b"1")
    with pytest.raises(KeyExists):
        await store.create("/k/x", b"2")
    assert (await store.get("/k/x")).value == b"1"


async def test_get_missing(store):
    with pytest.raises(KeyNotFound):
        await store.get("/k/missing")


async def test_update_compare_and_swap(store):
    r1 = await store.create("/k/x", b"1")
    r2 = await store.update("/k/x", b"2", expected_revision=r1)
    assert r2 > r1
    with pytest.raises(Conflict) as err:
        await store.update("/k/x", b"3", expected_revision=r1)
    assert err.value.actual == r2
    kv = await store.get("/k/x")
    assert (kv.value, kv.revision) == (b"2", r2)
    with pytest.raises(KeyNotFound):
        await store.update("/k/nope", b"1", expected_revision=1)


async def test_delete_with_and_without_precondition(store):
    r1 = await store.create("/k/x", b"1")
    await store.create("/k/y", b"1")
    with pytest.raises(Conflict):
        await store.delete("/k/x", expected_revision=r1 + 100)
    deleted = await store.delete("/k/x", expected_revision=r1)
    assert deleted.value == b"1" and deleted.revision > r1
    with pytest.raises(KeyNotFound):
        await store.get("/k/x")
    with pytest.raises(KeyNotFound):
        await store.delete("/k/x")
    assert (await store.delete("/k/y")).value == b"1"
    # A deleted key can be created again.
    assert await store.create("/k/x", b"again") > deleted.revision


async def test_concurrent_creates_of_one_key_exactly_one_wins(store):
    results = await asyncio.gather(*(store.create("/k/race", str(i).encode())
                                     for i in range(20)), return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, KeyExists) for r in results) == 19


async def test_concurrent_cas_updates_exactly_one_wins(store):
    r = await store.create("/k/c", b"0")
    results = await asyncio.gather(*(store.update("/k/c", str(i).encode(), expected_revision=r)
                                     for i in range(10)), return_exceptions=True)
    assert sum(isinstance(x, int) for x in results) == 1
    assert sum(isinstance(x, Conflict) for x in results) == 9


async def test_list_prefix_is_ordered_and_exact(store):
    for name in ["b", "a", "c"]:
        await store.create(f"/registry/pods/ns/{name}", name.encode())
    await store.create("/registry/pods/ns2/z", b"z")
    await store.create("/registry/podsx/ns/a", b"other resource")
    res = await store.list("/registry/pods/ns/")
    assert [kv.key for kv in res.items] == [f"/registry/pods/ns/{n}" for n in "abc"]
    assert res.revision == await store.current_revision()
    assert not res.more
    everything = await store.list("/registry/pods/")
    assert len(everything.items) == 4


async def test_list_paging_with_limit_and_start_after(store):
    for i in range(25):
        await store.create(f"/p/{i:03d}", b"v")
    seen, start, pages = [], "", 0
    first = await store.list("/p/", limit=10)
    rev = first.revision
    res = first
    while True:
        pages += 1
        seen += [kv.key for kv in res.items]
        if not res.more:
            break
        start = res.items[-1].key
        # Writes after the first page do not show in later pages read at its revision.
        await store.create(f"/p/{100 + pages:03d}", b"late")
        res = await store.list("/p/", revision=rev, start_after=start, limit=10)
    assert pages == 3
    assert seen == [f"/p/{i:03d}" for i in range(25)]


async def test_list_at_past_revision_sees_the_past(store):
    r1 = await store.create("/h/a", b"1")
    await store.update("/h/a", b"2", expected_revision=r1)
    r3 = await store.create("/h/b", b"1")
    await store.delete("/h/b")
    past = await store.list("/h/", revision=r1)
    assert [(kv.key, kv.value, kv.revision) for kv in past.items] == [("/h/a", b"1", r1)]
    assert past.revision == r1
    at3 = await store.list("/h/", revision=r3)
    assert [(kv.key, kv.value) for kv in at3.items] == [("/h/a", b"2"), ("/h/b", b"1")]
    now = await store.list("/h/")
    assert [(kv.key, kv.value) for kv in now.items] == [("/h/a", b"2")]
    with pytest.raises(FutureRevision):
        await store.list("/h/", revision=await store.current_revision() + 1000)


async def test_watch_from_revision_gets_exactly_the_later_events(store):
    r0 = await store.create("/w/a", b"1")
    r1 = await store.update("/w/a", b"2", expected_revision=r0)
    await store.create("/other/x", b"not watched")
    r2 = await store.create("/w/b", b"1")
    d = await store.delete("/w/a")
    events = await collect(store, "/w/", r0, 3)
    assert [(e.type, e.key, e.value, e.revision) for e in events] == [
        (EventType.MODIFIED, "/w/a", b"2", r1),
        (EventType.ADDED, "/w/b", b"1", r2),
        (EventType.DELETED, "/w/a", b"2", d.revision),
    ]
    assert events[0].prev_value == b"1"


async def test_watch_sees_live_events_in_order(store):
    start = await store.current_revision()
    task = asyncio.create_task(collect(store, "/live/", start, 60))
    for i in range(20):
        r = await store.create(f"/live/{i}", b"0")
        r = await store.update(f"/live/{i}", b"1", expected_revision=r)
        await store.delete(f"/live/{i}", expected_revision=r)
    events = await task
    revs = [e.revision for e in events]
    assert revs == sorted(revs) and len(set(revs)) == 60
    assert [e.type for e in events[:3]] == [EventType.ADDED, EventType.MODIFIED,
                                           EventType.DELETED]


async def test_watch_many_keys_under_concurrent_load(store):
    start = await store.current_revision()
    watchers = [asyncio.create_task(collect(store, "/load/", start, 400)) for _ in range(3)]

    async def writer(w):
        for i in range(50):
            r = await store.create(f"/load/{w}/{i}", b"x" * 100)
            await store.update(f"/load/{w}/{i}", b"y", expected_revision=r)

    await asyncio.gather(*(writer(w) for w in range(4)))
    results = await asyncio.gather(*watchers)
    for events in results:
        revs = [e.revision for e in events]
        assert revs == sorted(revs) and len(set(revs)) == 400
    assert results[0] == results[1] == results[2]


async def test_watch_ends_cleanly_when_consumer_closes(store):
    gen = store.watch("/close/", revision=await store.current_revision())
    waiter = asyncio.ensure_future(gen.__anext__())
    await store.create("/close/a", b"1")
    async with asyncio.timeout(WATCH_DEADLINE):
        ev = await waiter
    assert ev.key == "/close/a"
    await gen.aclose()


async def test_compaction(store):
    r1 = await store.create("/c/a", b"1")
    r2 = await store.update("/c/a", b"2", expected_revision=r1)
    r3 = await store.create("/c/b", b"1")
    await store.delete("/c/b")
    r5 = await store.create("/c/c", b"1")
    await store.compact(r3)
    assert await store.compacted_revision() >= r3
    with pytest.raises(Compacted):
        await store.list("/c/", revision=r1)
    with pytest.raises(Compacted):
        await collect(store, "/c/", r1, 1)
    # Reads at or after the compacted revision are still exact.
    at3 = await store.list("/c/", revision=r3)
    assert [(kv.key, kv.value, kv.revision) for kv in at3.items] == [
        ("/c/a", b"2", r2), ("/c/b", b"1", r3)]
    events = await collect(store, "/c/", r3, 2)
    assert [(e.type, e.key) for e in events] == [(EventType.DELETED, "/c/b"),
                                                 (EventType.ADDED, "/c/c")]
    assert events[1].revision == r5
    # Latest values survive compaction, and revisions keep increasing.
    assert (await store.get("/c/a")).value == b"2"
    assert await store.create("/c/d", b"1") > r5


async def test_periodic_compaction_forgets_history_older_than_an_interval(make_store):
    store = await make_store(compaction_interval=0.2)
    r1 = await store.create("/pc/a", b"1")
    r2 = await store.update("/pc/a", b"2", expected_revision=r1)
    # The compactor compacts to the revision it saw one tick earlier: r2 goes once two
    # ticks have passed after it was written.
    async with asyncio.timeout(WATCH_DEADLINE):
        while await store.compacted_revision() < r2:
            await asyncio.sleep(0.05)
    with pytest.raises(Compacted):
        await store.list("/pc/", revision=r1)
    with pytest.raises(Compacted):
        await collect(store, "/pc/", r1, 1)
    assert (await store.get("/pc/a")).value == b"2"
    assert store.compactor.state.compactions >= 1


async def test_a_compaction_tick_keeps_one_interval_of_history(make_store):
    store = await make_store()  # no timer: the test drives the ticks
    r1 = await store.create("/tick/a", b"1")
    assert await store.compactor.tick() == 0  # the first tick only looks
    r2 = await store.update("/tick/a", b"2", expected_revision=r1)
    compacted = await store.compactor.tick()
    # Compacted to what the first tick saw: r1 went, r2 (written after it) stays.
    assert r1 <= compacted < r2
    assert await store.compacted_revision() == compacted
    events = await collect(store, "/tick/", compacted, 1)
    assert [(e.type, e.value, e.revision) for e in events] == [
        (EventType.MODIFIED, b"2", r2)]
    assert (await store.get("/tick/a")).value == b"2"
