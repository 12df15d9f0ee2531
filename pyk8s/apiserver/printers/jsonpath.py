"""The JSONPath subset CRD ``additionalPrinterColumns`` use, as client-go's jsonpath.

Role: find the values a CRD column's ``jsonPath`` names in an object. Pure
functions; a path is parsed once into steps and may be evaluated many times.

Supported: ``.field`` (``\\.`` escapes a dot in a key), ``['field']``, ``[n]``
(negative counts from the end), ``[a:b]``, ``[*]`` / ``.*``, ``..field`` (recursive
descent) and filters ``[?(@.path)]`` / ``[?(@.path OP literal)]`` with ``== != < <= > >=``
and string, number or boolean literals; an optional leading ``$``.

Invariants:

- missing keys and out-of-range indexes give no result (``AllowMissingKeys(true)``);
- fields are looked up only on objects, indexes only on lists; nothing maps over lists
  implicitly, as upstream;
- results keep document order; ``find`` never raises for a path ``parse`` accepted.
"""
from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from typing import Any


class JSONPathError(ValueError):
    """The path is outside the supported subset."""


@dataclass(frozen=True)
class _Step:
    kind: str  # field, index, slice, wildcard, recurse, filter
    arg: Any = None


_FILTER = re.compile(r"^@((?:\.[^\s=!<>]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError as err:
        raise JSONPathError(f"bad filter literal {text!r}") from err


def _read_name(path: str, pos: int) -> tuple[str, int]:
    out = []
    while pos < len(path) and path[pos] not in ".[":
        if path[pos] == "\\" and pos + 1 < len(path):
            pos += 1
        out.append(path[pos])
        pos += 1
    return "".join(out), pos


def _bracket(body: str) -> _Step:
    body = body.strip()
    if body == "*":
        return _Step("wildcard")
    if body.startswith("?(") and body.endswith(")"):
        match = _FILTER.match(body[2:-1].strip())
        if not match:
            raise JSONPathError(f"unsupported filter {body!r}")
        sub, op, lit = match.groups()
        return _Step("filter", (parse(sub) if sub else [], op, _literal(lit) if op else None))
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"":
        return _Step("field", body[1:-1])
    if ":" in body:
        start, _, end = body.partition(":")
        end = end.split(":")[0]
        return _Step("slice", (int(start) if start.strip() else None,
                               int(end) if end.strip() else None))
    try:
        return _Step("index", int(body))
    except ValueError as err:
        raise JSONPathError(f"unsupported subscript [{body}]") from err


def parse(path: str) -> list[_Step]:
    """Steps of ``path`` (with or without surrounding braces)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1].strip()
    if path.startswith("$"):
        path = path[1:]
    steps: list[_Step] = []
    pos = 0
    while pos < len(path):
        if path.startswith("..", pos):
            field, pos = _read_name(path, pos + 2)
            steps.append(_Step("recurse", field))
        elif path[pos] == ".":
            field, pos = _read_name(path, pos + 1)
            steps.append(_Step("wildcard") if field == "*" else _Step("field", field))
        elif path[pos] == "[":
            depth, end = 0, pos
            while end < len(path):
                depth += {"[": 1, "]": -1}.get(path[end], 0)
                if depth == 0:
                    break
                end += 1
            if end >= len(path):
                raise JSONPathError(f"unclosed [ in {path!r}")
            steps.append(_bracket(path[pos + 1:end]))
            pos = end + 1
        else:
            raise JSONPathError(f"unexpected {path[pos]!r} in {path!r}")
    return steps


def _children(value: Any) -> list:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


def _descend(value: Any, field: str) -> list:
    found = []
    if isinstance(value, dict) and field in value:
        found.append(value[field])
    for child in _children(value):
        found.extend(_descend(child, field))
    return found


_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


def _compare(left: Any, op: str, right: Any) -> bool:
    try:
        return bool(_OPS[op](left, right))
    except TypeError:
        return False


def _matches(item: Any, arg: tuple) -> bool:
    steps, op, literal = arg
    found = _evaluate(steps, [item])
    if op is None:
        return bool(found)
    return any(_compare(value, op, literal) for value in found)


def _apply(step: _Step, value: Any) -> list:
    if step.kind == "field":
        return [value[step.arg]] if isinstance(value, dict) and step.arg in value else []
    if step.kind == "wildcard":
        return _children(value)
    if step.kind == "recurse":
        return _descend(value, step.arg) if step.arg else _children(value)
    if not isinstance(value, list):
        return []
    if step.kind == "index":
        return [value[step.arg]] if -len(value) <= step.arg < len(value) else []
    if step.kind == "slice":
        return value[step.arg[0]:step.arg[1]]
    return [item for item in value if _matches(item, step.arg)]


def _evaluate(steps: list[_Step], values: list) -> list:
    for step in steps:
        values = [found for value in values for found in _apply(step, value)]
    return values


def find(path: str | list[_Step], obj: Any) -> list:
    """Every value ``path`` selects in ``obj``, in document order."""
    steps = parse(path) if isinstance(path, str) else path
    return _evaluate(steps, [obj])
