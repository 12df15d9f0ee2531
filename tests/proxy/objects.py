"""Builders for the Service and EndpointSlice dicts the proxy tests feed in."""
from __future__ import annotations


def service(name: str, cluster_ip: str, *, ns: str = "ns", ports=(("http", 80, "TCP"),),
            node_ports: dict[str, int] | None = None, type: str = "ClusterIP",
            status: dict | None = None, **spec) -> dict:
    node_ports = node_ports or {}
    body = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": type, "clusterIP": cluster_ip,
                 "clusterIPs": [cluster_ip] if cluster_ip != "None" else ["None"],
                 "ports": [{"name": pname, "port": port, "protocol": proto,
                            **({"nodePort": node_ports[pname]} if pname in node_ports else {})}
                           for pname, port, proto in ports],
                 **spec},
    }
    if status:
        body["status"] = status
    return body


def endpoint(ip: str, *, node: str = "n1", ready: bool | None = True,
             serving: bool | None = None, terminating: bool | None = None,
             zones: tuple[str, ...] = ()) -> dict:
    cond = {}
    if ready is not None:
        cond["ready"] = ready
    if serving is not None:
        cond["serving"] = serving
    if terminating is not None:
        cond["terminating"] = terminating
    ep = {"addresses": [ip], "conditions": cond, "nodeName": node}
    if zones:
        ep["hints"] = {"forZones": [{"name": z} for z in zones]}
    return ep


def endpoint_slice(service_name: str, endpoints: list[dict], *, ns: str = "ns",
                   name: str | None = None, ports=(("http", 8080, "TCP"),),
                   address_type: str = "IPv4", annotations: dict | None = None) -> dict:
    meta = {"namespace": ns, "name": name or f"{service_name}-abcde",
            "labels": {"kubernetes.io/service-name": service_name}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
        "addressType": address_type,
        "ports": [{"name": pname, "port": port, "protocol": proto} for pname, port, proto in ports],
        "endpoints": endpoints,
    }
