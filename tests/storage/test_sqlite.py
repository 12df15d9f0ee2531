"""What only the SQLite backend does: watchers behind the in-memory ring replay the
log (also after a restart), and close() never stalls the event loop."""
import asyncio
import os
import sqlite3
import threading

import pytest
from support.waiting import collect_watch

from pyk8s.storage import EventType, StorageError
from pyk8s.storage import sqlite as sqlite_mod
from pyk8s.storage.sqlite import SqliteStore

DEADLINE = 10.0


collect = collect_watch


@pytest.fixture
def path(tmp_path):
    return os.path.join(tmp_path, "state.db")


@pytest.fixture
def small_chunks(monkeypatch):
    """Replay reads the log in chunks of 7 rows, so one watch takes many round trips."""
    monkeypatch.setattr(sqlite_mod, "_REPLAY_CHUNK", 7)


async def write_history(store, n, prefix="/r/"):
    """n revisions on a few keys: creates, updates and deletes; returns the revisions."""
    revs, live = [], {}
    for i in range(n):
        key = f"{prefix}{i % 5}"
        if key not in live:
            rev = await store.create(key, f"v{i}".encode())
            live[key] = rev
        elif i % 3 == 0:
            rev = (await store.delete(key, expected_revision=live.pop(key))).revision
        else:
            rev = live[key] = await store.update(key, f"v{i}".encode(),
                                                 expected_revision=live[key])
        revs.append(rev)
    return revs


async def test_a_watch_behind_the_ring_replays_the_log_in_order(path, small_chunks):
    store = SqliteStore(path, compact_interval=0, ring_size=4)
    await store.start()
    try:
        await store.create("/other/x", b"not watched")
        revs = await write_history(store, 40)
        assert len(store._ring) == 4  # almost all of it is only in the log
        events = await collect(store, "/r/", 0, 40)
        assert [e.revision for e in events] == revs
        kinds = {e.type for e in events}
        assert kinds == {EventType.ADDED, EventType.MODIFIED, EventType.DELETED}
        # A deletion carries the deleted value, a modification the previous one.
        for ev in events:
            if ev.type is not EventType.ADDED:
                assert ev.prev_value is not None
    finally:
        await store.close()


async def test_a_watch_after_reopen_gets_every_later_revision_exactly_once(path, small_chunks):
    store = SqliteStore(path, compact_interval=0, ring_size=4)
    await store.start()
    before = await write_history(store, 30)
    await store.close()

    store = SqliteStore(path, compact_interval=0, ring_size=4)
    await store.start()
    try:
        assert await store.current_revision() == before[-1]
        start = before[9]
        watcher = asyncio.create_task(collect(store, "/r/", start, 20 + 30))
        # Writes while the watcher replays the log move it from the log to the ring
        # (which keeps only the last 4 events) and back.
        after = await write_history(store, 30, prefix="/r/new-")
        events = await watcher
        revs = [e.revision for e in events]
        assert revs == before[10:] + after
        assert len(set(revs)) == len(revs)
    finally:
        await store.close()


async def test_close_does_not_block_the_event_loop(path):
    store = SqliteStore(path, compact_interval=0)
    await store.start()
    await store.create("/k", b"v")
    await store.get("/k")  # a reader connection now exists
    conns = list(store._reader_conns)
    assert conns
    # A slow read in flight: close() must wait for it without stalling the loop. The
    # read ends only once close() is closing the readers and the loop has ticked 10
    # times meanwhile (or after DEADLINE, if close() stalled the loop).
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    closing = threading.Event()
    close_readers = store._close_readers

    def closing_readers():
        closing.set()
        close_readers()

    store._close_readers = closing_readers

    def slow_read():
        started.set()
        release.wait(DEADLINE)
        finished.set()

    slow = asyncio.ensure_future(store._read(slow_read))
    assert await asyncio.to_thread(started.wait, DEADLINE)
    ticks = 0

    async def heartbeat():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            if closing.is_set():
                ticks += 1
            if ticks >= 10:
                release.set()

    beat = asyncio.create_task(heartbeat())
    await store.close()
    done = finished.is_set()
    beat.cancel()
    await slow
    assert done  # it did wait for the read in flight ...
    assert ticks >= 10  # ... and the loop kept running meanwhile
    for conn in conns:  # every reader connection is closed
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    with pytest.raises(StorageError):
        await store.get("/k")


async def test_retained_revisions_are_kept_beyond_the_interval(path):
    store = SqliteStore(path, compact_interval=0, compact_retain=5)
    await store.start()
    try:
        revs = await write_history(store, 20)
        assert await store.compactor.tick() == 0
        await write_history(store, 2, prefix="/s/")
        # One interval would allow compacting to revs[-1]; 5 retained revisions hold it
        # back to current - 5.
        compacted = await store.compactor.tick()
        assert compacted == await store.current_revision() - 5 < revs[-1]
    finally:
        await store.close()
