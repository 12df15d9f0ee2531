"""Objects every cluster has from its first start: the four system namespaces and
the ``kubernetes`` Service on the first address of the service range.

As upstream's kubernetes-service controller, the Service's one port is reconciled on
every start: ``https`` 443/TCP to the API server's secure port, so a restart on another
``--https-port`` retargets it."""
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
    ports = [{"name": "https", "port": 443, "protocol": "TCP",
              "targetPort": secure_port(server)}]
    svc_store = server.stores[("", "v1", "services")]
    await _ensure(svc_store, "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": first_ip, "sessionAffinity": "None",
                 "ports": ports}})
    current = svc_store.cache.objects.get(svc_store.key("default", "kubernetes"))
    if current is not None and _ports_differ((current.get("spec") or {}).get("ports"), ports):
        def retarget(obj: dict) -> dict:
            obj.setdefault("spec", {})["ports"] = ports
            return obj
        await svc_store.patch("default", "kubernetes", retarget, WriteOptions())


def secure_port(server: "APIServer") -> int:
    """The port of the API server's advertised address (``host:port``)."""
    _, _, port = str(getattr(server, "advertise", "")).rpartition(":")
    return int(port) if port.isdigit() else 6443


def _ports_differ(have: list | None, want: list) -> bool:
    keys = ("name", "port", "protocol", "targetPort")
    if not have or len(have) != len(want):
        return True
    return any({k: h.get(k) for k in keys} != {k: w.get(k) for k in keys}
               for h, w in zip(have, want))
