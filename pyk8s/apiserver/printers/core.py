"""Printers for core and networking kinds, as upstream's printers.go.

Role: column definitions and row cells for Service, Endpoints, EndpointSlice,
Ingress, IngressClass, NetworkPolicy, Node, Namespace, Event (core/v1 and
events.k8s.io/v1), Secret, ConfigMap, ServiceAccount, PersistentVolume,
PersistentVolumeClaim, ResourceQuota and ComponentStatus. Pure functions.

Invariants:

- rows are the wide rows (the server prints with ``Wide: true``), so load-balancer
  addresses are never clipped and events carry all ten cells;
- an events.k8s.io/v1 Event is read through upstream's conversion to the core
  shape (``regarding``, ``note``, ``deprecated*`` fields), so both groups print alike;
- quantities print in canonical form (upstream's ``Quantity.String()``).
"""
from __future__ import annotations

import ipaddress
from datetime import datetime

from pyk8s.api.selectors import format_label_selector

from .common import (
    AGE, NAME, NONE, UNKNOWN, UNSET, Column, Printer, age, deleting, doc,
    format_labels, list_with_more, meta, name, parse_time,
    quantity_string, since, spec, status,
)

# -- services and endpoints --------------------------------------------------------

def _lb_addresses(lb_status: dict | None) -> str:
    found = {i.get("ip") or i.get("hostname") for i in (lb_status or {}).get("ingress") or []}
    return ",".join(sorted(a for a in found if a))


def _external_ip(svc: dict) -> str:
    sp = spec(svc)
    external = sp.get("externalIPs") or []
    kind = sp.get("type", "")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if kind == "LoadBalancer":
        lb = _lb_addresses(status(svc).get("loadBalancer"))
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if kind == "ExternalName":
        return sp.get("externalName", "")
    return UNKNOWN


def _ports(ports: list | None) -> str:
    pieces = []
    for port in ports or []:
        number, proto = port.get("port", 0), port.get("protocol", "")
        node = port.get("nodePort") or 0
        pieces.append(f"{number}:{node}/{proto}" if node > 0 else f"{number}/{proto}")
    return ",".join(pieces)


def _service_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    cluster_ips = sp.get("clusterIPs") or ([sp["clusterIP"]] if sp.get("clusterIP") else [])
    return [name(obj), sp.get("type", ""), cluster_ips[0] if cluster_ips else NONE,
            _external_ip(obj), _ports(sp.get("ports")) or NONE, age(obj, now),
            format_labels(sp.get("selector"))]


def _join_host_port(ip: str, port: int) -> str:
    try:
        is_v6 = isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address)
    except ValueError:
        is_v6 = ":" in ip
    return f"[{ip}]:{port}" if is_v6 else f"{ip}:{port}"


def format_endpoints(obj: dict) -> str:
    """upstream ``formatEndpoints`` with all ports: first three addresses, then the rest counted."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return NONE
    found: list[str] = []
    count, more, limit = 0, False, 3
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        # Headless services may have addresses without ports.
        targets = [(a.get("ip", ""), None) for a in addresses] if not ports else [
            (a.get("ip", ""), p.get("port", 0)) for p in ports for a in addresses]
        count += len(targets)
        for ip, port in targets:
            if len(found) == limit:
                more = True
                break
            found.append(ip if port is None else _join_host_port(ip, port))
    text = ",".join(found)
    return f"{text} + {count - limit} more..." if more else text


def _endpoints_row(obj: dict, now: datetime) -> list:
    return [name(obj), format_endpoints(obj), age(obj, now)]


def _endpoint_slice_row(obj: dict, now: datetime) -> list:
    ports = obj.get("ports") or []
    port_names = [str(p["port"]) if p.get("port") is not None
                  else p["name"] if p.get("name") is not None else "*" for p in ports]
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [name(obj), obj.get("addressType", ""), list_with_more(port_names, len(port_names)),
            list_with_more(addresses, len(addresses)), age(obj, now)]


# -- ingress -----------------------------------------------------------------------

def _hosts(rules: list | None) -> str:
    """upstream ``formatHosts``: up to three hosts; "more" once a rule follows the third."""
    rules = rules or []
    hosts: list[str] = []
    more = False
    for rule in rules:
        more = more or len(hosts) == 3
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def _ingress_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    return [name(obj), sp.get("ingressClassName") or NONE, _hosts(sp.get("rules")),
            _lb_addresses(status(obj).get("loadBalancer")),
            "80, 443" if sp.get("tls") else "80", age(obj, now)]


def _ingress_class_row(obj: dict, now: datetime) -> list:
    params = spec(obj).get("parameters")
    shown = NONE
    if params is not None:
        shown = params.get("kind", "")
        if params.get("apiGroup") is not None:
            shown += "." + params["apiGroup"]
        shown += "/" + params.get("name", "")
    return [name(obj), spec(obj).get("controller", ""), shown, age(obj, now)]


def _network_policy_row(obj: dict, now: datetime) -> list:
    return [name(obj), format_label_selector(spec(obj).get("podSelector") or {}), age(obj, now)]


# -- nodes and namespaces ----------------------------------------------------------

def _node_roles(labels: dict) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def _node_address(obj: dict, kind: str) -> str:
    for address in status(obj).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return NONE


def _node_row(obj: dict, now: datetime) -> list:
    st = status(obj)
    ready = {c.get("type"): c for c in st.get("conditions") or []}.get("Ready")
    states = [] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    states = states or ["Unknown"]
    if spec(obj).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = st.get("nodeInfo") or {}
    return [name(obj), ",".join(states), _node_roles(meta(obj).get("labels") or {}), age(obj, now),
            info.get("kubeletVersion", ""), _node_address(obj, "InternalIP"),
            _node_address(obj, "ExternalIP"), info.get("osImage") or UNKNOWN,
            info.get("kernelVersion") or UNKNOWN, info.get("containerRuntimeVersion") or UNKNOWN]


def _namespace_row(obj: dict, now: datetime) -> list:
    return [name(obj), status(obj).get("phase", ""), age(obj, now)]


# -- events ------------------------------------------------------------------------

def _as_core_event(obj: dict) -> dict:
    """events.k8s.io/v1 fields under their core/v1 names, as upstream's conversion."""
    if obj.get("apiVersion") != "events.k8s.io/v1":
        return obj
    source = obj.get("deprecatedSource") or {}
    return {
        "metadata": obj.get("metadata") or {}, "involvedObject": obj.get("regarding") or {},
        "message": obj.get("note", ""), "reason": obj.get("reason", ""),
        "type": obj.get("type", ""), "source": source,
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount", 0), "eventTime": obj.get("eventTime"),
        "series": obj.get("series"), "reportingComponent": obj.get("reportingController", ""),
        "reportingInstance": obj.get("reportingInstance", ""),
    }


def _event_row(raw: dict, now: datetime) -> list:
    obj = _as_core_event(raw)
    first = since(obj.get("firstTimestamp"), now)
    if parse_time(obj.get("firstTimestamp")) is None:
        first = since(obj.get("eventTime"), now)
    last = first if parse_time(obj.get("lastTimestamp")) is None else since(obj["lastTimestamp"], now)
    count = obj.get("count") or 0
    if obj.get("series") is not None:
        last = since(obj["series"].get("lastObservedTime"), now)
        count = obj["series"].get("count", 0)
    elif count == 0:
        # Singleton events of the new API carry no count.
        count = 1
    involved = obj.get("involvedObject") or {}
    kind = involved.get("kind", "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return [last, obj.get("type", ""), obj.get("reason", ""), target,
            involved.get("fieldPath", ""), f"{component}, {host}" if host else component,
            (obj.get("message") or "").strip(), first, count, name(obj)]


# -- config and storage ------------------------------------------------------------

def _secret_row(obj: dict, now: datetime) -> list:
    return [name(obj), obj.get("type", ""), len(obj.get("data") or {}), age(obj, now)]


def _config_map_row(obj: dict, now: datetime) -> list:
    return [name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age(obj, now)]


def _service_account_row(obj: dict, now: datetime) -> list:
    return [name(obj), len(obj.get("secrets") or []), age(obj, now)]


def access_modes(modes: list | None) -> str:
    """upstream ``GetAccessModesAsString``: fixed order, duplicates dropped."""
    modes = set(modes or [])
    order = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
             ("ReadWriteOncePod", "RWOP"))
    return ",".join(short for mode, short in order if mode in modes)


_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


def _volume_class(obj: dict) -> str:
    annotations = meta(obj).get("annotations") or {}
    if _BETA_CLASS in annotations:
        return annotations[_BETA_CLASS]
    return spec(obj).get("storageClassName") or ""


def _pv_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    claim = sp.get("claimRef")
    claim_text = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    phase = "Terminating" if deleting(obj) else st.get("phase", "")
    return [name(obj), quantity_string((sp.get("capacity") or {}).get("storage")),
            access_modes(sp.get("accessModes")), sp.get("persistentVolumeReclaimPolicy", ""),
            phase, claim_text, _volume_class(obj), sp.get("volumeAttributesClassName") or UNSET,
            st.get("reason", ""), age(obj, now), sp.get("volumeMode") or UNSET]


def _pvc_row(obj: dict, now: datetime) -> list:
    sp, st = spec(obj), status(obj)
    capacity = modes = ""
    if sp.get("volumeName"):
        modes = access_modes(st.get("accessModes"))
        capacity = quantity_string((st.get("capacity") or {}).get("storage"))
    phase = "Terminating" if deleting(obj) else st.get("phase", "")
    return [name(obj), phase, sp.get("volumeName", ""), capacity, modes, _volume_class(obj),
            sp.get("volumeAttributesClassName") or UNSET, age(obj, now),
            sp.get("volumeMode") or UNSET]


def _resource_quota_row(obj: dict, now: datetime) -> list:
    hard, used = status(obj).get("hard") or {}, status(obj).get("used") or {}
    requests, limits = [], []
    for resource in sorted(hard):
        column = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        column.append(f"{resource}: {quantity_string(used.get(resource))}/{quantity_string(hard[resource])}")
    return [name(obj), ", ".join(requests), ", ".join(limits), age(obj, now)]


def _component_status_row(obj: dict, now: datetime) -> list:
    state, message, error = "Unknown", "", ""
    for cond in obj.get("conditions") or []:
        if cond.get("type") == "Healthy":
            state = "Healthy" if cond.get("status") == "True" else "Unhealthy"
            message, error = cond.get("message", ""), cond.get("error", "")
            break
    return [name(obj), state, message, error]


PRINTERS: dict[str, Printer] = {
    "Service": Printer((
        NAME,
        Column("Type", description=doc("ServiceSpec.type")),
        Column("Cluster-IP", description=doc("ServiceSpec.clusterIP")),
        Column("External-IP", description=doc("ServiceSpec.externalIPs")),
        Column("Port(s)", description=doc("ServiceSpec.ports")),
        AGE,
        Column("Selector", priority=1, description=doc("ServiceSpec.selector")),
    ), _service_row),
    "Endpoints": Printer((
        NAME, Column("Endpoints", description=doc("Endpoints.subsets")), AGE,
    ), _endpoints_row),
    "EndpointSlice": Printer((
        NAME,
        Column("AddressType", description=doc("EndpointSlice.addressType")),
        Column("Ports", description=doc("EndpointSlice.ports")),
        Column("Endpoints", description=doc("EndpointSlice.endpoints")),
        AGE,
    ), _endpoint_slice_row),
    "Ingress": Printer((
        NAME,
        Column("Class", description="The name of the IngressClass resource that should be used "
               "for additional configuration"),
        Column("Hosts", description="Hosts that incoming requests are matched against before the "
               "ingress rule"),
        Column("Address", description="Address is a list containing ingress points for the "
               "load-balancer"),
        Column("Ports", description="Ports of TLS configurations that open"),
        AGE,
    ), _ingress_row),
    "IngressClass": Printer((
        NAME,
        Column("Controller", description="Controller that is responsible for handling this class"),
        Column("Parameters", description="A reference to a resource with additional parameters"),
        AGE,
    ), _ingress_class_row),
    "NetworkPolicy": Printer((
        NAME, Column("Pod-Selector", description=doc("NetworkPolicySpec.podSelector")), AGE,
    ), _network_policy_row),
    "Node": Printer((
        NAME,
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        AGE,
        Column("Version", description=doc("NodeSystemInfo.kubeletVersion")),
        Column("Internal-IP", priority=1, description=doc("NodeStatus.addresses")),
        Column("External-IP", priority=1, description=doc("NodeStatus.addresses")),
        Column("OS-Image", priority=1, description=doc("NodeSystemInfo.osImage")),
        Column("Kernel-Version", priority=1, description=doc("NodeSystemInfo.kernelVersion")),
        Column("Container-Runtime", priority=1,
               description=doc("NodeSystemInfo.containerRuntimeVersion")),
    ), _node_row),
    "Namespace": Printer((
        NAME, Column("Status", description="The status of the namespace"), AGE,
    ), _namespace_row),
    "Event": Printer((
        Column("Last Seen", description=doc("Event.lastTimestamp")),
        Column("Type", description=doc("Event.type")),
        Column("Reason", description=doc("Event.reason")),
        Column("Object", description=doc("Event.involvedObject")),
        Column("Subobject", priority=1, description=doc("ObjectReference.fieldPath")),
        Column("Source", priority=1, description=doc("Event.source")),
        Column("Message", description=doc("Event.message")),
        Column("First Seen", priority=1, description=doc("Event.firstTimestamp")),
        Column("Count", priority=1, description=doc("Event.count")),
        Column("Name", priority=1, format="name", description=doc("ObjectMeta.name")),
    ), _event_row),
    "Secret": Printer((
        NAME,
        Column("Type", description=doc("Secret.type")),
        Column("Data", description=doc("Secret.data")),
        AGE,
    ), _secret_row),
    "ConfigMap": Printer((
        NAME, Column("Data", description=doc("ConfigMap.data")), AGE,
    ), _config_map_row),
    "ServiceAccount": Printer((
        NAME, Column("Secrets", description=doc("ServiceAccount.secrets")), AGE,
    ), _service_account_row),
    "PersistentVolume": Printer((
        NAME,
        Column("Capacity", description=doc("PersistentVolumeSpec.capacity")),
        Column("Access Modes", description=doc("PersistentVolumeSpec.accessModes")),
        Column("Reclaim Policy", description=doc("PersistentVolumeSpec.persistentVolumeReclaimPolicy")),
        Column("Status", description=doc("PersistentVolumeStatus.phase")),
        Column("Claim", description=doc("PersistentVolumeSpec.claimRef")),
        Column("StorageClass", description="StorageClass of the pv"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        Column("Reason", description=doc("PersistentVolumeStatus.reason")),
        AGE,
        Column("VolumeMode", priority=1, description=doc("PersistentVolumeSpec.volumeMode")),
    ), _pv_row),
    "PersistentVolumeClaim": Printer((
        NAME,
        Column("Status", description=doc("PersistentVolumeClaimStatus.phase")),
        Column("Volume", description=doc("PersistentVolumeClaimSpec.volumeName")),
        Column("Capacity", description=doc("PersistentVolumeClaimStatus.capacity")),
        Column("Access Modes", description=doc("PersistentVolumeClaimStatus.accessModes")),
        Column("StorageClass", description="StorageClass of the pvc"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
        AGE,
        Column("VolumeMode", priority=1, description=doc("PersistentVolumeClaimSpec.volumeMode")),
    ), _pvc_row),
    "ResourceQuota": Printer((
        NAME,
        Column("Request", description="Request represents a minimum amount of cpu/memory that a "
               "container may consume."),
        Column("Limit", description="Limits control the maximum amount of cpu/memory that a "
               "container may use independent of contention on the node."),
        AGE,
    ), _resource_quota_row),
    "ComponentStatus": Printer((
        NAME,
        Column("Status", description="Status of the component conditions"),
        Column("Message", description="Message of the component conditions"),
        Column("Error", description="Error of the component conditions"),
    ), _component_status_row),
}
