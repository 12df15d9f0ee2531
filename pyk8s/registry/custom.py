"""Custom resources: the strategy a CRD's openAPIV3Schema drives.

Validation compiles the structural schema to JSON Schema for jsonschema-rs;
pruning drops fields the schema does not declare (unless
``x-kubernetes-preserve-unknown-fields``); defaults fill missing fields from the
schema's ``default`` values, after pruning, as upstream orders them.
"""
from __future__ import annotations

import functools
from typing import Any

import jsonschema_rs
import orjson

from ..api import validation
from .catalogue import ResourceInfo
from .strategy import Strategy

ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema (nullable, int-or-string)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {pk: to_json_schema(pv) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = to_json_schema(v) if isinstance(v, (dict, list)) else v
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [to_json_schema(x) for x in v]
        elif k.startswith("x-kubernetes-") or k in ("nullable", "default", "example",
                                                     "externalDocs", "description"):
            continue
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    # Formats are advisory upstream (unknown formats are ignored).
    out.pop("format", None)
    return out


@functools.lru_cache(maxsize=256)
def _compiled(schema_json: bytes):
    schema = orjson.loads(schema_json)
    schema = to_json_schema(schema)
    props = schema.setdefault("properties", {})
    props.pop("metadata", None)
    for f in ("apiVersion", "kind"):
        props.pop(f, None)
    return jsonschema_rs.validator_for(schema)


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _go(value: Any) -> str:
    return validation.go_value(value) if not isinstance(value, str) else f'"{value}"'


def unknown_paths(obj: Any, schema: dict | None, prefix: tuple = ()) -> list[str]:
    """Paths of fields the structural schema does not declare."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out: list[str] = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        for k, v in obj.items():
            if not prefix and k in ROOT_FIELDS:
                continue
            if props is not None and k in props:
                out += unknown_paths(v, props[k], prefix + (k,))
            elif isinstance(addl, dict):
                out += unknown_paths(v, addl, prefix + (k,))
            elif props is not None or addl is False or schema.get("type") == "object":
                if addl is True:
                    continue
                out.append(_path(prefix + (k,)))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            out += unknown_paths(v, schema["items"], prefix + (i,))
    return out


def apply_defaults(obj: Any, schema: dict | None) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(obj, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k not in obj and isinstance(sub, dict) and "default" in sub:
                obj[k] = orjson.loads(orjson.dumps(sub["default"]))
            if k in obj:
                apply_defaults(obj[k], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k, v in obj.items():
                if k not in (schema.get("properties") or {}):
                    apply_defaults(v, addl)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for v in obj:
            apply_defaults(v, schema["items"])


class CustomResourceStrategy(Strategy):
    def __init__(self, info: ResourceInfo, version: str, kind: str, *,
                 schema: dict | None, scale: dict | None = None,
                 printer_columns: list[dict] | None = None):
        super().__init__(info, version, kind)
        self.schema = schema or {"type": "object",
                                 "x-kubernetes-preserve-unknown-fields": True}
        self.schema_json = orjson.dumps(self.schema, option=orjson.OPT_SORT_KEYS)
        self.scale = scale
        self.printer_columns = printer_columns or []
        self.has_generation = True

    def check_schema(self, obj: dict):
        causes = []
        for err in _compiled(self.schema_json).iter_errors(obj):
            field = _path(list(err.instance_path))
            kind = err.kind.name
            detail = err.kind.as_dict()
            if kind == "required":
                f = _path(list(err.instance_path) + [detail["property"]])
                causes.append({"reason": "FieldValueRequired", "message": "Required value",
                               "field": f})
            elif kind == "enum":
                opts = ", ".join(_go(o) for o in detail.get("options", []))
                causes.append({"reason": "FieldValueNotSupported",
                               "message": f"Unsupported value: {_go(err.instance)}: "
                                          f"supported values: {opts}", "field": field})
            elif kind == "type":
                want = detail.get("types") or detail.get("type") or ""
                if isinstance(want, list):
                    want = want[0] if want else ""
                causes.append({"reason": "FieldValueTypeInvalid",
                               "message": f"Invalid value: {_go(err.instance)}: {field} in body "
                                          f"must be of type {want}: {_go(err.instance)}",
                               "field": field})
            else:
                causes.append({"reason": "FieldValueInvalid",
                               "message": f"Invalid value: {_go(err.instance)}: {err.message}",
                               "field": field})
        return [], causes, unknown_paths(obj, self.schema)

    def default(self, obj: dict) -> None:
        apply_defaults(obj, self.schema)

    def validate(self, obj: dict, old: dict | None, *,
                 subresource: str = "") -> list[dict[str, Any]]:
        meta = obj.get("metadata") or {}
        errs = validation.validate_object_name(meta.get("name"), meta.get("generateName"))
        errs += validation.validate_labels(meta.get("labels"))
        errs += validation.validate_annotations(meta.get("annotations"))
        return [e.as_cause() for e in errs]
