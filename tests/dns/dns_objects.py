"""Builders for the Service and EndpointSlice dicts the DNS tests feed in."""
from __future__ import annotations


def service(name: str, cluster_ip: str, *, ns: str = "ns", ports=(("http", 80, "TCP"),),
            **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
                     **spec}}


def endpoint(ip: str, *, ready: bool = True, hostname: str | None = None) -> dict:
    ep = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(service_name: str, endpoints: list[dict], *, ns: str = "ns",
                   ports=(("http", 8080, "TCP"),), name: str | None = None) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name or f"{service_name}-x",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv6" if ":" in (endpoints[0]["addresses"][0] if endpoints else "")
            else "IPv4",
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
            "endpoints": endpoints}
