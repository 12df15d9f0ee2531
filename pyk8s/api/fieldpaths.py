"""Field paths and field sets, as structured-merge-diff's ``fieldpath`` package.

Role: the vocabulary of server-side apply. A path element selects one child of a
value: a field of a map (``f:name``), an item of an associative list by its keys
(``k:{"name":"web"}``), an item of a set by its value (``v:"x"``) or an item by its
index (``i:0``). A ``FieldSet`` is a tree of such paths; ``FieldsV1`` is its JSON
form in ``metadata.managedFields``.

Invariants:
- A path element is a plain tuple whose natural order is upstream's
  ``PathElement.Compare``: fields < keys < values < indexes, fields by name, keys
  field by field, values by upstream's value order (numbers < strings < booleans <
  lists < maps < null). Equal JSON values give equal elements (``1 == 1.0``;
  ``true`` is never ``1``).
- A ``FieldSet`` has ``members`` (paths that are in the set) and ``children``
  (subsets below an element). A child subset is never empty. Sets returned by the
  operations are new objects that may share unchanged subtrees with their inputs;
  only ``insert`` mutates, and only on sets being built.
- ``to_fields_v1`` emits keys in element order with ``"."`` first when a node is
  both a member and a parent, exactly as upstream serializes; ``from_fields_v1``
  reads what upstream reads (unknown element types are skipped).
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterator

FIELD, KEY, VALUE, INDEX = 0, 1, 2, 3
_NUMBER, _STRING, _BOOL, _LIST, _MAP, _NULL = 0, 1, 2, 3, 4, 5

PathElement = tuple  # (FIELD, name) | (KEY, ((name, canon), ...)) | (VALUE, canon) | (INDEX, n)
Path = tuple  # tuple of PathElement


class FieldPathError(ValueError):
    """A FieldsV1 document or path element that cannot be read."""


# --- values -------------------------------------------------------------------------

def canon(value: Any) -> tuple:
    """A JSON value as a hashable tuple ordered as upstream's ``value.Compare``."""
    if value is None:
        return (_NULL,)
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
            value = int(value)
        return (_NUMBER, value)
    if isinstance(value, str):
        return (_STRING, value)
    if isinstance(value, list):
        return (_LIST, tuple(canon(v) for v in value))
    if isinstance(value, dict):
        return (_MAP, tuple(sorted((k, canon(v)) for k, v in value.items())))
    raise TypeError(f"not a JSON value: {value!r}")


def uncanon(c: tuple) -> Any:
    """The JSON value of a canonical tuple."""
    tag = c[0]
    if tag == _NULL:
        return None
    if tag == _LIST:
        return [uncanon(v) for v in c[1]]
    if tag == _MAP:
        return {k: uncanon(v) for k, v in c[1]}
    return c[1]


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, sorted keys, HTML-safe."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True,
                      allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_string(value: Any) -> str:
    """``value.ToString``: how a value appears inside a printed path."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={go_string(v)}" for k, v in sorted(value.items()))
    return "{{undefined}}"


def _go_float(f: float) -> str:
    """Go's ``%v`` of a float64 (the shortest 'g' form, exponent from 1e21)."""
    if math.isinf(f) or math.isnan(f):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(f, "NaN")
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    text = repr(f)
    if "e" in text:
        mant, _, exp = text.partition("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mant}e{sign}{exp.lstrip('+-').zfill(2)}"
    return text


# --- path elements ------------------------------------------------------------------

def field(name: str) -> PathElement:
    return (FIELD, name)


def key(fields: dict[str, Any]) -> PathElement:
    return (KEY, tuple(sorted((k, canon(v)) for k, v in fields.items())))


def value(v: Any) -> PathElement:
    return (VALUE, canon(v))


def index(i: int) -> PathElement:
    return (INDEX, i)


def serialize(pe: PathElement) -> str:
    """The FieldsV1 key of a path element (``f:name``, ``k:{...}``, ``v:...``, ``i:N``)."""
    kind = pe[0]
    if kind == FIELD:
        return "f:" + pe[1]
    if kind == KEY:
        body = ",".join(go_json(n) + ":" + go_json(uncanon(c)) for n, c in pe[1])
        return "k:{" + body + "}"
    if kind == VALUE:
        return "v:" + go_json(uncanon(pe[1]))
    return f"i:{pe[1]}"


def deserialize(text: str) -> PathElement | None:
    """A FieldsV1 key as a path element; None for element types this version ignores."""
    if len(text) < 2:
        raise FieldPathError("key must be 2 characters long:")
    if text[1] != ":":
        raise FieldPathError(f"missing colon: {text}")
    kind, body = text[0], text[2:]
    if kind == "f":
        return (FIELD, body)
    if kind == "i":
        try:
            return (INDEX, int(body))
        except ValueError:
            raise FieldPathError(f'strconv.Atoi: parsing "{body}": invalid syntax') from None
    if kind not in "vk":
        return None
    try:
        parsed = json.loads(body)
    except ValueError as err:
        raise FieldPathError(f"parsing key as path element: {err}") from None
    if kind == "v":
        return value(parsed)
    if not isinstance(parsed, dict):
        raise FieldPathError("parsing key as path element: expected a JSON object")
    return key(parsed)


def element_string(pe: PathElement) -> str:
    """``PathElement.String``: ``.name``, ``[name="web"]``, ``[="x"]``, ``[0]``."""
    kind = pe[0]
    if kind == FIELD:
        return "." + pe[1]
    if kind == KEY:
        return "[" + ",".join(f"{n}={go_string(uncanon(c))}" for n, c in pe[1]) + "]"
    if kind == VALUE:
        return f"[={go_string(uncanon(pe[1]))}]"
    return f"[{pe[1]}]"


def path_string(path: Path) -> str:
    """``Path.String``: ``.spec.template.spec.containers[name="web"].image``."""
    return "".join(element_string(pe) for pe in path)


# --- sets ---------------------------------------------------------------------------

class FieldSet:
    """A set of field paths (see the module invariants)."""

    __slots__ = ("members", "children")

    def __init__(self, members: set | None = None, children: dict | None = None):
        self.members: set = members if members is not None else set()
        self.children: dict[PathElement, FieldSet] = children if children is not None else {}

    @classmethod
    def of(cls, *paths: Path) -> "FieldSet":
        s = cls()
        for p in paths:
            s.insert(p)
        return s

    def insert(self, path: Path) -> None:
        """Add ``path`` (its parents are not added). The empty path is ignored."""
        if not path:
            return
        node = self
        for pe in path[:-1]:
            child = node.children.get(pe)
            if child is None:
                child = node.children[pe] = FieldSet()
            node = child
        node.members.add(path[-1])

    def has(self, path: Path) -> bool:
        if not path:
            return False
        node: FieldSet | None = self
        for pe in path[:-1]:
            node = node.children.get(pe)
            if node is None:
                return False
        return path[-1] in node.members

    def empty(self) -> bool:
        return not self.members and not self.children

    def __bool__(self) -> bool:
        return not self.empty()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FieldSet) and self.members == other.members
                and self.children == other.children)

    def __repr__(self) -> str:
        return f"FieldSet({[path_string(p) for p in self.paths()]})"

    def with_prefix(self, pe: PathElement) -> "FieldSet":
        return self.children.get(pe) or FieldSet()

    def union(self, other: "FieldSet") -> "FieldSet":
        children = dict(self.children)
        for pe, sub in other.children.items():
            mine = children.get(pe)
            children[pe] = sub if mine is None else mine.union(sub)
        return FieldSet(self.members | other.members, children)

    def intersection(self, other: "FieldSet") -> "FieldSet":
        children = {}
        for pe, sub in self.children.items():
            theirs = other.children.get(pe)
            if theirs is not None:
                both = sub.intersection(theirs)
                if both:
                    children[pe] = both
        return FieldSet(self.members & other.members, children)

    def difference(self, other: "FieldSet") -> "FieldSet":
        """Members of ``self`` not in ``other``, node by node (a parent member of
        ``other`` does not remove the children of ``self`` below it)."""
        children = {}
        for pe, sub in self.children.items():
            theirs = other.children.get(pe)
            if theirs is None:
                children[pe] = sub
            else:
                rest = sub.difference(theirs)
                if rest:
                    children[pe] = rest
        return FieldSet(self.members - other.members, children)

    def recursive_difference(self, other: "FieldSet") -> "FieldSet":
        """As ``difference``, but a member of ``other`` also removes everything below it."""
        children = {}
        for pe, sub in self.children.items():
            if pe in other.members:
                continue
            theirs = other.children.get(pe)
            if theirs is None:
                children[pe] = sub
            else:
                rest = sub.recursive_difference(theirs)
                if rest:
                    children[pe] = rest
        return FieldSet(self.members - other.members, children)

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every member path, members before children at each level, in element order."""
        for pe in sorted(self.members):
            yield prefix + (pe,)
        for pe in sorted(self.children):
            yield from self.children[pe].paths(prefix + (pe,))


# --- FieldsV1 -------------------------------------------------------------------------

def to_fields_v1(s: FieldSet) -> dict:
    """The FieldsV1 document of a set (a JSON object)."""
    return _emit(s, include_self=False)


def _emit(s: FieldSet, include_self: bool) -> dict:
    out: dict[str, Any] = {}
    if include_self and not s.empty():
        out["."] = {}
    for pe in sorted(s.members | s.children.keys()):
        sub = s.children.get(pe)
        out[serialize(pe)] = {} if sub is None else _emit(sub, pe in s.members)
    return out


def from_fields_v1(doc: Any) -> FieldSet:
    """Read a FieldsV1 document; ``FieldPathError`` if it is malformed."""
    if not isinstance(doc, dict):
        raise FieldPathError("FieldsV1 must be a JSON object")
    found, _ = _read(doc)
    return found or FieldSet()


def _read(doc: dict) -> tuple[FieldSet | None, bool]:
    children: FieldSet | None = None
    is_member = False
    for text, sub in doc.items():
        if text == ".":
            is_member = True
            continue
        pe = deserialize(text)
        if pe is None:
            continue
        if not isinstance(sub, dict):
            raise FieldPathError(f"parsing key as path element: {text} is not an object")
        grand, child_member = _read(sub)
        if children is None:
            children = FieldSet()
        if child_member:
            children.members.add(pe)
        if grand is not None and not grand.empty():
            children.children[pe] = grand
    if children is None:
        is_member = True
    return children, is_member
