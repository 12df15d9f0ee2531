"""The Kubernetes v1.32 OpenAPI definitions, indexed, and validators built on them.

Role: load the definitions shipped by the ``kubernetes-validate`` package
(``kubernetes-json-schema/v1.32.0-local/_definitions.json``), index them by name
and by group/version/kind, walk into sub-schemas, read the strategic-merge-patch
metadata (``x-kubernetes-patch-strategy`` / ``-merge-key``) and validate objects
with ``jsonschema-rs``.

Invariants:
- Everything is loaded lazily on first use and cached for the process; returned
  schemas are shared and must not be mutated by callers.
- The strict variant is the lax one with ``additionalProperties: false`` on every
  schema that lists ``properties`` and says nothing about extra ones, so unknown
  fields are reported as upstream's ``unknown field "spec.foo"``.
- ``definitions()`` are the schemas as shipped. Validators use private copies in
  which ``oneOf`` over plain types (Quantity, IntOrString) becomes ``anyOf``: the
  shipped schemas make ``null`` match both branches, which ``oneOf`` rejects.
- Validation never raises for a bad object: it returns ``SchemaViolation``s whose
  ``field`` is a JSON field path such as ``spec.template.spec.containers[0].image``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import jsonschema_rs
import orjson

SCHEMA_VERSION = "v1.32.0"
_REF_PREFIX = "#/$defs/"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_dir() -> str:
    """The folder holding the v1.32 schemas inside the kubernetes-validate package."""
    # Locate the package without importing it: its import pulls in jsonschema & co.
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the kubernetes-validate package is not installed")
    base = list(spec.submodule_search_locations)[0]
    return os.path.join(base, "kubernetes-json-schema", f"{SCHEMA_VERSION}-local")


@functools.lru_cache(maxsize=1)
def _raw_definitions() -> bytes:
    with open(os.path.join(schema_dir(), "_definitions.json"), "rb") as f:
        return f.read()


def _subschemas(node: dict) -> Iterable[dict]:
    """The schemas nested directly in a schema (not the property-name mappings)."""
    props = node.get("properties")
    if isinstance(props, dict):
        yield from (v for v in props.values() if isinstance(v, dict))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield node[key]
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            yield from (v for v in node[key] if isinstance(v, dict))


def _fix_one_of(node: dict) -> None:
    """Turn ``oneOf`` over plain types into ``anyOf`` (see module invariants)."""
    branches = node.get("oneOf")
    if isinstance(branches, list) and all(
            isinstance(b, dict) and set(b) <= {"type", "format"} for b in branches):
        node["anyOf"] = node.pop("oneOf")
    for sub in _subschemas(node):
        _fix_one_of(sub)


def _close_objects(node: dict) -> None:
    """Forbid unknown properties wherever properties are listed (strict mode)."""
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for sub in _subschemas(node):
        _close_objects(sub)


@functools.lru_cache(maxsize=1)
def definitions() -> dict[str, dict]:
    """Definition name (``io.k8s.api.apps.v1.Deployment``) -> schema, as shipped."""
    return orjson.loads(_raw_definitions())["$defs"]


@functools.lru_cache(maxsize=2)
def _validation_definitions(strict: bool) -> dict[str, dict]:
    """A private copy of the definitions adjusted for validation."""
    defs = orjson.loads(_raw_definitions())["$defs"]
    for node in defs.values():
        _fix_one_of(node)
        if strict:
            _close_objects(node)
    return defs


@functools.lru_cache(maxsize=1)
def gvk_index() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> definition name, for every kind with a GVK."""
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
            # Shared kinds (DeleteOptions, WatchEvent) are listed for every group;
            # the first definition naming a GVK wins, as they are all identical.
            index.setdefault(key, name)
    return index


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> (``apps``, ``v1``); ``v1`` -> (``""``, ``v1``)."""
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


def definition_for(group: str, version: str, kind: str) -> str | None:
    return gvk_index().get((group, version, kind))


def definition_for_object(obj: dict) -> str | None:
    group, version = split_api_version(obj.get("apiVersion") or "")
    return definition_for(group, version, obj.get("kind") or "")


def schema(name: str) -> dict:
    """The schema of a definition; ``KeyError`` if unknown."""
    return definitions()[name]


def ref_name(node: dict) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        return ref[len(_REF_PREFIX):]
    return None


def resolve(node: dict | None) -> dict | None:
    """Follow ``$ref`` (repeatedly) to the referenced definition."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 32:
        name = ref_name(node)
        node = definitions().get(name) if name else None
        seen += 1
    return node


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d*)\]")


def parse_field_path(path: str) -> list[str | int]:
    """``spec.containers[0].image`` -> ["spec", "containers", 0, "image"]; ``[]`` -> -1."""
    parts: list[str | int] = []
    for name, index in _PATH_TOKEN.findall(path):
        if name:
            parts.append(name)
        else:
            parts.append(int(index) if index else -1)
    return parts


def child_schema(node: dict | None, key: str | int) -> dict | None:
    """The resolved schema one step below ``node`` (property, map value or item)."""
    node = resolve(node)
    if node is None:
        return None
    if isinstance(key, int):
        return resolve(node.get("items"))
    props = node.get("properties")
    if isinstance(props, dict) and key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def field_schema(defn: str | dict, path: str | Sequence[str | int]) -> dict | None:
    """Walk from a definition (name or schema) down a field path; None if absent."""
    node = schema(defn) if isinstance(defn, str) else defn
    parts = parse_field_path(path) if isinstance(path, str) else path
    for part in parts:
        node = child_schema(node, part)
        if node is None:
            return None
    return resolve(node)


@dataclass(frozen=True)
class PatchMeta:
    """Strategic-merge-patch metadata of one field."""

    strategies: tuple[str, ...] = ()
    merge_key: str = ""
    list_type: str = ""
    list_map_keys: tuple[str, ...] = ()


_NO_META = PatchMeta()


def lookup_patch_meta(node: dict | None, key: str) -> tuple[dict | None, PatchMeta]:
    """(resolved sub-schema, patch metadata) of field ``key`` of object schema ``node``."""
    node = resolve(node)
    if node is None:
        return None, _NO_META
    props = node.get("properties")
    if isinstance(props, dict) and key in props:
        prop = props[key]
        strategy = prop.get("x-kubernetes-patch-strategy") or ""
        meta = PatchMeta(
            strategies=tuple(s for s in strategy.split(",") if s),
            merge_key=prop.get("x-kubernetes-patch-merge-key") or "",
            list_type=prop.get("x-kubernetes-list-type") or "",
            list_map_keys=tuple(prop.get("x-kubernetes-list-map-keys") or ()),
        )
        if meta == _NO_META:
            meta = _NO_META
        return resolve(prop), meta
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra), _NO_META
    return None, _NO_META


def items_schema(node: dict | None) -> dict | None:
    node = resolve(node)
    return resolve(node.get("items")) if node else None


# --- validation -------------------------------------------------------------------

UNKNOWN, TYPE, REQUIRED, ENUM, INVALID = "unknown", "type", "required", "enum", "invalid"


@dataclass(frozen=True)
class SchemaViolation:
    """One way an object breaks its schema."""

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


def format_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def go_type(node: dict | None) -> str:
    """The Go type name upstream would print for a schema (``int32``, ``[]v1.Container``)."""
    if node is None:
        return "interface {}"
    name = ref_name(node)
    if name:
        return ".".join(name.split(".")[-2:])
    types = node.get("type") or []
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    kind = types[0] if types else ""
    if kind == "integer":
        return node.get("format") if node.get("format") in ("int32", "int64") else "int"
    if kind == "number":
        return "float64"
    if kind == "boolean":
        return "bool"
    if kind == "string":
        return "[]uint8" if node.get("format") == "byte" else "string"
    if kind == "array":
        return "[]" + go_type(node.get("items"))
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map[string]" + go_type(node["additionalProperties"])
    return "interface {}"


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_message(root: str, instance_path: Sequence[str | int], value: Any) -> str:
    """Go's ``json: cannot unmarshal X into Go struct field S.path of type T``.

    As Go's decoder: S is the struct owning the innermost named field, the path
    names every struct field from the root (list indexes and map keys are not
    fields), T is the Go type of the value being decoded.
    """
    node: dict | None = {"$ref": _REF_PREFIX + root}
    current_struct = owner = root.rsplit(".", 1)[-1]
    names: list[str] = []
    for part in instance_path:
        current = resolve(node) or {}
        props = current.get("properties")
        if isinstance(part, int):
            node = current.get("items")
        elif isinstance(props, dict) and part in props:
            owner = current_struct
            names.append(part)
            node = props[part]
        else:
            extra = current.get("additionalProperties")
            node = extra if isinstance(extra, dict) else None
        ref = ref_name(node) if isinstance(node, dict) else None
        if ref:
            current_struct = ref.rsplit(".", 1)[-1]
    if not names:
        return f"json: cannot unmarshal {json_type(value)} into Go value of type {go_type(node)}"
    return (f"json: cannot unmarshal {json_type(value)} into Go struct field "
            f"{owner}.{'.'.join(names)} of type {go_type(node)}")


class Validator:
    """A compiled jsonschema-rs validator for one definition."""

    def __init__(self, definition: str, strict: bool):
        self.definition = definition
        self.strict = strict
        document = {"$schema": _DRAFT, "$ref": _REF_PREFIX + definition,
                    "$defs": _validation_definitions(strict)}
        self._validator = jsonschema_rs.validator_for(document)

    def is_valid(self, obj: Any) -> bool:
        return self._validator.is_valid(obj)

    def validate(self, obj: Any) -> list[SchemaViolation]:
        out: list[SchemaViolation] = []
        for err in self._validator.iter_errors(obj):
            out.extend(self._convert(err))
        return out

    def _convert(self, err: Any) -> list[SchemaViolation]:
        path = list(err.instance_path)
        where = format_path(path)
        kind = err.kind.name
        detail = err.kind.as_dict()
        if kind == "additionalProperties":
            fields = [format_path(path + [name]) for name in detail.get("unexpected", [])]
            return [SchemaViolation(f, UNKNOWN, f'unknown field "{f}"') for f in fields]
        if kind == "required":
            f = format_path(path + [detail["property"]])
            return [SchemaViolation(f, REQUIRED, f"{f}: Required value")]
        if kind == "enum":
            options = ", ".join(orjson.dumps(o).decode() for o in detail.get("options", []))
            value = orjson.dumps(err.instance).decode()
            return [SchemaViolation(
                where, ENUM, f"{where}: Unsupported value: {value}: supported values: {options}")]
        if kind in ("type", "anyOf", "oneOf", "oneOfNotValid"):
            return [SchemaViolation(where, TYPE, _type_message(self.definition, path, err.instance))]
        return [SchemaViolation(where, INVALID, f"{where}: Invalid value: {err.message}")]


@functools.lru_cache(maxsize=512)
def validator(group: str, version: str, kind: str, *, strict: bool = False) -> Validator | None:
    """The cached validator of a kind, or None when the kind has no schema."""
    name = definition_for(group, version, kind)
    return Validator(name, strict) if name else None


def validate(obj: dict, *, strict: bool = False) -> list[SchemaViolation]:
    """Validate an object against the schema of its ``apiVersion``/``kind``.

    Objects of kinds without a schema (custom resources) yield no violations.
    """
    group, version = split_api_version(obj.get("apiVersion") or "")
    v = validator(group, version, obj.get("kind") or "", strict=strict)
    return v.validate(obj) if v else []


def unknown_fields(obj: dict) -> list[str]:
    """The ``unknown field "..."`` messages for an object (the Warn/Strict list)."""
    return [v.message for v in validate(obj, strict=True) if v.reason == UNKNOWN]
