"""ControllerRevisions: snapshots of a pod template that StatefulSets and DaemonSets roll between.

Role: upstream's ``pkg/controller/history`` and the ``getPatch``/``ApplyRevision``
helpers of the StatefulSet and DaemonSet controllers. A revision's ``data`` is the
strategic-merge patch ``{"spec": {"template": {..., "$patch": "replace"}}}`` that
restores the template; ``revision`` numbers grow by one per change and a rollback
re-numbers the old revision instead of creating a copy.

Invariants:
- Two revisions are equal when their data serialize to the same bytes
  (``hashing.go_json``); hash labels, when both parse as numbers, must agree too.
- Sorting is by revision number, then creation time, then name.
- Names are ``<owner>-<hash>`` with the owner name cut to 223 characters.
"""
from __future__ import annotations

import copy
import datetime

from pyk8s.api import meta as m

from . import hashing, podutil

CONTROLLER_REVISION_HASH = "controller-revision-hash"


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:223]}-{hash_}"


def template_patch(obj: dict) -> dict:
    """``getPatch``: the revision data that replaces ``spec.template`` on apply."""
    template = hashing.go_template(obj["spec"]["template"])
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def raw(revision: dict) -> bytes:
    """The revision data as bytes; nulls dropped, as storage drops them."""
    return hashing.go_json(hashing.drop_nulls(revision.get("data")))


def new_controller_revision(owner: dict, owner_kind: str, template_labels: dict | None,
                            data: dict, number: int, collision_count: int | None) -> dict:
    """``history.NewControllerRevision``: named and labelled by the hash of ``data``."""
    hash_ = hashing.hash_controller_revision(hashing.go_json(hashing.drop_nulls(data)), collision_count)
    labels = dict(template_labels or {})
    labels[CONTROLLER_REVISION_HASH] = hash_
    meta = owner["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": revision_name(meta["name"], hash_), "namespace": meta.get("namespace"),
                     "labels": labels,
                     "ownerReferences": [podutil.new_controller_ref(owner, "apps/v1", owner_kind)]},
        "data": data,
        "revision": number,
    }


def rename_for_collision(revision: dict, owner_name: str, collision_count: int) -> dict:
    """The same revision under the name the next collision count gives (labels unchanged)."""
    out = copy.deepcopy(revision)
    hash_ = hashing.hash_controller_revision(raw(revision), collision_count)
    out["metadata"]["name"] = revision_name(owner_name, hash_)
    return out


def _number(rev: dict) -> int:
    return int(rev.get("revision") or 0)


def sort_revisions(revisions: list[dict]) -> list[dict]:
    far = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
    return sorted(revisions, key=lambda r: (
        _number(r), podutil.parse_ts(r["metadata"].get("creationTimestamp")) or far,
        r["metadata"]["name"]))


def _hash_label(rev: dict) -> int | None:
    value = m.labels(rev).get(CONTROLLER_REVISION_HASH)
    try:
        return int(value, 10) & 0xFFFFFFFF if value is not None else None
    except ValueError:
        return None


def equal_revision(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    ha, hb = _hash_label(a), _hash_label(b)
    if ha is not None and hb is not None and ha != hb:
        return False
    return raw(a) == raw(b)


def find_equal_revisions(revisions: list[dict], needle: dict) -> list[dict]:
    return [r for r in revisions if equal_revision(r, needle)]


def next_revision(sorted_revisions: list[dict]) -> int:
    return _number(sorted_revisions[-1]) + 1 if sorted_revisions else 1


def max_revision(revisions: list[dict]) -> int:
    return max((_number(r) for r in revisions), default=0)


def apply_revision(obj: dict, revision: dict) -> dict:
    """The owner with the template the revision recorded (``ApplyRevision``)."""
    out = copy.deepcopy(obj)
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    (template.get("metadata") or {}).pop("creationTimestamp", None)
    out["spec"]["template"] = template
    return out
