"""The garbage collector: deletes dependents whose owners are gone, runs foreground and
orphan deletion.

Role: upstream's ``GarbageCollector`` (``garbagecollector.go``). It watches every
resource the API serves with list, watch and delete (CRDs included, found again by
discovery every ``discovery_period``), feeds the events to an ``OwnerGraph`` and works
two kinds of queue items:

- ``delete/<uid>`` (attemptToDelete): verify the item's owners with live GETs and
  delete it when none is left (background, or the policy its own finalizers ask for),
  drop references to absent owners when a solid owner remains, and for an item being
  deleted in the foreground remove ``foregroundDeletion`` once no dependent blocks it;
- ``orphan/<uid>`` (attemptToOrphan): remove the owner from every dependent's
  ownerReferences, then remove the owner's ``orphan`` finalizer.

Invariants:
- Existence is decided by the API, never by the cache alone: an owner is absent only
  when a GET answers 404 or an object with another uid (remembered in the absent
  owner cache), so an owner created after its dependent is never taken for gone.
- Every delete carries a uid precondition; every metadata change is a GET + PUT
  compare-and-swap retried on conflict, so a recreated namesake is never touched.
- Deletion policies match ``kubectl delete --cascade=background|foreground|orphan``:
  Background deletes the owner at once and its dependents afterwards; Foreground
  keeps the owner (``foregroundDeletion``) until no ``blockOwnerDeletion`` dependent
  remains; Orphan strips the owner reference from dependents before the owner goes.
"""
from __future__ import annotations

import asyncio
import logging

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client.informers import SharedInformer

from . import ownergraph as og
from .corecontext import ControllerContext, CoreController, discover, retry_on_conflict

log = logging.getLogger(__name__)

NAME = "garbage-collector-controller"


class _VirtualDeleted(Exception):
    """The item turned out not to exist; the graph was told, nothing to retry."""


class _InvalidOwnerScope(Exception):
    """A cluster-scoped object names a namespaced owner: retrying will not help."""


class _NotObserved(Exception):
    """The item is known only through references so far; look again later."""


class GarbageCollector(CoreController):
    """Owner graph + attempt-to-delete / attempt-to-orphan workers."""

    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.gc
        super().__init__(ctx, name=NAME, workers=s.workers)
        self.settings = s
        self.graph = og.OwnerGraph(og.AbsentOwnerCache(s.absent_owner_cache_size))
        self.recorder = ctx.recorder("garbage-collector-controller")
        self.monitored: dict[tuple[str, str], SharedInformer] = {}

    # --- monitors ---------------------------------------------------------------------

    async def sync_monitors(self) -> list[SharedInformer]:
        """Watch every deletable resource not watched yet; return the new informers."""
        found = await discover(self.client)
        if found.failed:
            log.info("garbage collector: discovery failed for %s", sorted(found.failed))
        new = []
        for res in found.with_verbs("delete", "list", "watch"):
            key = (res.group, res.plural)
            if key in self.settings.ignored or key in self.monitored:
                continue
            inf = self.ctx.informers.informer(res)
            inf.add_event_handler(
                on_add=lambda obj: self._observe(og.ADD, obj, None),
                on_update=lambda old, new: self._observe(og.UPDATE, new, old),
                on_delete=lambda obj: self._observe(og.DELETE, obj, None))
            self.monitored[key] = inf
            self.watched.append(inf)
            new.append(inf)
        return new

    async def run(self, *, workers: int | None = None, informers=None) -> None:  # type: ignore[override]
        initial = await self.sync_monitors()
        for inf in initial:
            inf.start()
        synced = await asyncio.gather(*(inf.wait_for_sync(self.settings.sync_timeout)
                                        for inf in initial))
        unsynced = [str(inf.resource) for inf, ok in zip(initial, synced) if not ok]
        if unsynced:
            # Owners are verified by live GETs, so going on is safe; waiting forever for
            # a resource that cannot be listed would stop all collection.
            log.warning("garbage collector: starting before %s synced", ", ".join(unsynced))
        refresher = asyncio.create_task(self._rediscover(), name="gc discovery")
        try:
            await super().run(workers=workers, informers=[])
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)

    async def _rediscover(self) -> None:
        while True:
            await self.clock.sleep(self.settings.discovery_period)
            try:
                for inf in await self.sync_monitors():
                    inf.start()
            except Exception as err:  # noqa: BLE001 - try again next period
                log.warning("garbage collector: resource discovery failed: %s", err)

    # --- graph events ---------------------------------------------------------------------

    def _observe(self, event: str, obj: dict, old: dict | None) -> None:
        self._apply(self.graph.observe(event, obj, old))

    def _apply(self, acts: og.Actions) -> None:
        for uid in acts.delete:
            self.queue.add(f"delete/{uid}")
        for uid in acts.delete_later:
            self.queue.add_rate_limited(f"delete/{uid}")
        for uid in acts.orphan:
            self.queue.add(f"orphan/{uid}")
        for dep_uid, owner_uid in acts.invalid_namespace:
            self._report_invalid_namespace(dep_uid, owner_uid)

    def _report_invalid_namespace(self, dep_uid: str, owner_uid: str) -> None:
        dep = self.graph.get(dep_uid)
        if dep is None:
            return
        ref = next((r for r in dep.owners if r.get("uid") == owner_uid), None)
        if ref is None:
            return
        self.recorder.event(
            _object_of(dep.identity), "Warning", reason="OwnerRefInvalidNamespace",
            message=f"ownerRef [{ref.get('apiVersion')}/{ref.get('kind')}, namespace: "
                    f"{dep.identity.namespace}, name: {ref.get('name')}, uid: {owner_uid}] "
                    f"does not exist in namespace \"{dep.identity.namespace}\"")

    # --- workers ------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        kind, _, uid = key.partition("/")
        if kind == "orphan":
            await self.attempt_to_orphan(uid)
        else:
            await self.attempt_to_delete(uid)

    async def attempt_to_delete(self, uid: str) -> None:
        node = self.graph.get(uid)
        if node is None:
            return
        try:
            await self._attempt_to_delete_item(node)
        except (_VirtualDeleted, _InvalidOwnerScope):
            return
        if self.graph.get(uid) is node and not node.observed:
            # Requeue until an informer shows the object, or a virtual node for an
            # object added and removed while we were not watching stays forever.
            raise _NotObserved(f"item {node.identity} has not been observed yet")

    async def _attempt_to_delete_item(self, node: og.Node) -> None:
        if node.being_deleted and not node.deleting_dependents:
            # Being deleted is a one-way trip: its dependents are handled once it is gone.
            return
        latest = await self._get(node.identity)
        if latest is None or (latest.get("metadata") or {}).get("uid") != node.uid:
            self._apply(self.graph.virtual_delete(node.identity))
            raise _VirtualDeleted()
        if node.deleting_dependents:
            await self._process_deleting_dependents(node)
            return
        refs = m.owner_references(latest)
        if not refs:
            return
        solid, dangling, waiting = await self._classify(node, refs)
        decision = og.decide(self.graph, node, latest, solid, dangling, waiting)
        if decision.action == og.PATCH_REFS:
            log.info("garbage collector: removing dangling owner references %s from %s",
                     decision.remove_owner_uids, node.identity)
            await self._edit(node.identity, lambda o: _set_refs(
                o, og.remove_refs(m.owner_references(o), decision.remove_owner_uids)))
        elif decision.action == og.UNBLOCK_THEN_DELETE:
            await self._edit(node.identity, lambda o: _set_refs(
                o, og.unblock_refs(m.owner_references(o), decision.remove_owner_uids)))
            await self._delete(node.identity, decision.policy)
        elif decision.action == og.DELETE_OBJECT:
            log.info("garbage collector: deleting %s (propagation %s)", node.identity,
                     decision.policy)
            await self._delete(node.identity, decision.policy)

    async def _process_deleting_dependents(self, node: og.Node) -> None:
        blocking = self.graph.blocking_dependents(node)
        if not blocking:
            await self._remove_finalizer(node.identity, og.FOREGROUND)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.queue.add(f"delete/{dep.uid}")

    async def _classify(self, node: og.Node, refs: list[dict]
                        ) -> tuple[list[dict], list[dict], list[dict]]:
        solid, dangling, waiting = [], [], []
        for ref in refs:
            owner = await self._owner(node, ref)
            if owner is None:
                dangling.append(ref)
            elif og.being_deleted(owner) and og.has_finalizer(owner, og.FOREGROUND):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _owner(self, node: og.Node, ref: dict) -> dict | None:
        """The owner ``ref`` names, or None when it is absent (``isDangling``)."""
        cluster_key = og.Identity.from_ref(ref, "")
        ns_key = og.Identity.from_ref(ref, node.identity.namespace)
        if self.graph.absent.has(cluster_key) or self.graph.absent.has(ns_key):
            return None
        res = await self.client.resolve((ref.get("apiVersion") or "", ref.get("kind") or ""))
        if res.namespaced and not node.identity.namespace:
            self.recorder.event(
                _object_of(node.identity), "Warning", reason="OwnerRefInvalidNamespace",
                message=f"ownerRef [{ref.get('apiVersion')}/{ref.get('kind')}, namespace: , "
                        f"name: {ref.get('name')}, uid: {ref.get('uid')}] does not exist in "
                        f"namespace \"\"")
            raise _InvalidOwnerScope()
        key = ns_key if res.namespaced else cluster_key
        try:
            owner = await self.client.get(res, ref.get("name") or "",
                                          namespace=node.identity.namespace or None)
        except ApiError as err:
            if is_not_found(err):
                self.graph.absent.add(key)
                return None
            raise
        if (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
            self.graph.absent.add(key)
            return None
        return owner

    async def attempt_to_orphan(self, uid: str) -> None:
        owner = self.graph.get(uid)
        if owner is None:
            return
        for dep in self.graph.dependents(owner):
            await self._edit(dep.identity, lambda o: _set_refs(
                o, og.remove_refs(m.owner_references(o), [uid])), missing_ok=True)
        await self._remove_finalizer(owner.identity, og.ORPHAN)

    # --- API -------------------------------------------------------------------------

    async def _resource(self, ident: og.Identity):
        return await self.client.resolve((ident.api_version, ident.kind))

    async def _get(self, ident: og.Identity) -> dict | None:
        res = await self._resource(ident)
        if res.namespaced and not ident.namespace:
            return None
        try:
            return await self.client.get(res, ident.name, namespace=ident.namespace or None)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise

    async def _delete(self, ident: og.Identity, policy: str | None) -> None:
        res = await self._resource(ident)
        try:
            await self.client.delete(res, ident.name, namespace=ident.namespace or None,
                                     propagation_policy=policy,
                                     preconditions={"uid": ident.uid})
        except ApiError as err:
            if not is_not_found(err):
                raise

    async def _edit(self, ident: og.Identity, change, *, missing_ok: bool = False) -> None:
        """GET + ``change(obj)`` + PUT, retried on conflict; ``change`` returns False
        when nothing needs writing."""
        res = await self._resource(ident)

        async def attempt() -> None:
            obj = await self._get(ident)
            if obj is None or obj["metadata"].get("uid") != ident.uid:
                if missing_ok:
                    return
                raise ApiError({"kind": "Status", "code": 404, "reason": "NotFound",
                                "message": f"{ident} not found"})
            if change(obj) is False:
                return
            try:
                await self.client.update(res, obj, namespace=ident.namespace or None)
            except ApiError as err:
                if not (missing_ok and is_not_found(err)):
                    raise

        await retry_on_conflict(attempt)

    async def _remove_finalizer(self, ident: og.Identity, finalizer: str) -> None:
        def change(obj: dict) -> bool:
            if not m.has_finalizer(obj, finalizer):
                return False
            m.remove_finalizer(obj, finalizer)
            obj["metadata"].setdefault("finalizers", [])
            return True
        log.info("garbage collector: removing %s finalizer from %s", finalizer, ident)
        await self._edit(ident, change, missing_ok=True)


def _set_refs(obj: dict, refs: list[dict]) -> bool:
    if refs == m.owner_references(obj):
        return False
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    else:
        # An empty list (not a missing key) so a PUT clears the stored references.
        obj["metadata"]["ownerReferences"] = []
    return True


def _object_of(ident: og.Identity) -> dict:
    return {"apiVersion": ident.api_version, "kind": ident.kind,
            "metadata": {"name": ident.name, "namespace": ident.namespace, "uid": ident.uid}}


def new_garbage_collector(ctx: ControllerContext) -> GarbageCollector:
    return GarbageCollector(ctx)
