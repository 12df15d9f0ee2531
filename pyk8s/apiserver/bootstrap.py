"""Objects every cluster has from its first start: the four system namespaces and
the ``kubernetes`` Service on the first address of the service range."""
from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ..api import errors
from ..registry.generic import WriteOptions

if TYPE_CHECKING:
    from .app import APIServer

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _ensure(store, namespace: str, obj: dict) -> None:
    if store.key(namespace, obj["metadata"]["name"]) in store.cache.objects:
        return
    try:
        await store.create(namespace, obj, WriteOptions())
    except errors.APIError as err:
        if err.code != 409:
            raise


async def ensure_defaults(server: "APIServer") -> None:
    ns_store = server.stores[("", "v1", "namespaces")]
    for name in NAMESPACES:
        await _ensure(ns_store, "", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name}})
    first_ip = str(ipaddress.ip_network(server.service_cidr).network_address + 1)
    await _ensure(server.stores[("", "v1", "services")], "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": first_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": 6443}]}})
