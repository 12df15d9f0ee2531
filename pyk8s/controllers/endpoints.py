"""Endpoints from Services and Pods, and the ``kubernetes`` Service's endpoints.

Role: upstream's ``pkg/controller/endpoint/endpoints_controller.go`` with the helpers
it shares with the EndpointSlice controller (``FindPort``, ``ShouldPodBeInEndpoints``,
``ShouldSetHostname``, ``RepackSubsets``), and the API server's endpoint reconciler
for ``default/kubernetes`` (``apiserver-endpoints-controller``), which publishes the
API server addresses given in the settings as an Endpoints object and an
EndpointSlice both named ``kubernetes``.

Invariants:
- A Service with a selector (and not ExternalName) owns the Endpoints of its name:
  one address per matching pod with an IP of the Service's family that is not
  terminal (and not being deleted unless ``publishNotReadyAddresses``); ready pods
  (or all, with ``publishNotReadyAddresses``) under ``addresses``, others under
  ``notReadyAddresses``; ports resolved per pod (named targetPorts by the pod's
  container ports with the same protocol).
- Addresses are repacked into subsets of pods sharing the same ports; the result is
  sorted, so the same inputs always give the same object and no needless write.
- Endpoints carry the Service's labels plus ``service.kubernetes.io/headless`` for
  headless Services; more than 1000 addresses are truncated and annotated
  ``endpoints.kubernetes.io/over-capacity: truncated``.
- Endpoints found without a Service at start-up, and those of a deleted Service, are
  deleted (except leader-election records); Services without a selector are left
  to whoever writes their Endpoints.
"""
from __future__ import annotations

import ipaddress
import logging
import math
from typing import Iterable

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.client import ApiError, is_already_exists, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import podutil
from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LAST_CHANGE_TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


# --- helpers shared with the EndpointSlice controllers -----------------------------------

def is_service_ip_set(svc: dict) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def should_pod_be_in_endpoints(pod: dict, include_terminating: bool) -> bool:
    """``ShouldPodBeInEndpoints``: not terminal, has an IP, not being deleted unless
    ``include_terminating``."""
    if podutil.is_pod_terminal(pod):
        return False
    status = pod.get("status") or {}
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    if not include_terminating and podutil.deletion_timestamp(pod):
        return False
    return True


def should_set_hostname(pod: dict, svc: dict) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == svc["metadata"]["name"] \
        and svc["metadata"].get("namespace") == pod["metadata"].get("namespace")


def find_port(pod: dict, svc_port: dict) -> int | None:
    """``podutil.FindPort``: the pod port a Service port's targetPort names."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in list(spec.get("containers") or []) + sidecars:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def _is_ipv6(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False


def service_ip_family(svc: dict, pod: dict | None = None) -> str:
    spec = svc.get("spec") or {}
    if spec.get("ipFamilies"):
        return spec["ipFamilies"][0]
    if is_service_ip_set(svc):
        return "IPv6" if _is_ipv6(spec["clusterIP"]) else "IPv4"
    if pod is not None and _is_ipv6((pod.get("status") or {}).get("podIP") or ""):
        return "IPv6"
    return "IPv4"


def pod_ips(pod: dict) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


def pod_ip_for_family(pod: dict, family: str) -> str | None:
    return next((ip for ip in pod_ips(pod) if _is_ipv6(ip) == (family == "IPv6")), None)


def pod_reference(pod: dict) -> dict:
    md = pod["metadata"]
    return {"kind": "Pod", "namespace": md.get("namespace"), "name": md["name"],
            "uid": md.get("uid")}


def service_selector(svc: dict) -> selectors.LabelSelector | None:
    sel = (svc.get("spec") or {}).get("selector")
    if sel is None:
        return None
    return selectors.selector_from_set(sel)


def services_for_pod(services: Iterable[dict], pod: dict) -> list[dict]:
    """The Services with a selector that matches ``pod``'s labels."""
    labels = m.labels(pod)
    out = []
    for svc in services:
        sel = service_selector(svc)
        if sel is not None and not sel.empty() and sel.matches(labels):
            out.append(svc)
    return out


def pods_for_service(pods: Iterable[dict], svc: dict) -> list[dict]:
    sel = service_selector(svc)
    if sel is None or sel.empty():
        # Storage cannot tell an empty selector from none: both mean "no selector".
        return []
    return [p for p in pods if sel.matches(m.labels(p))]


# --- Endpoints (pure) --------------------------------------------------------------------

def _address_key(addr: dict) -> tuple:
    return (addr.get("ip", ""), (addr.get("targetRef") or {}).get("uid", ""))


def _port_key(port: dict) -> tuple:
    return (port.get("name", ""), port.get("port", 0), port.get("protocol", ""),
            port.get("appProtocol", ""))


def repack_subsets(subsets: list[dict]) -> list[dict]:
    """``RepackSubsets``: one subset per distinct set of addresses sharing the same
    ports; an address ready anywhere counts as ready; sorted."""
    addrs: dict[tuple, dict] = {}
    by_port: dict[tuple, dict[tuple, bool]] = {}
    ports: dict[tuple, dict | None] = {}
    for subset in subsets:
        sports = subset.get("ports") or [None]
        for port in sports:
            pk = _port_key(port) if port else ("", -1, "", "")
            ports[pk] = port
            ready_map = by_port.setdefault(pk, {})
            for addr in subset.get("addresses") or []:
                ak = _address_key(addr)
                addrs.setdefault(ak, addr)
                ready_map[ak] = True
            for addr in subset.get("notReadyAddresses") or []:
                ak = _address_key(addr)
                addrs.setdefault(ak, addr)
                ready_map.setdefault(ak, False)
    grouped: dict[tuple, list[dict]] = {}
    sets: dict[tuple, dict[tuple, bool]] = {}
    for pk, ready_map in by_port.items():
        key = tuple(sorted(ready_map.items()))
        sets[key] = ready_map
        lst = grouped.setdefault(key, [])
        if ports[pk] is not None:
            lst.append(ports[pk])
    final = []
    for key, port_list in grouped.items():
        ready = sorted((addrs[a] for a, ok in sets[key].items() if ok), key=_address_key)
        not_ready = sorted((addrs[a] for a, ok in sets[key].items() if not ok), key=_address_key)
        subset: dict = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if port_list:
            subset["ports"] = sorted(port_list, key=_port_key)
        final.append(subset)
    final.sort(key=lambda s: [_address_key(a) for a in s.get("addresses") or []]
               + [_address_key(a) for a in s.get("notReadyAddresses") or []]
               + [_port_key(p) for p in s.get("ports") or []])
    return final


def endpoint_address(svc: dict, pod: dict) -> dict | None:
    """``podToEndpointAddressForService`` plus the hostname rule."""
    ip = pod_ip_for_family(pod, service_ip_family(svc, pod))
    if ip is None:
        return None
    addr: dict = {"ip": ip}
    if should_set_hostname(pod, svc):
        addr["hostname"] = pod["spec"]["hostname"]
    if podutil.node_name(pod):
        addr["nodeName"] = podutil.node_name(pod)
    addr["targetRef"] = pod_reference(pod)
    return addr


def desired_subsets(svc: dict, pods: list[dict]) -> list[dict]:
    """The subsets upstream's ``syncService`` computes before the comparison."""
    spec = svc.get("spec") or {}
    tolerate = bool(spec.get("publishNotReadyAddresses"))
    subsets: list[dict] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, tolerate):
            continue
        addr = endpoint_address(svc, pod)
        if addr is None:
            continue
        ready = tolerate or podutil.is_pod_ready(pod)
        field = "addresses" if ready else "notReadyAddresses"
        svc_ports = spec.get("ports") or []
        if not svc_ports:
            # A headless Service may have no ports: its addresses still count.
            if spec.get("clusterIP") == "None":
                subsets.append({field: [addr], "ports": []})
            continue
        for sp in svc_ports:
            num = find_port(pod, sp)
            if num is None:
                continue
            port = {"name": sp.get("name", ""), "port": num, "protocol": sp.get("protocol", "TCP")}
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            port = {k: v for k, v in port.items() if v != ""}
            subsets.append({field: [addr], "ports": [port]})
    return repack_subsets(subsets)


def truncate(subsets: list[dict], capacity: int) -> bool:
    """``truncateEndpoints``: keep at most ``capacity`` addresses, ready ones first,
    spread over the subsets in proportion; True when something was cut."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= capacity:
        return False
    truncate_ready = ready > capacity
    maximum, total = (capacity, ready) if truncate_ready else (capacity - ready, not_ready)
    room = maximum
    for s in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        n = len(s.get(field) or [])
        take = min(int(math.ceil(n / total * maximum)) if total else 0, room)
        s[field] = (s.get(field) or [])[:take]
        if truncate_ready:
            s["notReadyAddresses"] = []
        room -= len(s[field])
        for k in ("addresses", "notReadyAddresses"):
            if not s.get(k):
                s.pop(k, None)
    return True


def _count(subsets: list[dict]) -> int:
    return sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or [])
               for s in subsets)


def endpoints_for(svc: dict, current: dict | None, pods: list[dict], *,
                  capacity: int = 1000) -> dict | None:
    """The Endpoints to write for ``svc``, or None when ``current`` is already right."""
    md = svc["metadata"]
    subsets = desired_subsets(svc, pods)
    svc_labels = dict(m.labels(svc))
    if current is not None:
        cur_labels = {k: v for k, v in m.labels(current).items() if k != HEADLESS_LABEL}
        annotations = m.annotations(current)
        capacity_ok = _count(current.get("subsets") or []) <= capacity \
            and OVER_CAPACITY not in annotations
        headless_ok = (HEADLESS_LABEL in m.labels(current)) == (not is_service_ip_set(svc))
        if (_normalize(current.get("subsets") or []) == _normalize(subsets)
                and cur_labels == svc_labels and capacity_ok and headless_ok):
            return None
        new = {**current, "metadata": dict(current["metadata"])}
    else:
        new = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": md["name"], "namespace": md.get("namespace")}}
    annotations = {k: v for k, v in (new["metadata"].get("annotations") or {}).items()
                   if k not in (LAST_CHANGE_TRIGGER, OVER_CAPACITY)}
    if truncate(subsets, capacity):
        annotations[OVER_CAPACITY] = "truncated"
    labels = dict(svc_labels)
    if not is_service_ip_set(svc):
        labels[HEADLESS_LABEL] = ""
    new["metadata"]["labels"] = labels
    new["metadata"]["annotations"] = annotations
    new["subsets"] = subsets
    return new


def _normalize(subsets: list[dict]) -> list[dict]:
    """Subsets compared without resourceVersions of target references."""
    def addr(a: dict) -> dict:
        ref = {k: v for k, v in (a.get("targetRef") or {}).items() if k != "resourceVersion"}
        return {**a, "targetRef": ref} if ref else a
    return [{"addresses": [addr(a) for a in s.get("addresses") or []],
             "notReadyAddresses": [addr(a) for a in s.get("notReadyAddresses") or []],
             "ports": s.get("ports") or []} for s in subsets]


# --- the Endpoints controller --------------------------------------------------------------

class EndpointsController(CoreController):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.endpoints
        super().__init__(ctx, name="endpoints-controller", workers=s.workers)
        self.capacity = s.max_endpoints_per_subset
        self.services = self.informer(r.SERVICES)
        self.pods = self.informer(r.PODS)
        self.endpoints = self.informer(r.ENDPOINTS)
        self.services.add_event_handler(on_add=self.enqueue,
                                        on_update=lambda o, n: self.enqueue(n),
                                        on_delete=self.enqueue)
        self.pods.add_event_handler(on_add=self._pod, on_update=self._pod_update,
                                    on_delete=self._pod)
        self.endpoints.add_event_handler(on_add=self._leftover, on_delete=self._endpoints_deleted)

    def _pod(self, pod: dict) -> None:
        for svc in services_for_pod(self.services.store.list_namespace(
                pod["metadata"].get("namespace")), pod):
            self.enqueue(svc)

    def _pod_update(self, old: dict, new: dict) -> None:
        keys = {m.object_key(s) for p in (old, new) for s in services_for_pod(
            self.services.store.list_namespace(new["metadata"].get("namespace")), p)}
        for k in keys:
            self.enqueue(k)

    def _leftover(self, ep: dict) -> None:
        # ``checkLeftoverEndpoints``: at start-up only (the first list), Endpoints whose
        # Service is gone are queued so sync deletes them. Later ones may belong to a
        # Service about to be created, and are left alone.
        if self.endpoints.has_synced or LEADER_ANNOTATION in m.annotations(ep):
            return
        if self.services.store.get(m.object_key(ep)) is None:
            self.enqueue(ep)

    def _endpoints_deleted(self, ep: dict) -> None:
        if self.services.store.get(m.object_key(ep)) is not None:
            self.enqueue(ep)

    async def sync(self, key: str) -> None:
        ns, name = m.split_key(key)
        svc = self.services.store.get(key)
        if svc is None:
            ep = self.endpoints.store.get(key)
            if ep is not None and LEADER_ANNOTATION in m.annotations(ep):
                return
            try:
                await self.client.delete(r.ENDPOINTS, name, namespace=ns)
            except ApiError as err:
                if not is_not_found(err):
                    raise
            return
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or not spec.get("selector"):
            return
        pods = pods_for_service(self.pods.store.list_namespace(ns), svc)
        current = self.endpoints.store.get(key)
        new = endpoints_for(svc, current, pods, capacity=self.capacity)
        if new is None:
            return
        try:
            if current is None:
                await self.client.create(r.ENDPOINTS, new, namespace=ns)
            else:
                await self.client.update(r.ENDPOINTS, new, namespace=ns)
        except ApiError as err:
            if current is None and is_already_exists(err):
                raise  # the cache is behind: retry once it caught up
            if _namespace_terminating(err):
                return
            raise


def _namespace_terminating(err: ApiError) -> bool:
    causes = (err.details or {}).get("causes") or []
    return any("NamespaceTerminating" in (c.get("reason", ""), c.get("type", ""))
               for c in causes)


# --- the kubernetes Service --------------------------------------------------------------

def apiserver_endpoints(addresses: Iterable[str], port: int) -> dict:
    """``default/kubernetes`` as the API server's endpoint reconciler writes it."""
    addrs = sorted({a for a in addresses})
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {SKIP_MIRROR_LABEL: "true"}},
            "subsets": [{"addresses": [{"ip": a} for a in addrs],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
            if addrs else []}


def slice_from_endpoints(ep: dict) -> dict:
    """``endpointSliceFromEndpoints`` of the EndpointsAdapter: same name, first subset."""
    md = ep["metadata"]
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": md["name"], "namespace": md["namespace"],
                        "labels": {SERVICE_NAME_LABEL: md["name"]}},
           "addressType": "IPv4", "endpoints": []}
    subsets = ep.get("subsets") or []
    if subsets:
        subset = subsets[0]
        eps["ports"] = [{"name": p.get("name", ""), "port": p["port"],
                         "protocol": p.get("protocol", "TCP")} for p in subset.get("ports") or []]
        everything = (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or [])
        if everything and all(_is_ipv6(a["ip"]) for a in everything):
            eps["addressType"] = "IPv6"
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in subset.get(field) or []:
                e: dict = {"addresses": [a["ip"]], "conditions": {"ready": ready}}
                if a.get("targetRef"):
                    e["targetRef"] = a["targetRef"]
                if a.get("nodeName"):
                    e["nodeName"] = a["nodeName"]
                eps["endpoints"].append(e)
    return eps


class APIServerEndpoints(CoreController):
    """Keeps ``default/kubernetes`` Endpoints and EndpointSlice at the API servers."""

    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.endpoints
        super().__init__(ctx, name="apiserver-endpoints-controller", workers=1)
        usable = [a for a in s.apiserver_addresses if not ipaddress.ip_address(a).is_loopback]
        if len(usable) != len(s.apiserver_addresses):
            # Loopback addresses cannot be endpoints (the API refuses them).
            log.warning("apiserver endpoints: ignoring loopback addresses in %s",
                        list(s.apiserver_addresses))
        self.desired = apiserver_endpoints(usable, s.apiserver_port)
        self.resync = s.apiserver_resync
        self.endpoints = self.informer(r.ENDPOINTS, namespace="default")
        self.slices = self.informer(r.ENDPOINTSLICES, namespace="default")
        for inf in (self.endpoints, self.slices):
            inf.add_event_handler(on_add=self._changed, on_update=lambda o, n: self._changed(n),
                                  on_delete=self._changed)
        self.enqueue("default/kubernetes")

    def _changed(self, obj: dict) -> None:
        if obj["metadata"]["name"] == "kubernetes":
            self.enqueue("default/kubernetes")

    async def sync(self, key: str) -> None:
        if not self.desired["subsets"]:
            return
        await self._ensure(r.ENDPOINTS, self.endpoints.store.get(key), self.desired,
                           ("subsets",))
        await self._ensure(r.ENDPOINTSLICES, self.slices.store.get(key),
                           slice_from_endpoints(self.desired),
                           ("addressType", "endpoints", "ports"))
        raise Requeue(self.resync)

    async def _ensure(self, res, current: dict | None, desired: dict, fields: tuple) -> None:
        if current is None:
            try:
                await self.client.create(res, desired, namespace="default")
            except ApiError as err:
                if not is_already_exists(err):
                    raise
            return
        want_labels = desired["metadata"]["labels"]
        if all(current.get(f) == desired.get(f) for f in fields) and \
                all(m.labels(current).get(k) == v for k, v in want_labels.items()):
            return
        if current.get("addressType", desired.get("addressType")) != desired.get("addressType"):
            # addressType is immutable: replace the slice.
            await self.client.delete(res, "kubernetes", namespace="default")
            return
        new = {**current, **{f: desired[f] for f in fields if f in desired},
               "metadata": {**current["metadata"],
                            "labels": {**m.labels(current), **want_labels}}}
        await self.client.update(res, new, namespace="default")


def new_endpoints_controller(ctx: ControllerContext) -> EndpointsController:
    return EndpointsController(ctx)


def new_apiserver_endpoints(ctx: ControllerContext) -> APIServerEndpoints:
    return APIServerEndpoints(ctx)
