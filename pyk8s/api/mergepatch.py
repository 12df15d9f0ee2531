"""RFC 7386 JSON merge patch, as ``evanphx/json-patch`` v4's ``MergePatch`` upstream.

Role: apply ``application/merge-patch+json`` bodies (``kubectl patch --type=merge``,
and every patch to a custom resource) and compute such a patch between two
documents.

Invariants:
- Inputs are never mutated.
- ``null`` in the patch deletes the key; a non-object patch value replaces the
  target; nulls inside newly added objects are pruned (lists keep null items).
- ``apply_merge_patch(a, create_merge_patch(a, b)) == b`` for JSON objects ``b``
  without null values.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.patches import PatchError, clone


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) if v is not None else None for v in value]
    return value


def _merge(current: Any, patch: Any) -> Any:
    if not isinstance(current, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        # Upstream returns a non-object patch value as is, without pruning.
        return clone(patch)
    _merge_docs(current, patch)
    return current


def _merge_docs(doc: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif doc.get(key) is None:
            doc[key] = _prune_nulls(value)
        else:
            doc[key] = _merge(doc[key], value)


def apply_merge_patch(original: Any, patch: Any) -> Any:
    """Apply a merge patch; raise ``PatchError`` for a body that is no patch."""
    if patch is None:
        raise PatchError("Invalid JSON Patch", 400)
    if not isinstance(patch, dict):
        if isinstance(patch, list):
            return _prune_nulls(patch)
        raise PatchError("Invalid JSON Patch", 400)
    if not isinstance(original, dict):
        return _prune_nulls(patch)
    result = clone(original)
    _merge_docs(result, patch)
    return result


def create_merge_patch(original: dict, modified: dict) -> dict:
    """The smallest merge patch turning ``original`` into ``modified``."""
    patch: dict = {}
    for key, value in original.items():
        if key not in modified:
            patch[key] = None
    for key, value in modified.items():
        old = original.get(key, _ABSENT)
        if old is _ABSENT or type(old) is not type(value):
            patch[key] = clone(value)
        elif isinstance(value, dict):
            sub = create_merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif old != value:
            patch[key] = clone(value)
    return patch


_ABSENT = object()
