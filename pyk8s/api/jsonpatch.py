"""RFC 6902 JSON patch, with the semantics of ``evanphx/json-patch`` v4 used upstream.

Role: apply ``application/json-patch+json`` bodies (``kubectl patch --type=json``).

Invariants:
- The input document is never mutated; a patched copy is returned.
- Upstream quirks are kept on purpose, because clients rely on them: ``replace``
  of a missing object key adds it, negative array indexes count from the end, a
  ``test`` against a missing key passes only for a ``null`` value.
- Errors raise ``PatchError`` with upstream's message, e.g.
  ``add operation does not apply: doc is missing path: "/spec/x": missing value``.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.patches import PatchError, clone

MAX_OPERATIONS = 10000

_MISSING = "missing value"
_INVALID_INDEX = "invalid index referenced"
_TEST_FAILED = "test failed"


class _Container:
    """A dict or list in the document, addressed by a decoded pointer token."""

    def __init__(self, node: dict | list):
        self.node = node

    def _index(self, key: str, *, size: int) -> int:
        digits = key[1:] if key[:1] in ("+", "-") else key
        if not (digits.isascii() and digits.isdigit()):
            raise PatchError(f'strconv.Atoi: parsing "{key}": invalid syntax')
        idx = int(key)
        if idx < 0:
            if idx < -size:
                raise PatchError(f"Unable to access invalid index: {idx}: {_INVALID_INDEX}")
            idx += size
        if idx >= size:
            raise PatchError(f"Unable to access invalid index: {idx}: {_INVALID_INDEX}")
        return idx

    def get(self, key: str) -> Any:
        if isinstance(self.node, dict):
            return self.node.get(key)
        return self.node[self._index(key, size=len(self.node))]

    def has(self, key: str) -> bool:
        return key in self.node if isinstance(self.node, dict) else True

    def set(self, key: str, value: Any) -> None:
        if isinstance(self.node, dict):
            self.node[key] = value
        else:
            self.node[self._index(key, size=len(self.node))] = value

    def add(self, key: str, value: Any) -> None:
        if isinstance(self.node, dict):
            self.node[key] = value
        elif key == "-":
            self.node.append(value)
        else:
            try:
                idx = self._index(key, size=len(self.node) + 1)
            except PatchError as e:
                if "invalid syntax" in str(e):
                    raise PatchError(f"value was not a proper array index: '{key}': {e}") from None
                raise
            self.node.insert(idx, value)

    def remove(self, key: str) -> None:
        if isinstance(self.node, dict):
            if key not in self.node:
                raise PatchError(f"Unable to remove nonexistent key: {key}: {_MISSING}")
            del self.node[key]
        else:
            del self.node[self._index(key, size=len(self.node))]


def _decode_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _find(doc: dict | list, path: str) -> tuple[_Container | None, str]:
    """The container holding the last token of ``path``, or (None, "")."""
    split = path.split("/")
    if len(split) < 2:
        return None, ""
    node: Any = doc
    for part in split[1:-1]:
        try:
            node = _Container(node).get(_decode_token(part))
        except PatchError:
            return None, ""
        if not isinstance(node, (dict, list)):
            return None, ""
    return _Container(node), _decode_token(split[-1])


def _path(op: dict, name: str, verb: str) -> str:
    value = op.get(name)
    if not isinstance(value, str):
        what = "path" if name == "path" else "from"
        raise PatchError(f"{verb} operation failed to decode {what}: {_MISSING}")
    return value


def _wrap(err: PatchError, prefix: str) -> PatchError:
    return PatchError(f"{prefix}: {err}")


def _add(doc: Any, op: dict) -> None:
    path = _path(op, "path", "add")
    con, key = _find(doc, path)
    if con is None:
        raise PatchError(f'add operation does not apply: doc is missing path: "{path}": {_MISSING}')
    try:
        con.add(key, clone(op.get("value")))
    except PatchError as e:
        raise _wrap(e, f"error in add for path: '{path}'") from None


def _remove(doc: Any, op: dict) -> None:
    path = _path(op, "path", "remove")
    con, key = _find(doc, path)
    if con is None:
        raise PatchError(
            f'remove operation does not apply: doc is missing path: "{path}": {_MISSING}')
    try:
        con.remove(key)
    except PatchError as e:
        raise _wrap(e, f"error in remove for path: '{path}'") from None


def _replace(doc: Any, op: dict) -> None:
    path = _path(op, "path", "replace")
    con, key = _find(doc, path)
    if con is None:
        raise PatchError(f"replace operation does not apply: doc is missing path: {path}: {_MISSING}")
    try:
        con.get(key)
    except PatchError:
        raise PatchError(
            f"replace operation does not apply: doc is missing key: {path}: {_MISSING}") from None
    # Upstream v4 quirk: a missing object key is simply set, like "add".
    con.set(key, clone(op.get("value")))


def _move(doc: Any, op: dict) -> None:
    source = _path(op, "from", "move")
    con, key = _find(doc, source)
    if con is None:
        raise PatchError(
            f"move operation does not apply: doc is missing from path: {source}: {_MISSING}")
    try:
        value = con.get(key)
        con.remove(key)
    except PatchError as e:
        raise _wrap(e, f"error in move for path: '{key}'") from None
    path = _path(op, "path", "move")
    con, key = _find(doc, path)
    if con is None:
        raise PatchError(
            f"move operation does not apply: doc is missing destination path: {path}: {_MISSING}")
    try:
        con.add(key, value)
    except PatchError as e:
        raise _wrap(e, f"error in move for path: '{path}'") from None


def _copy(doc: Any, op: dict) -> None:
    source = _path(op, "from", "copy")
    con, key = _find(doc, source)
    if con is None:
        raise PatchError(
            f"copy operation does not apply: doc is missing from path: {source}: {_MISSING}")
    try:
        value = con.get(key)
    except PatchError as e:
        raise _wrap(e, f"error in copy for from: '{source}'") from None
    path = _path(op, "path", "copy")
    con, key = _find(doc, path)
    if con is None:
        raise PatchError(
            f"copy operation does not apply: doc is missing destination path: {path}: {_MISSING}")
    try:
        con.add(key, clone(value))
    except PatchError as e:
        raise _wrap(e, "error while adding value during copy") from None


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(json_equal(a[k], b[k]) for k in a))
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(json_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _test(doc: Any, op: dict) -> None:
    path = _path(op, "path", "test")
    expected = op.get("value")
    if path == "":
        if json_equal(doc, expected):
            return
        raise PatchError(f"testing value {path} failed: {_TEST_FAILED}")
    con, key = _find(doc, path)
    if con is None:
        raise PatchError(f"test operation does not apply: is missing path: {path}: {_MISSING}")
    try:
        actual = con.get(key)
    except PatchError as e:
        raise _wrap(e, f"error in test for path: '{path}'") from None
    if actual is None:
        if expected is None:
            return
        raise PatchError(f"testing value {path} failed: {_TEST_FAILED}")
    if not json_equal(actual, expected):
        raise PatchError(f"testing value {path} failed: {_TEST_FAILED}")


_OPS = {"add": _add, "remove": _remove, "replace": _replace, "move": _move,
        "copy": _copy, "test": _test}


def decode_json_patch(patch: Any) -> list[dict]:
    """Check the shape of a decoded JSON patch body (400 when wrong)."""
    if not isinstance(patch, list):
        kind = "object" if isinstance(patch, dict) else type(patch).__name__
        kind = {"str": "string", "int": "number", "float": "number", "bool": "bool",
                "NoneType": "null"}.get(kind, kind)
        raise PatchError(
            f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch", 400)
    for op in patch:
        if not isinstance(op, dict):
            raise PatchError(
                "json: cannot unmarshal non-object into Go value of type jsonpatch.Operation", 400)
    if len(patch) > MAX_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, "
            f"got: {len(patch)}", 422)
    return patch


def apply_json_patch(doc: Any, patch: Any) -> Any:
    """Apply the operations of ``patch`` in order to a copy of ``doc``."""
    ops = decode_json_patch(patch)
    result = clone(doc)
    for op in ops:
        kind = op.get("op")
        handler = _OPS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise PatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
        handler(result, op)
    return result
