"""A container as CRI wants it: upstream's generateContainerConfig and its helpers.

Role: turn one container of a pod into a `ContainerConfig` dict: command and args
with `$(VAR)` expansion, the environment (values, fieldRef, resourceFieldRef,
configMapKeyRef/secretKeyRef and envFrom through a `ConfigSource`, the service
variables `<SVC>_SERVICE_HOST/PORT` and docker links), working dir,
mounts (volumes resolved by the caller, the termination-message file, the managed
/etc/hosts), log path `<name>/<restartCount>.log`, labels and annotations,
`LinuxContainerResources` (cpu shares/quota, memory limit, OOM score by QoS) and
the security context.

Invariants:
- The only I/O is the `ConfigSource` lookups; everything else is pure.
- A spec the kubelet cannot honour raises `ContainerConfigError` (upstream's
  CreateContainerConfigError) with upstream's message; nothing is silently dropped.
- Resource maths are upstream's (cm/helpers_linux.go, qos/policy.go): shares =
  milliCPU * 1024 / 1000 (min 2, max 262144), quota = milliCPU * period / 1000
  (min 1000) with period 100 ms, OOM score -997 Guaranteed, 1000 BestEffort,
  Burstable 1000 - 1000 * memRequest / capacity clamped to [3, 999].
"""
from __future__ import annotations

import base64
import math
import re
from typing import Callable, Mapping, Protocol

from pyk8s.api.quantities import Quantity, parse_quantity
from pyk8s.kubelet import pods

MIN_SHARES, MAX_SHARES, SHARES_PER_CPU = 2, 262144, 1024
QUOTA_PERIOD, MIN_QUOTA = 100_000, 1000
GUARANTEED_OOM_SCORE_ADJ, BEST_EFFORT_OOM_SCORE_ADJ = -997, 1000
DEFAULT_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger")


class ContainerConfigError(Exception):
    """The container's config cannot be built (CreateContainerConfigError)."""


class ConfigSource(Protocol):
    """Where configMapKeyRef/secretKeyRef/envFrom values come from (the API)."""

    async def config_map(self, namespace: str, name: str) -> dict | None:
        """The ConfigMap, or None if it does not exist."""
        ...

    async def secret(self, namespace: str, name: str) -> dict | None:
        """The Secret, or None if it does not exist."""
        ...


class NoConfigSource:
    """A `ConfigSource` without objects (unit tests, nodes without an API)."""

    async def config_map(self, namespace: str, name: str) -> dict | None:
        return None

    async def secret(self, namespace: str, name: str) -> dict | None:
        return None


# ---- $(VAR) expansion (third_party/forked/golang/expansion) -----------------------

def expand(text: str, *contexts: Mapping[str, str]) -> str:
    """Replace `$(NAME)` with its value from the first context that has it.

    `$$` is an escaped `$`; unknown or unterminated references stay as written.
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:close]
                    out.append(next((c[name] for c in contexts if name in c),
                                    f"$({name})"))
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


# ---- environment -------------------------------------------------------------------

def _field_value(pod: dict, path: str, *, pod_ips: list[str], host_ips: list[str]) -> str:
    m = pods.meta(pod)
    simple = {"metadata.name": m.get("name", ""), "metadata.namespace": m.get("namespace", ""),
              "metadata.uid": m.get("uid", ""),
              "spec.nodeName": pods.spec(pod).get("nodeName", ""),
              "spec.serviceAccountName": pods.spec(pod).get("serviceAccountName", ""),
              "status.podIP": pod_ips[0] if pod_ips else "",
              "status.podIPs": ",".join(pod_ips),
              "status.hostIP": host_ips[0] if host_ips else "",
              "status.hostIPs": ",".join(host_ips)}
    if path in simple:
        return simple[path]
    for prefix, source in (("metadata.labels", m.get("labels")),
                           ("metadata.annotations", m.get("annotations"))):
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted((source or {}).items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            return (source or {}).get(path[len(prefix) + 2:-2], "")
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def resource_field_value(pod: dict, container: dict, ref: dict,
                         allocatable: Mapping[str, Quantity]) -> str:
    """A resourceFieldRef's value (limits default to the node's allocatable)."""
    name = ref.get("containerName") or container["name"]
    target = pods.find_container(pod, name) or container
    kind, _, resource = ref.get("resource", "").partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise ContainerConfigError(f"unsupported container resource: {ref.get('resource')}")
    value = pods.quantity(target, kind, resource)
    if value is None and kind == "limits":
        value = allocatable.get(resource)
    if value is None:
        value = Quantity()
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor.is_zero():
        divisor = parse_quantity("1")
    if resource == "cpu":
        return str(math.ceil(value.milli_value() / divisor.milli_value()))
    return str(math.ceil(value.value() / max(divisor.value(), 1)))


def _decode(secret: dict) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode(errors="replace")
            for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


async def _source(kind: str, ref: dict, namespace: str, source: ConfigSource
                  ) -> dict[str, str] | None:
    """The data of the ConfigMap or Secret `ref` names; None if optional and absent."""
    name = ref.get("name", "")
    if kind == "configMap":
        obj = await source.config_map(namespace, name)
        plural = "configmaps"
    else:
        obj = await source.secret(namespace, name)
        plural = "secrets"
    if obj is None:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f'{plural[:-1]} "{name}" not found')
    return _decode(obj) if kind == "secret" else dict(obj.get("data") or {})


ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
MASTER_SERVICE_NAMESPACE, MASTER_SERVICE = "default", "kubernetes"


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def service_environment(services: list[dict]) -> dict[str, str]:
    """`<SVC>_SERVICE_HOST/PORT` and docker-link variables (kubelet/envvars FromServices)."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: pods.meta(s).get("name", "")):
        spec = svc.get("spec") or {}
        ip, ports = spec.get("clusterIP") or "", spec.get("ports") or []
        if ip in ("", "None") or not ports:
            continue
        prefix = _env_name(pods.meta(svc).get("name", ""))
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for p in ports:  # only the first may be unnamed
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p.get("port"))
        for i, p in enumerate(ports):
            protocol = (p.get("protocol") or "TCP").lower()
            host_port = f"[{ip}]:{p.get('port')}" if ":" in ip else f"{ip}:{p.get('port')}"
            if i == 0:  # docker special-cases the first port
                env[f"{prefix}_PORT"] = f"{protocol}://{host_port}"
            port_prefix = f"{prefix}_PORT_{p.get('port')}_{protocol.upper()}"
            env[port_prefix] = f"{protocol}://{host_port}"
            env[f"{port_prefix}_PROTO"] = protocol
            env[f"{port_prefix}_PORT"] = str(p.get("port"))
            env[f"{port_prefix}_ADDR"] = ip
    return env


def pod_services(pod: dict, services: list[dict]) -> list[dict]:
    """The services whose variables a pod gets (getServiceEnvVarMap).

    The `kubernetes` service of `default` always; the pod's namespace's services
    when `enableServiceLinks` (default true), a same-named one of them winning.
    """
    namespace = pods.meta(pod).get("namespace", "")
    links = pods.spec(pod).get("enableServiceLinks")
    chosen: dict[str, dict] = {}
    for svc in services:
        m = pods.meta(svc)
        name = m.get("name", "")
        if m.get("namespace") == MASTER_SERVICE_NAMESPACE and name == MASTER_SERVICE:
            chosen.setdefault(name, svc)
        elif m.get("namespace") == namespace and links is not False:
            chosen[name] = svc
    return list(chosen.values())


WarnFn = Callable[[str, str], None]  # (reason, message): a Warning event on the pod


async def environment(pod: dict, container: dict, *, source: ConfigSource,
                      pod_ips: list[str], host_ips: list[str],
                      allocatable: Mapping[str, Quantity],
                      services: list[dict] | None = (),
                      warn: WarnFn = lambda reason, message: None) -> dict[str, str]:
    """The container's environment, in upstream's order (envFrom, then env, then services).

    `services` is every Service the node knows (None: not listed yet, an error as
    upstream); `$(VAR)` in values sees the variables defined before and the
    service variables.
    """
    if services is None:
        raise ContainerConfigError("services have not yet been read at least once, cannot "
                                   "construct envvars")
    namespace = pods.meta(pod).get("namespace", "")
    service_env = service_environment(pod_services(pod, list(services)))
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        kind = "configMap" if "configMapRef" in item else "secret"
        ref = item.get(f"{kind}Ref") or {}
        data = await _source(kind, ref, namespace, source)
        invalid = []
        for key, value in (data or {}).items():
            key = (item.get("prefix") or "") + key
            if not ENV_VAR_NAME.fullmatch(key):
                invalid.append(key)
                continue
            env[key] = value
        if invalid:
            warn("InvalidEnvironmentVariableNames",
                 f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {kind} "
                 f"{namespace}/{ref.get('name', '')} were skipped since they are considered "
                 "invalid environment variable names.")
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env, service_env)
            continue
        value_from = var["valueFrom"]
        if "fieldRef" in value_from:
            env[name] = _field_value(pod, value_from["fieldRef"].get("fieldPath", ""),
                                     pod_ips=pod_ips, host_ips=host_ips)
        elif "resourceFieldRef" in value_from:
            env[name] = resource_field_value(pod, container, value_from["resourceFieldRef"],
                                             allocatable)
        else:
            kind = "configMap" if "configMapKeyRef" in value_from else "secret"
            ref = value_from.get(f"{kind}KeyRef") or {}
            data = await _source(kind, ref, namespace, source)
            if data is None:
                continue
            key = ref.get("key", "")
            if key not in data:
                if ref.get("optional"):
                    continue
                label = "ConfigMap" if kind == "configMap" else "Secret"
                raise ContainerConfigError(
                    f"couldn't find key {key} in {label} {namespace}/{ref.get('name')}")
            env[name] = data[key]
    for key, value in service_env.items():
        env.setdefault(key, value)
    return env


# ---- resources ---------------------------------------------------------------------

def milli_cpu_to_shares(milli: int) -> int:
    if milli == 0:
        return MIN_SHARES
    return min(max(milli * SHARES_PER_CPU // 1000, MIN_SHARES), MAX_SHARES)


def milli_cpu_to_quota(milli: int, period: int = QUOTA_PERIOD) -> int:
    if milli == 0:
        return 0
    return max(milli * period // 1000, MIN_QUOTA)


def oom_score_adj(pod: dict, container: dict, memory_capacity: int) -> int:
    qos = pods.pod_qos(pod)
    if qos == pods.GUARANTEED:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == pods.BEST_EFFORT:
        return BEST_EFFORT_OOM_SCORE_ADJ
    request = pods.quantity(container, "requests", "memory")
    score = 1000 - (1000 * (request.value() if request else 0)) // max(memory_capacity, 1)
    if score < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if score == BEST_EFFORT_OOM_SCORE_ADJ:
        return score - 1
    return score


def linux_resources(pod: dict, container: dict, memory_capacity: int) -> dict:
    """`LinuxContainerResources` for the container (generateLinuxContainerResources)."""
    cpu_request = pods.quantity(container, "requests", "cpu")
    cpu_limit = pods.quantity(container, "limits", "cpu") or Quantity()
    memory_limit = pods.quantity(container, "limits", "memory") or Quantity()
    if cpu_request is None and not cpu_limit.is_zero():
        shares = milli_cpu_to_shares(cpu_limit.milli_value())
    else:
        shares = milli_cpu_to_shares(cpu_request.milli_value() if cpu_request else 0)
    resources = {"cpu_shares": shares, "cpu_period": QUOTA_PERIOD,
                 "cpu_quota": milli_cpu_to_quota(cpu_limit.milli_value()),
                 "oom_score_adj": oom_score_adj(pod, container, memory_capacity)}
    if not memory_limit.is_zero():
        resources["memory_limit_in_bytes"] = memory_limit.value()
    return resources


# ---- security context ----------------------------------------------------------------

def effective_security_context(pod: dict, container: dict) -> dict:
    """The container's securityContext over the pod's (determineEffectiveSecurityContext)."""
    pod_sc = pods.spec(pod).get("securityContext") or {}
    effective = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                        "seccompProfile", "seLinuxOptions") if k in pod_sc}
    effective.update(container.get("securityContext") or {})
    return effective


def security_context(pod: dict, container: dict, *, namespaces: dict,
                     supplemental_groups: list[int], seccomp: dict) -> dict:
    sc = effective_security_context(pod, container)
    context: dict = {"namespace_options": namespaces,
                     "privileged": bool(sc.get("privileged")),
                     "readonly_rootfs": bool(sc.get("readOnlyRootFilesystem")),
                     "seccomp": seccomp}
    caps = sc.get("capabilities") or {}
    if caps.get("add") or caps.get("drop"):
        context["capabilities"] = {"add_capabilities": list(caps.get("add") or []),
                                   "drop_capabilities": list(caps.get("drop") or [])}
    if sc.get("runAsUser") is not None:
        context["run_as_user"] = {"value": int(sc["runAsUser"])}
    if sc.get("runAsGroup") is not None:
        context["run_as_group"] = {"value": int(sc["runAsGroup"])}
    if supplemental_groups:
        context["supplemental_groups"] = supplemental_groups
    if sc.get("allowPrivilegeEscalation") is not None and not sc.get("privileged"):
        context["no_new_privs"] = not sc["allowPrivilegeEscalation"]
    if sc.get("procMount") != "Unmasked":
        context["masked_paths"] = list(DEFAULT_MASKED_PATHS)
        context["readonly_paths"] = list(DEFAULT_READONLY_PATHS)
    return context


def check_run_as_non_root(pod: dict, container: dict, image_uid: int | None,
                          image_user: str) -> None:
    """Refuse to run a runAsNonRoot container as root (verifyRunAsNonRoot)."""
    sc = effective_security_context(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    uid = sc.get("runAsUser", image_uid)
    if uid is None and image_user:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
            "cannot verify user is non-root (pod: "
            f"\"{pods.full_name(pod)}\", container: {container['name']})")
    if uid in (0, None):
        raise ContainerConfigError("container has runAsNonRoot and image will run as root "
                                   f"(pod: \"{pods.full_name(pod)}\", container: "
                                   f"{container['name']})")


# ---- the config --------------------------------------------------------------------

def container_log_path(name: str, restart_count: int) -> str:
    """Relative to the pod's log directory: <container>/<restartCount>.log."""
    return f"{name}/{restart_count}.log"


def container_config(pod: dict, container: dict, *, container_type: str,
                           restart_count: int, image: str, mounts: list[dict],
                           env: Mapping[str, str], namespaces: dict,
                           supplemental_groups: list[int], seccomp: dict,
                           memory_capacity: int) -> dict:
    """The container's `ContainerConfig`; `image` is the resolved image (id or name)."""
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    config: dict = {
        "metadata": {"name": container["name"], "attempt": restart_count},
        "image": {"image": image, "user_specified_image": container.get("image", "")},
        "labels": pods.container_labels(pod, container),
        "annotations": pods.container_annotations(pod, container, restart_count=restart_count,
                                                  container_type=container_type),
        "log_path": container_log_path(container["name"], restart_count),
        "stdin": bool(container.get("stdin")),
        "stdin_once": bool(container.get("stdinOnce")),
        "tty": bool(container.get("tty")),
        "linux": {"resources": linux_resources(pod, container, memory_capacity),
                  "security_context": security_context(
                      pod, container, namespaces=namespaces,
                      supplemental_groups=supplemental_groups, seccomp=seccomp)},
    }
    if command:
        config["command"] = command
    if args:
        config["args"] = args
    if container.get("workingDir"):
        config["working_dir"] = container["workingDir"]
    if env:
        config["envs"] = [{"key": k, "value": v} for k, v in env.items()]
    if mounts:
        config["mounts"] = mounts
    return config
