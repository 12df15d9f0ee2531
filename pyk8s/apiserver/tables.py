"""Server-side Table conversion (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``).

Role: turn objects of one resource into a ``meta.k8s.io/v1`` Table the way
kube-apiserver does, so the real ``kubectl get`` prints what it prints against
Kubernetes: the built-in printers (``pyk8s.apiserver.printers``) for kinds upstream
has a handler for, upstream's default convertor (Name, Created At) for the rest,
and the CRD convertor (``additionalPrinterColumns``, default Age) for custom
resources. Pure functions: the caller passes ``now``; nothing here reads a clock,
a file or the store.

Invariants:

- column definitions always carry ``name``, ``type``, ``format``, ``description`` and
  ``priority``; rows are always wide (the server prints with ``Wide: true``) and have
  one cell per column, kubectl hides priority-1 columns itself;
- ``includeObject``: ``Metadata`` (the default, also for an empty value) puts a ``PartialObjectMetadata`` in each
  row, ``Object`` the object itself, ``None`` a null object, as upstream;
- ``plural`` may name a subresource: ``<plural>/status`` prints like its parent,
  ``<plural>/scale`` as upstream's Scale printer, any other with the default convertor.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable

from pyk8s.registry import catalogue

from .printers import PRINTERS, Column, Printer
from .printers import jsonpath
from .printers.common import (
    doc, human_duration, name, parse_time, short_human_duration,
)

__all__ = [
    "build_table", "column_definitions", "custom_column_definitions", "custom_columns",
    "human_duration", "row_cells", "short_human_duration",
]

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT = ("None", "Metadata", "Object")

_KIND_BY_PLURAL = {(r.group, r.plural): r.kind for r in catalogue.RESOURCES}


def _default_row(obj: dict, now: datetime) -> list:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    if created is None:
        return [name(obj), "0001-01-01T00:00:00Z"]
    t = created.astimezone(timezone.utc)
    return [name(obj), f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"]


# upstream rest.DefaultTableConvertor, for kinds without a printer handler.
DEFAULT_PRINTER = Printer((
    Column("Name", format="name", description=doc("ObjectMeta.name")),
    Column("Created At", "date", doc("ObjectMeta.creationTimestamp")),
), _default_row)


def printer_for(group: str, plural: str) -> Printer:
    """The printer upstream's table convertor uses for ``group``/``plural``."""
    resource, _, sub = plural.partition("/")
    if sub == "scale":
        return PRINTERS["Scale"]
    if sub and sub != "status":
        return DEFAULT_PRINTER
    kind = _KIND_BY_PLURAL.get((group, resource))
    return PRINTERS.get(kind, DEFAULT_PRINTER) if kind else DEFAULT_PRINTER


def column_definitions(group: str, plural: str) -> list[dict]:
    """The ``columnDefinitions`` of a built-in resource's Table."""
    return [column.as_dict() for column in printer_for(group, plural).columns]


def row_cells(group: str, plural: str, obj: dict, now: datetime) -> list:
    """The cells of one object's row, one per column of ``column_definitions``."""
    return printer_for(group, plural).row(obj, now)


# -- custom resources ----------------------------------------------------------------

def _crd_columns(additional_printer_columns: list[dict] | None) -> list[dict]:
    # upstream serves an Age column when a CRD version declares none.
    if not additional_printer_columns:
        return [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                 "description": doc("ObjectMeta.creationTimestamp")}]
    return list(additional_printer_columns)


def custom_column_definitions(additional_printer_columns: list[dict] | None) -> list[dict]:
    """Name, then one column per ``additionalPrinterColumns`` entry (Age when none)."""
    columns = [Column("Name", format="name", description=doc("ObjectMeta.name")).as_dict()]
    for col in _crd_columns(additional_printer_columns):
        path = col.get("jsonPath", "")
        columns.append(Column(
            col.get("name", ""), col.get("type", ""),
            col.get("description") or f"Custom resource definition column (in JSONPath format): {path}",
            col.get("priority", 0), col.get("format", ""),
        ).as_dict())
    return columns


def _go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent outside [1e-4, 1e21)."""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        exponent = int(text.split("e")[1])
        if -4 <= exponent < 21:
            return format(float(text), "f").rstrip("0").rstrip(".")
    return text


def _go_json(value: Any) -> str:
    """``json.Marshal``: compact, map keys sorted, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _print_result(value: Any) -> str:
    """client-go jsonpath ``PrintResults`` of one value."""
    if isinstance(value, (dict, list)):
        return _go_json(value)
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _typed_cell(kind: str, value: Any, now: datetime) -> Any:
    """upstream ``cellForJSONValue``: the value as the column's type, else null."""
    if value is None or (isinstance(value, bool) and kind in ("integer", "number")):
        return None
    if kind == "integer" and isinstance(value, (int, float)):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        if value in ("", "null"):
            return "<unknown>"
        stamp = parse_time(value)
        if stamp is None:
            # The zero time parses but means "unset"; anything else unparsable is invalid.
            return "<unknown>" if value.startswith("0001-01-01T00:00:00") else "<invalid>"
        return short_human_duration(now - stamp)
    return None


def custom_columns(additional_printer_columns: list[dict] | None, obj: dict,
                   now: datetime) -> list:
    """One custom resource's row: its name, then a cell per printer column.

    A column whose path finds nothing, or whose value does not fit its type, is null;
    ``date`` columns print the time since the value as upstream's ShortHumanDuration.
    """
    cells: list[Any] = [name(obj)]
    for col in _crd_columns(additional_printer_columns):
        try:
            found = jsonpath.find(col.get("jsonPath", ""), obj)
        except jsonpath.JSONPathError:
            found = []
        if not found:
            cells.append(None)
        elif col.get("type") == "string":
            cells.append(_print_result(found[0]))
        else:
            cells.append(_typed_cell(col.get("type", ""), found[0], now))
    return cells


# -- tables --------------------------------------------------------------------------

def _row_object(obj: dict, include_object: str) -> dict | None:
    if include_object == "Object":
        return obj
    if include_object == "None":
        return None
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION,
            "metadata": obj.get("metadata") or {}}


def build_table(
    group: str,
    plural: str,
    objects: Iterable[dict],
    *,
    now: datetime,
    include_object: str = "Metadata",
    printer_columns: list[dict] | None = None,
    list_metadata: dict | None = None,
) -> dict:
    """A full ``meta.k8s.io/v1`` Table of ``objects``.

    ``printer_columns`` given (even empty) means a custom resource: its CRD version's
    ``additionalPrinterColumns``. ``list_metadata`` (``resourceVersion``, ``continue``,
    ``remainingItemCount``) is copied into the Table's metadata.
    """
    include_object = include_object or "Metadata"
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}")
    if printer_columns is not None:
        columns = custom_column_definitions(printer_columns)
        cells_of = lambda obj: custom_columns(printer_columns, obj, now)  # noqa: E731
        conditions_of = None
    else:
        printer = printer_for(group, plural)
        columns = [column.as_dict() for column in printer.columns]
        cells_of = lambda obj: printer.row(obj, now)  # noqa: E731
        conditions_of = printer.conditions
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells_of(obj)}
        conditions = conditions_of(obj) if conditions_of else []
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(obj, include_object)
        rows.append(row)
    return {"kind": "Table", "apiVersion": TABLE_API_VERSION,
            "metadata": dict(list_metadata or {}), "columnDefinitions": columns, "rows": rows}
