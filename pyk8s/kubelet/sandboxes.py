"""A pod's sandbox as CRI wants it: upstream's generatePodSandboxConfig and its helpers.

Role: turn a pod into a `PodSandboxConfig` dict (hostname, DNS, port mappings,
log directory, labels and annotations, cgroup parent per QoS class, namespaces
and sandbox security context, sysctls), and answer the pod-level paths the other
modules share (log directory, cgroup parent, the managed /etc/hosts).

Invariants:
- Pure functions of the pod, the settings and the host's resolv.conf text.
- The PID namespace is always given explicitly (CRI's default, 0, means POD:
  shared), as is the network and IPC namespace.
- A hostNetwork sandbox gets an empty hostname: it keeps the node's UTS namespace
  and runc refuses to set a hostname there.
- DNS follows upstream's dns.go: ClusterFirst pods (not on the host network) get
  the cluster DNS, `<ns>.svc.<domain> svc.<domain> <domain>` plus the host's search
  domains and `ndots:5`; Default (and ClusterFirst on the host network) gets the
  host's resolv.conf; None only the pod's dnsConfig, which is always appended.
"""
from __future__ import annotations

from pathlib import Path

from pyk8s.kubelet import pods
from pyk8s.kubelet.settings import KubeletSettings

HOSTNAME_MAX = 63
DEFAULT_DNS_OPTIONS = ("ndots:5",)
# Upstream's validation.MaxDNSSearchPaths and MaxDNSSearchListChars.
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_CHARS = 2048


def pod_log_directory(settings: KubeletSettings, pod: dict) -> Path:
    m = pods.meta(pod)
    return settings.pod_logs_dir / f"{m.get('namespace')}_{m.get('name')}_{m.get('uid')}"


def pod_dir(settings: KubeletSettings, uid: str) -> Path:
    return settings.pods_dir / uid


def qos_cgroup(settings: KubeletSettings, qos: str) -> str:
    root = settings.cgroup_root.rstrip("/")
    if qos == pods.GUARANTEED:
        return root
    return f"{root}/{'burstable' if qos == pods.BURSTABLE else 'besteffort'}"


def pod_cgroup_parent(settings: KubeletSettings, pod: dict) -> str:
    """cgroupfs parent of the pod's sandbox and containers, by QoS class."""
    return f"{qos_cgroup(settings, pods.pod_qos(pod))}/pod{pods.uid(pod)}"


def hostname_and_domain(pod: dict, cluster_domain: str) -> tuple[str, str]:
    """The pod's hostname (spec.hostname or its name, max 63 chars) and domain."""
    s = pods.spec(pod)
    hostname = s.get("hostname") or pods.meta(pod).get("name", "")
    if len(hostname) > HOSTNAME_MAX:
        hostname = hostname[:HOSTNAME_MAX].rstrip("-.")
    domain = ""
    if s.get("subdomain"):
        domain = f"{s['subdomain']}.{pods.meta(pod).get('namespace')}.svc.{cluster_domain}"
    return hostname, domain


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            # the last search/domain line wins, as in the resolver
            searches = [d.rstrip(".") for d in fields[1:] if d != "."]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _merge_options(existing: list[str], extra: list[dict]) -> list[str]:
    merged: dict[str, str] = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = option
    for option in extra:
        name = option.get("name", "")
        value = option.get("value")
        merged[name] = f"{name}:{value}" if value is not None else name
    return list(merged.values())


def dns_type(pod: dict) -> str:
    policy = pods.spec(pod).get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "ClusterFirst" and not pods.is_host_network(pod):
        return "cluster"
    return "host"


def dns_config(pod: dict, settings: KubeletSettings, resolv_conf: str) -> dict:
    """The pod's `DNSConfig` (upstream's GetPodDNS)."""
    kind = dns_type(pod)
    servers, searches, options = ([], [], []) if kind == "none" \
        else parse_resolv_conf(resolv_conf)
    if kind == "cluster" and settings.cluster_dns:
        servers = list(settings.cluster_dns)
        if settings.cluster_domain:
            ns = pods.meta(pod).get("namespace")
            d = settings.cluster_domain
            searches = _unique([f"{ns}.svc.{d}", f"svc.{d}", d] + searches)
        options = list(DEFAULT_DNS_OPTIONS)
    extra = pods.spec(pod).get("dnsConfig") or {}
    servers = _unique(servers + list(extra.get("nameservers") or []))
    searches = _unique(searches + list(extra.get("searches") or []))
    options = _merge_options(options, list(extra.get("options") or []))
    # as upstream's formDNSSearchFitsLimits: drop what the resolver cannot take
    searches = searches[:MAX_DNS_SEARCH_PATHS]
    while searches and len(" ".join(searches)) > MAX_DNS_SEARCH_CHARS:
        searches.pop()
    config: dict = {}
    if servers:
        config["servers"] = servers
    if searches:
        config["searches"] = searches
    if options:
        config["options"] = options
    return config


def port_mappings(pod: dict) -> list[dict]:
    mappings = []
    for c in pods.containers(pod):
        for p in c.get("ports") or []:
            mapping = {"protocol": p.get("protocol", "TCP"),
                       "container_port": int(p["containerPort"])}
            if p.get("hostPort"):
                mapping["host_port"] = int(p["hostPort"])
            if p.get("hostIP"):
                mapping["host_ip"] = p["hostIP"]
            mappings.append(mapping)
    return mappings


def namespace_options(pod: dict) -> dict:
    s = pods.spec(pod)
    if s.get("hostPID"):
        pid = "NODE"
    elif s.get("shareProcessNamespace"):
        pid = "POD"
    else:
        pid = "CONTAINER"
    return {"network": "NODE" if s.get("hostNetwork") else "POD",
            "pid": pid, "ipc": "NODE" if s.get("hostIPC") else "POD"}


def seccomp_profile(profile: dict | None, settings: KubeletSettings) -> dict | None:
    """A pod/container seccompProfile as a CRI `SecurityProfile`, None if unset."""
    if not profile:
        return None
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return {"profile_type": "RuntimeDefault"}
    if kind == "Localhost":
        path = settings.root_dir / "seccomp" / profile.get("localhostProfile", "")
        return {"profile_type": "Localhost", "localhost_ref": str(path)}
    return {"profile_type": "Unconfined"}


def has_privileged_container(pod: dict) -> bool:
    return any((c.get("securityContext") or {}).get("privileged")
               for c in pods.containers(pod) + pods.init_containers(pod))


def sandbox_security_context(pod: dict, settings: KubeletSettings) -> dict:
    sc = pods.spec(pod).get("securityContext") or {}
    context: dict = {"namespace_options": namespace_options(pod),
                     "privileged": has_privileged_container(pod),
                     # as upstream: the pause process itself runs under the
                     # runtime's default profile whatever the pod asks
                     "seccomp": {"profile_type": "RuntimeDefault"}}
    if sc.get("runAsUser") is not None:
        context["run_as_user"] = {"value": int(sc["runAsUser"])}
    if sc.get("runAsGroup") is not None:
        context["run_as_group"] = {"value": int(sc["runAsGroup"])}
    groups = supplemental_groups(pod)
    if groups:
        context["supplemental_groups"] = groups
    return context


def supplemental_groups(pod: dict) -> list[int]:
    sc = pods.spec(pod).get("securityContext") or {}
    groups = []
    if sc.get("fsGroup") is not None:
        groups.append(int(sc["fsGroup"]))
    groups.extend(int(g) for g in sc.get("supplementalGroups") or [])
    return groups


def sysctls(pod: dict) -> dict[str, str]:
    sc = pods.spec(pod).get("securityContext") or {}
    # runc wants dots; the API allows slashes as separators too
    return {s["name"].replace("/", "."): str(s.get("value", ""))
            for s in sc.get("sysctls") or []}


def sandbox_config(pod: dict, attempt: int, settings: KubeletSettings,
                   resolv_conf: str) -> dict:
    """The pod's `PodSandboxConfig`."""
    m = pods.meta(pod)
    hostname, _ = hostname_and_domain(pod, settings.cluster_domain)
    config: dict = {
        "metadata": {"name": m.get("name", ""), "namespace": m.get("namespace", ""),
                     "uid": m.get("uid", ""), "attempt": attempt},
        "hostname": "" if pods.is_host_network(pod) else hostname,
        "log_directory": str(pod_log_directory(settings, pod)),
        "labels": pods.sandbox_labels(pod),
        "annotations": dict(m.get("annotations") or {}),
        "linux": {"cgroup_parent": pod_cgroup_parent(settings, pod),
                  "security_context": sandbox_security_context(pod, settings),
                  "sysctls": sysctls(pod)},
    }
    dns = dns_config(pod, settings, resolv_conf)
    if dns:
        config["dns_config"] = dns
    mappings = port_mappings(pod)
    if mappings:
        config["port_mappings"] = mappings
    return config


def hosts_file(pod: dict, ips: list[str], *, cluster_domain: str,
               host_hosts: str = "") -> str:
    """The kubelet-managed /etc/hosts (upstream's managedHostsFileContent)."""
    if pods.is_host_network(pod):
        return "# Kubernetes-managed hosts file (host network).\n" + host_hosts
    hostname, domain = hostname_and_domain(pod, cluster_domain)
    lines = ["# Kubernetes-managed hosts file.",
             "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet",
             "fe00::0\tip6-mcastprefix",
             "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters"]
    for ip in ips:
        lines.append(f"{ip}\t{hostname}.{domain}\t{hostname}" if domain
                     else f"{ip}\t{hostname}")
    aliases = pods.spec(pod).get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in aliases:
            lines.append(f"{alias.get('ip')}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"
