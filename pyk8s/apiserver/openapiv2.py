"""OpenAPI v2 at /openapi/v2: the swagger document kubectl validates with client-side.

kubectl 1.32 prefers OpenAPI v3, but it still validates a ``kind: List`` (what
``kubectl get ... -o json | kubectl replace -f -`` sends) and anything whose type
has no v3 PATCH path against v2 models, and it asks for v2 ONLY as protobuf
(``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf``): a gnostic
``openapi.v2.Document`` (github.com/google/gnostic-models openapiv2/OpenAPIv2.proto).
A JSON answer to that request makes kubectl fail with "proto: cannot parse invalid
wire-format data", so both encodings are served, chosen by Accept as upstream's
kube-openapi handler does.

The definitions are the same v1.32 schemas (and CRD schemas) the v3 documents carry
(openapi.py), for every served resource and what it references, named as upstream
(``io.k8s.api.core.v1.Pod``), rewritten to Swagger 2.0 form: ``#/definitions/`` refs,
one type, IntOrString as ``string``/``int-or-string``, vendor extensions
(``x-kubernetes-group-version-kind`` ...) as gnostic NamedAny with a YAML value.
kubectl's validator (kube-openapi util/proto) needs: every ``$ref`` resolvable, one
type per schema, one ``items`` schema per array, GVK extensions to find a kind's
model. Paths are not served (kubectl does not read them from v2).

The encoded bytes are cached and rebuilt when OpenAPI.update() changes the served
resources or CRD schemas (the same moments the v3 documents are rebuilt).
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson
import yaml
from aiohttp import web

from ..api import schemas
from .openapi import REF_FROM, OpenAPI, _reverse, closure

PROTO_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
               "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
JSON_TYPE = "application/json"
REF_V3 = "#/components/schemas/"
REF_V2 = "#/definitions/"
ROOTS = ("io.k8s.apimachinery.pkg.apis.meta.v1.Status",
         "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
         "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
         "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
         "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
         "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
         "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList")


# -- Swagger 2.0 form of a schema ---------------------------------------------------

def _ref(ref: str) -> str:
    for prefix in (REF_FROM, REF_V3):
        if ref.startswith(prefix):
            return REF_V2 + ref[len(prefix):]
    return ref


def to_v2(node: Any, *, crd: bool = False) -> Any:
    """A schema in Swagger 2.0 form, as kube-openapi's v2 builder writes it."""
    if isinstance(node, list):
        return [to_v2(n, crd=crd) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    one_of = node.pop("oneOf", None)
    if one_of is not None and "type" not in node:
        # IntOrString and Quantity: upstream's v2 has plain strings here.
        kinds = {t for alt in one_of if isinstance(alt, dict)
                 for t in (alt.get("type") if isinstance(alt.get("type"), list)
                           else [alt.get("type")])}
        node["type"] = "string"
        if "integer" in kinds:
            node["format"] = "int-or-string"
    for drop in ("anyOf", "not", "nullable", "enum", "$schema", "$defs"):
        node.pop(drop, None)
    if crd and node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node.pop("allOf", None)
    if crd and node.get("x-kubernetes-preserve-unknown-fields"):
        # v2 cannot say "these fields and any others": drop the structure so a
        # client-side validator accepts unknown fields (upstream's v2 conversion).
        for k in ("properties", "items", "additionalProperties", "type", "required"):
            node.pop(k, None)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) \
            and set(all_of[0]) == {"$ref"} and "$ref" not in node:
        node.pop("allOf")
        node["$ref"] = all_of[0]["$ref"]
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "$ref" and isinstance(v, str):
            out[k] = _ref(v)
        elif k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            if len(types) == 1:
                out[k] = types[0]
        elif k == "x-kubernetes-group-version-kind" and isinstance(v, dict):
            out[k] = [v]
        elif k in ("properties", "patternProperties") and isinstance(v, dict):
            out[k] = {pk: to_v2(pv, crd=crd) for pk, pv in v.items()}
        elif k.startswith("x-") or k in ("default", "example"):
            out[k] = v  # data, not schemas
        else:
            out[k] = to_v2(v, crd=crd)
    if out.get("type") == "array" and not isinstance(out.get("items"), dict):
        items = out.get("items")
        out["items"] = items[0] if isinstance(items, list) and items else {}
    return out


def build_document(openapi: OpenAPI) -> dict[str, Any]:
    """The Swagger 2.0 document for what ``openapi`` serves."""
    definitions = schemas.definitions()
    roots = list(ROOTS)
    crd_defs: dict[str, dict] = {}
    for info in openapi.resources:
        extra = openapi.extra_schemas.get((info.group, info.version), {})
        if info.kind in extra:
            name = f"{_reverse(info.group)}.{info.version}.{info.kind}"
            crd_defs[name] = extra[info.kind]
            continue
        for kind in (info.kind, info.kind + "List"):
            defn = schemas.definition_for(info.group, info.version, kind)
            if defn:
                roots.append(defn)
    defs = {n: to_v2(definitions[n]) for n in sorted(closure(roots, definitions))}
    for name, schema in sorted(crd_defs.items()):
        defs[name] = to_v2(schema, crd=True)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": {}, "definitions": defs}


# -- gnostic protobuf encoding ------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, message)."""
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _str(num: int, s: str) -> bytes:
    return _ld(num, s.encode()) if s else b""


def _int(num: int, n: int) -> bytes:
    return _varint(num << 3) + _varint(int(n))


def _bool(num: int, b: bool) -> bytes:
    return _varint(num << 3) + (b"\x01" if b else b"\x00")


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True)


def _any(value: Any) -> bytes:
    """gnostic Any: {google.protobuf.Any value = 1; string yaml = 2}."""
    return _str(2, _yaml(value))


def _named_any(name: str, value: Any) -> bytes:
    return _str(1, name) + _ld(2, _any(value))


def encode_schema(s: dict[str, Any]) -> bytes:
    """openapi.v2.Schema (fields as numbered in OpenAPIv2.proto)."""
    out = bytearray()
    if isinstance(s.get("$ref"), str):
        out += _str(1, s["$ref"])
    if isinstance(s.get("format"), str):
        out += _str(2, s["format"])
    if isinstance(s.get("title"), str):
        out += _str(3, s["title"])
    if isinstance(s.get("description"), str):
        out += _str(4, s["description"])
    if "default" in s:
        out += _ld(5, _any(s["default"]))
    for num, key in ((11, "maxLength"), (12, "minLength"), (14, "maxItems"),
                     (15, "minItems"), (17, "maxProperties"), (18, "minProperties")):
        if isinstance(s.get(key), int) and not isinstance(s.get(key), bool):
            out += _int(num, s[key])
    if isinstance(s.get("pattern"), str):
        out += _str(13, s["pattern"])
    if s.get("uniqueItems") is True:
        out += _bool(16, True)
    for r in s.get("required") or []:
        if isinstance(r, str):
            out += _str(19, r)
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        out += _ld(21, _ld(1, encode_schema(ap)))
    elif isinstance(ap, bool):
        out += _ld(21, _bool(2, ap))
    if isinstance(s.get("type"), str):
        out += _ld(22, _str(1, s["type"]))
    items = s.get("items")
    if isinstance(items, dict):
        out += _ld(23, _ld(1, encode_schema(items)))
    for sub in s.get("allOf") or []:
        if isinstance(sub, dict):
            out += _ld(24, encode_schema(sub))
    props = s.get("properties")
    if isinstance(props, dict):
        body = b"".join(_ld(1, _str(1, name) + _ld(2, encode_schema(sub)))
                        for name, sub in props.items() if isinstance(sub, dict))
        out += _ld(25, body)
    if isinstance(s.get("discriminator"), str):
        out += _str(26, s["discriminator"])
    if s.get("readOnly") is True:
        out += _bool(27, True)
    if "example" in s:
        out += _ld(30, _any(s["example"]))
    for k in sorted(s):
        if k.startswith("x-"):
            out += _ld(31, _named_any(k, s[k]))
    return bytes(out)


def encode_document(doc: dict[str, Any]) -> bytes:
    """openapi.v2.Document: swagger=1, info=2, paths=8, definitions=9."""
    info = doc.get("info") or {}
    out = bytearray(_str(1, doc.get("swagger", "2.0")))
    out += _ld(2, _str(1, info.get("title", "")) + _str(2, info.get("version", "")))
    out += _ld(8, b"")
    defs = b"".join(_ld(1, _str(1, name) + _ld(2, encode_schema(schema)))
                    for name, schema in (doc.get("definitions") or {}).items())
    out += _ld(9, defs)
    return bytes(out)


# -- serving ------------------------------------------------------------------------

class OpenAPIV2:
    """The cached v2 document of one OpenAPI (v3) source, in both encodings."""

    def __init__(self, source: OpenAPI):
        self.source = source
        self._built_from: tuple[Any, Any] | None = None
        self._json = b""
        self._proto = b""
        self._etag = ""

    def _current(self) -> None:
        key = (self.source.resources, self.source.extra_schemas)
        if self._built_from is not None and self._built_from[0] is key[0] and \
                self._built_from[1] is key[1]:
            return
        doc = build_document(self.source)
        self._json = orjson.dumps(doc)
        self._proto = encode_document(doc)
        self._etag = '"' + hashlib.sha512(self._json).hexdigest()[:64].upper() + '"'
        self._built_from = key

    def json(self) -> bytes:
        self._current()
        return self._json

    def protobuf(self) -> bytes:
        self._current()
        return self._proto

    def serve(self, request: web.Request) -> web.Response:
        ctype = negotiate(request.headers.get("Accept", ""))
        if ctype is None:
            return web.Response(status=406, text="406 Not Acceptable")
        self._current()
        headers = {"Etag": self._etag, "Vary": "Accept", "Content-Type": ctype}
        if request.headers.get("If-None-Match") == self._etag:
            return web.Response(status=304, headers=headers)
        body = self._json if ctype == JSON_TYPE else self._proto
        return web.Response(body=body, headers=headers)


def negotiate(accept: str) -> str | None:
    """The served type for an Accept header (first acceptable in the client's order
    by q), None when nothing fits."""
    if not accept.strip():
        return JSON_TYPE
    ranked = []
    for i, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        mime = fields[0].lower()
        q = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, i, mime))
    for _, _, mime in sorted(ranked):
        if mime in PROTO_TYPES:
            # upstream answers with the dotted form: '@' is no valid MIME token
            # character, and client-go's mime.ParseMediaType rejects it.
            return PROTO_TYPES[1]
        if mime in (JSON_TYPE, "application/*", "*/*"):
            return JSON_TYPE
    return None


def serve(source: OpenAPI, request: web.Request) -> web.Response:
    """Answer GET /openapi/v2 for the server whose v3 source is ``source``."""
    v2 = getattr(source, "_v2", None)
    if v2 is None:
        v2 = OpenAPIV2(source)
        source._v2 = v2  # type: ignore[attr-defined]
    return v2.serve(request)
