"""Shared informers: one list+watch per resource, an indexed cache, event handlers.

Role: client-go's SharedIndexInformer for asyncio. An informer keeps a local copy of
a resource (optionally narrowed by namespace and selectors) in an ``Indexer``, fed
by ``watching.watch_forever``, and tells every registered handler about each add,
update (with the old object) and delete. ``SharedInformerFactory`` hands out one
informer per (resource, namespace, selectors) so components share the watch.

Invariants:
- The store changes before handlers run, so a handler that reads the store sees the
  object the event is about.
- A relist (start, or after 410) replaces the store: objects no longer listed are
  delivered to ``on_delete`` (with their last known state), the others to
  ``on_add``/``on_update``; ``has_synced`` turns true after the first one.
- Handlers are plain functions called in order on the event loop; they must be quick
  (enqueue a key) and must not mutate the objects they receive, which are the
  cache's own. An exception in one is logged and does not stop the others.
- A handler added late first gets ``on_add`` for everything already cached.
- Resync (``resync_period`` > 0) redelivers every cached object as
  ``on_update(obj, obj)``; it never contacts the server.
- Indexes are always consistent with the store: every mutation re-indexes the key.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import KW_ONLY, dataclass, field
from typing import Callable, Iterable, Mapping

from pyk8s import aio
from pyk8s.api import meta as m
from pyk8s.api.selectors import LabelSelector, parse_label_selector

from .clock import REAL_CLOCK, Clock
from .resources import Resource
from .settings import WatchSettings
from .watching import Listed, Scope, WatchContext, watch_forever

log = logging.getLogger(__name__)

IndexFunc = Callable[[dict], Iterable[str]]

NAMESPACE_INDEX = "namespace"
OWNER_UID_INDEX = "owner-uid"
NODE_NAME_INDEX = "node-name"


def index_by_namespace(obj: dict) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def index_by_owner_uid(obj: dict) -> list[str]:
    return [ref["uid"] for ref in m.owner_references(obj) if ref.get("uid")]


def index_by_node_name(obj: dict) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


STANDARD_INDEXERS: dict[str, IndexFunc] = {
    NAMESPACE_INDEX: index_by_namespace,
    OWNER_UID_INDEX: index_by_owner_uid,
    NODE_NAME_INDEX: index_by_node_name,
}


class Indexer:
    """A key -> object map (keys as ``meta.object_key``) with secondary indexes."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None):
        self._items: dict[str, dict] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self.add_indexers(indexers or {NAMESPACE_INDEX: index_by_namespace})

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        for name, fn in indexers.items():
            if name in self._indexers:
                if self._indexers[name] is not fn:
                    raise ValueError(f"indexer {name!r} already exists")
                continue
            self._indexers[name] = fn
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index_one(name, key, obj)

    def _index_one(self, name: str, key: str, obj: dict) -> None:
        index = self._indices[name]
        for value in self._indexers[name](obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: dict) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    # --- reads -------------------------------------------------------------------

    def get(self, key: str) -> dict | None:
        return self._items.get(key)

    def get_object(self, namespace: str | None, name: str) -> dict | None:
        return self._items.get(m.key(namespace, name))

    def list(self) -> list[dict]:
        return list(self._items.values())

    def list_keys(self) -> list[str]:
        return list(self._items)

    def by_index(self, index: str, value: str) -> list[dict]:
        """The objects whose ``index`` function yields ``value``, in no particular order."""
        return [self._items[k] for k in self._indices[index].get(value, ())]

    def index_keys(self, index: str, value: str) -> list[str]:
        """Their keys, sorted."""
        return sorted(self._indices[index].get(value, ()))

    def index_values(self, index: str) -> list[str]:
        return sorted(self._indices[index])

    def list_namespace(self, namespace: str | None = None,
                       selector: LabelSelector | str | None = None) -> list[dict]:
        """Objects in ``namespace`` (all when None) whose labels match ``selector``."""
        if isinstance(selector, str):
            selector = parse_label_selector(selector)
        objs = self.list() if namespace is None else self.by_index(NAMESPACE_INDEX, namespace)
        if selector is None or selector.empty():
            return objs
        return [o for o in objs if selector.matches(m.labels(o))]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    # --- writes (the informer's) --------------------------------------------------

    def upsert(self, obj: dict) -> dict | None:
        """Store ``obj``; return what it replaced."""
        key = m.object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index_one(name, key, obj)
        return old

    def delete(self, key: str) -> dict | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[dict]) -> tuple[list[tuple[dict | None, dict]], list[dict]]:
        """Make the store exactly ``objs``: ([(old or None, new)], [removed objects])."""
        fresh = {m.object_key(o): o for o in objs}
        removed = [self.delete(k) for k in list(self._items) if k not in fresh]
        changed = [(self.upsert(o), o) for o in fresh.values()]
        return changed, [o for o in removed if o is not None]


@dataclass(eq=False)
class Registration:
    """One handler set on an informer; ``remove()`` stops its deliveries."""

    informer: "SharedInformer"
    _: KW_ONLY
    on_add: Callable[[dict], None] | None = None
    on_update: Callable[[dict, dict], None] | None = None
    on_delete: Callable[[dict], None] | None = None
    resync_period: float = 0.0
    next_resync: float = field(default=0.0)

    def remove(self) -> None:
        self.informer._handlers = [h for h in self.informer._handlers if h is not self]


class SharedInformer:
    """The cache and event fan-out of one watched scope."""

    def __init__(self, client, resource: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 indexers: Mapping[str, IndexFunc] | None = None, resync_period: float = 0.0,
                 settings: WatchSettings = WatchSettings(), clock: Clock = REAL_CLOCK,
                 rand: Callable[[], float] = random.random):
        self.client = client
        self.scope = Scope(resource, namespace=namespace, label_selector=label_selector,
                           field_selector=field_selector)
        self.store = Indexer({NAMESPACE_INDEX: index_by_namespace, **(indexers or {})})
        self.resync_period = resync_period
        self.settings, self.clock, self.rand = settings, clock, rand
        self.last_sync_resource_version = ""
        self._handlers: list[Registration] = []
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def resource(self) -> Resource:
        return self.scope.resource

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        self.store.add_indexers(indexers)

    def add_event_handler(self, *, on_add: Callable[[dict], None] | None = None,
                          on_update: Callable[[dict, dict], None] | None = None,
                          on_delete: Callable[[dict], None] | None = None,
                          resync_period: float | None = None) -> Registration:
        period = self.resync_period if resync_period is None else resync_period
        reg = Registration(self, on_add=on_add, on_update=on_update, on_delete=on_delete,
                           resync_period=period, next_resync=self.clock.monotonic() + period)
        self._handlers.append(reg)
        if on_add is not None:
            for obj in self.store.list():
                _call(on_add, obj)
        return reg

    # --- lifecycle ----------------------------------------------------------------

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        """Begin listing and watching (idempotent)."""
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._run(), name=f"informer {self.resource}"))
        self._tasks.append(asyncio.create_task(self._resync_loop(),
                                               name=f"resync {self.resource}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True once the first list is in the store; False if ``timeout`` passes first."""
        try:
            await aio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # --- the watch loop -------------------------------------------------------------

    async def _run(self) -> None:
        ctx = WatchContext(self.client, self.scope, settings=self.settings, clock=self.clock,
                           rand=self.rand)
        while True:
            try:
                async for item in watch_forever(ctx):
                    if isinstance(item, Listed):
                        self._replace(item)
                    else:
                        self._apply(item.type, item.object)
                        self.last_sync_resource_version = (
                            item.resource_version or self.last_sync_resource_version)
            except Exception:  # noqa: BLE001 - a malformed answer must not kill the cache
                # watch_forever handles API and connection failures itself; anything
                # else is unexpected: log it, wait the longest back-off, relist.
                log.exception("informer for %s failed; relisting", self.resource)
                await self.clock.sleep(self.settings.backoff.maximum)

    def _replace(self, listed: Listed) -> None:
        changed, removed = self.store.replace(listed.items)
        self.last_sync_resource_version = listed.resource_version
        for obj in removed:
            self._deliver("on_delete", obj)
        for old, new in changed:
            if old is None:
                self._deliver("on_add", new)
            else:
                self._deliver("on_update", old, new)
        self._synced.set()

    def _apply(self, kind: str, obj: dict) -> None:
        if kind in ("ADDED", "MODIFIED"):
            old = self.store.upsert(obj)
            if old is None:
                self._deliver("on_add", obj)
            else:
                self._deliver("on_update", old, obj)
        elif kind == "DELETED":
            old = self.store.delete(m.object_key(obj))
            self._deliver("on_delete", obj if obj.get("metadata") else old)

    def _deliver(self, which: str, *args: dict) -> None:
        for reg in list(self._handlers):
            fn = getattr(reg, which)
            if fn is not None:
                _call(fn, *args)

    async def _resync_loop(self) -> None:
        while True:
            periods = [h.next_resync for h in self._handlers if h.resync_period > 0]
            if not periods:
                # Nothing to resync now; look again after the informer's own period
                # (or a minute), as a handler with a period may be added later.
                await self.clock.sleep(self.resync_period or 60.0)
                continue
            await self.clock.sleep(max(min(periods) - self.clock.monotonic(), 0.0))
            now = self.clock.monotonic()
            due = [h for h in self._handlers if h.resync_period > 0 and h.next_resync <= now]
            for h in due:
                h.next_resync = now + h.resync_period
                if self.has_synced and h.on_update is not None:
                    for obj in self.store.list():
                        _call(h.on_update, obj, obj)


def _call(fn: Callable, *args: dict) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - one bad handler must not starve the others
        log.exception("informer event handler %r failed", fn)


class SharedInformerFactory:
    """One ``SharedInformer`` per watched scope, started and stopped together."""

    def __init__(self, client, *, namespace: str | None = None, resync_period: float = 0.0,
                 settings: WatchSettings = WatchSettings(), clock: Clock = REAL_CLOCK):
        self.client, self.namespace = client, namespace
        self.resync_period, self.settings, self.clock = resync_period, settings, clock
        self._informers: dict[tuple, SharedInformer] = {}

    def informer(self, resource: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 indexers: Mapping[str, IndexFunc] | None = None) -> SharedInformer:
        namespace = namespace if namespace is not None else self.namespace
        k = (resource, namespace, label_selector or "", field_selector or "")
        inf = self._informers.get(k)
        if inf is None:
            inf = SharedInformer(self.client, resource, namespace=namespace,
                                 label_selector=label_selector, field_selector=field_selector,
                                 resync_period=self.resync_period, settings=self.settings,
                                 clock=self.clock)
            self._informers[k] = inf
        if indexers:
            inf.add_indexers(indexers)
        return inf

    @property
    def informers(self) -> list[SharedInformer]:
        return list(self._informers.values())

    def start(self) -> None:
        for inf in self._informers.values():
            inf.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(*(i.wait_for_sync(timeout)
                                         for i in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
