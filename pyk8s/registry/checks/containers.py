"""Container checks: regular, init and ephemeral containers of a pod spec.

Role: upstream's ``validateContainerCommon`` and what hangs off it: names and
images, ports, env and envFrom, volume mounts and devices, probes and lifecycle
handlers, pull policy, resource requirements and the container security context;
plus the list-level rules (unique names, host-port conflicts, what init and
ephemeral containers may not set).

Invariants:
- ``volumes`` is the map of valid volume names returned by ``validate_volumes``.
- v1.32 feature gates as shipped: relaxed environment variable names (beta, on),
  sleep actions of zero seconds (alpha, off); privileged containers are allowed,
  as on a k3s-style node.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from ...api import validation as names
from ...api.quantities import QuantityError, parse_quantity
from .field import (FieldError, duplicate, forbidden, go_struct, invalid, nonnegative,
                    not_found, not_supported, required, too_long_max_length)
from .volumes import local_descending_path, object_field_selector, path_no_backsteps

PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_POLICIES = ["File", "FallbackToLogsOnError"]
ENV_FIELD_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                   "status.podIP", "status.podIPs"]
RESOURCE_FIELD_PATHS = ["limits.cpu", "limits.ephemeral-storage", "limits.memory",
                        "requests.cpu", "requests.ephemeral-storage", "requests.memory"]
STANDARD_RESOURCES = {
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "configmaps",
    "persistentvolumeclaims", "storage", "requests.storage", "services.nodeports",
    "services.loadbalancers",
}
CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
UID_RANGE = "must be between 0 and 4294967295, inclusive"
SECCOMP_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
APPARMOR_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
EPHEMERAL_FORBIDDEN = ["ports", "resources", "livenessProbe", "readinessProbe",
                       "startupProbe", "lifecycle", "resizePolicy", "restartPolicy"]
_HUGEPAGES = "hugepages-"
_HEADER_NAME = re.compile(r"^[-A-Za-z0-9]+\Z")
INTEGER_RESOURCES = {"pods", "resourcequotas", "services", "replicationcontrollers", "secrets",
                     "configmaps", "persistentvolumeclaims", "services.nodeports",
                     "services.loadbalancers"}


# --- resources ---------------------------------------------------------------------

def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended_resource(name: str) -> bool:
    if _is_native(name) or name.startswith("requests."):
        return False
    return not names.is_qualified_name("requests." + name)


def overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not name.startswith(_HUGEPAGES)


def resource_name(name: str, path: str) -> list[FieldError]:
    """``validateContainerResourceName`` (which starts with ``validateResourceName``)."""
    errs = [invalid(path, name, m) for m in names.is_qualified_name(name)]
    if errs:
        return errs
    single = "/" not in name
    if single and name not in STANDARD_RESOURCES and not name.startswith(
            ("requests.hugepages-", "limits.hugepages-", _HUGEPAGES)):
        errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
    if single:
        if name not in CONTAINER_RESOURCES and not name.startswith(_HUGEPAGES):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not is_extended_resource(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def _quantity(value: Any):
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def quantity_value(name: str, value: Any, path: str) -> list[FieldError]:
    """``ValidateResourceQuantityValue``: not negative, whole for integer resources."""
    q = _quantity(value)
    if q is None:
        return []
    errs = []
    if q.sign() < 0:
        errs.append(invalid(path, str(q), "must be greater than or equal to 0"))
    if (name in INTEGER_RESOURCES or is_extended_resource(name)) and q.milli_value() % 1000:
        errs.append(invalid(path, q, "must be an integer", shown=str(q)))
    return errs


def resource_requirements(res: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    lim_path, req_path = f"{path}.limits", f"{path}.requests"
    cpu_mem = huge = False
    for name, value in limits.items():
        errs += resource_name(name, f"{lim_path}[{name}]")
        errs += quantity_value(name, value, f"{lim_path}[{name}]")
        huge = huge or name.startswith(_HUGEPAGES)
        cpu_mem = cpu_mem or name in ("cpu", "memory")
    for name, value in requests.items():
        errs += resource_name(name, f"{req_path}[{name}]")
        errs += quantity_value(name, value, f"{req_path}[{name}]")
        q = _quantity(value)
        if name in limits:
            lim = _quantity(limits[name])
            if q is not None and lim is not None:
                if q != lim and not overcommit_allowed(name):
                    errs.append(invalid(req_path, str(q),
                                        f"must be equal to {name} limit of {lim}"))
                elif q > lim:
                    errs.append(invalid(req_path, str(q),
                                        f"must be less than or equal to {name} limit of {lim}"))
        elif not overcommit_allowed(name):
            errs.append(required(lim_path, "Limit must be set for non overcommitable resources"))
        huge = huge or name.startswith(_HUGEPAGES)
        cpu_mem = cpu_mem or name in ("cpu", "memory")
    if huge and not cpu_mem:
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    for i, claim in enumerate(res.get("claims") or []):
        if not claim.get("name"):
            errs.append(required(f"{path}.claims[{i}]"))
    return errs


# --- ports, env, mounts ------------------------------------------------------------------

def container_ports(ports: list, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        name = port.get("name") or ""
        if name:
            msgs = names.is_valid_port_name(name)
            if msgs:
                errs += [invalid(f"{p}.name", name, m) for m in msgs]
            elif name in seen:
                errs.append(duplicate(f"{p}.name", name))
            else:
                seen.add(name)
        number = port.get("containerPort") or 0
        if number == 0:
            errs.append(required(f"{p}.containerPort"))
        else:
            errs += [invalid(f"{p}.containerPort", number, m) for m in names.is_valid_port_num(number)]
        host = port.get("hostPort") or 0
        if host:
            errs += [invalid(f"{p}.hostPort", host, m) for m in names.is_valid_port_num(host)]
        protocol = port.get("protocol") or ""
        if not protocol:
            errs.append(required(f"{p}.protocol"))
        elif protocol not in PROTOCOLS:
            errs.append(not_supported(f"{p}.protocol", protocol, PROTOCOLS))
    return errs


def env_var_name(name: str) -> list[str]:
    """``IsRelaxedEnvVarName`` (RelaxedEnvironmentVariableValidation is on in v1.32)."""
    if any(ord(c) > 127 or not c.isprintable() or c == "=" for c in name):
        return ["a valid environment variable name must consist only of printable ASCII "
                "characters other than '='"]
    return []


def _key_selector(ref: Mapping[str, Any], path: str) -> list[FieldError]:
    name = ref.get("name") or ""
    errs = [invalid(f"{path}.name", name, m) for m in names.name_is_dns_subdomain(name, False)]
    key = ref.get("key") or ""
    if not key:
        errs.append(required(f"{path}.key"))
    else:
        errs += [invalid(f"{path}.key", key, m) for m in names.is_config_map_key(key)]
    return errs


def env(values: list, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, ev in enumerate(values):
        p = f"{path}[{i}]"
        name = ev.get("name") or ""
        if not name:
            errs.append(required(f"{p}.name"))
        else:
            errs += [invalid(f"{p}.name", name, m) for m in env_var_name(name)]
        source = ev.get("valueFrom")
        if source is None:
            continue
        vp = f"{p}.valueFrom"
        count = 0
        if source.get("fieldRef") is not None:
            count += 1
            errs += object_field_selector(source["fieldRef"], ENV_FIELD_PATHS, f"{vp}.fieldRef")
        if source.get("resourceFieldRef") is not None:
            count += 1
            resource = source["resourceFieldRef"].get("resource") or ""
            rp = f"{vp}.resourceFieldRef"
            if not resource:
                errs.append(required(f"{rp}.resource"))
            elif resource not in RESOURCE_FIELD_PATHS and not resource.startswith(
                    ("requests.hugepages-", "limits.hugepages-")):
                errs.append(not_supported(f"{rp}.resource", resource, RESOURCE_FIELD_PATHS))
        for key in ("configMapKeyRef", "secretKeyRef"):
            if source.get(key) is not None:
                count += 1
                errs += _key_selector(source[key], f"{vp}.{key}")
        if count == 0:
            errs.append(invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                "`configMapKeyRef` or `secretKeyRef`"))
        elif ev.get("value"):
            errs.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        elif count > 1:
            errs.append(invalid(vp, "", "may not have more than one field specified at a time"))
    return errs


def env_from(values: list, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, ev in enumerate(values):
        p = f"{path}[{i}]"
        prefix = ev.get("prefix") or ""
        if prefix:
            errs += [invalid(f"{p}.prefix", prefix, m) for m in env_var_name(prefix)]
        count = 0
        for key in ("configMapRef", "secretRef"):
            ref = ev.get(key)
            if ref is None:
                continue
            count += 1
            name = ref.get("name") or ""
            if not name:
                errs.append(required(f"{p}.{key}.name"))
            else:
                errs += [invalid(f"{p}.{key}.name", name, m)
                         for m in names.name_is_dns_subdomain(name, True)]
        if count == 0:
            errs.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def volume_mounts(mounts: list, devices: Mapping[str, str], volumes: Mapping[str, dict],
                  container: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    privileged = bool((container.get("securityContext") or {}).get("privileged"))
    for i, mnt in enumerate(mounts):
        p = f"{path}[{i}]"
        name, mount_path = mnt.get("name") or "", mnt.get("mountPath") or ""
        if not name:
            errs.append(required(f"{p}.name"))
        if name not in volumes:
            errs.append(not_found(f"{p}.name", name))
        if not mount_path:
            errs.append(required(f"{p}.mountPath"))
        if mount_path in seen:
            errs.append(invalid(f"{p}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
        if name in devices:
            errs.append(invalid(f"{p}.name", name, "must not already exist in volumeDevices"))
        if mount_path in devices.values():
            errs.append(invalid(f"{p}.mountPath", mount_path,
                                "must not already exist as a path in volumeDevices"))
        sub, sub_expr = mnt.get("subPath") or "", mnt.get("subPathExpr") or ""
        if (volumes.get(name) or {}).get("image") is not None:
            if sub:
                errs.append(invalid(f"{p}.subPath", sub, "not allowed in image volume sources"))
            if sub_expr:
                errs.append(invalid(f"{p}.subPathExpr", sub_expr,
                                    "not allowed in image volume sources"))
        if sub:
            errs += local_descending_path(sub, f"{path}.subPath")
        if sub_expr:
            if sub:
                errs.append(invalid(f"{p}.subPathExpr", sub_expr,
                                    "subPathExpr and subPath are mutually exclusive"))
            errs += local_descending_path(sub_expr, f"{path}.subPathExpr")
        propagation = mnt.get("mountPropagation")
        if propagation is not None:
            modes = ["Bidirectional", "HostToContainer", "None"]
            if propagation not in modes:
                errs.append(not_supported(f"{path}.mountPropagation", propagation, modes))
            if propagation == "Bidirectional" and not privileged:
                errs.append(forbidden(f"{path}.mountPropagation", "Bidirectional mount "
                                      "propagation is available only to privileged containers"))
        errs += _recursive_read_only(mnt, f"{path}.recursiveReadOnly")
    return errs


def _recursive_read_only(mnt: Mapping[str, Any], path: str) -> list[FieldError]:
    value = mnt.get("recursiveReadOnly")
    if value is None or value == "Disabled":
        return []
    if value in ("Enabled", "IfPossible"):
        errs = []
        if not mnt.get("readOnly"):
            errs.append(forbidden(path, "may only be specified when readOnly is true"))
        if mnt.get("mountPropagation") not in (None, "None"):
            errs.append(forbidden(path, "may only be specified when mountPropagation is None "
                                  "or not specified"))
        return errs
    return [not_supported(path, value, ["Disabled", "Enabled", "IfPossible"])]


def volume_devices(devices: list, mounts: Mapping[str, str], volumes: Mapping[str, dict],
                   path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen_paths: set[str] = set()
    seen_names: set[str] = set()
    for i, dev in enumerate(devices):
        p = f"{path}[{i}]"
        name, dev_path = dev.get("name") or "", dev.get("devicePath") or ""
        vol = volumes.get(name)
        is_pvc = vol is not None and (vol.get("persistentVolumeClaim") is not None
                                      or vol.get("ephemeral") is not None)
        if not name:
            errs.append(required(f"{p}.name"))
        if name in seen_names:
            errs.append(invalid(f"{p}.name", name, "must be unique"))
        if vol is not None and not is_pvc:
            errs.append(invalid(f"{p}.name", name, "can only use volume source type of "
                                "PersistentVolumeClaim or Ephemeral for block mode"))
        if vol is None:
            errs.append(not_found(f"{p}.name", name))
        if not dev_path:
            errs.append(required(f"{p}.devicePath"))
        if dev_path in seen_paths:
            errs.append(invalid(f"{p}.devicePath", dev_path, "must be unique"))
        if dev_path and path_no_backsteps(dev_path, p):
            errs.append(invalid(f"{p}.devicePath", dev_path, "can not contain backsteps ('..')"))
        else:
            seen_paths.add(dev_path)
        if name in mounts:
            errs.append(invalid(f"{p}.name", name, "must not already exist in volumeMounts"))
        if dev_path in mounts.values():
            errs.append(invalid(f"{p}.devicePath", dev_path,
                                "must not already exist as a path in volumeMounts"))
        if name:
            seen_names.add(name)
    return errs


# --- probes and handlers ---------------------------------------------------------------

def port_num_or_name(port: Any, path: str) -> list[FieldError]:
    if isinstance(port, int) and not isinstance(port, bool):
        return [invalid(path, port, m) for m in names.is_valid_port_num(port)]
    if isinstance(port, str):
        return [invalid(path, port, m) for m in names.is_valid_port_name(port)]
    return [FieldError("InternalError", path, None, f"unknown type: {port!r}")]


def handler(h: Mapping[str, Any], grace: Any, path: str, *, probe: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    kinds = ("exec", "httpGet", "tcpSocket", "grpc") if probe else (
        "exec", "httpGet", "tcpSocket", "sleep")
    for kind in kinds:
        action = h.get(kind)
        if action is None:
            continue
        if count:
            errs.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        count += 1
        p = f"{path}.{kind}"
        if kind == "exec" and not action.get("command"):
            errs.append(required(f"{p}.command"))
        elif kind == "httpGet":
            if not action.get("path"):
                errs.append(required(f"{p}.path"))
            errs += port_num_or_name(action.get("port", 0), f"{p}.port")
            scheme = action.get("scheme") or ""
            if scheme not in ("HTTP", "HTTPS"):
                errs.append(not_supported(f"{p}.scheme", scheme, ["HTTP", "HTTPS"]))
            for header in action.get("httpHeaders") or []:
                hn = header.get("name") or ""
                if not _HEADER_NAME.match(hn):
                    errs.append(invalid(f"{p}.httpHeaders", hn, names.regex_error(
                        "a valid HTTP header must consist of alphanumeric characters or '-'",
                        "[-A-Za-z0-9]+", "X-Header-Name")))
        elif kind == "tcpSocket":
            errs += port_num_or_name(action.get("port", 0), f"{p}.port")
        elif kind == "grpc":
            errs += port_num_or_name(action.get("port", 0), f"{p}.port")
        elif kind == "sleep" and isinstance(grace, int):
            seconds = action.get("seconds") or 0
            if seconds <= 0 or seconds > grace:
                errs.append(invalid(p, seconds, "must be greater than 0 and less than "
                                    f"terminationGracePeriodSeconds ({grace}). Enable "
                                    "AllowPodLifecycleSleepActionZeroValue feature gate for "
                                    "zero sleep."))
    if count == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def probe(pr: Mapping[str, Any] | None, grace: Any, path: str, kind: str) -> list[FieldError]:
    if pr is None:
        return []
    errs = handler(pr, grace, path, probe=True)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        errs += nonnegative(pr.get(key) or 0, f"{path}.{key}")
    tgps = pr.get("terminationGracePeriodSeconds")
    if tgps is not None and tgps <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", tgps, "must be greater than 0"))
    if kind in ("liveness", "startup") and pr.get("successThreshold", 1) != 1:
        errs.append(invalid(f"{path}.successThreshold", pr.get("successThreshold") or 0,
                            "must be 1"))
    if kind == "readiness" and tgps is not None:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", tgps,
                            "must not be set for readinessProbes"))
    return errs


def lifecycle(lc: Mapping[str, Any], grace: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("postStart", "preStop"):
        if lc.get(key) is not None:
            errs += handler(lc[key], grace, f"{path}.{key}", probe=False)
    return errs


# --- security context ---------------------------------------------------------------------

def id_range(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, int) and not 0 <= value <= 0xFFFFFFFF:
        return [invalid(path, value, UID_RANGE)]
    return []


def seccomp_profile(sp: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    if sp is None:
        return []
    errs: list[FieldError] = []
    kind = sp.get("type") or ""
    if not kind:
        errs.append(required(f"{path}.type", "type is required when seccompProfile is set"))
    elif kind not in SECCOMP_TYPES:
        errs.append(not_supported(f"{path}.type", kind, SECCOMP_TYPES))
    if kind == "Localhost":
        if sp.get("localhostProfile") is None:
            errs.append(required(f"{path}.localhostProfile",
                                 "must be set when seccomp type is Localhost"))
        else:
            errs += local_descending_path(sp["localhostProfile"], f"{path}.localhostProfile")
    elif sp.get("localhostProfile") is not None:
        errs.append(invalid(f"{path}.localhostProfile", sp, "can only be set when seccomp type "
                            "is Localhost", shown=go_struct("core.SeccompProfile", sp)))
    return errs


def apparmor_profile(ap: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    if ap is None:
        return []
    kind = ap.get("type") or ""
    local = ap.get("localhostProfile")
    if kind == "Localhost":
        if local is None:
            return [required(f"{path}.localhostProfile",
                             "must be set when AppArmor type is Localhost")]
        errs = []
        if local.strip() != local:
            errs.append(invalid(f"{path}.localhostProfile", local,
                                "must not be padded with whitespace"))
        elif not local:
            errs.append(required(f"{path}.localhostProfile",
                                 "must be set when AppArmor type is Localhost"))
        if len(local) > 4095:
            errs.append(too_long_max_length(f"{path}.localhostProfile", local, 4095))
        return errs
    if kind in ("RuntimeDefault", "Unconfined"):
        if local is not None:
            return [invalid(f"{path}.localhostProfile", local,
                            "can only be set when AppArmor type is Localhost")]
        return []
    if not kind:
        return [required(f"{path}.type", "type is required when appArmorProfile is set")]
    return [not_supported(f"{path}.type", kind, APPARMOR_TYPES)]


def security_context(sc: Mapping[str, Any] | None, path: str, host_users: bool) -> list[FieldError]:
    if sc is None:
        return []
    errs = id_range(sc.get("runAsUser"), f"{path}.runAsUser")
    errs += id_range(sc.get("runAsGroup"), f"{path}.runAsGroup")
    proc = sc.get("procMount")
    if proc is not None:
        if proc not in ("Default", "Unmasked"):
            errs.append(not_supported(f"{path}.procMount", proc, ["Default", "Unmasked"]))
        if host_users and proc == "Unmasked":
            errs.append(invalid(f"{path}.procMount", proc,
                                "`hostUsers` must be false to use `Unmasked`"))
    errs += seccomp_profile(sc.get("seccompProfile"), f"{path}.seccompProfile")
    if sc.get("allowPrivilegeEscalation") is False:
        shown = go_struct("core.SecurityContext", sc)
        if sc.get("privileged") is True:
            errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                "`privileged` to true", shown=shown))
        if "CAP_SYS_ADMIN" in ((sc.get("capabilities") or {}).get("add") or []):
            errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                "`capabilities.Add` CAP_SYS_ADMIN", shown=shown))
    errs += apparmor_profile(sc.get("appArmorProfile"), f"{path}.appArmorProfile")
    return errs


# --- containers --------------------------------------------------------------------

def container_common(c: Mapping[str, Any], volumes: Mapping[str, dict], path: str,
                     host_users: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    name = c.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs += [invalid(f"{path}.name", name, m) for m in names.is_dns1123_label(name)]
    if not c.get("image"):
        errs.append(required(f"{path}.image"))
    policy = c.get("terminationMessagePolicy") or ""
    if not policy:
        errs.append(required(f"{path}.terminationMessagePolicy"))
    elif policy not in TERMINATION_POLICIES:
        errs.append(not_supported(f"{path}.terminationMessagePolicy", policy, TERMINATION_POLICIES))
    mounts = {m.get("name") or "": m.get("mountPath") or "" for m in c.get("volumeMounts") or []}
    devices = {d.get("name") or "": d.get("devicePath") or "" for d in c.get("volumeDevices") or []}
    errs += container_ports(c.get("ports") or [], f"{path}.ports")
    errs += env(c.get("env") or [], f"{path}.env")
    errs += env_from(c.get("envFrom") or [], f"{path}.envFrom")
    errs += volume_mounts(c.get("volumeMounts") or [], devices, volumes, c, f"{path}.volumeMounts")
    errs += volume_devices(c.get("volumeDevices") or [], mounts, volumes, f"{path}.volumeDevices")
    pull = c.get("imagePullPolicy") or ""
    if not pull:
        errs.append(required(f"{path}.imagePullPolicy"))
    elif pull not in PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    errs += resource_requirements(c.get("resources") or {}, f"{path}.resources")
    errs += security_context(c.get("securityContext"), f"{path}.securityContext", host_users)
    return errs


def host_port_conflicts(containers: list, path: str, seen: set[str] | None = None) -> list[FieldError]:
    seen = set() if seen is None else seen
    errs: list[FieldError] = []
    for ci, c in enumerate(containers):
        for pi, port in enumerate(c.get("ports") or []):
            host = port.get("hostPort") or 0
            if not host:
                continue
            key = f"{port.get('protocol') or ''}/{port.get('hostIP') or ''}/{host}"
            if key in seen:
                errs.append(duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            else:
                seen.add(key)
    return errs


def containers(items: list, volumes: Mapping[str, dict], grace: Any, path: str,
               host_users: bool) -> list[FieldError]:
    if not items:
        return [required(path)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        errs += container_common(c, volumes, p, host_users)
        name = c.get("name") or ""
        if name in seen:
            errs.append(duplicate(f"{p}.name", name))
        else:
            seen.add(name)
        if c.get("lifecycle") is not None:
            errs += lifecycle(c["lifecycle"], grace, f"{p}.lifecycle")
        errs += probe(c.get("livenessProbe"), grace, f"{p}.livenessProbe", "liveness")
        errs += probe(c.get("readinessProbe"), grace, f"{p}.readinessProbe", "readiness")
        errs += probe(c.get("startupProbe"), grace, f"{p}.startupProbe", "startup")
        if c.get("restartPolicy") is not None:
            errs.append(forbidden(f"{p}.restartPolicy", "may not be set for non-init containers"))
    return errs + host_port_conflicts(items, path)


def init_containers(items: list, regular: list, volumes: Mapping[str, dict], grace: Any,
                    path: str, host_users: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    seen = {c.get("name") or "" for c in regular}
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        errs += container_common(c, volumes, p, host_users)
        restart = c.get("restartPolicy")
        if restart is not None and restart != "Always":
            errs.append(not_supported(f"{p}.restartPolicy", restart, ["Always"]))
        name = c.get("name") or ""
        if name in seen:
            errs.append(duplicate(f"{p}.name", name))
        elif name:
            seen.add(name)
        errs += host_port_conflicts([c], path)
        if restart == "Always":
            if c.get("lifecycle") is not None:
                errs += lifecycle(c["lifecycle"], grace, f"{p}.lifecycle")
            errs += probe(c.get("livenessProbe"), grace, f"{p}.livenessProbe", "liveness")
            errs += probe(c.get("readinessProbe"), grace, f"{p}.readinessProbe", "readiness")
            errs += probe(c.get("startupProbe"), grace, f"{p}.startupProbe", "startup")
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(key) is not None:
                    errs.append(forbidden(f"{p}.{key}", "may not be set for init containers "
                                          "without restartPolicy=Always"))
    return errs


def ephemeral_containers(items: list, regular: list, init: list, volumes: Mapping[str, dict],
                         path: str, host_users: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    others = {c.get("name") or "" for c in regular + init}
    seen = set(others)
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        errs += container_common(c, volumes, p, host_users)
        errs += image_whitespace(c, p)
        name = c.get("name") or ""
        if name in seen:
            errs.append(duplicate(f"{p}.name", name))
        else:
            seen.add(name)
        target = c.get("targetContainerName") or ""
        if target and target not in others:
            errs.append(not_found(f"{p}.targetContainerName", target))
        for key in EPHEMERAL_FORBIDDEN:
            if c.get(key) not in (None, [], {}):
                errs.append(forbidden(f"{p}.{key}", "cannot be set for an Ephemeral Container"))
        for j, vm in enumerate(c.get("volumeMounts") or []):
            for key in ("subPath", "subPathExpr"):
                if vm.get(key):
                    errs.append(forbidden(f"{p}.volumeMounts[{j}].{key}",
                                          "cannot be set for an Ephemeral Container"))
    return errs


def image_whitespace(c: Mapping[str, Any], path: str) -> list[FieldError]:
    image = c.get("image") or ""
    if image != image.strip():
        return [invalid(f"{path}.image", image, "must not have leading or trailing whitespace")]
    return []
