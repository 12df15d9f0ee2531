"""What the workload controllers share when they talk to the API: pod control, claims, writes.

Role: upstream's ``RealPodControl`` (create/delete pods with the SuccessfulCreate,
FailedCreate, SuccessfulDelete and FailedDelete events), ``slowStartBatch``,
``ControllerRefManager`` adoption and release patches, and a small writer that keeps
an object's latest resourceVersion across the several writes of one sync pass.

Invariants:
- Every pod create/delete goes through ``PodControl`` and records the upstream event
  on the owner; NotFound on delete is not an error (the pod is gone either way).
- ``slow_start`` calls ``fn`` in batches of 1, 2, 4, ... (at most ``maximum``) and
  stops after the first batch with a failure.
- Adoption re-reads the owner first (upstream's ``RecheckDeletionTimestamp``): an
  owner that is being deleted or was replaced (new uid) adopts nothing.
- ``Writer`` never invents a resourceVersion: it only replaces the one the caller
  read with the one the API returned for its own previous write.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Iterable

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.client import ApiError, Resource, is_not_found
from pyk8s.client import resources as r

from . import ownership, podutil
from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)


async def slow_start(count: int, fn: Callable[[int], Awaitable[None]], *,
                     initial: int = podutil.SLOW_START_INITIAL_BATCH_SIZE,
                     maximum: int | None = None) -> tuple[int, int, BaseException | None]:
    """Call ``fn(i)`` for i in range(count) in growing concurrent batches.

    Returns (successes, calls attempted, first error of the failing batch or None).
    """
    done = 0
    for size in podutil.slow_start_batches(count, initial, maximum):
        results = await asyncio.gather(*(fn(done + i) for i in range(size)),
                                       return_exceptions=True)
        errors = [e for e in results if isinstance(e, BaseException)]
        for e in errors:
            if isinstance(e, asyncio.CancelledError):
                raise e
        done += size
        if errors:
            return done - len(errors), done, errors[0]
    return done, done, None


class PodControl:
    """Creates and deletes pods on behalf of an owner, recording upstream's events."""

    def __init__(self, client, recorder):
        self.client, self.recorder = client, recorder

    async def create(self, namespace: str, pod: dict, owner: dict) -> dict:
        try:
            created = await self.client.create(r.PODS, pod, namespace=namespace)
        except ApiError as err:
            if not _namespace_terminating(err):
                self.recorder.event(owner, "Warning", reason=podutil.FAILED_CREATE,
                                    message=f"Error creating: {err}")
            raise
        self.recorder.event(owner, "Normal", reason=podutil.SUCCESSFUL_CREATE,
                            message=f"Created pod: {created['metadata']['name']}")
        return created

    async def delete(self, namespace: str, name: str, owner: dict) -> None:
        try:
            await self.client.delete(r.PODS, name, namespace=namespace)
        except ApiError as err:
            if is_not_found(err):
                raise
            self.recorder.event(owner, "Warning", reason=podutil.FAILED_DELETE,
                                message=f"Error deleting: {err}")
            raise
        self.recorder.event(owner, "Normal", reason=podutil.SUCCESSFUL_DELETE,
                            message=f"Deleted pod: {name}")

    async def patch(self, namespace: str, name: str, body: dict) -> dict:
        return await self.client.patch(r.PODS, name, namespace=namespace, body=body,
                                       patch_type="strategic")


def _namespace_terminating(err: ApiError) -> bool:
    return any(c.get("type") == "NamespaceTerminating"
               for c in (err.details.get("causes") or []))


class Writer:
    """Writes of one sync pass that keep each object's resourceVersion current."""

    def __init__(self, client):
        self.client = client
        self._rv: dict[tuple, str] = {}

    def _key(self, res: Resource, obj: dict) -> tuple:
        meta = obj["metadata"]
        return (res.plural, meta.get("namespace"), meta["name"])

    def _fresh(self, res: Resource, obj: dict) -> dict:
        rv = self._rv.get(self._key(res, obj))
        if rv is not None:
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}
        return obj

    def _remember(self, res: Resource, obj: dict) -> dict:
        self._rv[self._key(res, obj)] = obj["metadata"].get("resourceVersion")
        return obj

    async def create(self, res: Resource, obj: dict) -> dict:
        return self._remember(res, await self.client.create(res, obj))

    async def update(self, res: Resource, obj: dict) -> dict:
        return self._remember(res, await self.client.update(res, self._fresh(res, obj)))

    async def update_status(self, res: Resource, obj: dict) -> dict:
        return self._remember(res, await self.client.update_status(res, self._fresh(res, obj)))

    async def patch(self, res: Resource, obj: dict, body: dict, patch_type: str = "merge") -> dict:
        meta = obj["metadata"]
        return self._remember(res, await self.client.patch(
            res, meta["name"], namespace=meta.get("namespace"), body=body, patch_type=patch_type))

    async def delete(self, res: Resource, obj: dict, **kwargs) -> None:
        meta = obj["metadata"]
        try:
            await self.client.delete(res, meta["name"], namespace=meta.get("namespace"), **kwargs)
        except ApiError as err:
            if not is_not_found(err):
                raise


def annotations_patch(current: dict, wanted: dict) -> dict | None:
    """A merge patch turning ``current``'s annotations into ``wanted``'s, or None."""
    have, want = m.annotations(current), m.annotations(wanted)
    if have == want:
        return None
    body = {k: v for k, v in want.items() if have.get(k) != v}
    body.update({k: None for k in have if k not in want})
    return {"metadata": {"annotations": body}}


class WorkloadController(CoreController):
    """A ``CoreController`` with pod control, claiming and owner lookups."""

    component = "controller"

    def __init__(self, ctx: ControllerContext, *, name: str, workers: int = 5):
        super().__init__(ctx, name=name, workers=workers)
        self.recorder = ctx.recorder(self.component)
        self.pod_control = PodControl(ctx.client, self.recorder)

    def event(self, obj: dict, event_type: str, reason: str, message: str) -> None:
        self.recorder.event(obj, event_type, reason=reason, message=message)

    @staticmethod
    def resolve_ref(store, namespace: str | None, ref: dict | None, kind: str) -> dict | None:
        """``resolveControllerRef``: the cached owner ``ref`` names, if its uid matches."""
        if ref is None or ref.get("kind") != kind:
            return None
        owner = store.get_object(namespace, ref.get("name"))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    async def can_adopt(self, res: Resource, owner: dict) -> bool:
        meta = owner["metadata"]
        try:
            fresh = await self.client.get(res, meta["name"], namespace=meta.get("namespace"))
        except ApiError as err:
            if is_not_found(err):
                return False
            raise
        if fresh["metadata"].get("uid") != meta.get("uid"):
            return False
        return not fresh["metadata"].get("deletionTimestamp")

    async def claim(self, owner: dict, owner_res: Resource, objs: Iterable[dict],
                    obj_res: Resource, selector: selectors.LabelSelector, controller_ref: dict, *,
                    add_finalizer: str | None = None, remove_finalizer: str | None = None,
                    extra_match: Callable[[dict], bool] | None = None) -> list[dict]:
        """``ClaimObjects``: the objects ``owner`` owns after adopting and releasing."""
        def matches(obj):
            return selector.matches(m.labels(obj)) and (extra_match is None or extra_match(obj))

        claimed, adopt_checked, may_adopt, errors = [], False, False, []
        owner_uid = owner["metadata"]["uid"]
        for obj in objs:
            action = ownership.claim_action(owner, obj, matches)
            try:
                if action == ownership.CLAIM:
                    claimed.append(obj)
                elif action == ownership.ADOPT:
                    if not adopt_checked:
                        may_adopt, adopt_checked = await self.can_adopt(owner_res, owner), True
                    if not may_adopt:
                        continue
                    body = ownership.adopt_patch(controller_ref, obj)
                    if add_finalizer:
                        body["metadata"]["finalizers"] = [add_finalizer]
                    claimed.append(await self._patch_obj(obj_res, obj, body))
                elif action == ownership.RELEASE:
                    await self._patch_obj(obj_res, obj, ownership.release_patch(
                        owner_uid, obj, remove_finalizer=remove_finalizer))
            except ApiError as err:
                if is_not_found(err) or (action == ownership.RELEASE and err.code == 422):
                    continue
                errors.append(err)
        if errors:
            raise errors[0]
        return claimed

    async def _patch_obj(self, res: Resource, obj: dict, body: dict) -> dict:
        meta = obj["metadata"]
        return await self.client.patch(res, meta["name"], namespace=meta.get("namespace"),
                                       body=body, patch_type="strategic")
