"""Strategic merge patch, following apimachinery's ``util/strategicpatch/patch.go``.

Role: apply ``application/strategic-merge-patch+json`` bodies the way the API
server does (``kubectl apply`` client-side, ``kubectl edit``, ``kubectl patch``),
and create two-way and three-way patches the way kubectl does.

The patch metadata comes from the OpenAPI schema (``schemas.lookup_patch_meta``):
a list field with ``x-kubernetes-patch-strategy: merge`` is merged by its
``x-kubernetes-patch-merge-key`` (or as a set for primitives); ``retainKeys``
clears fields missing from ``$retainKeys``; ``replace`` replaces. Directives:
``$patch: replace|delete|merge``, ``$deleteFromPrimitiveList/<f>``,
``$setElementOrder/<f>``, ``$retainKeys``.

Invariants:
- Public functions never mutate their arguments (upstream does; we work on copies).
- Values compare as Go's ``interface{}`` do: ``1`` and ``1.0`` differ, so do
  ``true`` and ``1``.
- Errors raise ``PatchError`` with upstream's text and the status code the API
  server answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pyk8s.api import schemas
from pyk8s.api.patches import PatchError, clone

DIRECTIVE = "$patch"
DELETE, REPLACE, MERGE = "delete", "replace", "merge"
RETAIN_KEYS_STRATEGY = "retainKeys"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"

ERR_BAD_JSON_DOC = "invalid JSON document"
ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"
ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"

_BAD_REQUEST = {ERR_BAD_JSON_DOC, ERR_PRIMITIVE_LIST, ERR_RETAIN_KEYS, ERR_SET_ELEMENT_ORDER}


def _error(message: str) -> PatchError:
    """A PatchError with the status upstream's ``interpretPatchError`` gives it."""
    if message in _BAD_REQUEST:
        return PatchError(message, 400)
    if message == ERR_NO_LIST_OF_LISTS:
        return PatchError(message, 422)
    return PatchError(message, 500)


# --- Go formatting, for messages that quote values ---------------------------------

def _go_float(value: float) -> str:
    text = repr(value)
    if "e" not in text and "E" not in text:
        return text[:-2] if text.endswith(".0") else text
    mantissa, exp = text.split("e")
    exponent = int(exp)
    if -4 <= exponent < 21:
        digits = mantissa.replace(".", "").lstrip("-")
        point = exponent + 1
        body = digits + "0" * (point - len(digits)) if point >= len(digits) else (
            digits[:point] + "." + digits[point:])
        return ("-" if value < 0 else "") + body
    return f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def gofmt(value: Any) -> str:
    """Render a JSON value as Go's ``%v`` does for ``interface{}``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{gofmt(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(gofmt(v) for v in value) + "]"
    return str(value)


_GO_TYPES = {dict: "map[string]interface {}", list: "[]interface {}", str: "string",
             bool: "bool", int: "int64", float: "float64", type(None): "<nil>"}


def _bad_arg_type(expected: type, actual: Any) -> PatchError:
    return _error(f"expected a {_GO_TYPES[expected]}, but received a "
                  f"{_GO_TYPES.get(type(actual), type(actual).__name__)}")


def _no_merge_key(item: dict, key: str) -> PatchError:
    return _error(f"map: {gofmt(item)} does not contain declared merge key: {key}")


def _bad_patch_type(directive: Any, item: dict) -> PatchError:
    return _error(f"unknown patch type: {gofmt(directive)} in map: {gofmt(item)}")


# --- value helpers --------------------------------------------------------------

def _same(a: Any, b: Any) -> bool:
    """Go interface equality for scalars: same dynamic type and value."""
    return type(a) is type(b) and a == b


def _deep_same(a: Any, b: Any) -> bool:
    """Go's reflect.DeepEqual over decoded JSON."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_deep_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_deep_same(x, y) for x, y in zip(a, b))
    return a == b


def _hkey(value: Any) -> Any:
    return (type(value), value) if not isinstance(value, (dict, list)) else (type(value), id(value))


def _dedup_scalars(items: list) -> list:
    """Upstream's deduplicateScalars, including its reordering."""
    s = list(items)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if _same(s[i], s[j]):
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


def _sort_scalars(items: list) -> list:
    return sorted(items, key=gofmt)


def _element_kind(*lists: list) -> type:
    """The common element type of the lists (upstream's sliceElementType)."""
    kind = None
    for items in lists:
        for item in items:
            current = type(item)
            if kind is None:
                kind = current
                if kind is list:
                    raise _error(ERR_NO_LIST_OF_LISTS)
            elif kind is not current:
                raise _error("list element types are not identical: "
                             + gofmt([list(x) for x in lists]))
    if kind is None:
        raise _error("no elements in any of the given slices")
    return kind


def _extract_key(key: str, prefix: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise _error(ERR_PRIMITIVE_LIST if prefix == DELETE_FROM_PRIMITIVE_LIST
                     else ERR_SET_ELEMENT_ORDER)
    return rest


def _retain_keys_strategy(strategies: tuple[str, ...]) -> tuple[bool, str]:
    if not strategies:
        return False, ""
    if len(strategies) == 1:
        if strategies[0] == RETAIN_KEYS_STRATEGY:
            return True, ""
        return False, strategies[0]
    if len(strategies) == 2 and RETAIN_KEYS_STRATEGY in strategies:
        other = strategies[1] if strategies[0] == RETAIN_KEYS_STRATEGY else strategies[0]
        return True, other
    raise _error(f"unexpected patch strategy: {gofmt(list(strategies))}")


def _field_meta(node: dict | None, key: str) -> tuple[dict | None, str, str, bool]:
    """(sub-schema, strategy, merge key, retainKeys) of field ``key``."""
    sub, meta = schemas.lookup_patch_meta(node, key)
    retain, strategy = _retain_keys_strategy(meta.strategies)
    return sub, strategy, meta.merge_key, retain


# --- ordering -------------------------------------------------------------------

def _index(items: list, value: Any, merge_key: str, kind: type) -> int:
    if kind is dict:
        def get(item: Any) -> Any:
            return item.get(merge_key) if isinstance(item, dict) else None
    else:
        def get(item: Any) -> Any:
            return item
    wanted = get(value)
    for i, item in enumerate(items):
        if _same(get(item), wanted):
            return i
    return -1


def _validate_merge_key(merge_key: str, *lists: list) -> None:
    for items in lists:
        for item in items:
            if not isinstance(item, dict):
                raise _bad_arg_type(dict, item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)


def _split_deletes(items: list) -> tuple[list, list]:
    keep, delete = [], []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(dict, item)
        (delete if item.get(DIRECTIVE) == DELETE else keep).append(item)
    return keep, delete


def _normalize_slice_order(items: list, order: list, merge_key: str, kind: type) -> list:
    """Sort ``items`` by their position in ``order``; deletions go last."""
    delete: list = []
    if kind is dict:
        _validate_merge_key(merge_key, items, order)
        items, delete = _split_deletes(items)
    positions = [_index(order, item, merge_key, kind) for item in items]
    # Items not found in ``order`` (upstream's comparator is then inconsistent)
    # keep their relative order after the found ones.
    ranked = sorted(range(len(items)),
                    key=lambda i: (positions[i] < 0, positions[i], i))
    return [items[i] for i in ranked] + delete


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str,
                  kind: type) -> list:
    out, i, j = [], 0, 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, kind)
            ri = _index(server_order, right[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_element_order(patch: list, server_only: list, patch_order: list,
                             server_order: list, merge_key: str, kind: type) -> list:
    patch = _normalize_slice_order(patch, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    return _merge_sorted(server_only, patch, server_order, merge_key, kind)


def _find_by_key(items: list, merge_key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _error(f"value for key {i} is not a map.")
        if merge_key in item and _same(item[merge_key], value):
            return i
    return -1


def _partition(items: list, by: list, merge_key: str) -> tuple[list, list]:
    """Split ``items`` into those present in ``by`` and the others."""
    present, absent = [], []
    if not merge_key:
        keys = {_hkey(v) for v in by}
        for item in items:
            (present if _hkey(item) in keys else absent).append(item)
        return present, absent
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(dict, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        found = _find_by_key(by, merge_key, item[merge_key]) >= 0
        (present if found else absent).append(item)
    return present, absent


# --- merging (applying a patch) ------------------------------------------------------

@dataclass(frozen=True)
class _MergeOptions:
    merge_parallel_list: bool
    ignore_unmatched_nulls: bool


_SERVER = _MergeOptions(merge_parallel_list=True, ignore_unmatched_nulls=True)
_THREE_WAY = _MergeOptions(merge_parallel_list=False, ignore_unmatched_nulls=False)


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _directive_in_map(directive: Any, patch: dict) -> dict:
    if _same(directive, REPLACE):
        # Replace the whole map by the patch, without merging.
        del patch[DIRECTIVE]
        return patch
    if _same(directive, DELETE):
        return {}
    raise _bad_patch_type(directive, patch)


def _apply_retain_keys(original: dict, patch: dict, opts: _MergeOptions) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not opts.merge_parallel_list:
        # ``original`` is itself a patch: keep the directive, checking it agrees.
        if RETAIN_KEYS in original:
            if not _deep_same(original[RETAIN_KEYS], retain):
                raise _error(f"{gofmt(original[RETAIN_KEYS])} and {gofmt(retain)} are not "
                             "deep equal: this may happen when calculating the 3-way diff patch")
        else:
            original[RETAIN_KEYS] = retain
        return
    if not isinstance(retain, list):
        raise _error(ERR_RETAIN_KEYS)
    keep = {_hkey(k) for k in retain}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if _hkey(key) not in keep:
            raise _error(ERR_RETAIN_KEYS)
    for key in [k for k in original if _hkey(k) not in keep]:
        del original[key]


def _validate_with_order(patch_list: list | None, order: list, merge_key: str) -> None:
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        items, _ = _split_deletes(patch_list)
    p = o = 0
    while p < len(items) and o < len(order):
        if isinstance(items[p], dict) and DIRECTIVE in items[p]:
            p += 1
            continue
        if _key_equal(items[p], order[o], merge_key):
            p += 1
        o += 1
    if p < len(items) and o >= len(order):
        raise _error(f"The order in patch list:\n{gofmt(patch_list)}\n doesn't match "
                     f"{SET_ELEMENT_ORDER} list:\n{gofmt(order)}\n")


def _key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _same(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _bad_arg_type(dict, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return _same(left[merge_key], right[merge_key])


def _merge_set_element_order(original: dict, patch: dict, node: dict | None,
                             opts: _MergeOptions) -> None:
    """Process every ``$setElementOrder/<f>`` with the list it orders."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch[key]
        if not opts.merge_parallel_list:
            if key in original:
                if not _deep_same(original[key], order):
                    raise _error(ERR_SET_ELEMENT_ORDER)
            else:
                original[key] = order
        del patch[key]
        if not isinstance(order, list):
            raise _bad_arg_type(list, order)
        field = _extract_key(key, SET_ELEMENT_ORDER)
        found_original, found_patch = field in original, field in patch
        original_list = original.get(field) if found_original else []
        patch_list = patch.get(field) if found_patch else []
        if not isinstance(original_list, list):
            raise _bad_arg_type(list, original_list)
        if not isinstance(patch_list, list):
            raise _bad_arg_type(list, patch_list)
        sub, strategy, merge_key, _ = _field_meta(node, field)
        _validate_with_order(patch_list, order, merge_key)
        if found_original and found_patch:
            merged = _merge_slice_handler(original_list, patch_list, schemas.items_schema(sub),
                                          strategy, merge_key, False, opts)
        elif found_original:
            merged = original_list
        elif found_patch:
            merged = patch_list
        else:
            continue
        patch_items, server_only = _partition(merged, order, merge_key)
        kind = _element_kind(original_list, patch_list)
        original[field] = _normalize_element_order(
            patch_items, server_only, order, original_list, merge_key, kind)
        patch.pop(field, None)


def _merge_map(original: dict | None, patch: dict, node: dict | None,
               opts: _MergeOptions) -> dict:
    if DIRECTIVE in patch:
        return _directive_in_map(patch[DIRECTIVE], patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch, opts)
    _merge_set_element_order(original, patch, node, opts)
    for key, value in list(patch.items()):
        is_delete_list = False
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            if not opts.merge_parallel_list:
                original[key] = value
                continue
            key = _extract_key(key, DELETE_FROM_PRIMITIVE_LIST)
            is_delete_list = True
        if value is None:
            original.pop(key, None)
            if opts.ignore_unmatched_nulls:
                continue
        if key not in original or type(original[key]) is not type(value):
            if not is_delete_list:
                if opts.ignore_unmatched_nulls:
                    _discard_nulls(value)
                original[key] = value
            continue
        current = original[key]
        if isinstance(current, dict):
            sub, strategy, _, _ = _field_meta(node, key)
            original[key] = value if strategy == REPLACE else _merge_map(current, value, sub, opts)
        elif isinstance(current, list):
            sub, strategy, merge_key, _ = _field_meta(node, key)
            original[key] = _merge_slice_handler(current, value, schemas.items_schema(sub),
                                                 strategy, merge_key, is_delete_list, opts)
        else:
            original[key] = value
    return original


def _merge_slice_handler(original: list, patch: list, items: dict | None, strategy: str,
                         merge_key: str, is_delete_list: bool, opts: _MergeOptions) -> list:
    # Deletion lists are processed the same way whatever the field's strategy.
    if strategy == MERGE or is_delete_list:
        return _merge_slice(original, patch, items, merge_key, opts, is_delete_list)
    return patch


def _merge_special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    plain: list = []
    replace_all = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if _same(directive, DELETE):
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            while (at := _find_by_key(original, merge_key, item[merge_key])) >= 0:
                original = original[:at] + original[at + 1:]
        elif _same(directive, REPLACE):
            replace_all = True
        elif _same(directive, MERGE):
            raise _error("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_patch_type(directive, item)
    if replace_all:
        return plain, []
    return original, plain


def _merge_slice(original: list, patch: list, items: dict | None, merge_key: str,
                 opts: _MergeOptions, is_delete_list: bool) -> list:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind is not dict:
        if opts.merge_parallel_list and is_delete_list:
            drop = {_hkey(v) for v in patch}
            return [v for v in original if _hkey(v) not in drop]
        merged = _dedup_scalars(original + patch)
    else:
        if not merge_key:
            # Upstream names the Go kind of the element type: always a struct here.
            raise _error("cannot merge lists without merge key for struct")
        original, patch = _merge_special_elements(original, patch, merge_key)
        merged = list(original)
        for item in patch:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            at = _find_by_key(merged, merge_key, item[merge_key])
            if at >= 0:
                merged[at] = _merge_map(merged[at], item, items, opts)
            else:
                merged.append(item)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind)


def _schema_of(schema: dict | str | None) -> dict | None:
    if isinstance(schema, str):
        return schemas.schema(schema)
    return schema


def strategic_merge_patch(original: dict, patch: Any, schema: dict | str | None) -> dict:
    """Apply a strategic merge patch as the API server does (``StrategicMergeMapPatch``).

    ``schema`` is the kind's definition (name or schema); None merges without
    metadata, so lists are replaced.
    """
    if patch is None:
        return clone(original)
    if not isinstance(patch, dict):
        raise _error(ERR_BAD_JSON_DOC)
    return _merge_map(clone(original), clone(patch), _schema_of(schema), _SERVER)


# --- diffing (creating a patch) -------------------------------------------------------

@dataclass(frozen=True)
class _DiffOptions:
    set_element_order: bool = False
    ignore_changes_and_additions: bool = False
    ignore_deletions: bool = False
    build_retain_keys: bool = False


def _diff_maps(original: dict, modified: dict, node: dict | None, opts: _DiffOptions) -> dict:
    patch: dict = {}
    retain: list = []
    for key, new in modified.items():
        if opts.build_retain_keys and new is not None:
            retain.append(key)
        if key not in original:
            if not opts.ignore_changes_and_additions:
                patch[key] = new
            continue
        old = original[key]
        if key == DIRECTIVE:
            if not isinstance(old, str) or not isinstance(new, str):
                raise _error(f"invalid value for special key: {DIRECTIVE}")
            if old != new:
                patch[DIRECTIVE] = new
            continue
        if type(old) is not type(new):
            if not opts.ignore_changes_and_additions:
                patch[key] = new
            continue
        if isinstance(old, dict):
            _diff_map_field(key, old, new, patch, node, opts)
        elif isinstance(old, list):
            _diff_list_field(key, old, new, patch, node, opts)
        elif not opts.ignore_changes_and_additions and not _same(old, new):
            patch[key] = new
    if not opts.ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    if retain and (patch or any(v is not None and k not in modified for k, v in original.items())):
        patch[RETAIN_KEYS] = _sort_scalars(retain)
    return patch


def _diff_map_field(key: str, old: dict, new: dict, patch: dict, node: dict | None,
                    opts: _DiffOptions) -> None:
    sub, strategy, _, retain = _field_meta(node, key)
    opts = replace(opts, build_retain_keys=retain)
    if strategy == REPLACE:
        if not opts.ignore_changes_and_additions:
            patch[key] = new
        return
    value = _diff_maps(old, new, sub, opts)
    if value:
        patch[key] = value


def _diff_list_field(key: str, old: list, new: list, patch: dict, node: dict | None,
                     opts: _DiffOptions) -> None:
    sub, strategy, merge_key, retain = _field_meta(node, key)
    if strategy != MERGE:
        if not opts.ignore_changes_and_additions and not _deep_same(old, new):
            patch[key] = new
        return
    opts = replace(opts, build_retain_keys=retain)
    additions, deletions, order = _diff_lists(old, new, schemas.items_schema(sub), merge_key, opts)
    if additions:
        patch[key] = additions
    if deletions:
        patch[f"{DELETE_FROM_PRIMITIVE_LIST}/{key}"] = deletions
    if order:
        patch[f"{SET_ELEMENT_ORDER}/{key}"] = order


def _diff_lists(original: list, modified: list, items: dict | None, merge_key: str,
                opts: _DiffOptions) -> tuple[list, list, list]:
    if not original:
        if not modified or opts.ignore_changes_and_additions:
            return [], [], []
        return modified, [], []
    kind = _element_kind(original, modified)
    order: list = []
    if kind is dict:
        changes, deletions = _diff_lists_of_maps(original, modified, items, merge_key, opts)
        changes = _normalize_slice_order(changes, modified, merge_key, kind)
        order_same = len(original) == len(modified) and all(
            _key_equal(a, b, merge_key) for a, b in zip(original, modified))
        changes = changes + deletions
        if opts.set_element_order and (
                (not opts.ignore_changes_and_additions and (changes or not order_same))
                or (not opts.ignore_deletions and changes)):
            order = [{merge_key: item.get(merge_key)} for item in modified]
        return changes, [], order
    additions, deletions = _diff_lists_of_scalars(original, modified, opts)
    additions = _normalize_slice_order(additions, modified, merge_key, kind)
    if opts.set_element_order and (
            (not opts.ignore_deletions and deletions)
            or (not opts.ignore_changes_and_additions and not _deep_same(original, modified))):
        order = modified
    return additions, deletions, order


def _diff_lists_of_scalars(original: list, modified: list,
                           opts: _DiffOptions) -> tuple[list, list]:
    old, new = _sort_scalars(original), _sort_scalars(modified)
    additions, deletions = [], []
    i = j = 0
    while i < len(old) or j < len(new):
        if i < len(old) and j < len(new) and gofmt(old[i]) == gofmt(new[j]):
            i += 1
            j += 1
        elif i >= len(old) or (j < len(new) and gofmt(old[i]) > gofmt(new[j])):
            if not opts.ignore_changes_and_additions:
                additions.append(new[j])
            j += 1
        else:
            if not opts.ignore_deletions:
                deletions.append(old[i])
            i += 1
    return additions, _dedup_scalars(deletions)


def _key_and_item(items: list, index: int, merge_key: str) -> tuple[dict, Any]:
    item = items[index]
    if not isinstance(item, dict):
        raise _bad_arg_type(dict, item)
    if merge_key not in item:
        raise _no_merge_key(item, merge_key)
    return item, item[merge_key]


def _sort_maps(items: list, merge_key: str) -> list:
    if not items:
        return items
    _element_kind(items)
    return sorted(items, key=lambda m: gofmt(m.get(merge_key) if isinstance(m, dict) else m))


def _diff_lists_of_maps(original: list, modified: list, items: dict | None, merge_key: str,
                        opts: _DiffOptions) -> tuple[list, list]:
    old, new = _sort_maps(original, merge_key), _sort_maps(modified, merge_key)
    changes, deletions = [], []
    i = j = 0
    while i < len(old) or j < len(new):
        old_item = old_key = new_item = new_key = None
        if i < len(old):
            old_item, old_key = _key_and_item(old, i, merge_key)
        if j < len(new):
            new_item, new_key = _key_and_item(new, j, merge_key)
        both = i < len(old) and j < len(new)
        if both and gofmt(old_key) == gofmt(new_key):
            value = _diff_maps(old_item, new_item, items, opts)
            if value:
                value[merge_key] = new_key
                changes.append(value)
            i += 1
            j += 1
        elif i >= len(old) or (both and gofmt(old_key) > gofmt(new_key)):
            if not opts.ignore_changes_and_additions:
                changes.append(new_item)
            j += 1
        else:
            if not opts.ignore_deletions:
                deletions.append({merge_key: old_key, DIRECTIVE: DELETE})
            i += 1
    return changes, deletions


def create_two_way_merge_patch(original: dict, modified: dict,
                               schema: dict | str | None) -> dict:
    """The patch ``kubectl edit`` / ``kubectl patch`` would send (``CreateTwoWayMergePatch``)."""
    return _diff_maps(clone(original), clone(modified), _schema_of(schema),
                      _DiffOptions(set_element_order=True))


def create_three_way_merge_patch(original: dict | None, modified: dict, current: dict,
                                 schema: dict | str | None) -> dict:
    """The patch client-side ``kubectl apply`` sends (``CreateThreeWayMergePatch``).

    ``original`` is the last-applied configuration, ``modified`` the new one and
    ``current`` the live object. Conflicts are not checked (kubectl's default,
    ``--overwrite=true``).
    """
    node = _schema_of(schema)
    delta = _diff_maps(clone(current), clone(modified), node,
                       _DiffOptions(set_element_order=True, ignore_deletions=True))
    deletions = _diff_maps(clone(original or {}), clone(modified), node,
                           _DiffOptions(set_element_order=True, ignore_changes_and_additions=True))
    return _merge_map(deletions, delta, node, _THREE_WAY)
