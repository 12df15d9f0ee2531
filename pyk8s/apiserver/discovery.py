"""Discovery documents, legacy (/api, /apis, per group-version) and aggregated (v2).

Built from the resource catalogue plus the served CRDs; rebuilt only when the set
of resources changes (``Discovery.update``), so each request is a dictionary lookup.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

import orjson

from ..registry.catalogue import ResourceInfo

AGGREGATED_CTYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _storage_hash(info: ResourceInfo) -> str:
    raw = f"{info.group}/{info.version}/{info.kind}".encode()
    return hashlib.sha256(raw).digest()[:8].hex()


class Discovery:
    def __init__(self, server_address: str):
        self.server_address = server_address
        self.docs: dict[str, bytes] = {}

    def update(self, resources: Iterable[ResourceInfo],
               group_order: list[tuple[str, list[str]]]) -> None:
        """Rebuild every document from the served resources.

        ``group_order`` lists (group, versions preferred-first) in discovery order.
        """
        by_gv: dict[tuple[str, str], list[ResourceInfo]] = {}
        for info in resources:
            by_gv.setdefault((info.group, info.version), []).append(info)
        docs: dict[str, bytes] = {}
        docs["/api"] = orjson.dumps({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": self.server_address}]})
        groups, agg_core, agg_groups = [], [], []
        for group, versions in group_order:
            versions = [v for v in versions if (group, v) in by_gv]
            if not versions:
                continue
            gvs = [{"groupVersion": f"{group}/{v}" if group else v, "version": v}
                   for v in versions]
            for v in versions:
                path = f"/apis/{group}/{v}" if group else f"/api/{v}"
                docs[path] = orjson.dumps(self._resource_list(group, v, by_gv[(group, v)]))
            agg = {"metadata": {"name": group, "creationTimestamp": None},
                   "versions": [{"version": v, "freshness": "Current",
                                 "resources": [self._aggregated(r) for r in by_gv[(group, v)]
                                               if "/" not in r.plural]}
                                for v in versions]}
            if group:
                entry = {"name": group, "versions": gvs, "preferredVersion": gvs[0]}
                groups.append(entry)
                docs[f"/apis/{group}"] = orjson.dumps(dict(kind="APIGroup", apiVersion="v1",
                                                           **entry))
                agg_groups.append(agg)
            else:
                agg_core.append(agg)
        docs["/apis"] = orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1",
                                      "groups": groups})
        for path, items in (("/api#agg", agg_core), ("/apis#agg", agg_groups)):
            docs[path] = orjson.dumps({"kind": "APIGroupDiscoveryList",
                                       "apiVersion": "apidiscovery.k8s.io/v2",
                                       "metadata": {}, "items": items})
        self.docs = docs

    @staticmethod
    def _resource_list(group: str, version: str,
                       infos: list[ResourceInfo]) -> dict[str, Any]:
        out = []
        for r in infos:
            entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular,
                                     "namespaced": r.namespaced, "kind": r.kind,
                                     "verbs": list(r.verbs)}
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            if r.storage:
                entry["storageVersionHash"] = _storage_hash(r)
            out.append(entry)
            for sub in r.subresources:
                s: dict[str, Any] = {"name": f"{r.plural}/{sub.name}", "singularName": "",
                                     "namespaced": r.namespaced, "kind": sub.kind,
                                     "verbs": list(sub.verbs)}
                if (sub.group, sub.version) != (r.group, r.version):
                    s["group"], s["version"] = sub.group, sub.version
                out.append(s)
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": out}

    @staticmethod
    def _aggregated(r: ResourceInfo) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "resource": r.plural,
            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
            "scope": "Namespaced" if r.namespaced else "Cluster",
            "singularResource": r.singular, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        if r.subresources:
            entry["subresources"] = [
                {"subresource": s.name,
                 "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                 "verbs": list(s.verbs)} for s in r.subresources]
        return entry
