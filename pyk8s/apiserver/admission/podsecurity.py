"""PodSecurity (staging/src/k8s.io/pod-security-admission): the Pod Security Standards.

A namespace chooses a level per mode with its labels
``pod-security.kubernetes.io/{enforce,warn,audit}`` (privileged, baseline,
restricted; default privileged) and ``...-version`` (default ``latest``). Pods that
fail the ``enforce`` level are refused with upstream's message, ``violates
PodSecurity "restricted:latest": <reason> (<detail>), ...``; ``warn`` adds a
``would violate PodSecurity ...`` warning, for pods and for the pod templates of
workload objects. Changing a namespace's enforce label warns about its existing
pods that would violate the new level.

The checks are upstream's, at v1.32 semantics, evaluated in order of their IDs; a
restricted check replaces the baseline check it overrides.
"""
from __future__ import annotations

from typing import Callable

from . import Plugin, Request

LEVELS = ("privileged", "baseline", "restricted")
LABEL = "pod-security.kubernetes.io/"
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t",
                 "container_engine_t"}
RESTRICTED_OK_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                         "persistentVolumeClaim", "projected", "secret"}
TEMPLATE_PATHS = {("apps", "deployments"): ("spec", "template"),
                  ("apps", "replicasets"): ("spec", "template"),
                  ("apps", "statefulsets"): ("spec", "template"),
                  ("apps", "daemonsets"): ("spec", "template"),
                  ("batch", "jobs"): ("spec", "template"),
                  ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
                  ("", "replicationcontrollers"): ("spec", "template"),
                  ("", "podtemplates"): ("template",)}


def pluralize(one: str, many: str, n: int) -> str:
    return one if n == 1 else many


def join_quote(items) -> str:
    return ", ".join(f'"{i}"' for i in items)


def _containers(spec: dict):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


def _sc(c: dict) -> dict:
    return c.get("securityContext") or {}


Result = tuple[str, str] | None  # (forbidden reason, detail) or allowed


def _named(names: list[str], suffix: str) -> str:
    return f"{pluralize('container', 'containers', len(names))} {join_quote(names)} {suffix}"


# -- baseline -----------------------------------------------------------------------------

def host_namespaces(meta: dict, spec: dict) -> Result:
    bad = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return ("host namespaces", ", ".join(bad)) if bad else None


def privileged(meta: dict, spec: dict) -> Result:
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("privileged")]
    return ("privileged", _named(bad, "must not set securityContext.privileged=true")) \
        if bad else None


def capabilities_baseline(meta: dict, spec: dict) -> Result:
    bad, caps = [], set()
    for c in _containers(spec):
        added = [a for a in (_sc(c).get("capabilities") or {}).get("add") or ()
                 if a not in BASELINE_CAPS]
        if added:
            bad.append(c["name"])
            caps |= set(added)
    if not bad:
        return None
    return ("non-default capabilities",
            _named(bad, f"must not include {join_quote(sorted(caps))} in "
                        f"securityContext.capabilities.add"))


def host_path_volumes(meta: dict, spec: dict) -> Result:
    bad = [v["name"] for v in spec.get("volumes") or () if v.get("hostPath") is not None]
    if not bad:
        return None
    return "hostPath volumes", f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)}"


def host_ports(meta: dict, spec: dict) -> Result:
    bad, ports = [], []
    for c in _containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or () if p.get("hostPort")]
        if used:
            bad.append(c["name"])
            ports += used
    if not bad:
        return None
    return ("hostPort", f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)} "
                        f"{pluralize('uses', 'use', len(bad))} "
                        f"{pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(ports)}")


def app_armor(meta: dict, spec: dict) -> Result:
    bad = []
    pod_profile = ((spec.get("securityContext") or {}).get("appArmorProfile") or {})
    if pod_profile.get("type") == "Unconfined":
        bad.append('pod must not set appArmorProfile.type to "Unconfined"')
    for c in _containers(spec):
        if (_sc(c).get("appArmorProfile") or {}).get("type") == "Unconfined":
            bad.append(f'container "{c["name"]}" must not set appArmorProfile.type to '
                       f'"Unconfined"')
    for key, value in sorted((meta.get("annotations") or {}).items()):
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and \
                value not in ("runtime/default",) and not value.startswith("localhost/"):
            bad.append(f'{key}="{value}"')
    if not bad:
        return None
    return pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles",
                     len(bad)), ", ".join(bad)


def se_linux(meta: dict, spec: dict) -> Result:
    problems: set[str] = set()
    setters = []

    def check(opts: dict | None, who: str) -> None:
        if not opts:
            return
        found = False
        if opts.get("type", "") not in SELINUX_TYPES:
            problems.add(f'type "{opts["type"]}"')
            found = True
        for field in ("user", "role"):
            if opts.get(field):
                problems.add(f'{field} "{opts[field]}"')
                found = True
        if found:
            setters.append(who)
    check((spec.get("securityContext") or {}).get("seLinuxOptions"), "pod")
    bad = []
    for c in _containers(spec):
        before = len(setters)
        check(_sc(c).get("seLinuxOptions"), c["name"])
        if len(setters) > before:
            setters.pop()
            bad.append(c["name"])
    if bad:
        setters.append(f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)}")
    if not setters:
        return None
    return ("seLinuxOptions", f"{' and '.join(setters)} set forbidden "
                              f"securityContext.seLinuxOptions: {'; '.join(sorted(problems))}")


def proc_mount(meta: dict, spec: dict) -> Result:
    bad, types = [], set()
    for c in _containers(spec):
        pm = _sc(c).get("procMount")
        if pm not in (None, "Default"):
            bad.append(c["name"])
            types.add(pm)
    if not bad:
        return None
    return "procMount", _named(bad, f"must not set securityContext.procMount to "
                                    f"{join_quote(sorted(types))}")


def seccomp_baseline(meta: dict, spec: dict) -> Result:
    setters = []
    if ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type") == \
            "Unconfined":
        setters.append("pod")
    bad = [c["name"] for c in _containers(spec)
           if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if bad:
        setters.append(f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)}")
    if not setters:
        return None
    return ("seccompProfile", f'{" and ".join(setters)} must not set '
                              f'securityContext.seccompProfile.type to "Unconfined"')


def sysctls(meta: dict, spec: dict) -> Result:
    bad = [s.get("name", "") for s in (spec.get("securityContext") or {}).get("sysctls") or ()
           if s.get("name") not in SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def windows_host_process(meta: dict, spec: dict) -> Result:
    pod = ((spec.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess")
    bad = [c["name"] for c in _containers(spec)
           if (_sc(c).get("windowsOptions") or {}).get("hostProcess")]
    if not pod and not bad:
        return None
    setters = (["pod"] if pod else []) + \
        ([f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)}"] if bad else [])
    return "hostProcess", f"{' and '.join(setters)} must not set " \
                          f"securityContext.windowsOptions.hostProcess=true"


# -- restricted -------------------------------------------------------------------------

def restricted_volumes(meta: dict, spec: dict) -> Result:
    bad, types = [], set()
    for v in spec.get("volumes") or ():
        kinds = [k for k in v if k != "name"]
        if not kinds or kinds[0] in RESTRICTED_OK_VOLUMES:
            continue
        bad.append(v["name"])
        types.add(kinds[0])
    if not bad:
        return None
    return ("restricted volume types",
            f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)} "
            f"{pluralize('uses', 'use', len(bad))} "
            f"{pluralize('restricted volume type', 'restricted volume types', len(types))} "
            f"{join_quote(sorted(types))}")


def _windows(spec: dict) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


def allow_privilege_escalation(meta: dict, spec: dict) -> Result:
    if _windows(spec):
        return None
    bad = [c["name"] for c in _containers(spec)
           if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return ("allowPrivilegeEscalation != false",
            _named(bad, "must set securityContext.allowPrivilegeEscalation=false"))


def _pod_or_containers(spec: dict, field: str, good: Callable, reason: str, must_set: str,
                       must_not: Callable) -> Result:
    pod_value = (spec.get("securityContext") or {}).get(field)
    setters, explicit, implicit, bad_values = [], [], [], set()
    pod_ok = False
    if pod_value is not None:
        if good(pod_value):
            pod_ok = True
        else:
            setters.append("pod")
            bad_values.add(_display(pod_value))
    for c in _containers(spec):
        value = _sc(c).get(field)
        if value is not None:
            if not good(value):
                explicit.append(c["name"])
                bad_values.add(_display(value))
        elif not pod_ok:
            implicit.append(c["name"])
    if explicit:
        setters.append(f"{pluralize('container', 'containers', len(explicit))} "
                       f"{join_quote(explicit)}")
    if setters:
        return reason, f"{' and '.join(setters)} {must_not(sorted(bad_values))}"
    if implicit:
        return reason, (f"pod or {pluralize('container', 'containers', len(implicit))} "
                        f"{join_quote(implicit)} {must_set}")
    return None


def _display(value) -> str:
    return value.get("type", "") if isinstance(value, dict) else str(value)


def run_as_non_root(meta: dict, spec: dict) -> Result:
    if (spec.get("hostUsers") is False):
        return None
    return _pod_or_containers(spec, "runAsNonRoot", lambda v: v is True, "runAsNonRoot != true",
                              "must set securityContext.runAsNonRoot=true",
                              lambda _: "must not set securityContext.runAsNonRoot=false")


def run_as_user(meta: dict, spec: dict) -> Result:
    if spec.get("hostUsers") is False:
        return None
    setters = []
    if (spec.get("securityContext") or {}).get("runAsUser") == 0:
        setters.append("pod")
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if bad:
        setters.append(f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)}")
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") \
        if setters else None


def seccomp_restricted(meta: dict, spec: dict) -> Result:
    if _windows(spec):
        return None
    return _pod_or_containers(
        spec, "seccompProfile", lambda v: v.get("type") in ("RuntimeDefault", "Localhost"),
        "seccompProfile",
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        lambda values: f"must not set securityContext.seccompProfile.type to "
                       f"{join_quote(values)}")


def capabilities_restricted(meta: dict, spec: dict) -> Result:
    if _windows(spec):
        return None
    missing, adding, caps = [], [], set()
    for c in _containers(spec):
        cap = _sc(c).get("capabilities")
        if cap is None:
            missing.append(c["name"])
            continue
        if "ALL" not in (cap.get("drop") or ()):
            missing.append(c["name"])
        added = [a for a in cap.get("add") or () if a != "NET_BIND_SERVICE"]
        if added:
            adding.append(c["name"])
            caps |= set(added)
    details = []
    if missing:
        details.append(_named(missing, 'must set securityContext.capabilities.drop=["ALL"]'))
    if adding:
        details.append(_named(adding, f"must not include {join_quote(sorted(caps))} in "
                                      f"securityContext.capabilities.add"))
    return ("unrestricted capabilities", "; ".join(details)) if details else None


# (id, level, check, ids it overrides)
CHECKS = [
    ("allowPrivilegeEscalation", "restricted", allow_privilege_escalation, ()),
    ("appArmorProfile", "baseline", app_armor, ()),
    ("capabilities_baseline", "baseline", capabilities_baseline, ()),
    ("capabilities_restricted", "restricted", capabilities_restricted,
     ("capabilities_baseline",)),
    ("hostNamespaces", "baseline", host_namespaces, ()),
    ("hostPathVolumes", "baseline", host_path_volumes, ()),
    ("hostPorts", "baseline", host_ports, ()),
    ("privileged", "baseline", privileged, ()),
    ("procMount", "baseline", proc_mount, ()),
    ("restrictedVolumes", "restricted", restricted_volumes, ("hostPathVolumes",)),
    ("runAsNonRoot", "restricted", run_as_non_root, ()),
    ("runAsUser", "restricted", run_as_user, ()),
    ("seLinuxOptions", "baseline", se_linux, ()),
    ("seccompProfile_baseline", "baseline", seccomp_baseline, ()),
    ("seccompProfile_restricted", "restricted", seccomp_restricted,
     ("seccompProfile_baseline",)),
    ("sysctls", "baseline", sysctls, ()),
    ("windowsHostProcess", "baseline", windows_host_process, ()),
]


def evaluate(level: str, meta: dict, spec: dict) -> str:
    """The aggregated forbidden detail of a pod at ``level`` ("" when it passes)."""
    if level == "privileged":
        return ""
    wanted = ("baseline",) if level == "baseline" else ("baseline", "restricted")
    checks = [c for c in CHECKS if c[1] in wanted]
    overridden = {o for c in checks for o in c[3]}
    parts = []
    for check_id, _, fn, _ in checks:
        if check_id in overridden:
            continue
        result = fn(meta or {}, spec or {})
        if result is not None:
            reason, detail = result
            parts.append(f"{reason} ({detail})" if detail else reason)
    return ", ".join(parts)


def namespace_policy(ns: dict | None, mode: str) -> tuple[str, str]:
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(LABEL + mode, "privileged")
    if level not in LEVELS:
        level = "restricted"  # an invalid level is treated as the most restrictive
    version = labels.get(LABEL + mode + "-version", "latest") or "latest"
    return level, version


def _pod_spec(req: Request, obj: dict | None) -> tuple[dict, dict] | None:
    obj = obj or {}
    if req.resource == "pods" and req.group == "":
        return obj.get("metadata") or {}, obj.get("spec") or {}
    path = TEMPLATE_PATHS.get((req.group, req.resource))
    if path is None:
        return None
    cur = obj
    for p in path:
        cur = (cur or {}).get(p)
    if not isinstance(cur, dict):
        return None
    return cur.get("metadata") or {}, cur.get("spec") or {}


def _images(obj: dict | None) -> list:
    spec = (obj or {}).get("spec") or {}
    return [(c.get("name"), c.get("image")) for c in _containers(spec)]


class PodSecurity(Plugin):
    name = "PodSecurity"

    def _namespace(self, name: str) -> dict | None:
        store = self.server.stores[("", "v1", "namespaces")]
        return store.cache.objects.get(store.key("", name))

    async def validate(self, req: Request) -> None:
        if req.operation not in ("CREATE", "UPDATE") or req.obj is None:
            return
        if req.is_("", "namespaces"):
            self._namespace_change(req)
            return
        if req.subresource not in ("", "ephemeralcontainers"):
            return
        is_pod = req.is_("", "pods") or req.is_("", "pods", "ephemeralcontainers")
        target = _pod_spec(req, req.obj)
        if target is None:
            return
        if req.operation == "UPDATE":
            # Only image changes can alter a pod's verdict (upstream's
            # isSignificantPodUpdate); a workload is re-checked when its template changes.
            if is_pod and _images(req.obj) == _images(req.old):
                return
            if not is_pod and target == _pod_spec(req, req.old):
                return
        ns = self._namespace(req.namespace)
        enforce = namespace_policy(ns, "enforce")
        warn = namespace_policy(ns, "warn")
        meta, spec = target
        if is_pod and enforce[0] != "privileged":
            detail = evaluate(enforce[0], meta, spec)
            if detail:
                raise req.forbidden(f'violates PodSecurity "{enforce[0]}:{enforce[1]}": '
                                    f'{detail}')
        if warn[0] != "privileged" and (warn != enforce or not is_pod):
            detail = evaluate(warn[0], meta, spec)
            if detail:
                req.warnings.append(f'would violate PodSecurity "{warn[0]}:{warn[1]}": '
                                    f'{detail}')

    def _namespace_change(self, req: Request) -> None:
        new = namespace_policy(req.obj, "enforce")
        old = namespace_policy(req.old, "enforce") if req.old else ("privileged", "latest")
        if new == old or new[0] == "privileged" or req.operation != "UPDATE":
            return
        store = self.server.stores[("", "v1", "pods")]
        prefix = store.key(req.name, "")
        failures = []
        for key, pod in store.cache.objects.items():
            if key.startswith(prefix):
                detail = evaluate(new[0], pod["metadata"], pod.get("spec") or {})
                if detail:
                    failures.append(f'{pod["metadata"]["name"]}: {detail}')
        if failures:
            req.warnings.append(f'existing pods in namespace "{req.name}" violate the new '
                                f'PodSecurity enforce level "{new[0]}:{new[1]}"')
            req.warnings.extend(sorted(failures))
