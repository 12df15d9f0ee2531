"""Service ports as the proxy sees them: one ``ServicePort`` per (Service, port, family).

Role: turn a core/v1 Service dict into the facts the rules need, as upstream's
``pkg/proxy/serviceport.go`` (``newBaseServiceInfo``) and ``servicechangetracker.go``
do: the ClusterIP of the proxier's IP family, port and protocol, NodePort,
externalIPs and VIP-mode load-balancer ingress IPs of that family, source ranges,
ClientIP session affinity with its timeout, and the two traffic policies.

Invariants:
- Services the proxy must not program yield no ports: ExternalName, headless
  (``clusterIP: None``) or IP-less Services, and Services without a ClusterIP of
  the proxier's family (``proxyutil.ShouldSkipService`` / ``GetClusterIPByFamily``).
- ``ServicePort`` is frozen and compares by value, so "did this service change?"
  is ``old != new``.
- ``external_policy_local`` is true only for externally accessible Services
  (NodePort, LoadBalancer, or ClusterIP with externalIPs), as ``apiservice``'s
  ``ExternalPolicyLocal``.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# The label a Service carries when another proxy implementation owns it; kube-proxy's
# informers leave such Services out (``service.kubernetes.io/service-proxy-name``).
LABEL_SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # v1.DefaultClientIPServiceAffinitySeconds

IPV4, IPV6 = "IPv4", "IPv6"


@dataclass(frozen=True, order=True)
class ServicePortName:
    """Names one port of one Service (upstream ``proxy.ServicePortName``)."""

    namespace: str
    name: str
    port: str  # the port's name; "" for an unnamed single port
    protocol: str = "TCP"

    @property
    def service(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def __str__(self) -> str:
        suffix = f":{self.port}" if self.port else ""
        return f"{self.namespace}/{self.name}{suffix}"


@dataclass(frozen=True)
class ServicePort:
    """What the rules need of one Service port in one IP family."""

    name: ServicePortName
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_vips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    affinity_timeout: int = 0  # seconds of ClientIP affinity; 0 = no affinity
    external_policy_local: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0

    @property
    def protocol(self) -> str:
        return self.name.protocol

    @property
    def session_affinity(self) -> bool:
        return self.affinity_timeout > 0

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.load_balancer_vips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        # Even with externalTrafficPolicy Local, Cluster endpoints implement the
        # short-circuit for traffic from pods and the node itself.
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (
            self.external_policy_local and self.externally_accessible)


def ip_family(address: str) -> str:
    """``IPv4`` or ``IPv6`` for an address or CIDR string."""
    text = address.strip()
    if "/" in text:
        return IPV6 if ipaddress.ip_network(text, strict=False).version == 6 else IPV4
    return IPV6 if ipaddress.ip_address(text).version == 6 else IPV4


def _of_family(values, family: str) -> tuple[str, ...]:
    out = []
    for value in values or ():
        try:
            if ip_family(value) == family:
                out.append(value.strip())
        except ValueError:
            continue  # the API validates these; a bad value is simply not programmed
    return tuple(out)


def cluster_ip_of_family(service: dict, family: str) -> str:
    """The Service's ClusterIP in ``family``, or "" (``GetClusterIPByFamily``)."""
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    for ip in ips:
        if ip and ip != "None":
            try:
                if ip_family(ip) == family:
                    return ip
            except ValueError:
                continue
    return ""


def should_skip(service: dict) -> bool:
    """True for Services the proxy never programs (``ShouldSkipService``)."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return True
    if spec.get("clusterIP") in (None, "", "None"):
        return True
    labels = (service.get("metadata") or {}).get("labels") or {}
    return LABEL_SERVICE_PROXY_NAME in labels


def externally_accessible(spec: dict) -> bool:
    kind = spec.get("type") or "ClusterIP"
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs")))


def service_ports(service: dict, family: str = IPV4) -> list[ServicePort]:
    """The ``ServicePort`` of each port of ``service`` in ``family`` (may be empty)."""
    if should_skip(service):
        return []
    cluster_ip = cluster_ip_of_family(service, family)
    if not cluster_ip:
        return []
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    external_local = externally_accessible(spec) and \
        spec.get("externalTrafficPolicy") == "Local"
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    timeout = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        timeout = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    # Only VIP-mode ingress IPs are captured locally; "Proxy" mode means the load
    # balancer rewrites the destination itself (KEP-1860).
    vips = _of_family([i["ip"] for i in ingress
                       if i.get("ip") and i.get("ipMode", "VIP") == "VIP"], family)
    health = 0
    if spec.get("type") == "LoadBalancer" and external_local:
        health = int(spec.get("healthCheckNodePort") or 0)
    common = dict(
        cluster_ip=cluster_ip,
        external_ips=_of_family(spec.get("externalIPs"), family),
        load_balancer_vips=vips,
        load_balancer_source_ranges=_of_family(spec.get("loadBalancerSourceRanges"), family),
        affinity_timeout=timeout,
        external_policy_local=external_local,
        internal_policy_local=internal_local,
        health_check_node_port=health,
    )
    ports = []
    for p in spec.get("ports") or []:
        name = ServicePortName(meta.get("namespace") or "default", meta.get("name") or "",
                               p.get("name") or "", p.get("protocol") or "TCP")
        ports.append(ServicePort(name=name, port=int(p["port"]),
                                 node_port=int(p.get("nodePort") or 0), **common))
    return ports
