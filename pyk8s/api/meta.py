"""Object metadata helpers: timestamps, uids, object keys and owner references.

Role: the small pieces of ``metav1.ObjectMeta`` handling every component needs.

Invariants:
- Timestamps are RFC 3339 in UTC to the second (``2024-01-01T00:00:00Z``), as
  upstream serializes ``metav1.Time``; ``micro_time`` gives ``metav1.MicroTime``.
- Keys are ``namespace/name`` for namespaced objects and ``name`` otherwise, as
  client-go's ``MetaNamespaceKeyFunc``; ``split_key`` inverts ``object_key``.
- Helpers never mutate their arguments unless the name says so (``set_*``,
  ``add_*``, ``remove_*``).
"""

from __future__ import annotations

import datetime
import os
import random
import uuid
from typing import Any, Iterable


def now(offset: float = 0) -> str:
    """The current time (plus ``offset`` seconds) as RFC 3339 in UTC, to the second."""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(t: datetime.datetime | None = None) -> str:
    """A ``MicroTime``: RFC 3339 with microseconds (``2024-01-01T00:00:00.000000Z``)."""
    t = t or datetime.datetime.now(datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime.datetime:
    """An RFC 3339 timestamp (``Z`` or offset, optional fraction) as an aware datetime."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


# uids need uniqueness, not secrecy: a PRNG seeded once from the OS avoids an
# os.urandom call per object (slow on some VMs, and on the create hot path).
_uid_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _uid_random.seed(os.urandom(32)))


def new_uid() -> str:
    """A random (version 4) UUID string."""
    return str(uuid.UUID(int=_uid_random.getrandbits(128), version=4))


# --- keys -------------------------------------------------------------------------

def key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def object_key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return key(meta.get("namespace"), meta.get("name") or "")


def split_key(k: str) -> tuple[str, str]:
    """``ns/name`` -> (``ns``, ``name``); ``name`` -> (``""``, ``name``)."""
    parts = k.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f'unexpected key format: "{k}"')


# --- labels and annotations ------------------------------------------------------

def labels(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}


def annotations(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("annotations") or {}


def set_label(obj: dict, name: str, value: str) -> None:
    obj.setdefault("metadata", {}).setdefault("labels", {})[name] = value


def set_annotation(obj: dict, name: str, value: str) -> None:
    obj.setdefault("metadata", {}).setdefault("annotations", {})[name] = value


# --- owner references ------------------------------------------------------------

def owner_reference(owner: dict, *, controller: bool = True,
                    block_owner_deletion: bool = True) -> dict:
    """An ownerReference pointing at ``owner`` (as ``metav1.NewControllerRef``)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": block_owner_deletion,
    }


def owner_references(obj: dict) -> list[dict]:
    return (obj.get("metadata") or {}).get("ownerReferences") or []


def controller_of(obj: dict) -> dict | None:
    """The ownerReference with ``controller: true``, if any (``metav1.GetControllerOf``)."""
    for ref in owner_references(obj):
        if ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: dict, owner: dict) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


def is_owned_by(obj: dict, owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in owner_references(obj))


def add_owner_reference(obj: dict, ref: dict) -> None:
    """Add ``ref``, replacing any reference with the same uid."""
    refs = [r for r in owner_references(obj) if r.get("uid") != ref["uid"]]
    refs.append(ref)
    obj.setdefault("metadata", {})["ownerReferences"] = refs


def remove_owner_references(obj: dict, uids: Iterable[str]) -> None:
    drop = set(uids)
    refs = [r for r in owner_references(obj) if r.get("uid") not in drop]
    meta = obj.setdefault("metadata", {})
    if refs:
        meta["ownerReferences"] = refs
    else:
        meta.pop("ownerReferences", None)


# --- finalizers ------------------------------------------------------------------

def has_finalizer(obj: dict, name: str) -> bool:
    return name in ((obj.get("metadata") or {}).get("finalizers") or [])


def add_finalizer(obj: dict, name: str) -> None:
    fins = obj.setdefault("metadata", {}).setdefault("finalizers", [])
    if name not in fins:
        fins.append(name)


def remove_finalizer(obj: dict, name: str) -> None:
    meta = obj.setdefault("metadata", {})
    fins = [f for f in meta.get("finalizers") or [] if f != name]
    if fins:
        meta["finalizers"] = fins
    else:
        meta.pop("finalizers", None)


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def gvk(obj: dict) -> tuple[str, str, str]:
    """(group, version, kind) of an object."""
    av: Any = obj.get("apiVersion") or ""
    group, _, version = av.rpartition("/")
    return group, version, obj.get("kind") or ""
