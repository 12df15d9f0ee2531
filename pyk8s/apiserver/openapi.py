"""OpenAPI v3: the index at /openapi/v3 and one document per group-version.

kubectl's create/apply/edit/replace need these: they look up the PATCH operation of
the object's path by ``x-kubernetes-group-version-kind`` to learn that the server
takes ``fieldValidation``, and ``kubectl explain`` reads ``components.schemas``.
Schemas come from the v1.32 definitions (api/schemas.py), rewritten from JSON
Schema 2020-12 to OpenAPI 3.0 (``$ref`` targets, nullable type lists), with the
``enum`` lists upstream serves for ``+enum`` fields (api/enums.py). Each
document is built on first request and cached until the served resources change.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

import orjson

from ..api import enums, schemas
from ..registry.catalogue import ResourceInfo

REF_FROM = "#/$defs/"
REF_TO = "#/components/schemas/"
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")


def convert_schema(node: Any) -> Any:
    """A definition in OpenAPI 3.0 form (no type lists, components refs)."""
    if isinstance(node, list):
        return [convert_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "$ref" and isinstance(v, str) and v.startswith(REF_FROM):
            out[k] = REF_TO + v[len(REF_FROM):]
        elif k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            out[k] = types[0] if len(types) == 1 else types
        elif k == "x-kubernetes-group-version-kind" and isinstance(v, dict):
            out[k] = [v]
        elif k in ("properties", "patternProperties") and isinstance(v, dict):
            out[k] = {pk: convert_schema(pv) for pk, pv in v.items()}
        else:
            out[k] = convert_schema(v)
    if "$ref" in out and len(out) > 1:
        # OpenAPI 3.0 ignores siblings of $ref; upstream wraps them in allOf.
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_FROM):
            found.add(ref[len(REF_FROM):])
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def closure(names: Iterable[str], definitions: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = [n for n in names if n in definitions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(definitions[name], found)
        todo.extend(f for f in found if f not in seen and f in definitions)
    return seen


def _param(name: str, where: str = "query", required: bool = False,
           kind: str = "string") -> dict:
    return {"name": name, "in": where, "required": required, "schema": {"type": kind},
            "uniqueItems": True}


class OpenAPI:
    def __init__(self) -> None:
        self.resources: list[ResourceInfo] = []
        self.extra_schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._docs: dict[str, bytes] = {}
        self._index: bytes | None = None

    def update(self, resources: Iterable[ResourceInfo],
               extra_schemas: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        """Serve ``resources``; ``extra_schemas`` maps (group, version) to CRD schemas
        by definition name."""
        self.resources = list(resources)
        self.extra_schemas = extra_schemas or {}
        self._docs.clear()
        self._index = None

    @staticmethod
    def gv_path(group: str, version: str) -> str:
        return f"apis/{group}/{version}" if group else f"api/{version}"

    def index(self) -> bytes:
        if self._index is None:
            gvs = sorted({(r.group, r.version) for r in self.resources})
            paths = {}
            for g, v in gvs:
                p = self.gv_path(g, v)
                digest = hashlib.sha512(self.document(p) or b"").hexdigest()[:64].upper()
                paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
            self._index = orjson.dumps({"paths": paths})
        return self._index

    def document(self, path: str) -> bytes | None:
        path = path.strip("/")
        doc = self._docs.get(path)
        if doc is None:
            infos = [r for r in self.resources if self.gv_path(r.group, r.version) == path]
            if not infos:
                return None
            doc = self._docs[path] = orjson.dumps(self._build(infos))
        return doc

    def _build(self, infos: list[ResourceInfo]) -> dict[str, Any]:
        definitions = schemas.definitions()
        group, version = infos[0].group, infos[0].version
        extra = self.extra_schemas.get((group, version), {})
        paths: dict[str, Any] = {}
        roots = ["io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"]
        for info in infos:
            defn = extra.get(info.kind) and f"{_reverse(group)}.{version}.{info.kind}" \
                or schemas.definition_for(info.group, info.version, info.kind)
            if defn is None:
                continue
            roots.append(defn)
            list_defn = schemas.definition_for(info.group, info.version, info.kind + "List")
            if list_defn:
                roots.append(list_defn)
            self._paths(paths, info, defn, list_defn)
        comps = {n: enums.annotate(n, convert_schema(definitions[n]))
                 for n in closure(roots, definitions)}
        for kind, schema in extra.items():
            comps[f"{_reverse(group)}.{version}.{kind}"] = schema
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
                "paths": paths, "components": {"schemas": comps}}

    def _paths(self, paths: dict, info: ResourceInfo, defn: str, list_defn: str | None):
        base = "/" + self.gv_path(info.group, info.version)
        coll = (f"{base}/namespaces/{{namespace}}/{info.plural}" if info.namespaced
                else f"{base}/{info.plural}")
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        ref = {"$ref": REF_TO + defn}
        write_params = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        verbs = set(info.verbs)
        ns_param = [_param("namespace", "path", True)] if info.namespaced else []

        def op(action: str, op_id: str, **extra) -> dict:
            return dict({"operationId": op_id, "x-kubernetes-action": action,
                         "x-kubernetes-group-version-kind": gvk, "responses": ok}, **extra)
        body = {"content": {"application/json": {"schema": ref}}, "required": True}
        cpath: dict[str, Any] = {"parameters": ns_param}
        if "list" in verbs and list_defn:
            cpath["get"] = op("list", f"list{info.kind}", responses={"200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": REF_TO + list_defn}}}}})
        if "create" in verbs:
            cpath["post"] = op("post", f"create{info.kind}", requestBody=body,
                               parameters=write_params)
        if "deletecollection" in verbs:
            cpath["delete"] = op("deletecollection", f"deletecollection{info.kind}")
        if len(cpath) > 1:
            paths[coll] = cpath
        ipath: dict[str, Any] = {"parameters": ns_param + [_param("name", "path", True)]}
        if "get" in verbs:
            ipath["get"] = op("get", f"read{info.kind}")
        if "update" in verbs:
            ipath["put"] = op("put", f"replace{info.kind}", requestBody=body,
                              parameters=write_params)
        if "patch" in verbs:
            ipath["patch"] = op("patch", f"patch{info.kind}", requestBody={
                "content": {t: {"schema": {"$ref": REF_TO +
                                           "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
                            for t in PATCH_TYPES}, "required": True},
                parameters=write_params + [_param("force", kind="boolean")])
        if "delete" in verbs:
            ipath["delete"] = op("delete", f"delete{info.kind}")
        if len(ipath) > 1:
            paths[f"{coll}/{{name}}"] = ipath
        for sub in info.subresources:
            if sub.name != "status":
                continue
            paths[f"{coll}/{{name}}/status"] = {
                "parameters": ipath["parameters"],
                "get": op("get", f"read{info.kind}Status"),
                "put": op("put", f"replace{info.kind}Status", requestBody=body,
                          parameters=write_params),
                "patch": dict(ipath.get("patch", {}), operationId=f"patch{info.kind}Status")}


def _reverse(group: str) -> str:
    """CRD schema names as upstream: the group's labels reversed (com.example)."""
    return ".".join(reversed(group.split(".")))
