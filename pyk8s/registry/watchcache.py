"""The watch cache: every stored object in memory, fed by one store watch.

One watch on ``/registry/`` feeds a ResourceCache per resource prefix
(``/registry/<group>/<plural>/``). Lists and watches are served from here, never
by scanning the store per request.

Invariants:
- ``WatchCache.revision`` is the global store revision the cache reflects; every
  resource cache is exact as of it (revisions are global, so a resource with no
  recent writes is still current);
- cached objects carry ``metadata.resourceVersion`` and are never mutated: callers
  copy before changing them;
- a watch from revision N replays every buffered event after N and then follows
  live ones with no gap, because replay and registration happen without an await
  in between; N older than the buffer window is answered with 410 Gone.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
from typing import Any, Callable

import orjson

from pyk8s import aio
from ..storage import Compacted, EventType, Store

log = logging.getLogger(__name__)

Predicate = Callable[[dict], bool]


ENCRYPTED_PREFIX = b"k8s:enc:"


class Unreadable(Exception):
    """A stored value that cannot be read as an object: encrypted data with no
    provider for it (upstream's identity transformer error) or corrupt bytes."""


def decode(value: bytes, revision: int) -> dict:
    error = getattr(value, "read_error", None)  # storage.encryption.Unreadable
    if error is not None:
        raise Unreadable(error)
    if value.startswith(ENCRYPTED_PREFIX):
        # Written through an encryption provider, read without one (no
        # --encryption-provider-config): upstream's identity transformer refuses it.
        raise Unreadable("identity transformer tried to read encrypted data")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        raise Unreadable(f"object could not be decoded: {err}") from None
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def prefix_of(key: str) -> str:
    """``/registry/<group>/<plural>/`` for an object key."""
    parts = key.split("/", 4)
    return "/".join(parts[:4]) + "/"


class Watcher:
    """One client watch: a bounded queue of (type, object) the handler drains."""

    def __init__(self, cache: "ResourceCache", predicate: Predicate, capacity: int):
        self.cache = cache
        self.predicate = predicate
        self.queue: asyncio.Queue = asyncio.Queue()
        self.capacity = capacity
        self.overflowed = False

    def offer(self, kind: str, obj: dict) -> None:
        if self.queue.qsize() >= self.capacity:
            # Too slow a consumer: end its watch; the client relists, as upstream.
            self.overflowed = True
            self.cache.watchers.discard(self)
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait((kind, obj))

    def deliver(self, kind: EventType, obj: dict, prev: dict | None) -> None:
        now = self.predicate(obj)
        before = prev is not None and self.predicate(prev)
        if kind is EventType.DELETED:
            if now:
                self.offer("DELETED", obj)
        elif now:
            self.offer("MODIFIED" if before else "ADDED", obj)
        elif before:
            # The object left the selection: to this watcher it is gone.
            self.offer("DELETED", obj)

    def stop(self) -> None:
        self.cache.watchers.discard(self)


class ResourceCache:
    def __init__(self, prefix: str, *, history: int):
        self.prefix = prefix
        self.objects: dict[str, dict] = {}
        self.keys: list[str] = []  # sorted keys of `objects`
        self.events: collections.deque = collections.deque(maxlen=history)
        self.window_start = 0  # watches from N >= window_start can be served
        self.watchers: set[Watcher] = set()
        # In-process observers (the API server's CRD controller), called on the loop.
        self.listeners: list = []
        # key -> why its stored value cannot be read (kept out of ``objects``).
        self.unreadable: dict[str, str] = {}

    def check_readable(self, key: str) -> None:
        """Raise 500 InternalError when the stored value of ``key`` is unreadable."""
        error = self.unreadable.get(key)
        if error is not None:
            from ..api import errors
            raise errors.internal(error)

    def apply(self, kind: EventType, key: str, obj: dict, revision: int) -> None:
        prev = self.objects.get(key)
        if kind is EventType.DELETED:
            if prev is not None:
                del self.objects[key]
                i = bisect.bisect_left(self.keys, key)
                if i < len(self.keys) and self.keys[i] == key:
                    del self.keys[i]
        else:
            if prev is None:
                bisect.insort(self.keys, key)
            self.objects[key] = obj
        if len(self.events) == self.events.maxlen:
            self.window_start = self.events[0][0]
        self.events.append((revision, kind, obj, prev))
        for w in list(self.watchers):
            w.deliver(kind, obj, prev)
        for fn in self.listeners:
            fn(kind, obj, prev)

    def count(self, start: str = "", end: str | None = None) -> int:
        """How many keys lie in [start, end)."""
        lo = bisect.bisect_left(self.keys, start) if start else 0
        hi = bisect.bisect_left(self.keys, end) if end is not None else len(self.keys)
        return max(hi - lo, 0)

    def items(self, start: str = "", end: str | None = None):
        """Objects with keys in [start, end) in key order. An unreadable stored value
        in the range fails the listing, as upstream's list does."""
        for key, error in self.unreadable.items():
            if key >= start and (end is None or key < end):
                from ..api import errors
                raise errors.internal(f"unable to transform key {key!r}: {error}"
                                      .replace("'", '"'))
        i = bisect.bisect_left(self.keys, start) if start else 0
        keys = self.keys
        while i < len(keys):
            k = keys[i]
            if end is not None and k >= end:
                return
            yield k, self.objects[k]
            i += 1

    def watch(self, after: int, predicate: Predicate, *, capacity: int) -> Watcher:
        """A watcher seeded with buffered events after ``after``, then live ones.

        ``after`` < 0 means: start with an ADDED event per current object.
        """
        w = Watcher(self, predicate, capacity)
        if after < 0:
            for _, obj in self.items():
                if predicate(obj):
                    w.queue.put_nowait(("ADDED", obj))
        else:
            for rev, kind, obj, prev in self.events:
                if rev > after:
                    w.deliver(kind, obj, prev)
        self.watchers.add(w)
        return w


class WatchCache:
    def __init__(self, store: Store, *, history: int = 10_000, root: str = "/registry/"):
        self.store = store
        self.history = history
        self.root = root
        self.caches: dict[str, ResourceCache] = {}
        # Listener lists outlive the caches, so a relist keeps its observers.
        self._listeners: dict[str, list] = {}
        self.revision = 0
        self._advanced = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.ready = asyncio.Event()

    def cache(self, prefix: str) -> ResourceCache:
        c = self.caches.get(prefix)
        if c is None:
            c = self.caches[prefix] = ResourceCache(prefix, history=self.history)
            c.window_start = self.revision
            c.listeners = self._listeners.setdefault(prefix, [])
        return c

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.create_task(self._follow(), name="watch-cache")

    async def _load(self) -> None:
        old = self.caches
        for c in old.values():
            # A relist: watchers cannot be continued across it; end them.
            for w in list(c.watchers):
                w.stop()
                w.queue.put_nowait(None)
        self.caches = {}
        listing = await self.store.list(self.root)
        self.revision = listing.revision
        unreadable = []
        for kv in listing.items:
            c = self.cache(prefix_of(kv.key))
            try:
                c.objects[kv.key] = decode(kv.value, kv.revision)
            except Unreadable as err:
                c.unreadable[kv.key] = str(err)
                unreadable.append(kv.key)
        if unreadable:
            log.error("%d stored object(s) cannot be read and will fail reads with "
                      "InternalError (first %s: %s); is --encryption-provider-config "
                      "missing or without the key they were written with?",
                      len(unreadable), unreadable[0],
                      self.cache(prefix_of(unreadable[0])).unreadable[unreadable[0]])
        for c in self.caches.values():
            c.keys = sorted(c.objects)
            c.window_start = self.revision
        self._replay_to_listeners(old)
        self.ready.set()

    def _replay_to_listeners(self, old: dict[str, ResourceCache]) -> None:
        """Tell listeners what a relist changed: the gap's events were never seen."""
        for prefix, listeners in self._listeners.items():
            if not listeners:
                continue
            before = old[prefix].objects if prefix in old else {}
            now = self.caches[prefix].objects if prefix in self.caches else {}
            for key, obj in now.items():
                prev = before.get(key)
                if prev is None or prev["metadata"].get("resourceVersion") != \
                        obj["metadata"].get("resourceVersion"):
                    for fn in listeners:
                        fn(EventType.ADDED if prev is None else EventType.MODIFIED, obj, prev)
            for key, prev in before.items():
                if key not in now:
                    for fn in listeners:
                        fn(EventType.DELETED, prev, prev)

    async def _follow(self) -> None:
        while True:
            try:
                async for ev in self.store.watch(self.root, revision=self.revision):
                    c = self.cache(prefix_of(ev.key))
                    try:
                        obj = decode(ev.value, ev.revision)
                    except Unreadable as err:
                        prev = c.objects.get(ev.key)
                        if ev.type is not EventType.DELETED:
                            log.error("stored object %s cannot be read: %s", ev.key, err)
                            c.unreadable[ev.key] = str(err)
                        else:
                            c.unreadable.pop(ev.key, None)
                        if prev is not None:  # gone from what can be served
                            c.apply(EventType.DELETED, ev.key, prev, ev.revision)
                        self.revision = ev.revision
                        self._advanced.set()
                        continue
                    c.unreadable.pop(ev.key, None)
                    c.apply(ev.type, ev.key, obj, ev.revision)
                    self.revision = ev.revision
                    self._advanced.set()
                return
            except Compacted:
                log.warning("watch cache fell behind a compaction; relisting")
                await self._load()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch cache stream failed; relisting")
                await asyncio.sleep(1)
                await self._load()

    async def wait_for(self, revision: int, timeout: float = 3.0) -> bool:
        """Wait until the cache reflects ``revision``; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.revision < revision:
            self._advanced.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await aio.wait_for(self._advanced.wait(), left)
            except asyncio.TimeoutError:
                return self.revision >= revision
        return True

    async def sync(self) -> None:
        """Catch up with the store's newest revision (a consistent read)."""
        target = await self.store.current_revision()
        await self.wait_for(target)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def stats(self) -> dict[str, Any]:
        return {p: len(c.objects) for p, c in self.caches.items()}
