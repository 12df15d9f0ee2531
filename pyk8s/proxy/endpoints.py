"""Endpoints as the proxy sees them: EndpointSlices merged per service port.

Role: upstream's ``endpointslicecache.go`` and ``topology.go``. ``SliceCache`` keeps
the few fields of each EndpointSlice the proxy needs, grouped by Service, and
computes a Service's endpoints per ``ServicePortName``; ``categorize`` picks, as
``CategorizeEndpoints``, which endpoints Cluster and Local traffic policies use.

Invariants:
- A slice belongs to the Service named by its ``kubernetes.io/service-name`` label;
  slices without it, of another address family, or of type FQDN are ignored.
- Endpoints are deduplicated across slices by ``ip:port`` (a local copy wins) and
  returned sorted by that string, so equal inputs give equal lists.
- Only an endpoint's first address is used; ``ready`` and ``serving`` default to
  true and ``terminating`` to false when the condition is absent.
- ``categorize`` never returns an endpoint that is neither ready nor
  serving-and-terminating, and uses terminating endpoints only when no ready one
  exists for that policy (KEP-1669).
- A port with a missing ``name`` is treated as unnamed ("") rather than dropped
  (upstream drops it; our writers and hand-made slices often omit the empty name).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from .serviceports import IPV4, ServicePort, ServicePortName

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
LABEL_TOPOLOGY_ZONE = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class Endpoint:
    """One backend of one service port (upstream ``BaseEndpointInfo``)."""

    ip: str
    port: int
    is_local: bool = False
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    zone_hints: frozenset[str] = frozenset()
    node_name: str = ""

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class _SlicePort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class _SliceInfo:
    ports: tuple[_SlicePort, ...]
    endpoints: tuple[tuple[str, str, bool, bool, bool, frozenset[str]], ...]


def slice_service(slice_: dict) -> tuple[str, str] | None:
    """The (namespace, service name) an EndpointSlice belongs to, or None."""
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_SERVICE_NAME)
    if not name or not meta.get("namespace") or not meta.get("name"):
        return None
    return (meta["namespace"], name)


def trigger_time(slice_: dict) -> datetime.datetime | None:
    """The slice's last-change-trigger-time annotation, if set and well formed."""
    value = ((slice_.get("metadata") or {}).get("annotations") or {}).get(
        ANNOTATION_TRIGGER_TIME)
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _slice_info(slice_: dict, family: str) -> _SliceInfo | None:
    if slice_.get("addressType") != family:
        return None  # FQDN slices and the other family are not ours to program
    ports = []
    for p in slice_.get("ports") or []:
        if not p.get("port"):
            continue  # upstream ignores ports without a number
        ports.append(_SlicePort(p.get("name") or "", int(p["port"]), p.get("protocol") or "TCP"))
    endpoints = []
    for ep in slice_.get("endpoints") or []:
        addresses = ep.get("addresses") or []
        if not addresses:
            continue
        cond = ep.get("conditions") or {}
        hints = frozenset(z["name"] for z in ((ep.get("hints") or {}).get("forZones") or [])
                          if z.get("name"))
        endpoints.append((addresses[0], ep.get("nodeName") or "",
                          cond.get("ready") is not False, cond.get("serving") is not False,
                          cond.get("terminating") is True, hints))
    return _SliceInfo(tuple(sorted(ports, key=lambda p: p.port)), tuple(sorted(endpoints)))


class SliceCache:
    """EndpointSlices by Service, reduced to what the rules need.

    ``update`` returns the Service the slice belongs to when the proxy-relevant
    content changed (else None), so callers mark only that Service dirty.
    """

    def __init__(self, node_name: str, family: str = IPV4):
        self.node_name = node_name
        self.family = family
        self._by_service: dict[tuple[str, str], dict[str, _SliceInfo]] = {}

    def update(self, slice_: dict, *, removed: bool = False) -> tuple[str, str] | None:
        service = slice_service(slice_)
        if service is None:
            return None
        name = slice_["metadata"]["name"]
        info = None if removed else _slice_info(slice_, self.family)
        slices = self._by_service.get(service, {})
        if slices.get(name) == info:
            return None
        if info is None:
            slices.pop(name, None)
        else:
            slices[name] = info
        if slices:
            self._by_service[service] = slices
        else:
            self._by_service.pop(service, None)
        return service

    def services(self) -> list[tuple[str, str]]:
        return list(self._by_service)

    def endpoints(self, service: tuple[str, str]) -> dict[ServicePortName, list[Endpoint]]:
        """The Service's endpoints per service port name, sorted by ``ip:port``."""
        by_port: dict[ServicePortName, dict[str, Endpoint]] = {}
        slices = self._by_service.get(service, {})
        for slice_name in sorted(slices):
            info = slices[slice_name]
            for port in info.ports:
                spn = ServicePortName(service[0], service[1], port.name, port.protocol)
                seen = by_port.setdefault(spn, {})
                for ip, node, ready, serving, terminating, hints in info.endpoints:
                    local = bool(self.node_name) and node == self.node_name
                    ep = Endpoint(ip, port.port, local, ready, serving, terminating, hints, node)
                    key = str(ep)
                    if key not in seen or local:
                        seen[key] = ep
        return {spn: [eps[k] for k in sorted(eps)] for spn, eps in by_port.items() if eps}


def _can_use_topology(endpoints: list[Endpoint], node_labels: dict[str, str]) -> bool:
    zone = node_labels.get(LABEL_TOPOLOGY_ZONE)
    if not zone:
        return False
    has_zone = False
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.zone_hints:
            return False  # one ready endpoint without hints disables hints for all
        has_zone = has_zone or zone in ep.zone_hints
    return has_zone


@dataclass(frozen=True)
class Categorized:
    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]  # every endpoint some chain of this node may use
    has_any: bool  # the Service has usable endpoints somewhere in the cluster


def categorize(endpoints: list[Endpoint], svc: ServicePort,
               node_labels: dict[str, str] | None = None) -> Categorized:
    """Cluster and Local endpoints of ``svc``, as upstream's ``CategorizeEndpoints``."""
    labels = node_labels or {}
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    if svc.uses_cluster_endpoints:
        zone = labels.get(LABEL_TOPOLOGY_ZONE)
        topology = _can_use_topology(endpoints, labels)
        cluster = [ep for ep in endpoints
                   if ep.ready and (not topology or zone in ep.zone_hints)]
        if not cluster:
            # No ready endpoint anywhere: fall back to serving terminating ones.
            cluster = [ep for ep in endpoints if ep.serving and ep.terminating]
        has_any = bool(cluster)
    if not svc.uses_local_endpoints:
        return Categorized(tuple(cluster), (), tuple(cluster), has_any)
    local_ready = local_terminating = False
    for ep in endpoints:
        if ep.ready:
            has_any = True
            local_ready = local_ready or ep.is_local
        elif ep.serving and ep.terminating:
            has_any = True
            local_terminating = local_terminating or ep.is_local
    if local_ready:
        local = [ep for ep in endpoints if ep.is_local and ep.ready]
    elif local_terminating:
        local = [ep for ep in endpoints if ep.is_local and ep.serving and ep.terminating]
    if not svc.uses_cluster_endpoints:
        return Categorized((), tuple(local), tuple(local), has_any)
    reachable = {str(ep): ep for ep in cluster}
    for ep in local:
        reachable.setdefault(str(ep), ep)
    return Categorized(tuple(cluster), tuple(local),
                       tuple(reachable[k] for k in sorted(reachable)), has_any)
