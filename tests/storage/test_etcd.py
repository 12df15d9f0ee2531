"""What only the etcd backend does: compaction learned from etcd, key prefixes, failover
between members, and durability across a crash of etcd itself.

The shared behaviour is in test_contract.py; these tests start their own etcd
processes because they compact, kill or restart them.
"""
import asyncio
import itertools

import aetcd
import pytest
from aetcd import rpc
from etcd_server import EtcdCluster, EtcdServer, free_port

from pyk8s.storage import Compacted, EventType, FutureRevision, KeyNotFound, StorageError
from pyk8s.storage.etcd import EtcdStore, EtcdUnavailable

pytestmark = pytest.mark.etcd

DEADLINE = 10.0
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd():
    with EtcdServer() as server:
        yield server


@pytest.fixture
async def open_store(etcd):
    """Open stores on the module's etcd, each under its own prefix; all closed after."""
    stores = []

    async def open_(endpoints=None, *, prefix=None):
        s = EtcdStore(endpoints or [etcd.endpoint],
                      prefix=f"/t{next(_prefixes)}" if prefix is None else prefix)
        await s.start()
        stores.append(s)
        return s

    yield open_
    for s in stores:
        await s.close()


async def next_event(gen):
    async with asyncio.timeout(DEADLINE):
        return await gen.__anext__()


async def take(gen, count):
    return [await next_event(gen) for _ in range(count)]


# -- compaction ----------------------------------------------------------------------

async def test_reads_before_compaction_raise_compacted_with_the_compaction_point(open_store):
    store = await open_store()
    r1 = await store.create("/c/a", b"1")
    r2 = await store.update("/c/a", b"2", expected_revision=r1)
    await store.compact(r2)
    assert await store.compacted_revision() == r2
    with pytest.raises(Compacted) as err:
        await store.list("/c/", revision=r1)
    assert (err.value.requested, err.value.compacted) == (r1, r2)
    assert [kv.value for kv in (await store.list("/c/", revision=r2)).items] == [b"2"]


async def test_compaction_by_another_store_is_discovered(open_store):
    ours, theirs = await open_store(), await open_store()
    r1 = await ours.create("/d/a", b"1")
    r2 = await ours.update("/d/a", b"2", expected_revision=r1)
    await theirs.compact(r2)
    assert await ours.compacted_revision() == r2
    with pytest.raises(Compacted) as err:
        await ours.list("/d/", revision=r1)
    assert err.value.compacted == r2


async def test_watch_from_compacted_revision_fails_at_the_first_next(open_store):
    store = await open_store()
    fresh = await open_store(prefix=store.prefix)
    r1 = await store.create("/w/a", b"1")
    await store.create("/w/b", b"1")
    await store.update("/w/a", b"2", expected_revision=r1)
    top = await store.current_revision()
    await store.compact(top)
    # `fresh` knows nothing of the compaction: it must learn it from etcd.
    for s in (store, fresh):
        gen = s.watch("/w/", revision=r1)
        with pytest.raises(Compacted) as err:
            await next_event(gen)
        assert (err.value.requested, err.value.compacted) == (r1, top)
        await gen.aclose()


async def test_watch_just_before_compaction_does_not_lose_a_deletion(open_store):
    store = await open_store()
    fresh = await open_store(prefix=store.prefix)
    r1 = await store.create("/t/a", b"1")
    deleted = await store.delete("/t/a", expected_revision=r1)
    await store.compact(deleted.revision)
    # etcd accepts a watch from the compacted revision itself, but compaction removed
    # the deletion made at exactly that revision: the store must say Compacted.
    gen = fresh.watch("/t/", revision=deleted.revision - 1)
    with pytest.raises(Compacted):
        await next_event(gen)
    await gen.aclose()
    # From the compacted revision on, history is complete again.
    gen = fresh.watch("/t/", revision=deleted.revision)
    r3 = await store.create("/t/a", b"again")
    ev = await next_event(gen)
    assert (ev.type, ev.key, ev.revision) == (EventType.ADDED, "/t/a", r3)
    await gen.aclose()


async def test_compacting_again_is_a_no_op_and_the_future_cannot_be_compacted(open_store):
    store = await open_store()
    r1 = await store.create("/n/a", b"1")
    await store.compact(r1)
    await store.compact(r1)
    assert await store.compacted_revision() >= r1
    with pytest.raises(FutureRevision):
        await store.compact(await store.current_revision() + 100)


# -- prefixes ------------------------------------------------------------------------

async def test_stores_with_different_prefixes_do_not_see_each_other(etcd, open_store):
    a = await open_store(prefix="/tenant-a")
    b = await open_store(prefix="/tenant-b")
    start = await a.current_revision()
    await a.create("/registry/x", b"from a")
    await b.create("/registry/x", b"from b")
    ra = await a.create("/registry/y", b"from a")
    assert [(kv.key, kv.value) for kv in (await a.list("/")).items] == [
        ("/registry/x", b"from a"), ("/registry/y", b"from a")]
    assert (await b.get("/registry/x")).value == b"from b"
    with pytest.raises(KeyNotFound):
        await b.get("/registry/y")
    # The prefix is really in etcd, and gone from every key the store returns.
    async with aetcd.Client("127.0.0.1", etcd.client_port) as raw:
        assert (await raw.get(b"/tenant-b/registry/x")).value == b"from b"
    gen = a.watch("/", revision=start)
    events = await take(gen, 2)
    assert [(e.key, e.value) for e in events] == [("/registry/x", b"from a"),
                                                  ("/registry/y", b"from a")]
    assert events[1].revision == ra
    await gen.aclose()


# -- lifecycle and failover ----------------------------------------------------------

async def test_close_ends_open_watches(open_store):
    store = await open_store()
    gen = store.watch("/", revision=await store.current_revision())
    waiter = asyncio.ensure_future(gen.__anext__())
    await store.create("/first", b"1")
    assert (await asyncio.wait_for(waiter, DEADLINE)).key == "/first"
    waiter = asyncio.ensure_future(gen.__anext__())
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, DEADLINE)


async def test_start_skips_endpoints_that_do_not_answer(etcd, open_store):
    store = await open_store([f"127.0.0.1:{free_port()}", etcd.endpoint])
    rev = await store.create("/k", b"v")
    assert (await store.get("/k")).revision == rev


async def test_start_fails_when_no_endpoint_answers():
    store = EtcdStore([f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"])
    try:
        with pytest.raises(EtcdUnavailable):
            await store.start()
    finally:
        await store.close()


async def follower_first(cluster: EtcdCluster) -> list[str]:
    """The cluster's endpoints with a follower first (killing it forces no election)."""
    roles = {}
    for endpoint in cluster.endpoints:
        host, port = endpoint.split(":")
        async with aetcd.Client(host, int(port)) as client:
            status = await client.maintenancestub.Status(rpc.StatusRequest())
            roles[endpoint] = status.leader == status.header.member_id
    return sorted(cluster.endpoints, key=lambda e: roles[e])


async def test_a_dead_member_is_replaced_without_losing_a_watch_event():
    async with EtcdCluster(size=3) as cluster:
        endpoints = await follower_first(cluster)
        store = EtcdStore(endpoints)
        await store.start()
        try:
            gen = store.watch("/f/", revision=await store.current_revision())
            revs = [await store.create(f"/f/{i}", b"before") for i in range(5)]
            assert [e.revision for e in await take(gen, 5)] == revs
            dead = next(m for m in cluster.members if m.endpoint == endpoints[0])
            await asyncio.to_thread(dead.kill)
            # A read fails over by itself. (A write sent as the member died may fail
            # with EtcdUnavailable instead: it might have applied, so it is not retried.)
            assert len((await store.list("/f/")).items) == 5
            revs = [await store.create(f"/f/{i}", b"after") for i in range(5, 10)]
            events = await take(gen, 5)
            assert [(e.key, e.revision) for e in events] == [
                (f"/f/{i}", r) for i, r in zip(range(5, 10), revs)]
            assert len((await store.list("/f/")).items) == 10
            await gen.aclose()
        finally:
            await store.close()


async def test_acknowledged_writes_survive_kill_9_of_etcd():
    async with EtcdServer() as server:
        store = EtcdStore([server.endpoint])
        await store.start()
        acked: dict[str, int] = {}
        enough = asyncio.Event()

        async def writer(w):
            for i in itertools.count():
                try:
                    rev = await store.create(f"/crash/{w}/{i}", b"x" * 512)
                except StorageError:
                    return  # etcd is gone; this write is not acknowledged
                acked[f"/crash/{w}/{i}"] = rev
                if len(acked) >= 300:
                    enough.set()

        writers = [asyncio.create_task(writer(w)) for w in range(8)]
        try:
            await asyncio.wait_for(enough.wait(), 60)
            await asyncio.to_thread(server.kill)
            await asyncio.wait_for(asyncio.gather(*writers), DEADLINE)
        finally:
            await store.close()

        await asyncio.to_thread(server.start)
        store = EtcdStore([server.endpoint])
        await store.start()
        try:
            listed = {kv.key: kv.revision for kv in (await store.list("/crash/")).items}
            missing = [k for k, rev in acked.items() if listed.get(k) != rev]
            assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
            assert await store.create("/crash/after", b"1") > max(acked.values())
        finally:
            await store.close()


# -- periodic compaction shared by several API servers --------------------------------

async def _rev_key_version(etcd, key: str) -> int:
    """How many compactor ticks swapped ``key`` (its etcd version)."""
    async with aetcd.Client("127.0.0.1", int(etcd.endpoint.rsplit(":", 1)[1])) as client:
        resp = await client.kvstub.Range(rpc.RangeRequest(key=key.encode()))
    return resp.kvs[0].version if resp.kvs else 0


async def test_two_stores_on_one_etcd_compact_once_per_interval(etcd, open_store):
    key = f"compact_rev_key/{next(_prefixes)}"
    a = await open_store()
    b = await open_store()
    for s in (a, b):  # the same key, as two API servers on one cluster share it
        s.compact_rev_key = key.encode()
    compacted = []
    for round_ in range(4):
        await a.create(f"/round/{round_}", b"x")
        ra = await a.compactor.tick()
        rb = await b.compactor.tick()
        compacted.append((ra, rb))
    # Each interval exactly one swap of the key; `a` ticks first so it wins each
    # round, and it compacts from its second round on; `b` never compacts.
    assert await _rev_key_version(etcd, key) == 4
    assert compacted[0] == (0, 0)
    assert all(ra > 0 and rb == 0 for ra, rb in compacted[1:])
    assert [ra for ra, _ in compacted[1:]] == sorted({ra for ra, _ in compacted[1:]})
    assert b.compactor.state.compactions == 0
    # `a` stops (its API server died): `b` takes over at its next tick.
    await a.close()
    taken_over = await b.compactor.tick()
    assert taken_over > compacted[-1][0]
    assert await b.compacted_revision() == taken_over
    assert await _rev_key_version(etcd, key) == 5


async def test_periodic_compactors_on_one_etcd_swap_at_most_once_per_interval(etcd):
    key = f"compact_rev_key/{next(_prefixes)}"
    interval = 0.25
    stores = [EtcdStore([etcd.endpoint], prefix=f"/t{next(_prefixes)}",
                        compaction_interval=interval, compact_rev_key=key)
              for _ in range(2)]
    started = asyncio.get_running_loop().time()
    for s in stores:
        await s.start()
    try:
        async with asyncio.timeout(DEADLINE):
            while sum(s.compactor.state.compactions for s in stores) < 4:
                await stores[0].create(f"/w/{next(_prefixes)}", b"x")
                await asyncio.sleep(interval / 5)
        # The compactors keep ticking while these are read: each count is taken after
        # the one it must not exceed (a compaction follows its swap), and the time last.
        compactions = sum(s.compactor.state.compactions for s in stores)
        swaps = await _rev_key_version(etcd, key)
        elapsed = asyncio.get_running_loop().time() - started
        # Without the compare-and-swap both would compact every interval.
        assert compactions <= swaps <= elapsed / interval + 2
        assert compactions >= 4
    finally:
        for s in stores:
            await s.close()
