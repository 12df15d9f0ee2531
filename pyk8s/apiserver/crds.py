"""Serving CustomResourceDefinitions: the API server's own CRD controller.

It follows the CRD cache: a new or changed CRD gets its names accepted and is
marked Established, and every served version becomes a resource of the server
(discovery, OpenAPI, REST) with a CustomResourceStrategy. A deleted CRD keeps the
``customresourcecleanup.apiextensions.k8s.io`` finalizer until its objects are
gone, then stops being served, as upstream.

Invariant: the set of served custom resources is a function of the CRD objects in
the cache; ``reconcile`` can run any number of times.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..api import meta as metautil
from ..registry.catalogue import ResourceInfo, Subresource
from ..registry.custom import CustomResourceStrategy
from ..registry.generic import DeleteOptions, GenericStore, WriteOptions, resource_prefix
from ..api import errors

if TYPE_CHECKING:
    from .app import APIServer

log = logging.getLogger(__name__)
CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
CRD_PREFIX = "/registry/apiextensions.k8s.io/customresourcedefinitions/"
VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")


def infos_for(crd: dict) -> list[tuple[ResourceInfo, dict]]:
    """(ResourceInfo, version spec) for each served version of a CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served"):
            continue
        subs = []
        sr = v.get("subresources") or {}
        gv = (spec["group"], v["name"])
        if "status" in sr:
            subs.append(Subresource("status", names["kind"], *gv, ("get", "patch", "update")))
        if "scale" in sr:
            subs.append(Subresource("scale", "Scale", "autoscaling", "v1",
                                    ("get", "patch", "update")))
        info = ResourceInfo(
            group=spec["group"], version=v["name"], kind=names["kind"],
            plural=names["plural"], singular=names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()), verbs=tuple(sorted(VERBS)),
            subresources=tuple(subs))
        out.append((info, v))
    return out


class CRDController:
    def __init__(self, server: "APIServer"):
        self.server = server
        self.served: dict[str, list[tuple[str, str, str]]] = {}  # CRD name -> keys
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def crd_store(self) -> GenericStore:
        return self.server.stores[("apiextensions.k8s.io", "v1",
                                   "customresourcedefinitions")]

    def start(self) -> None:
        cache = self.crd_store.cache
        cache.listeners.append(self._changed)
        for obj in list(cache.objects.values()):
            self._register(obj)
            self._pending.add(obj["metadata"]["name"])
        self.server._refresh_documents()
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="crd-controller")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()

    def _changed(self, kind, obj: dict, prev: dict | None) -> None:
        self._pending.add(obj["metadata"]["name"])
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                name = self._pending.pop()
                try:
                    await self.reconcile(name)
                except errors.APIError as err:
                    if err.code == 409:
                        self._pending.add(name)  # raced another write; read again
                        continue
                    log.warning("CRD %s: %s", name, err.message)
                except Exception:
                    log.exception("reconciling CRD %s failed", name)

    def _register(self, crd: dict) -> None:
        name = crd["metadata"]["name"]
        self._unregister(name, refresh=False)
        keys = []
        for info, v in infos_for(crd):
            schema = ((v.get("schema") or {}).get("openAPIV3Schema"))
            scale = (v.get("subresources") or {}).get("scale")
            strategy = CustomResourceStrategy(
                info, info.version, info.kind, schema=schema, scale=scale,
                printer_columns=v.get("additionalPrinterColumns") or [])
            key = (info.group, info.version, info.plural)
            self.server.resources[key] = info
            store = GenericStore(info, self.server.store, self.server.cache, strategy,
                                 admit=self.server._admit)
            store.printer_columns = strategy.printer_columns
            self.server.stores[key] = store
            keys.append(key)
        self.served[name] = keys

    def openapi_schemas(self) -> dict[tuple[str, str], dict[str, dict]]:
        """(group, version) -> {kind: OpenAPI schema} for every served CRD version."""
        out: dict[tuple[str, str], dict[str, dict]] = {}
        cache = self.crd_store.cache
        for name in self.served:
            crd = cache.objects.get(self.crd_store.key("", name))
            if crd is None:
                continue
            for info, v in infos_for(crd):
                out.setdefault((info.group, info.version), {})[info.kind] = \
                    openapi_schema(crd, v)
        return out

    def _unregister(self, name: str, *, refresh: bool = True) -> None:
        for key in self.served.pop(name, []):
            self.server.resources.pop(key, None)
            self.server.stores.pop(key, None)
        if refresh:
            self.server._refresh_documents()

    async def reconcile(self, name: str) -> None:
        store = self.crd_store
        crd = store.cache.objects.get(store.key("", name))
        if crd is None:
            self._unregister(name)
            return
        meta = crd["metadata"]
        if meta.get("deletionTimestamp"):
            await self._terminate(crd)
            return
        if CLEANUP not in (meta.get("finalizers") or []):
            def add_finalizer(obj: dict) -> dict:
                obj["metadata"]["finalizers"] = list(obj["metadata"].get("finalizers")
                                                     or []) + [CLEANUP]
                return obj
            await store.patch("", name, add_finalizer, WriteOptions())
        self._register(crd)
        self.server._refresh_documents()
        await self._set_conditions(name, established=True)

    async def _set_conditions(self, name: str, *, established: bool,
                              terminating: bool = False) -> None:
        def transform(obj: dict) -> dict:
            status = obj.setdefault("status", {})
            names = (obj.get("spec") or {}).get("names") or {}
            wanted = {
                "NamesAccepted": ("True", "NoConflicts", "no conflicts found"),
                "Established": ("True", "InitialNamesAccepted",
                                "the initial names have been accepted") if established
                else ("False", "Terminating", "the CRD is being deleted"),
            }
            if terminating:
                wanted["Terminating"] = ("True", "InstanceDeletionInProgress",
                                         "CustomResource deletion is in progress")
            conds = {c["type"]: c for c in status.get("conditions") or []}
            for ctype, (st, reason, msg) in wanted.items():
                c = conds.get(ctype)
                if c is None or c.get("status") != st:
                    conds[ctype] = {"type": ctype, "status": st, "reason": reason,
                                    "message": msg, "lastTransitionTime": metautil.now()}
            status["conditions"] = list(conds.values())
            status["acceptedNames"] = {k: v for k, v in names.items()}
            status["storedVersions"] = sorted(
                set(status.get("storedVersions") or []) |
                {v["name"] for v in (obj.get("spec") or {}).get("versions") or []
                 if v.get("storage")})
            return obj
        await self.crd_store.patch("", name, transform, WriteOptions(), subresource="status")

    async def _terminate(self, crd: dict) -> None:
        name = crd["metadata"]["name"]
        await self._set_conditions(name, established=False, terminating=True)
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        keys = self.served.get(name) or []
        if keys:
            cr_store = self.server.stores[keys[0]]
            prefix = resource_prefix(cr_store.info)
            listing = await self.server.store.list(prefix)
            for kv in listing.items:
                ns_name = kv.key[len(prefix):].split("/")
                ns, obj_name = (ns_name[0], ns_name[1]) if len(ns_name) == 2 else ("",
                                                                                ns_name[0])
                try:
                    await cr_store.delete(ns, obj_name, DeleteOptions(grace_period=0))
                except errors.APIError as err:
                    if err.code != 404:
                        raise
        log.info("CRD %s (%s): custom objects removed", name, names.get("plural"))

        def drop_finalizer(obj: dict) -> dict:
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers")
                                             or [] if f != CLEANUP]
            return obj
        await self.crd_store.patch("", name, drop_finalizer, WriteOptions())
        self._unregister(name)


def openapi_schema(crd: dict, version: dict) -> dict:
    """The OpenAPI v3 component for one served version of a CRD."""
    spec = crd["spec"]
    schema = dict((version.get("schema") or {}).get("openAPIV3Schema") or
                  {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    props = dict(schema.get("properties") or {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned "
                           "schema of this representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing "
                     "the REST resource this object represents."}
    props["metadata"] = {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg."
                                            "apis.meta.v1.ObjectMeta"}],
                         "description": "Standard object's metadata."}
    schema["properties"] = props
    schema["x-kubernetes-group-version-kind"] = [{"group": spec["group"],
                                                  "version": version["name"],
                                                  "kind": spec["names"]["kind"]}]
    return schema
