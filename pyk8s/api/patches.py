"""The three PATCH flavours of the API, behind one entry point.

Role: name the patch content types, define ``PatchError`` (shared by
``jsonpatch``, ``mergepatch`` and ``strategicpatch``) and dispatch a PATCH body to
the right algorithm.

Invariants:
- No function here mutates its arguments: the patched object is a new dict.
- Every failure raises ``PatchError`` whose ``str()`` is upstream's message and
  whose ``code`` is the HTTP status the API server answers with (400 for a body
  that cannot be read, 422 for a patch that does not apply, 500 where upstream
  passes a raw error through).
"""

from __future__ import annotations

from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


class PatchError(Exception):
    """A patch could not be decoded or applied."""

    def __init__(self, message: str, code: int = 422):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


def clone(value: Any) -> Any:
    """Deep copy of a JSON value (dicts, lists, scalars), faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def apply_patch(original: dict, patch: Any, content_type: str, *,
                schema: dict | str | None = None) -> dict:
    """Apply a PATCH body of ``content_type`` to ``original``.

    ``schema`` (a definition name or schema) drives strategic merge patch; the
    API server refuses strategic merge patch for kinds without one (custom
    resources) before calling this.
    """
    from pyk8s.api import jsonpatch, mergepatch, strategicpatch

    if content_type == JSON_PATCH:
        return jsonpatch.apply_json_patch(original, patch)
    if content_type == MERGE_PATCH:
        result = mergepatch.apply_merge_patch(original, patch)
        if not isinstance(result, dict):
            raise PatchError("Invalid JSON Patch", 400)
        return result
    if content_type == STRATEGIC_MERGE_PATCH:
        return strategicpatch.strategic_merge_patch(original, patch, schema)
    raise PatchError(f"unsupported patch type: {content_type}", 415)
