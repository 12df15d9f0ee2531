"""Core group checks other than pods: Service, ConfigMap, Secret, Namespace,
ReplicationController, ServiceAccount, Endpoints and Node.

Role: upstream's ``ValidateService``/``ValidateServiceUpdate`` (ports, types,
session affinity, traffic policies, cluster IPs), the ConfigMap and Secret key and
size rules with their ``immutable`` flag, the ReplicationController spec, and the
smaller core kinds.

Invariants:
- Service validation sees the object as upstream's registry hands it over: with
  ``clusterIP``/``clusterIPs`` synced and, on update, unspecified allocated values
  copied from the old object (``patchAllocatedValues`` + ``normalizeClusterIPs``),
  done on a private copy; the caller's object is never changed.
"""
from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
from typing import Any, Mapping

from ...api import validation as names
from .field import (FieldError, duplicate, forbidden, invalid, nonnegative, not_supported,
                    required, too_long)
from .meta import (DNS1035, LABEL, SUBDOMAIN, label_name, labels, object_meta,
                   object_meta_update, selector_mismatch, standard_meta)
from .pods import template_spec

PROTOCOLS = ["SCTP", "TCP", "UDP"]
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
MAX_SECRET_SIZE = 1 * 1024 * 1024
MAX_AFFINITY_SECONDS = 86400


# --- Service ----------------------------------------------------------------------

def _headless(spec: Mapping[str, Any]) -> bool:
    ips = spec.get("clusterIPs") or []
    return len(ips) == 1 and ips[0] == "None"


def _externally_accessible(spec: Mapping[str, Any]) -> bool:
    kind = spec.get("type") or ""
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs")))


def registry_view(svc: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict:
    """The Service as upstream's registry validates it (a copy, see module docstring)."""
    view = copy.deepcopy(dict(svc))
    spec = view.setdefault("spec", {})
    if old is None:
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        return view
    old_spec = old.get("spec") or {}
    needs_ip = {"ClusterIP", "NodePort", "LoadBalancer"}
    if old_spec.get("type") in needs_ip and spec.get("type") in needs_ip:
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP")
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
        for key in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(key) is None and old_spec.get(key) is not None:
                spec[key] = copy.deepcopy(old_spec[key])
    if old_spec.get("clusterIPs") and not spec.get("clusterIPs") and \
            old_spec.get("clusterIP") == spec.get("clusterIP"):
        spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if _needs_health_check(spec) and _needs_health_check(old_spec) and \
            not spec.get("healthCheckNodePort"):
        spec["healthCheckNodePort"] = old_spec.get("healthCheckNodePort")
    elif _needs_health_check(old_spec) and not _needs_health_check(spec):
        spec.pop("healthCheckNodePort", None)  # the allocator releases and clears it
    if old_spec.get("clusterIP") != spec.get("clusterIP"):
        if old_spec.get("clusterIP") and not spec.get("clusterIP"):
            spec["clusterIPs"] = None
        elif (old_spec.get("clusterIPs") or []) == (spec.get("clusterIPs") or []):
            spec["clusterIPs"] = [spec.get("clusterIP")]
    return view


def _service_port(sp: Mapping[str, Any], require_name: bool, seen: set[str],
                  path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = sp.get("name") or ""
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += [invalid(f"{path}.name", name, m) for m in names.is_dns1123_label(name)]
        if name in seen:
            errs.append(duplicate(f"{path}.name", name))
        else:
            seen.add(name)
    port = sp.get("port") or 0
    errs += [invalid(f"{path}.port", port, m) for m in names.is_valid_port_num(port)]
    protocol = sp.get("protocol") or ""
    if not protocol:
        errs.append(required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    target = sp.get("targetPort", 0)
    if isinstance(target, str):
        errs += [invalid(f"{path}.targetPort", target, m) for m in names.is_valid_port_name(target)]
    else:
        errs += [invalid(f"{path}.targetPort", target or 0, m)
                 for m in names.is_valid_port_num(target or 0)]
    app = sp.get("appProtocol")
    if app is not None:
        errs += [invalid(f"{path}.appProtocol", app, m) for m in names.is_qualified_name(app)]
    return errs


def _service_port_struct(protocol: str, port: int) -> str:
    return (f"core.ServicePort{{Name:\"\", Protocol:{names.go_quote(protocol)}, "
            f"AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, "
            f"IntVal:0, StrVal:\"\"}}, NodePort:0}}")


def _cluster_ips(spec: Mapping[str, Any]) -> list[FieldError]:
    if spec.get("type") == "ExternalName":
        return []
    errs: list[FieldError] = []
    ips = spec.get("clusterIPs") or []
    if spec.get("clusterIP"):
        if not ips:
            errs.append(required("spec.clusterIPs"))
        elif ips[0] != spec["clusterIP"]:
            errs.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid("spec.clusterIPs", ips, "must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    for i, family in enumerate(spec.get("ipFamilies") or []):
        if family not in ("IPv4", "IPv6"):
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, ["IPv4", "IPv6"]))
        if family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    policies = ["PreferDualStack", "RequireDualStack", "SingleStack"]
    if policy is not None and policy not in policies:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, policies))
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                errs.append(invalid("spec.clusterIPs", ips, "'None' must be the first and only value"))
            continue
        msgs = names.is_valid_ip(ip)
        bad = bad or bool(msgs)
        errs += [invalid(f"spec.clusterIPs[{i}]", ip, m) for m in msgs]
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if bad:
        return errs
    if len(ips) > 1 and len({ipaddress.ip_address(ip).version for ip in ips}) != len(ips):
        errs.append(invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family"))
    families = spec.get("ipFamilies") or []
    if not _headless(spec):
        for i, ip in enumerate(ips[:len(families)]):
            v6 = ipaddress.ip_address(ip).version == 6
            if families[i] == "IPv4" and v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, "expected an IPv4 value as "
                                    f"indicated by `ipFamilies[{i}]`"))
            if families[i] == "IPv6" and not v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, "expected an IPv6 value as "
                                    f"indicated by `ipFamilies[{i}]`"))
    return errs


def _service_spec(svc: Mapping[str, Any]) -> list[FieldError]:
    spec = svc.get("spec") or {}
    kind = spec.get("type") or ""
    headless = _headless(spec)
    ports = spec.get("ports") or []
    errs: list[FieldError] = []
    if not ports and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    if kind in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid("spec.clusterIPs[0]", spec["clusterIPs"][0],
                            f"may not be set to 'None' for {kind} services"))
    elif kind == "ExternalName":
        if spec.get("clusterIPs"):
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = (spec.get("externalName") or "").removesuffix(".")
        if cname:
            errs += [invalid("spec.externalName", cname, m) for m in names.is_dns1123_subdomain(cname)]
        else:
            errs.append(required("spec.externalName"))
    seen_names: set[str] = set()
    for i, port in enumerate(ports):
        errs += _service_port(port, len(ports) > 1, seen_names, f"spec.ports[{i}]")
    if spec.get("selector") is not None:
        errs += labels(spec["selector"], "spec.selector")
    affinity = spec.get("sessionAffinity") or ""
    if not affinity:
        errs.append(required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        errs.append(not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    errs += _session_affinity_config(affinity, spec.get("sessionAffinityConfig"))
    errs += _cluster_ips(spec)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        msgs = names.is_valid_ip(ip)
        errs += [invalid(f"spec.externalIPs[{i}]", ip, m) for m in msgs]
        if not msgs:
            errs += _non_special_ip(ip, f"spec.externalIPs[{i}]")
    if not kind:
        errs.append(required("spec.type"))
    elif kind not in SERVICE_TYPES:
        errs.append(not_supported("spec.type", kind, SERVICE_TYPES))
    if kind == "ClusterIP":
        errs += [forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'")
                 for i, p in enumerate(ports) if p.get("nodePort")]
    errs += _duplicate_ports(ports)
    errs += _load_balancer_fields(svc, spec, kind)
    errs += _traffic_policies(spec)
    return errs


def _session_affinity_config(affinity: str, config: Mapping[str, Any] | None) -> list[FieldError]:
    path = "spec.sessionAffinityConfig"
    if affinity == "ClientIP":
        why = "when session affinity type is ClientIP"
        if config is None:
            return [required(path, why)]
        if config.get("clientIP") is None:
            return [required(f"{path}.clientIP", why)]
        timeout = config["clientIP"].get("timeoutSeconds")
        if timeout is None:
            return [required(f"{path}.clientIP.timeoutSeconds", why)]
        if not 0 < timeout <= MAX_AFFINITY_SECONDS:
            return [invalid(f"{path}.clientIP.timeoutSeconds", timeout,
                            f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}")]
    elif affinity == "None" and config is not None:
        return [forbidden(path, "must not be set when session affinity is None")]
    return []


def _non_special_ip(ip: str, path: str) -> list[FieldError]:
    addr = ipaddress.ip_address(ip)
    errs = []
    if addr.is_unspecified:
        errs.append(invalid(path, ip, f"may not be unspecified ({ip})"))
    if addr.is_loopback:
        errs.append(invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if addr.is_link_local:
        errs.append(invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if addr.is_multicast and (str(addr).startswith("224.0.0.") or str(addr).startswith("ff02:")):
        errs.append(invalid(path, ip, "may not be in the link-local multicast range "
                            "(224.0.0.0/24, ff02::/10)"))
    return errs


def _duplicate_ports(ports: list) -> list[FieldError]:
    errs: list[FieldError] = []
    node_ports: set[tuple] = set()
    for i, p in enumerate(ports):
        if not p.get("nodePort"):
            continue
        key = (p.get("protocol") or "", p["nodePort"])
        if key in node_ports:
            errs.append(duplicate(f"spec.ports[{i}].nodePort", p["nodePort"]))
        node_ports.add(key)
    seen: set[tuple] = set()
    for i, p in enumerate(ports):
        key = (p.get("protocol") or "", p.get("port") or 0)
        if key in seen:
            errs.append(duplicate(f"spec.ports[{i}]", dict(zip(("protocol", "port"), key)),
                                  shown=_service_port_struct(*key)))
        seen.add(key)
    return errs


def _load_balancer_fields(svc: Mapping[str, Any], spec: Mapping[str, Any], kind: str) -> list[FieldError]:
    errs: list[FieldError] = []
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges:
        if kind != "LoadBalancer":
            errs.append(forbidden("spec.LoadBalancerSourceRanges",
                                  "may only be used when `type` is 'LoadBalancer'"))
        for i, value in enumerate(ranges):
            value = value.strip()
            errs += [invalid(f"spec.LoadBalancerSourceRanges[{i}]", value, m)
                     for m in names.is_valid_cidr(value)]
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts",
                              "may only be used when `type` is 'LoadBalancer'"))
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if kind == "LoadBalancer":
        if lb_class is not None:
            errs += [invalid("spec.loadBalancerClass", lb_class, m)
                     for m in names.is_qualified_name(lb_class)]
    elif lb_class is not None:
        errs.append(forbidden("spec.loadBalancerClass",
                              "may only be used when `type` is 'LoadBalancer'"))
    return errs


def _traffic_policies(spec: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    external = spec.get("externalTrafficPolicy") or ""
    if not _externally_accessible(spec):
        if external:
            errs.append(invalid("spec.externalTrafficPolicy", external,
                                "may only be set for externally-accessible services"))
    elif not external:
        errs.append(required("spec.externalTrafficPolicy"))
    elif external not in ("Cluster", "Local"):
        errs.append(not_supported("spec.externalTrafficPolicy", external, ["Cluster", "Local"]))
    health = spec.get("healthCheckNodePort") or 0
    if not (spec.get("type") == "LoadBalancer" and external == "Local"):
        if health:
            errs.append(invalid("spec.healthCheckNodePort", health, "may only be set when `type` "
                                "is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif health:
        # Left out, it is allocated after validation (ServiceStrategy.allocate).
        errs += [invalid("spec.healthCheckNodePort", health, m) for m in names.is_valid_port_num(health)]
    internal = spec.get("internalTrafficPolicy")
    if internal is None and spec.get("type") in ("NodePort", "LoadBalancer", "ClusterIP"):
        errs.append(required("spec.internalTrafficPolicy"))
    if internal is not None and internal not in ("Cluster", "Local"):
        errs.append(not_supported("spec.internalTrafficPolicy", internal, ["Cluster", "Local"]))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        errs.append(not_supported("spec.trafficDistribution", distribution, ["PreferClose"]))
    return errs


def _cluster_ip_updates(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    if "ExternalName" in (new.get("type"), old.get("type")):
        return []
    if _headless(new) and _headless(old):
        return []
    new_ips, old_ips = new.get("clusterIPs") or [], old.get("clusterIPs") or []
    errs: list[FieldError] = []
    if len(old_ips) == len(new_ips):
        errs += [invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set")
                 for i, ip in enumerate(old_ips) if ip != new_ips[i]]
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset"))
        if old_ips and new_ips and new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
        if len(new_ips) == 1 and new.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.ipFamilyPolicy", new.get("ipFamilyPolicy"),
                                "must be set to 'SingleStack' when releasing the secondary clusterIP"))
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    return errs


def validate_service(svc: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    view = registry_view(svc, old)
    errs: list[FieldError] = []
    if old is not None:
        new_spec, old_spec = view.get("spec") or {}, old.get("spec") or {}
        errs += object_meta_update(view.get("metadata") or {}, old.get("metadata") or {})
        errs += _cluster_ip_updates(new_spec, old_spec)
        if not _headless(new_spec) and not _headless(old_spec) and \
                "ExternalName" not in (new_spec.get("type"), old_spec.get("type")):
            new_fam, old_fam = new_spec.get("ipFamilies") or [], old_spec.get("ipFamilies") or []
            if len(new_fam) == len(old_fam) and new_fam != old_fam:
                errs.append(invalid("spec.ipFamilies[0]", new_fam, "may not change once set"))
        if new_spec.get("type") == old_spec.get("type") == "LoadBalancer" and \
                new_spec.get("loadBalancerClass") != old_spec.get("loadBalancerClass"):
            errs.append(invalid("spec.loadBalancerClass", new_spec.get("loadBalancerClass"),
                                "may not change once set"))
        if _needs_health_check(new_spec) and _needs_health_check(old_spec) and \
                new_spec.get("healthCheckNodePort") != old_spec.get("healthCheckNodePort"):
            errs.append(forbidden("spec.healthCheckNodePort", "field is immutable"))
    errs += object_meta(view.get("metadata") or {}, namespaced=True, name_fn=DNS1035)
    return errs + _service_spec(view)


def _needs_health_check(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


# --- ConfigMap, Secret -------------------------------------------------------------

def validate_config_map(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    errs: list[FieldError] = []
    if old is not None:
        errs += object_meta_update(obj.get("metadata") or {}, old.get("metadata") or {})
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
            if (obj.get("data") or {}) != (old.get("data") or {}) or (
                    obj.get("data") is None) != (old.get("data") is None):
                errs.append(forbidden("data", "field is immutable when `immutable` is set"))
            if (obj.get("binaryData") or {}) != (old.get("binaryData") or {}) or (
                    obj.get("binaryData") is None) != (old.get("binaryData") is None):
                errs.append(forbidden("binaryData", "field is immutable when `immutable` is set"))
    errs += object_meta(obj.get("metadata") or {}, namespaced=True, name_fn=SUBDOMAIN)
    data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
    size = 0
    for key, value in data.items():
        errs += [invalid(f"data[{key}]", key, m) for m in names.is_config_map_key(key)]
        if key in binary:
            errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        size += len(str(value).encode())
    for key, value in binary.items():
        errs += [invalid(f"binaryData[{key}]", key, m) for m in names.is_config_map_key(key)]
        size += _decoded_len(value)
    if size > MAX_SECRET_SIZE:
        errs.append(too_long("", MAX_SECRET_SIZE))
    return errs


def _decoded_len(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def _decoded(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return str(value).encode()


def validate_secret(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    errs: list[FieldError] = []
    if old is not None:
        errs += object_meta_update(obj.get("metadata") or {}, old.get("metadata") or {})
        if (obj.get("type") or "") != (old.get("type") or ""):
            errs.append(invalid("type", obj.get("type") or "", "field is immutable"))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
            if (obj.get("data") or {}) != (old.get("data") or {}) or (
                    obj.get("data") is None) != (old.get("data") is None):
                errs.append(forbidden("data", "field is immutable when `immutable` is set"))
    errs += object_meta(obj.get("metadata") or {}, namespaced=True, name_fn=SUBDOMAIN)
    data = obj.get("data") or {}
    size = 0
    for key, value in data.items():
        errs += [invalid(f"data[{key}]", key, m) for m in names.is_config_map_key(key)]
        size += _decoded_len(value)
    if size > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    return errs + _secret_type_rules(obj, data)


def _secret_type_rules(obj: Mapping[str, Any], data: Mapping[str, Any]) -> list[FieldError]:
    kind = obj.get("type") or ""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if kind == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            return [required("metadata.annotations[kubernetes.io/service-account.name]")]
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in data:
            return [required(f"data[{key}]")]
        try:
            parsed = json.loads(_decoded(data[key]))
        except ValueError as exc:
            return [invalid(f"data[{key}]", "<secret contents redacted>", str(exc))]
        if not isinstance(parsed, dict):
            return [invalid(f"data[{key}]", "<secret contents redacted>",
                            "json: cannot unmarshal into Go value of type map[string]interface {}")]
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            return [required("data[ssh-privatekey]")]
    elif kind == "kubernetes.io/tls":
        errs = []
        if "tls.crt" not in data:
            errs.append(required("data[tls.crt]"))
        if "tls.key" not in data:
            errs.append(required("data[tls.key]"))
        return errs
    return []


# --- Namespace, ServiceAccount, ReplicationController, Endpoints, Node ----------------

def validate_namespace(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    if old is not None:
        return object_meta_update(obj.get("metadata") or {}, old.get("metadata") or {})
    errs = object_meta(obj.get("metadata") or {}, namespaced=False, name_fn=LABEL)
    for name in (obj.get("spec") or {}).get("finalizers") or []:
        errs += [invalid("spec.finalizers", name, m) for m in names.is_qualified_name(name)]
        if "/" not in name and name not in ("kubernetes", "orphan", "foregroundDeletion"):
            errs.append(invalid("spec.finalizers", name, "name is neither a standard finalizer "
                                "name nor is it fully qualified"))
    return errs


def validate_service_account(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    if old is not None:
        errs += standard_meta(obj, None, SUBDOMAIN, True)
    return errs


def validate_replication_controller(obj: Mapping[str, Any],
                                    old: Mapping[str, Any] | None) -> list[FieldError]:
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    spec = obj.get("spec") or {}
    errs += nonnegative(spec.get("minReadySeconds") or 0, "spec.minReadySeconds")
    selector = spec.get("selector") or {}
    if not selector:
        errs.append(required("spec.selector"))
    errs += nonnegative(spec.get("replicas") or 0, "spec.replicas")
    template = spec.get("template")
    if template is None:
        return errs + [required("spec.template")]
    if selector:
        errs += selector_mismatch({"matchLabels": selector},
                                  (template.get("metadata") or {}).get("labels"),
                                  "spec.template.metadata.labels")
    errs += template_spec(template, "spec.template")
    tspec = template.get("spec") or {}
    if tspec.get("restartPolicy") != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy",
                                  tspec.get("restartPolicy") or "", ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in ReplicationController is not Supported"))
    return errs


def validate_endpoints(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    if old is not None:
        errs += standard_meta(obj, None, SUBDOMAIN, True)
    for i, subset in enumerate(obj.get("subsets") or []):
        p = f"subsets[{i}]"
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            errs.append(required(p, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(subset.get(key) or []):
                ap = f"{p}.{key}[{j}]"
                ip = addr.get("ip") or ""
                msgs = names.is_valid_ip(ip)
                errs += [invalid(f"{ap}.ip", ip, m) for m in msgs]
                if addr.get("hostname"):
                    errs += [invalid(f"{ap}.hostname", addr["hostname"], m)
                             for m in names.is_dns1123_label(addr["hostname"])]
                if addr.get("nodeName") is not None:
                    errs += [invalid(f"{ap}.nodeName", addr["nodeName"], m)
                             for m in names.name_is_dns_subdomain(addr["nodeName"], False)]
                if msgs:
                    errs.append(invalid(f"{ap}.ip", ip, "must be a valid IP address"))
                else:
                    errs += _non_special_ip(ip, f"{ap}.ip")
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            pp = f"{p}.ports[{j}]"
            name = port.get("name") or ""
            if len(ports) > 1 and not name:
                errs.append(required(f"{pp}.name"))
            elif name:
                errs += [invalid(f"{pp}.name", name, m) for m in names.is_dns1123_label(name)]
            errs += [invalid(f"{pp}.port", port.get("port") or 0, m)
                     for m in names.is_valid_port_num(port.get("port") or 0)]
            protocol = port.get("protocol") or ""
            if not protocol:
                errs.append(required(f"{pp}.protocol"))
            elif protocol not in PROTOCOLS:
                errs.append(not_supported(f"{pp}.protocol", protocol, PROTOCOLS))
    return errs


def validate_node(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    errs = standard_meta(obj, old, SUBDOMAIN, False)
    spec = obj.get("spec") or {}
    seen: dict[str, set[str]] = {}
    for i, taint in enumerate(spec.get("taints") or []):
        p = f"metadata.taints[{i}]"
        key, effect = taint.get("key") or "", taint.get("effect") or ""
        errs += label_name(key, f"{p}.key")
        msgs = names.is_valid_label_value(taint.get("value") or "")
        if msgs:
            errs.append(invalid(f"{p}.value", taint.get("value") or "", ";".join(msgs)))
        if not effect:
            errs.append(required(f"{p}.effect"))
        elif effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(not_supported(f"{p}.effect", effect,
                                      ["NoSchedule", "PreferNoSchedule", "NoExecute"]))
        if key in seen.get(effect, set()):
            errs.append(FieldError("FieldValueDuplicate", p, taint,
                                   "taints must be unique by key and effect pair",
                                   f"core.Taint{{Key:{names.go_quote(key)}, "
                                   f"Value:{names.go_quote(taint.get('value') or '')}, "
                                   f"Effect:{names.go_quote(effect)}, TimeAdded:(*v1.Time)(nil)}}"))
            continue
        seen.setdefault(effect, set()).add(key)
    if old is not None:
        old_spec = old.get("spec") or {}
        old_cidrs, new_cidrs = old_spec.get("podCIDRs") or [], spec.get("podCIDRs") or []
        if old_cidrs and old_cidrs != new_cidrs:
            errs.append(forbidden("spec.podCIDRs",
                                  "node updates may not change podCIDR except from \"\" to valid"))
        if old_spec.get("providerID") and old_spec.get("providerID") != spec.get("providerID"):
            errs.append(forbidden("spec.providerID",
                                  "node updates may not change providerID except from \"\" to valid"))
    return errs


def validate_plain_namespaced(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    """Kinds whose upstream validation is object metadata only (e.g. LimitRange names)."""
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    if old is not None:
        errs += standard_meta(obj, None, SUBDOMAIN, True)
    return errs


__all__ = ["registry_view", "validate_config_map", "validate_endpoints",
           "validate_namespace", "validate_node", "validate_plain_namespaced",
           "validate_replication_controller", "validate_secret", "validate_service",
           "validate_service_account"]
