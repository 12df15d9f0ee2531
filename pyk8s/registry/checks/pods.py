"""Pod, pod spec and pod template checks.

Role: upstream's ``ValidatePodSpec`` (scheduling fields, DNS, security context,
tolerations, affinity, topology spread ...), ``ValidatePodCreate``,
``ValidatePodUpdate`` with its "pod updates may not change fields other than ..."
rule, ``ValidatePodTemplateSpec`` used by every workload, and the PodTemplate kind.

Invariants:
- Input is the v1 JSON shape; where upstream's internal type keeps a field
  elsewhere (hostNetwork, hostPID ... live in the internal security context) the
  error paths are upstream's, e.g. ``spec.securityContext.shareProcessNamespace``.
- ``resource_is_pod`` is True for a Pod and False for a template inside another
  object, as upstream's ``PodValidationOptions.ResourceIsPod``.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from ...api import validation as names
from . import containers as ctr
from .field import (FieldError, diff_detail, duplicate, forbidden, invalid, not_supported,
                    required, semantic_equal)
from .meta import annotations, label_name, label_selector, labels, standard_meta, SUBDOMAIN
from .volumes import local_descending_path, validate_volumes

MAX_INT32 = 2147483647
RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"
APPARMOR_CONTAINER = "container.apparmor.security.beta.kubernetes.io/"
UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,"
             "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
             "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
             "was previously negative)")


# --- annotations -------------------------------------------------------------------

def _valid_deletion_cost(value: str) -> bool:
    if not value or not (value[0] == "-" or value == "0" or "1" <= value[0] <= "9"):
        return False
    try:
        number = int(value, 10)
    except ValueError:
        return False
    return -(1 << 31) <= number < (1 << 31) and value.lstrip("-").isdigit()


def _seccomp_profile_annotation(value: str, path: str) -> list[FieldError]:
    if value in ("runtime/default", "docker/default", "unconfined"):
        return []
    if value.startswith("localhost/"):
        return local_descending_path(value[len("localhost/"):], path)
    return [invalid(path, value, "must be a valid seccomp profile")]


def _has_container(spec: Mapping[str, Any], name: str) -> bool:
    return any((c.get("name") or "") == name for key in
               ("initContainers", "containers", "ephemeralContainers")
               for c in spec.get(key) or [])


def pod_annotations(values: Mapping[str, str] | None, spec: Mapping[str, Any],
                    path: str) -> list[FieldError]:
    """``ValidatePodSpecificAnnotations``."""
    values = values or {}
    errs: list[FieldError] = []
    if MIRROR_ANNOTATION in values and not spec.get("nodeName"):
        errs.append(invalid(f"{path}[{MIRROR_ANNOTATION}]", values[MIRROR_ANNOTATION],
                            "must set spec.nodeName if mirror pod annotation is set"))
    if DELETION_COST in values and not _valid_deletion_cost(values[DELETION_COST]):
        errs.append(invalid(f"{path}[{DELETION_COST}]", values[DELETION_COST],
                            "must be a 32bit integer"))
    if SECCOMP_POD in values:
        errs += _seccomp_profile_annotation(values[SECCOMP_POD], f"{path}.{SECCOMP_POD}")
    for key, value in values.items():
        if key.startswith(SECCOMP_CONTAINER):
            errs += _seccomp_profile_annotation(value, f"{path}.{key}")
    for key, value in values.items():
        if not key.startswith(APPARMOR_CONTAINER):
            continue
        container = key[len(APPARMOR_CONTAINER):]
        if not _has_container(spec, container):
            errs.append(invalid(f"{path}[{key}]", container, "container not found"))
        if value not in ("", "runtime/default", "unconfined") and not value.startswith("localhost/"):
            errs.append(invalid(f"{path}[{key}]", value,
                                f"invalid AppArmor profile name: {names.go_quote(value)}"))
    return errs


# --- scheduling-related parts of the spec ----------------------------------------------

def tolerations(items: list, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, t in enumerate(items):
        p = f"{path}[{i}]"
        key, op = t.get("key") or "", t.get("operator") or ""
        effect, value = t.get("effect") or "", t.get("value") or ""
        if key:
            errs += label_name(key, f"{p}.key")
        if not key and op != "Exists":
            errs.append(invalid(f"{p}.operator", op, "operator must be Exists when `key` is "
                                "empty, which means \"match all values and all keys\""))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{p}.effect", effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            msgs = names.is_valid_label_value(value)
            if msgs:
                errs.append(invalid(f"{p}.operator", value, ";".join(msgs)))
        elif op == "Exists":
            if value:
                errs.append(invalid(f"{p}.operator", value,
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(f"{p}.operator", op, ["Equal", "Exists"]))
        if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(not_supported(f"{p}.effect", effect,
                                      ["NoSchedule", "PreferNoSchedule", "NoExecute"]))
    return errs


def _node_selector_requirement(rq: Mapping[str, Any], path: str, check_values: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    op, values = rq.get("operator") or "", rq.get("values") or []
    if op in ("In", "NotIn"):
        if not values:
            errs.append(required(f"{path}.values",
                                 "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(forbidden(f"{path}.values", "may not be specified when `operator` is "
                                  "'Exists' or 'DoesNotExist'"))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(required(f"{path}.values", "must be specified single value when "
                                 "`operator` is 'Lt' or 'Gt'"))
    else:
        errs.append(invalid(f"{path}.operator", op, "not a valid selector operator"))
    errs += label_name(rq.get("key") or "", f"{path}.key")
    if check_values:
        for j, value in enumerate(values):
            errs += [invalid(f"{path}.values[{j}]", value, m)
                     for m in names.is_valid_label_value(str(value))]
    return errs


def _node_selector_term(term: Mapping[str, Any], path: str, check_values: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    for j, rq in enumerate(term.get("matchExpressions") or []):
        errs += _node_selector_requirement(rq, f"{path}.matchExpressions[{j}]", check_values)
    for j, rq in enumerate(term.get("matchFields") or []):
        p = f"{path}.matchFields[{j}]"
        if rq.get("operator") in ("In", "NotIn"):
            if len(rq.get("values") or []) != 1:
                errs.append(required(f"{p}.values", "must be only one value when `operator` is "
                                     "'In' or 'NotIn' for node field selector"))
        else:
            errs.append(invalid(f"{p}.operator", rq.get("operator") or "",
                                "not a valid selector operator"))
        if rq.get("key") != "metadata.name":
            errs.append(invalid(f"{p}.key", rq.get("key") or "", "not a valid field selector key"))
        else:
            for k, value in enumerate(rq.get("values") or []):
                errs += [invalid(f"{p}.values[{k}]", value, m)
                         for m in names.name_is_dns_subdomain(value, False)]
    return errs


def _pod_affinity_term(term: Mapping[str, Any], path: str) -> list[FieldError]:
    errs = label_selector(term.get("labelSelector"), f"{path}.labelSelector")
    errs += label_selector(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    for ns in term.get("namespaces") or []:
        errs += [invalid(f"{path}.namespace", ns, m) for m in names.name_is_dns_label(ns, False)]
    topology = term.get("topologyKey") or ""
    if not topology:
        errs.append(required(f"{path}.topologyKey", "can not be empty"))
    return errs + label_name(topology, f"{path}.topologyKey")


def affinity(aff: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    if not aff:
        return []
    errs: list[FieldError] = []
    node = aff.get("nodeAffinity")
    if node:
        np = f"{path}.nodeAffinity"
        req = node.get("requiredDuringSchedulingIgnoredDuringExecution")
        if req is not None:
            terms = req.get("nodeSelectorTerms") or []
            tp = f"{np}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
            if not terms:
                errs.append(required(tp, "must have at least one node selector term"))
            for i, term in enumerate(terms):
                errs += _node_selector_term(term, f"{tp}[{i}]", True)
        pp = f"{np}.preferredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(node.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
            weight = term.get("weight") or 0
            if not 0 < weight <= 100:
                errs.append(invalid(f"{pp}[{i}].weight", weight, "must be in the range 1-100"))
            errs += _node_selector_term(term.get("preference") or {}, f"{pp}[{i}].preference", False)
    for key in ("podAffinity", "podAntiAffinity"):
        part = aff.get(key)
        if not part:
            continue
        rp = f"{path}.{key}.requiredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(part.get("requiredDuringSchedulingIgnoredDuringExecution") or []):
            errs += _pod_affinity_term(term, f"{rp}[{i}]")
        pp = f"{path}.{key}.preferredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(part.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
            weight = term.get("weight") or 0
            if not 0 < weight <= 100:
                errs.append(invalid(f"{pp}[{i}].weight", weight, "must be in the range 1-100"))
            errs += _pod_affinity_term(term.get("podAffinityTerm") or {},
                                       f"{pp}[{i}].podAffinityTerm")
    return errs


def dns_config(config: Mapping[str, Any] | None, policy: str, path: str) -> list[FieldError]:
    if policy == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.get("nameservers"):
            return [required(f"{path}.nameservers",
                             "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    if config is None:
        return []
    errs: list[FieldError] = []
    servers = config.get("nameservers") or []
    if len(servers) > 3:
        errs.append(invalid(f"{path}.nameservers", servers, "must not have more than 3 nameservers"))
    for i, ip in enumerate(servers):
        errs += [invalid(f"{path}.nameservers[{i}]", ip, m) for m in names.is_valid_ip(ip)]
    searches = config.get("searches") or []
    if len(searches) > 32:
        errs.append(invalid(f"{path}.searches", searches, "must not have more than 32 search paths"))
    if len(" ".join(searches)) > 2048:
        errs.append(invalid(f"{path}.searches", searches, "must not have more than 2048 "
                            "characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        trimmed = search[:-1] if search.endswith(".") else search
        errs += [invalid(f"{path}.searches[{i}]", trimmed, m)
                 for m in names.is_dns1123_subdomain(trimmed)]
    for i, option in enumerate(config.get("options") or []):
        if not option.get("name"):
            errs.append(required(f"{path}.options[{i}]", "must not be empty"))
    return errs


def topology_spread(items: list, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        skew = c.get("maxSkew") or 0
        if skew <= 0:
            errs.append(invalid(f"{p}.maxSkew", skew, "must be greater than zero"))
        if not c.get("topologyKey"):
            errs.append(required(f"{p}.topologyKey", "can not be empty"))
        action = c.get("whenUnsatisfiable") or ""
        if action not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(not_supported(f"{p}.whenUnsatisfiable", action,
                                      ["DoNotSchedule", "ScheduleAnyway"]))
        for other in items[i + 1:]:
            if (other.get("topologyKey"), other.get("whenUnsatisfiable")) == (
                    c.get("topologyKey"), c.get("whenUnsatisfiable")):
                errs.append(duplicate(f"{p}.{{topologyKey, whenUnsatisfiable}}",
                                      f"{{{c.get('topologyKey') or ''}, {action}}}"))
                break
        min_domains = c.get("minDomains")
        if min_domains is not None:
            if min_domains <= 0:
                errs.append(invalid(f"{p}.minDomains", min_domains, "must be greater than zero"))
            if action != "DoNotSchedule":
                errs.append(invalid(f"{p}.minDomains", min_domains, "can only use minDomains if "
                                    f"whenUnsatisfiable=DoNotSchedule, not {action}"))
        for key in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            if c.get(key) is not None and c[key] not in ("Honor", "Ignore"):
                errs.append(not_supported(f"{p}.{key}", c[key], ["Honor", "Ignore"]))
        errs += label_selector(c.get("labelSelector"), f"{p}.labelSelector")
    return errs


def pod_security_context(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    sc = spec.get("securityContext")
    if sc is None:
        return []
    errs = ctr.id_range(sc.get("fsGroup"), f"{path}.fsGroup")
    errs += ctr.id_range(sc.get("runAsUser"), f"{path}.runAsUser")
    errs += ctr.id_range(sc.get("runAsGroup"), f"{path}.runAsGroup")
    for i, gid in enumerate(sc.get("supplementalGroups") or []):
        errs += ctr.id_range(gid, f"{path}.supplementalGroups[{i}]")
    if spec.get("shareProcessNamespace") and spec.get("hostPID"):
        errs.append(invalid(f"{path}.shareProcessNamespace", True,
                            "ShareProcessNamespace and HostPID cannot both be enabled"))
    seen: set[str] = set()
    for i, sysctl in enumerate(sc.get("sysctls") or []):
        name = sysctl.get("name") or ""
        if not name:
            errs.append(required(f"{path}.sysctls[{i}].name"))
        elif name in seen:
            errs.append(duplicate(f"{path}.sysctls[{i}].name", name))
        seen.add(name)
    policy = sc.get("fsGroupChangePolicy")
    if policy is not None and policy not in ("OnRootMismatch", "Always"):
        errs.append(not_supported(f"{path}.fsGroupChangePolicy", policy,
                                  ["Always", "OnRootMismatch"]))
    errs += ctr.seccomp_profile(sc.get("seccompProfile"), f"{path}.seccompProfile")
    errs += ctr.apparmor_profile(sc.get("appArmorProfile"), f"{path}.appArmorProfile")
    policy = sc.get("supplementalGroupsPolicy")
    if policy is not None and policy not in ("Merge", "Strict"):
        errs.append(not_supported(f"{path}.supplementalGroupsPolicy", policy, ["Merge", "Strict"]))
    return errs


# --- the spec --------------------------------------------------------------------------

def _host_network_ports(spec: Mapping[str, Any], path: str, resource_is_pod: bool) -> list[FieldError]:
    if not spec.get("hostNetwork"):
        return []
    errs: list[FieldError] = []
    for i, c in enumerate(spec.get("containers") or []):
        for j, port in enumerate(c.get("ports") or []):
            host, cport = port.get("hostPort") or 0, port.get("containerPort") or 0
            if (resource_is_pod or host != 0) and host != cport:
                errs.append(invalid(f"{path}.containers[{i}].ports[{j}].hostPort", host,
                                    "must match `containerPort` when `hostNetwork` is true"))
    return errs


def pod_spec(spec: Mapping[str, Any], pod_meta: Mapping[str, Any] | None, path: str, *,
             resource_is_pod: bool) -> list[FieldError]:
    """``ValidatePodSpec``."""
    errs: list[FieldError] = []
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        errs.append(required(f"{path}.terminationGracePeriodSeconds"))
    host_users = spec.get("hostUsers") is not False
    vols, verrs = validate_volumes(spec.get("volumes"), pod_meta, f"{path}.volumes",
                                   resource_is_pod=resource_is_pod)
    errs += verrs
    claim_names: set[str] = set()
    for i, claim in enumerate(spec.get("resourceClaims") or []):
        name = claim.get("name") or ""
        if not name:
            errs.append(required(f"{path}.resourceClaims[{i}].name"))
        elif name in claim_names:
            errs.append(duplicate(f"{path}.resourceClaims[{i}].name", name))
        else:
            errs += [invalid(f"{path}.resourceClaims[{i}].name", name, m)
                     for m in names.is_dns1123_label(name)]
            claim_names.add(name)
    regular, init = spec.get("containers") or [], spec.get("initContainers") or []
    errs += ctr.containers(regular, vols, grace, f"{path}.containers", host_users)
    errs += ctr.init_containers(init, regular, vols, grace, f"{path}.initContainers", host_users)
    errs += ctr.ephemeral_containers(spec.get("ephemeralContainers") or [], regular, init, vols,
                                     f"{path}.ephemeralContainers", host_users)
    errs += _host_network_ports(spec, path, resource_is_pod)
    restart = spec.get("restartPolicy") or ""
    if not restart:
        errs.append(required(f"{path}.restartPolicy"))
    elif restart not in RESTART_POLICIES:
        errs.append(not_supported(f"{path}.restartPolicy", restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy") or ""
    if not dns:
        errs.append(required(f"{path}.dnsPolicy"))
    elif dns not in DNS_POLICIES:
        errs.append(not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    errs += labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    errs += pod_security_context(spec, f"{path}.securityContext")
    errs += affinity(spec.get("affinity"), f"{path}.affinity")
    errs += dns_config(spec.get("dnsConfig"), dns, f"{path}.dnsConfig")
    for i, gate in enumerate(spec.get("readinessGates") or []):
        ctype = gate.get("conditionType") or ""
        errs += [invalid(f"{path}.readinessGates[{i}].conditionType", ctype, m)
                 for m in names.is_qualified_name(ctype)]
    seen_gates: set[str] = set()
    for i, gate in enumerate(spec.get("schedulingGates") or []):
        gname = gate.get("name") or ""
        errs += [invalid(f"{path}.schedulingGates[{i}]", gname, m)
                 for m in names.is_qualified_name(gname)]
        if gname in seen_gates:
            errs.append(duplicate(f"{path}.schedulingGates[{i}]", gname))
        seen_gates.add(gname)
    errs += topology_spread(spec.get("topologySpreadConstraints") or [],
                            f"{path}.topologySpreadConstraints")
    if spec.get("hostUsers") is False:
        for key, shown in (("hostNetwork", "hostNetwork"), ("hostPID", "HostPID"),
                           ("hostIPC", "HostIPC")):
            if spec.get(key):
                errs.append(forbidden(f"{path}.{shown}", "when `pod.Spec.HostUsers` is false"))
    errs += _names_and_limits(spec, path)
    return errs


def _names_and_limits(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("serviceAccountName", "nodeName", "priorityClassName"):
        value = spec.get(key) or ""
        if value:
            errs += [invalid(f"{path}.{key}", value, m)
                     for m in names.name_is_dns_subdomain(value, False)]
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline,
                            f"must be between 1 and {MAX_INT32}, inclusive"))
    for key in ("hostname", "subdomain"):
        value = spec.get(key) or ""
        if value:
            errs += [invalid(f"{path}.{key}", value, m) for m in names.is_dns1123_label(value)]
    if spec.get("tolerations"):
        errs += tolerations(spec["tolerations"], f"{path}.tolerations")
    for i, alias in enumerate(spec.get("hostAliases") or []):
        ip = alias.get("ip") or ""
        errs += [invalid(f"{path}.hostAliases[{i}].ip", ip, m) for m in names.is_valid_ip(ip)]
        for j, host in enumerate(alias.get("hostnames") or []):
            errs += [invalid(f"{path}.hostAliases[{i}].hostnames[{j}]", host, m)
                     for m in names.is_dns1123_subdomain(host)]
    runtime = spec.get("runtimeClassName")
    if runtime is not None:
        errs += [invalid(f"{path}.runtimeClassName", runtime, m)
                 for m in names.name_is_dns_subdomain(runtime, False)]
    preemption = spec.get("preemptionPolicy")
    if preemption is not None:
        if not preemption:
            errs.append(required(f"{path}.preemptionPolicy"))
        elif preemption not in ("PreemptLowerPriority", "Never"):
            errs.append(not_supported(f"{path}.preemptionPolicy", preemption,
                                      ["PreemptLowerPriority", "Never"]))
    os_spec = spec.get("os")
    if os_spec is not None:
        os_name = os_spec.get("name") or ""
        if not os_name:
            errs.append(required(f"{path}.os.name", "cannot be empty"))
        elif os_name not in ("linux", "windows"):
            errs.append(not_supported(f"{path}.os", os_name, ["linux", "windows"]))
        elif os_name == "linux":
            errs += _linux_only(spec, path)
    return errs


def _linux_only(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    errs = []
    if (spec.get("securityContext") or {}).get("windowsOptions") is not None:
        errs.append(forbidden(f"{path}.securityContext.windowsOptions",
                              "windows options cannot be set for a linux pod"))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(key) or []):
            if (c.get("securityContext") or {}).get("windowsOptions") is not None:
                errs.append(forbidden(f"{path}.{key}[{i}].securityContext.windowsOptions",
                                      "windows options cannot be set for a linux pod"))
    return errs


# --- pods, templates -----------------------------------------------------------------

def template_spec(template: Mapping[str, Any], path: str) -> list[FieldError]:
    """``ValidatePodTemplateSpec`` (a pod template inside a workload)."""
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    errs = labels(meta.get("labels"), f"{path}.labels")
    errs += annotations(meta.get("annotations"), f"{path}.annotations")
    errs += pod_annotations(meta.get("annotations"), spec, f"{path}.annotations")
    errs += pod_spec(spec, None, f"{path}.spec", resource_is_pod=False)
    if spec.get("ephemeralContainers"):
        errs.append(forbidden(f"{path}.spec.ephemeralContainers",
                              "ephemeral containers not allowed in pod template"))
    return errs


def _pod_metadata_and_spec(pod: Mapping[str, Any]) -> list[FieldError]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    errs = standard_meta(pod, None, SUBDOMAIN, True)
    errs += pod_annotations(meta.get("annotations"), spec, "metadata.annotations")
    errs += pod_spec(spec, meta, "spec", resource_is_pod=True)
    if not spec.get("serviceAccountName"):
        for vi, vol in enumerate(spec.get("volumes") or []):
            for si, source in enumerate((vol.get("projected") or {}).get("sources") or []):
                if source.get("serviceAccountToken") is not None:
                    errs.append(forbidden(
                        f"spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                        "must not be specified when serviceAccountName is not set"))
    for key in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(key) or []):
            errs += ctr.image_whitespace(c, f"spec.{key}[{i}]")
    return errs


def validate_pod(pod: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    if old is not None:
        return _pod_update(pod, old)
    spec = pod.get("spec") or {}
    errs = _pod_metadata_and_spec(pod)
    if spec.get("ephemeralContainers"):
        errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if spec.get("nodeName") and spec.get("schedulingGates"):
        errs.append(forbidden("spec.nodeName",
                              "cannot be set until all schedulingGates have been cleared"))
    return errs


def _annotation_updates(new: Mapping[str, str], old: Mapping[str, str]) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in old.items():
        if key in new and new[key] == value:
            continue
        if key.startswith(APPARMOR_CONTAINER):
            errs.append(forbidden(f"metadata.annotations[{key}]",
                                  "may not remove or update AppArmor annotations"))
        if key == MIRROR_ANNOTATION:
            errs.append(forbidden(f"metadata.annotations[{key}]",
                                  "may not remove or update mirror pod annotation"))
    for key in new:
        if key in old:
            continue
        if key.startswith(APPARMOR_CONTAINER):
            errs.append(forbidden(f"metadata.annotations[{key}]", "may not add AppArmor annotations"))
        if key == MIRROR_ANNOTATION:
            errs.append(forbidden(f"metadata.annotations[{key}]", "may not add mirror pod annotation"))
    return errs


def _pod_update(pod: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    errs = standard_meta(pod, old, SUBDOMAIN, True)
    errs += _pod_metadata_and_spec(pod)
    new_ann = (pod.get("metadata") or {}).get("annotations") or {}
    errs += _annotation_updates(new_ann, (old.get("metadata") or {}).get("annotations") or {})
    errs += pod_annotations(new_ann, pod.get("spec") or {}, "metadata.annotations")
    new_spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        new_list, old_list = new_spec.get(key) or [], old_spec.get(key) or []
        if len(new_list) != len(old_list):
            errs.append(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return errs
        for i, c in enumerate(new_list):
            if not c.get("image"):
                errs.append(required(f"spec.{key}[{i}].image"))
            errs += ctr.image_whitespace(c, f"spec.{key}[{i}]")
    new_deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get(
        "activeDeadlineSeconds")
    if new_deadline is not None:
        if not 0 <= new_deadline <= MAX_INT32:
            errs.append(invalid("spec.activeDeadlineSeconds", new_deadline,
                                f"must be between 0 and {MAX_INT32}, inclusive"))
            return errs
        if old_deadline is not None and old_deadline < new_deadline:
            errs.append(invalid("spec.activeDeadlineSeconds", new_deadline,
                                "must be less than or equal to previous value"))
            return errs
    elif old_deadline is not None:
        errs.append(invalid("spec.activeDeadlineSeconds", None,
                            "must not update from a positive integer to nil value"))
    errs += _only_added_tolerations(new_spec.get("tolerations") or [],
                                    old_spec.get("tolerations") or [])
    errs += _only_deleted_gates(new_spec.get("schedulingGates") or [],
                                old_spec.get("schedulingGates") or [])
    if semantic_equal(new_spec, old_spec):
        return errs
    munged = _munge_updatable(new_spec, old_spec)
    if not semantic_equal(munged, old_spec):
        errs.append(forbidden("spec", f"pod updates may not change fields other than {UPDATABLE}"
                              f"\n{diff_detail(old_spec, munged)}"))
    return errs


def _munge_updatable(new_spec: Mapping[str, Any], old_spec: Mapping[str, Any]) -> dict:
    munged = copy.deepcopy(dict(new_spec))
    for key in ("containers", "initContainers"):
        items = munged.get(key) or []
        for c, o in zip(items, old_spec.get(key) or []):
            c["image"] = o.get("image")
    munged["activeDeadlineSeconds"] = old_spec.get("activeDeadlineSeconds")
    munged["schedulingGates"] = old_spec.get("schedulingGates")
    munged["tolerations"] = old_spec.get("tolerations")
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if old_grace is not None and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if old_spec.get("schedulingGates"):
        old_selector = old_spec.get("nodeSelector") or {}
        new_selector = munged.get("nodeSelector") or {}
        if all(new_selector.get(k) == v for k, v in old_selector.items()):
            munged["nodeSelector"] = old_spec.get("nodeSelector")
    return munged


def _only_added_tolerations(new: list, old: list) -> list[FieldError]:
    for o in old:
        def same(n: Mapping[str, Any]) -> bool:
            return semantic_equal({**o, "tolerationSeconds": n.get("tolerationSeconds")}, n)
        if not any(same(n) for n in new):
            return [forbidden("spec.tolerations",
                              "existing toleration can not be modified except its tolerationSeconds")]
    return tolerations(new, "spec.tolerations")


def _only_deleted_gates(new: list, old: list) -> list[FieldError]:
    old_names = {g.get("name") for g in old}
    return [forbidden(f"spec.schedulingGates[{i}].name",
                      f"only deletion is allowed, but found new scheduling gate "
                      f"'{g.get('name') or ''}'")
            for i, g in enumerate(new) if g.get("name") not in old_names]


def validate_ephemeral_update(pod: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """``ValidatePodEphemeralContainersUpdate`` (the ``ephemeralcontainers`` subresource)."""
    errs = standard_meta(pod, old, SUBDOMAIN, True)
    errs += _pod_metadata_and_spec(pod)
    new_ann = (pod.get("metadata") or {}).get("annotations") or {}
    old_ann = (old.get("metadata") or {}).get("annotations") or {}
    errs += _annotation_updates(new_ann, old_ann)
    errs += pod_annotations(new_ann, pod.get("spec") or {}, "metadata.annotations")
    if MIRROR_ANNOTATION in old_ann:
        return [forbidden("", "static pods do not support ephemeral containers")]
    current = {c.get("name"): c for c in (pod.get("spec") or {}).get("ephemeralContainers") or []}
    for previous in (old.get("spec") or {}).get("ephemeralContainers") or []:
        name = previous.get("name") or ""
        if name not in current:
            errs.append(forbidden("spec.ephemeralContainers", f"existing ephemeral containers "
                                  f"{names.go_quote(name)} may not be removed\n"))
        elif not semantic_equal(previous, current[name]):
            errs.append(forbidden("spec.ephemeralContainers", f"existing ephemeral containers "
                                  f"{names.go_quote(name)} may not be changed\n"
                                  + diff_detail(previous, current[name])))
    return errs


def validate_pod_template(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    """The PodTemplate kind (``ValidatePodTemplate`` / ``ValidatePodTemplateUpdate``)."""
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    return errs + template_spec(obj.get("template") or {}, "template")
