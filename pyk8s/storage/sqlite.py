"""The embedded SQLite backend: a log-structured key-value store (the default).

Layout: every write appends one row to ``kv``; the row id is the write's revision,
so the log itself is the history that watches replay and historical lists read.
``current`` maps each live key to the id of its newest row, so reads of the latest
state never scan history. A deletion appends a tombstone row (carrying the deleted
value) and drops the key from ``current``.

Invariants:
- one writer thread owns the only write connection; concurrent writes are grouped
  into one ``BEGIN IMMEDIATE`` transaction, committed with ``synchronous=FULL`` in
  WAL mode, and acknowledged only after the commit returned (durable on power loss);
- revisions are ``AUTOINCREMENT`` row ids: strictly increasing, never reused, and
  contiguous across committed writes (a rolled-back transaction consumes none);
- events are published on the event loop in commit order, so an in-memory ring of
  recent events serves live watchers; a watcher behind the ring reads the log;
- ``compact(R)`` keeps, per key, only its newest row at or before R (if not a
  tombstone), so reads at revisions >= R stay exact. Reads before R raise Compacted;
- periodic compaction (compactor.Compactor) keeps one ``compact_interval`` of history,
  as kube-apiserver does on etcd, and at least ``compact_retain`` revisions;
- ``close()`` never blocks the event loop: the writer is joined and the readers shut
  down in threads, and every reader connection is closed.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import queue
import sqlite3
import threading
from typing import AsyncIterator

from .compactor import DEFAULT_INTERVAL, CompactionState, Compactor
from .interface import (Compacted, Conflict, Event, EventType, FutureRevision,
                        KeyExists, KeyNotFound, KeyValue, ListResult, StorageError,
                        prefix_end)

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS current (name TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""

_MAX_BATCH = 1000  # writes grouped into one transaction at most
_REPLAY_CHUNK = 1000  # log rows read per round trip by a watcher that is behind
_STOP = object()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _private_files(path: str) -> None:
    """The database holds Secrets: its directory 0700, the file and its -wal/-shm
    0600 (SQLite creates -wal/-shm with the database file's mode)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        if os.path.exists(name):
            os.chmod(name, 0o600)


class _Op:
    __slots__ = ("kind", "key", "value", "expected", "future")

    def __init__(self, kind: str, key: str, value: bytes | int | None, expected: int,
                 future: asyncio.Future):
        self.kind, self.key, self.value, self.expected, self.future = (
            kind, key, value, expected, future)


class SqliteStore:
    """Store on one SQLite file; see the module docstring for the layout."""

    def __init__(self, path: str, *, compact_interval: float = DEFAULT_INTERVAL,
                 compact_retain: int = 0, ring_size: int = 10_000):
        """``compact_interval``: seconds between periodic compactions, each forgetting
        what is older than the previous one (0: never compact); ``compact_retain``:
        revisions kept beyond that in any case (0: just the one interval)."""
        self.path = path
        self.compact_interval = compact_interval
        self.compact_retain = compact_retain
        self._ring: collections.deque[Event] = collections.deque(maxlen=ring_size)
        self._revision = 0
        self._compacted = 0
        self._closed = False
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Future | None = None
        self._compactor = Compactor(self._compaction_step, compact_interval, name="sqlite")

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = self._loop.create_future()
        _private_files(self.path)
        conn = await self._loop.run_in_executor(self._readers, self._open_writer)
        self._revision, self._compacted = await self._loop.run_in_executor(
            self._readers, self._read_counters, conn)
        self._writer = threading.Thread(target=self._write_loop, args=(conn,),
                                        name="sqlite-write", daemon=True)
        self._writer.start()
        self._compactor.start()

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        conn.executescript(_SCHEMA)
        return conn

    @staticmethod
    def _read_counters(conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
        comp = conn.execute("SELECT v FROM meta WHERE k = 'compacted'").fetchone()
        return (row[0] if row else 0), (comp[0] if comp else 0)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._compactor.stop()
        self._wake()
        if self._writer:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._close_readers)

    def _close_readers(self) -> None:
        """In a thread: wait for reads in flight, then close every reader connection."""
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()

    # -- writes --------------------------------------------------------------------

    def _submit(self, kind: str, key: str, value, expected: int = 0) -> asyncio.Future:
        if self._closed:
            raise StorageError("store is closed")
        fut = self._loop.create_future()
        self._queue.put(_Op(kind, key, value, expected, fut))
        return fut

    async def create(self, key: str, value: bytes) -> int:
        return await self._submit("create", key, value)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> int:
        return await self._submit("update", key, value, expected_revision)

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        return await self._submit("delete", key, None, expected_revision)

    async def compact(self, revision: int) -> None:
        await self._submit("compact", "", revision)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                conn.close()
                return
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is _STOP:
                    self._queue.put(_STOP)  # finish this batch, then stop
                    break
                batch.append(op)
            self._loop.call_soon_threadsafe(self._publish, self._run_batch(conn, batch))

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> list:
        """Apply ``batch`` in one transaction; returns (op, result, event) triples."""
        outcomes = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                try:
                    outcomes.append(self._apply(conn, op))
                except StorageError as err:
                    outcomes.append((op, err, None))
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            log.exception("sqlite write transaction failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StorageError(f"storage write failed: {err}")
            return [(op, failure, None) for op in batch]
        return outcomes

    def _apply(self, conn: sqlite3.Connection, op: _Op):
        if op.kind == "compact":
            return op, self._apply_compact(conn, op.value), None
        cur = conn.execute(
            "SELECT c.id, kv.value FROM current c JOIN kv ON kv.id = c.id WHERE c.name = ?",
            (op.key,)).fetchone()
        if op.kind == "create":
            if cur:
                raise KeyExists(op.key)
            rev = self._append(conn, op.key, 1, 0, 0, op.value)
            conn.execute("INSERT INTO current (name, id) VALUES (?, ?)", (op.key, rev))
            return op, rev, Event(EventType.ADDED, op.key, op.value, rev)
        if not cur:
            raise KeyNotFound(op.key)
        old_rev, old_value = cur
        if op.expected and op.expected != old_rev:
            raise Conflict(op.key, op.expected, old_rev)
        if op.kind == "update":
            rev = self._append(conn, op.key, 0, 0, old_rev, op.value)
            conn.execute("UPDATE current SET id = ? WHERE name = ?", (rev, op.key))
            return op, rev, Event(EventType.MODIFIED, op.key, op.value, rev, old_value)
        rev = self._append(conn, op.key, 0, 1, old_rev, old_value)
        conn.execute("DELETE FROM current WHERE name = ?", (op.key,))
        return (op, KeyValue(op.key, old_value, rev),
                Event(EventType.DELETED, op.key, old_value, rev, old_value))

    @staticmethod
    def _append(conn, name, created, deleted, prev, value) -> int:
        return conn.execute(
            "INSERT INTO kv (name, created, deleted, prev_revision, value) "
            "VALUES (?, ?, ?, ?, ?)", (name, created, deleted, prev, value)).lastrowid

    @staticmethod
    def _apply_compact(conn: sqlite3.Connection, revision: int) -> int:
        # Keep each key's newest row at or before `revision` unless it is a
        # tombstone: a list at `revision` must still see every key live then.
        conn.execute(
            "DELETE FROM kv WHERE id <= ?1 AND (deleted = 1 OR id NOT IN "
            "(SELECT MAX(id) FROM kv WHERE id <= ?1 GROUP BY name))", (revision,))
        conn.execute("INSERT INTO meta (k, v) VALUES ('compacted', ?1) "
                     "ON CONFLICT (k) DO UPDATE SET v = MAX(v, ?1)", (revision,))
        return revision

    def _publish(self, outcomes: list) -> None:
        """On the loop, in commit order: record events, wake watchers, answer ops."""
        for op, result, event in outcomes:
            if event is not None:
                self._ring.append(event)
                self._revision = event.revision
            elif op.kind == "compact" and not isinstance(result, Exception):
                self._compacted = max(self._compacted, result)
            if op.future.done():
                continue  # the caller was cancelled; the write stands
            if isinstance(result, Exception):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
            if not self._closed:
                self._changed = self._loop.create_future()

    # -- reads ---------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
            conn.execute("PRAGMA query_only = 1")
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn, *args):
        if self._closed:
            raise StorageError("store is closed")
        return await self._loop.run_in_executor(self._readers, fn, *args)

    async def get(self, key: str) -> KeyValue:
        row = await self._read(self._get, key)
        if row is None:
            raise KeyNotFound(key)
        return KeyValue(key, row[1], row[0])

    def _get(self, key: str):
        return self._reader().execute(
            "SELECT c.id, kv.value FROM current c JOIN kv ON kv.id = c.id WHERE c.name = ?",
            (key,)).fetchone()

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
                   limit: int = 0) -> ListResult:
        if revision:
            if revision < self._compacted:
                raise Compacted(revision, self._compacted)
            if revision > self._revision:
                raise FutureRevision(revision, self._revision)
        rows, rev, compacted = await self._read(self._list, prefix, revision, start_after,
                                                limit)
        if revision and revision < compacted:
            raise Compacted(revision, compacted)  # compacted while we were queued
        more = bool(limit) and len(rows) > limit
        items = [KeyValue(name, value, mod) for name, value, mod in rows[:limit or None]]
        return ListResult(items, revision or rev, more)

    def _list(self, prefix: str, revision: int, start_after: str, limit: int):
        conn = self._reader()
        lower = start_after + "\x00" if start_after and start_after >= prefix else prefix
        upper = prefix_end(prefix)
        bound = "AND name < :upper" if upper is not None else ""
        args = {"lower": lower, "upper": upper, "rev": revision,
                "lim": (limit + 1) if limit else -1}
        conn.execute("BEGIN")
        try:
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
            comp = conn.execute("SELECT v FROM meta WHERE k = 'compacted'").fetchone()
            if revision:
                rows = conn.execute(
                    "SELECT kv.name, kv.value, kv.id FROM kv JOIN "
                    f"(SELECT MAX(id) AS mid FROM kv WHERE name >= :lower {bound} "
                    " AND id <= :rev GROUP BY name) m ON kv.id = m.mid "
                    "WHERE kv.deleted = 0 ORDER BY kv.name LIMIT :lim", args).fetchall()
            else:
                rows = conn.execute(
                    "SELECT c.name, kv.value, c.id FROM current c JOIN kv ON kv.id = c.id "
                    f"WHERE c.name >= :lower {bound.replace('name', 'c.name')} "
                    "ORDER BY c.name LIMIT :lim", args).fetchall()
        finally:
            conn.execute("COMMIT")
        return rows, (seq[0] if seq else 0), (comp[0] if comp else 0)

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    @property
    def compactor(self) -> Compactor:
        return self._compactor

    async def _compaction_step(self, state: CompactionState) -> int:
        """Compact to the revision seen at the previous tick (one interval of history),
        keeping at least ``compact_retain`` revisions; remember the current one."""
        target, state.revision = state.revision, self._revision
        if self.compact_retain:
            target = min(target, self._revision - self.compact_retain)
        if target <= self._compacted:
            return 0
        await self.compact(target)
        return target

    # -- watch ---------------------------------------------------------------------

    async def watch(self, prefix: str, *, revision: int) -> AsyncIterator[Event]:
        if revision < self._compacted:
            raise Compacted(revision, self._compacted)
        upper = prefix_end(prefix)
        next_rev = revision + 1
        while not self._closed:
            changed = self._changed
            ring = self._ring
            if ring and next_rev >= ring[0].revision:
                # Live: the ring holds contiguous revisions from ring[0] on.
                start = next_rev - ring[0].revision
                batch = [ring[i] for i in range(start, len(ring))]
                if not batch:
                    await changed
                    continue
                next_rev = batch[-1].revision + 1
            elif next_rev <= self._revision:
                # Behind the ring: read the log, then look again.
                batch, scanned_to = await self._read(self._replay, prefix, upper,
                                                     next_rev - 1)
                next_rev = scanned_to + 1
            else:
                await changed
                continue
            for ev in batch:
                if ev.key.startswith(prefix):
                    yield ev

    def _replay(self, prefix: str, upper: str | None,
                after: int) -> tuple[list[Event], int]:
        """Log events under the prefix after ``after``, and the last revision scanned."""
        conn = self._reader()
        bound = "AND kv.name < ?" if upper is not None else ""
        args = (after, prefix) + ((upper,) if upper is not None else ()) + (_REPLAY_CHUNK,)
        conn.execute("BEGIN")
        try:
            comp = conn.execute("SELECT v FROM meta WHERE k = 'compacted'").fetchone()
            if comp and after < comp[0]:
                raise Compacted(after, comp[0])
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
            rows = conn.execute(
                "SELECT kv.id, kv.name, kv.created, kv.deleted, kv.value, p.value FROM kv "
                "LEFT JOIN kv p ON p.id = kv.prev_revision "
                f"WHERE kv.id > ? AND kv.name >= ? {bound} ORDER BY kv.id LIMIT ?",
                args).fetchall()
        finally:
            conn.execute("COMMIT")
        events = []
        for rev, name, created, deleted, value, prev in rows:
            kind = (EventType.DELETED if deleted else
                    EventType.ADDED if created else EventType.MODIFIED)
            events.append(Event(kind, name, value, rev, prev))
        # A full chunk may stop short of the newest row; otherwise all was scanned.
        scanned_to = rows[-1][0] if len(rows) == _REPLAY_CHUNK else (seq[0] if seq else 0)
        return events, max(scanned_to, after)
