"""Custom resources: the strategy a CRD's openAPIV3Schema drives.

Validation compiles the structural schema to JSON Schema for jsonschema-rs;
pruning drops fields the schema does not declare (unless
``x-kubernetes-preserve-unknown-fields``); defaults fill missing fields from the
schema's ``default`` values, after pruning, as upstream orders them.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import functools
import ipaddress
import re
from typing import Any

import jsonschema_rs
import orjson

from ..api import validation
from .catalogue import ResourceInfo
from .checks import field
from .strategy import Strategy

ROOT_FIELDS = ("apiVersion", "kind", "metadata")


# Formats upstream keeps (apiextensions' StripUnsupportedFormatsPostProcess) and checks
# with go-openapi's strfmt; every other format is advisory and ignored.
_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_HOSTNAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
                       r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?"
                        r"(?:[Zz]|[+-]\d{2}:?\d{2})?$")


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
        return len(text) == 10
    except ValueError:
        return False


def _is_date_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        datetime.date.fromisoformat(text[:10])
        hh, mm, ss = int(text[11:13]), int(text[14:16]), int(text[17:19])
        return hh < 24 and mm < 60 and ss < 61
    except ValueError:
        return False


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return "/" in text
    except ValueError:
        return False


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
        return True
    except (ValueError, binascii.Error):
        return False


FORMATS = {
    "date-time": _is_date_time, "datetime": _is_date_time, "date": _is_date,
    "uuid": lambda t: bool(re.fullmatch(_UUID, t)),
    "uuid3": lambda t: bool(re.fullmatch(_UUID, t)),
    "uuid4": lambda t: bool(re.fullmatch(_UUID, t)),
    "uuid5": lambda t: bool(re.fullmatch(_UUID, t)),
    "ipv4": lambda t: _is_ip(t, 4), "ipv6": lambda t: _is_ip(t, 6), "cidr": _is_cidr,
    "byte": _is_byte, "hostname": lambda t: bool(_HOSTNAME.match(t)) and len(t) <= 255,
    "mac": lambda t: bool(re.fullmatch(r"(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}", t)),
    "email": lambda t: bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", t)),
}


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema (nullable, int-or-string,
    boolean exclusiveMinimum/Maximum, the formats upstream checks)."""
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
                                                     "externalDocs", "description",
                                                     "exclusiveMinimum", "exclusiveMaximum"):
            continue
        else:
            out[k] = v
    # OpenAPI v3.0's exclusive bounds are flags on minimum/maximum.
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(flag) is True and bound in out:
            out[flag] = out.pop(bound)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = types + ["null"]
    if out.get("format") not in FORMATS:
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
    return jsonschema_rs.validator_for(schema, validate_formats=True, formats=FORMATS)


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _go(value: Any) -> str:
    return validation.go_value(value) if not isinstance(value, str) else f'"{value}"'


def _schema_type(value: Any) -> str:
    """The JSON type go-openapi infers for a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# kube-openapi's wording of each bound
_BOUNDS = {"minimum": "greater than or equal to", "exclusiveMinimum": "greater than",
           "maximum": "less than or equal to", "exclusiveMaximum": "less than"}


def _limit(limit: Any, value: Any) -> str:
    """A bound as go-openapi prints it: ``%v`` of an int64 for integer data, of a
    float64 otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(limit))
    return field.go_float(float(limit))


# The string validator stops at its first failure, in this order.
_STRING_ORDER = {"maxLength": 0, "minLength": 1, "pattern": 2}


def schema_errors(obj: Any, validator) -> list[field.FieldError]:
    """The structural-schema errors of ``obj`` as upstream's apiextensions reports
    them: kube-openapi's validation errors (``<path> in body should ...``) turned into
    field errors by ``kubeOpenAPIResultToFieldErrors``."""
    errs: list[field.FieldError] = []
    string_failed: dict[str, tuple[int, int]] = {}  # path -> (order, index in errs)
    for err in validator.iter_errors(obj):
        parts = list(err.instance_path)
        path = _path(parts)
        kind = err.kind.name
        detail = err.kind.as_dict()
        value = err.instance
        if kind == "required":
            errs.append(field.required(_path(parts + [detail["property"]])))
        elif kind == "enum":
            valid = [o if isinstance(o, str) else orjson.dumps(o).decode()
                     for o in detail.get("options", [])]
            errs.append(field.not_supported(path, value, valid))
        elif kind == "type":
            want = [t for t in (detail.get("types") or [detail.get("type", "")]) if t != "null"]
            got = _schema_type(value)
            errs.append(field.FieldError(field.TYPE_INVALID, path, got,
                                         f"{path} in body must be of type {','.join(want)}: "
                                         f"{validation.go_quote(got)}"))
        elif kind == "format":
            fmt = detail.get("format", "")
            errs.append(field.FieldError(field.TYPE_INVALID, path, value,
                                         f"{path} in body must be of type {fmt}: "
                                         f"{validation.go_quote(str(value))}"))
        elif kind in _STRING_ORDER:
            if kind == "maxLength":
                e = field.too_long(path, int(detail["limit"]))
            elif kind == "minLength":
                e = field.invalid(path, value, f"{path} in body should be at least "
                                               f"{int(detail['limit'])} chars long")
            else:
                e = field.invalid(path, value, f"{path} in body should match "
                                               f"'{detail.get('pattern', '')}'")
            order = _STRING_ORDER[kind]
            earlier = string_failed.get(path)
            if earlier is None:
                string_failed[path] = (order, len(errs))
                errs.append(e)
            elif order < earlier[0]:
                string_failed[path] = (order, earlier[1])
                errs[earlier[1]] = e
        elif kind in _BOUNDS:
            errs.append(field.invalid(path, value, f"{path} in body should be {_BOUNDS[kind]} "
                                                   f"{_limit(detail['limit'], value)}"))
        elif kind == "multipleOf":
            factor = detail.get("multiple_of", detail.get("limit"))
            errs.append(field.invalid(path, value, f"{path} in body should be a multiple of "
                                                   f"{_limit(factor, value)}"))
        elif kind == "minItems":
            errs.append(field.invalid(path, len(value), f"{path} in body should have at least "
                                                        f"{int(detail['limit'])} items"))
        elif kind == "maxItems":
            errs.append(field.too_many(path, len(value), int(detail["limit"])))
        elif kind == "uniqueItems":
            errs.append(field.invalid(path, "", f"{path} in body shouldn't contain duplicates"))
        elif kind == "minProperties":
            limit = int(detail["limit"])
            errs.append(field.invalid(path, limit, f"{path} in body should have at least "
                                                   f"{limit} properties"))
        elif kind == "maxProperties":
            errs.append(field.too_many(path, len(value), int(detail["limit"])))
        else:
            errs.append(field.invalid(path, value if isinstance(value, (str, int, float, bool))
                                      else "", err.message))
    return errs


def list_type_errors(obj: Any, schema: dict | None, parts: tuple = ()) -> list[field.FieldError]:
    """``x-kubernetes-list-type`` set and map uniqueness (upstream's
    ``ValidateListSetsAndMaps``): each repeated item is a Duplicate value."""
    if not isinstance(schema, dict):
        return []
    errs: list[field.FieldError] = []
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in obj.items():
            if not parts and k in ROOT_FIELDS:
                continue
            sub = props.get(k, addl if isinstance(addl, dict) else None)
            errs += list_type_errors(v, sub, parts + (k,))
    elif isinstance(obj, list):
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: list[Any] = []
        for i, item in enumerate(obj):
            if list_type == "set":
                if item in seen:
                    errs.append(field.duplicate(_path(parts + (i,)), item))
                else:
                    seen.append(item)
            elif list_type == "map" and isinstance(item, dict):
                key = {k: item.get(k) for k in keys if k in item}
                if key in seen:
                    shown = "map[string]interface {}{" + ", ".join(
                        f"{validation.go_quote(k)}:{_go_iface(v)}"
                        for k, v in sorted(key.items())) + "}"
                    errs.append(field.duplicate(_path(parts + (i,)), key, shown=shown))
                else:
                    seen.append(key)
            errs += list_type_errors(item, schema.get("items"), parts + (i,))
    return errs


def _go_iface(value: Any) -> str:
    """``%#v`` of a JSON scalar held in an ``interface{}``."""
    if isinstance(value, str):
        return validation.go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}"
    if isinstance(value, float):
        return field.go_float(value)
    return "<nil>" if value is None else str(value)


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
        errs = schema_errors(obj, _compiled(self.schema_json))
        errs += list_type_errors(obj, self.schema)
        return [], [e.cause() for e in errs], unknown_paths(obj, self.schema)

    def default(self, obj: dict) -> None:
        apply_defaults(obj, self.schema)

    def validate(self, obj: dict, old: dict | None, *,
                 subresource: str = "") -> list[dict[str, Any]]:
        meta = obj.get("metadata") or {}
        errs = validation.validate_object_name(meta.get("name"), meta.get("generateName"))
        errs += validation.validate_labels(meta.get("labels"))
        errs += validation.validate_annotations(meta.get("annotations"))
        return [e.as_cause() for e in errs]
