"""Adoption and orphaning by selector: which objects a controller may call its own.

Role: upstream's ``BaseControllerRefManager.ClaimObject`` and the patches of
``PodControllerRefManager.AdoptPod``/``ReleasePod`` (``controller_ref_manager.go``).
A controller owns what carries its controller reference; it adopts orphans its
selector matches and releases owned objects its selector no longer matches.

Invariants:
- ``claim_action`` is pure: it only says what to do (``CLAIM``, ``ADOPT``,
  ``RELEASE`` or ``IGNORE``); the caller performs the patch and, for ``ADOPT``,
  first re-reads the owner to make sure it is not being deleted (upstream's
  ``RecheckDeletionTimestamp``).
- An object owned by another controller is never touched; a controller being
  deleted neither adopts nor releases; objects being deleted are not adopted.
- Patches carry the object's uid, so they fail rather than touch a recreated object
  of the same name.
"""
from __future__ import annotations

from typing import Callable

from pyk8s.api import meta as m

CLAIM, ADOPT, RELEASE, IGNORE = "claim", "adopt", "release", "ignore"


def claim_action(owner: dict, obj: dict, matches: Callable[[dict], bool]) -> str:
    """What ``owner`` should do with ``obj`` given its selector test ``matches``."""
    owner_meta = owner["metadata"]
    ref = m.controller_of(obj)
    if ref is not None:
        if ref.get("uid") != owner_meta.get("uid"):
            return IGNORE
        if matches(obj):
            return CLAIM
        if owner_meta.get("deletionTimestamp"):
            return IGNORE
        return RELEASE
    if owner_meta.get("deletionTimestamp") or not matches(obj):
        return IGNORE
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return IGNORE
    ns = owner_meta.get("namespace")
    if ns and ns != (obj.get("metadata") or {}).get("namespace"):
        return IGNORE
    return ADOPT


def adopt_patch(controller_ref: dict, obj: dict) -> dict:
    """Strategic merge patch adding ``controller_ref`` to ``obj``'s ownerReferences."""
    return {"metadata": {"ownerReferences": [controller_ref],
                         "uid": obj["metadata"]["uid"]}}


def release_patch(owner_uid: str, obj: dict, *, remove_finalizer: str | None = None) -> dict:
    """Strategic merge patch deleting the owner's reference (and a finalizer) from ``obj``."""
    meta: dict = {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
                  "uid": obj["metadata"]["uid"]}
    if remove_finalizer and remove_finalizer in (obj["metadata"].get("finalizers") or []):
        meta["$deleteFromPrimitiveList/finalizers"] = [remove_finalizer]
    return {"metadata": meta}
