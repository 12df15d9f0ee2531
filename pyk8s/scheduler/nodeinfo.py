"""Per-pod and per-node aggregates the plugins read: Resource, PodInfo, NodeInfo.

Role: upstream's ``framework/types.go`` data half. A ``PodInfo`` parses a pod once
(its resource requests, its affinity terms); a ``NodeInfo`` aggregates the pods on a
node (requested and non-zero requested resources, host ports, PVC references, the
subsets of pods with affinity) next to the node's allocatable and image states.

Invariants:
- Resources are plain ints: milli-CPU, bytes, pod counts, scalar units.
  ``Requested`` sums pods' requests; ``NonZeroRequested`` counts a container that
  asks for no CPU/memory as 100m/200Mi (upstream's defaults), so empty pods spread.
- ``NodeInfo.add_pod_info``/``remove_pod`` keep every aggregate consistent and bump
  ``generation`` from one process-wide counter, which the cache's incremental
  snapshot relies on.
- ``NodeInfo.snapshot()`` copies everything a later ``add``/``remove`` on either
  copy would change; ``PodInfo`` and node objects are shared, never mutated.
- Pod and node dicts are the informer's objects: nothing here writes to them.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable

from pyk8s.api.quantities import QuantityError, parse_quantity
from pyk8s.api.selectors import NOTHING, LabelSelector, SelectorError, label_selector_from_dict

DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
DEFAULT_BIND_ALL_HOST_IP = "0.0.0.0"

_generation = itertools.count(1)


def next_generation() -> int:
    return next(_generation)


def is_extended_resource_name(name: str) -> bool:
    """Domain-prefixed, not kubernetes.io/ and not ``requests.`` (upstream helper)."""
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def is_scalar_resource_name(name: str) -> bool:
    return (is_extended_resource_name(name) or name.startswith("hugepages-")
            or "kubernetes.io/" in name or name.startswith("attachable-volumes-"))


def _quantity(value: Any, milli: bool) -> int:
    try:
        q = parse_quantity(value)
    except QuantityError:
        return 0
    return q.milli_value() if milli else q.value()


def resource_list_values(rl: dict | None) -> dict[str, int]:
    """A ResourceList as ints: cpu in milli-units, everything else in units."""
    if not rl:
        return {}
    return {name: _quantity(value, name == "cpu") for name, value in rl.items()}


def _add(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _max(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        if k not in into or v > into[k]:
            into[k] = v


def pod_requests(pod: dict, non_missing: dict[str, int] | None = None) -> dict[str, int]:
    """Upstream ``resourcehelper.PodRequests``: containers summed, sidecars
    accumulated, the max with each init container's use, plus the pod overhead.
    ``non_missing`` fills in requests a container does not state."""
    spec = pod.get("spec") or {}
    reqs: dict[str, int] = {}
    for c in spec.get("containers") or ():
        _add(reqs, _container_requests(c, non_missing))
    sidecars: dict[str, int] = {}
    init_use: dict[str, int] = {}
    for c in spec.get("initContainers") or ():
        creqs = _container_requests(c, non_missing)
        if c.get("restartPolicy") == "Always":
            _add(reqs, creqs)
            _add(sidecars, creqs)
            use = dict(sidecars)
        else:
            use = dict(creqs)
            _add(use, sidecars)
        _max(init_use, use)
    _max(reqs, init_use)
    overhead = spec.get("overhead")
    if overhead:
        _add(reqs, resource_list_values(overhead))
    return reqs


def _container_requests(container: dict, non_missing: dict[str, int] | None) -> dict[str, int]:
    reqs = resource_list_values((container.get("resources") or {}).get("requests"))
    if non_missing:
        for k, v in non_missing.items():
            reqs.setdefault(k, v)
    return reqs


NON_ZERO_DEFAULTS = {"cpu": DEFAULT_MILLI_CPU_REQUEST, "memory": DEFAULT_MEMORY_REQUEST}


class Resource:
    """A compute resource vector (upstream ``framework.Resource``)."""

    __slots__ = ("milli_cpu", "memory", "ephemeral_storage", "allowed_pod_number", "scalar")

    def __init__(self, milli_cpu: int = 0, memory: int = 0, ephemeral_storage: int = 0,
                 allowed_pod_number: int = 0, scalar: dict[str, int] | None = None):
        self.milli_cpu = milli_cpu
        self.memory = memory
        self.ephemeral_storage = ephemeral_storage
        self.allowed_pod_number = allowed_pod_number
        self.scalar = scalar or {}

    @classmethod
    def from_values(cls, values: dict[str, int]) -> "Resource":
        r = cls()
        r.add(values)
        return r

    def add(self, values: dict[str, int], sign: int = 1) -> None:
        for name, v in values.items():
            if name == "cpu":
                self.milli_cpu += sign * v
            elif name == "memory":
                self.memory += sign * v
            elif name == "pods":
                self.allowed_pod_number += sign * v
            elif name == "ephemeral-storage":
                self.ephemeral_storage += sign * v
            elif is_scalar_resource_name(name):
                self.scalar[name] = self.scalar.get(name, 0) + sign * v

    def clone(self) -> "Resource":
        return Resource(self.milli_cpu, self.memory, self.ephemeral_storage,
                        self.allowed_pod_number, dict(self.scalar))

    def get(self, name: str) -> int:
        if name == "cpu":
            return self.milli_cpu
        if name == "memory":
            return self.memory
        if name == "ephemeral-storage":
            return self.ephemeral_storage
        if name == "pods":
            return self.allowed_pod_number
        return self.scalar.get(name, 0)

    def __repr__(self) -> str:
        return (f"Resource(cpu={self.milli_cpu}m, memory={self.memory}, "
                f"ephemeral={self.ephemeral_storage}, pods={self.allowed_pod_number}, {self.scalar})")


def pod_priority(pod: dict) -> int:
    """``spec.priority`` or 0 (upstream ``corev1helpers.PodPriority``)."""
    value = (pod.get("spec") or {}).get("priority")
    return value if isinstance(value, int) else 0


# --- affinity terms ---------------------------------------------------------------

NamespaceLabels = Callable[[str], "dict | None"]


class AffinityTerm:
    """A parsed PodAffinityTerm: namespaces, selectors, topology key."""

    __slots__ = ("namespaces", "selector", "topology_key", "namespace_selector")

    def __init__(self, namespaces: set[str], selector: LabelSelector, topology_key: str,
                 namespace_selector: LabelSelector):
        self.namespaces = namespaces
        self.selector = selector
        self.topology_key = topology_key
        self.namespace_selector = namespace_selector

    def matches(self, pod: dict, ns_labels: NamespaceLabels | None) -> bool:
        """``pod`` is in the term's namespaces (by name or namespace selector) and
        its labels match. ``ns_labels`` looks namespace labels up, as upstream
        merges namespace selectors into names against its namespace lister."""
        meta = pod.get("metadata") or {}
        ns = meta.get("namespace") or ""
        in_ns = ns in self.namespaces
        if not in_ns and not self.namespace_selector.nothing:
            if self.namespace_selector.empty():
                in_ns = True
            elif ns_labels is not None:
                labels = ns_labels(ns)
                in_ns = labels is not None and self.namespace_selector.matches(labels)
        return in_ns and self.selector.matches(meta.get("labels") or {})


def _affinity_term(pod: dict, term: dict) -> AffinityTerm:
    selector = label_selector_from_dict(term.get("labelSelector"))
    ns_selector_obj = term.get("namespaceSelector")
    namespaces = set(term.get("namespaces") or ())
    if not namespaces and ns_selector_obj is None:
        namespaces = {(pod.get("metadata") or {}).get("namespace") or ""}
    ns_selector = label_selector_from_dict(ns_selector_obj) if ns_selector_obj is not None else NOTHING
    return AffinityTerm(namespaces, selector, term.get("topologyKey") or "", ns_selector)


class WeightedAffinityTerm:
    __slots__ = ("term", "weight")

    def __init__(self, term: AffinityTerm, weight: int):
        self.term = term
        self.weight = weight


def _terms(pod: dict, raw: Iterable[dict] | None) -> list[AffinityTerm]:
    return [_affinity_term(pod, t) for t in raw or ()]


def _weighted(pod: dict, raw: Iterable[dict] | None) -> list[WeightedAffinityTerm]:
    return [WeightedAffinityTerm(_affinity_term(pod, w.get("podAffinityTerm") or {}), int(w.get("weight") or 0))
            for w in raw or ()]


class PodInfo:
    """A pod plus what every cycle needs parsed from it (upstream ``PodInfo``)."""

    __slots__ = ("pod", "required_affinity_terms", "required_anti_affinity_terms",
                 "preferred_affinity_terms", "preferred_anti_affinity_terms", "parse_error",
                 "_resource")

    def __init__(self, pod: dict):
        self.pod = pod
        self._resource: tuple[dict[str, int], int, int] | None = None
        self.parse_error: str | None = None
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        pa = affinity.get("podAffinity") or {}
        paa = affinity.get("podAntiAffinity") or {}
        try:
            self.required_affinity_terms = _terms(pod, pa.get("requiredDuringSchedulingIgnoredDuringExecution"))
            self.required_anti_affinity_terms = _terms(pod, paa.get("requiredDuringSchedulingIgnoredDuringExecution"))
            self.preferred_affinity_terms = _weighted(pod, pa.get("preferredDuringSchedulingIgnoredDuringExecution"))
            self.preferred_anti_affinity_terms = _weighted(
                pod, paa.get("preferredDuringSchedulingIgnoredDuringExecution"))
        except SelectorError as e:
            # The API server does not fully validate affinity terms; upstream keeps
            # such pods and reports the parse error when they are scheduled.
            self.parse_error = str(e)
            self.required_affinity_terms, self.required_anti_affinity_terms = [], []
            self.preferred_affinity_terms, self.preferred_anti_affinity_terms = [], []

    @property
    def uid(self) -> str:
        return (self.pod.get("metadata") or {}).get("uid") or ""

    @property
    def has_affinity(self) -> bool:
        affinity = (self.pod.get("spec") or {}).get("affinity") or {}
        return bool(affinity.get("podAffinity") is not None or affinity.get("podAntiAffinity") is not None)

    @property
    def has_required_anti_affinity(self) -> bool:
        return bool(self.required_anti_affinity_terms)

    def resource(self) -> tuple[dict[str, int], int, int]:
        """(requests, non-zero milli-CPU, non-zero memory), computed once."""
        if self._resource is None:
            reqs = pod_requests(self.pod)
            non0 = pod_requests(self.pod, NON_ZERO_DEFAULTS)
            self._resource = (reqs, non0.get("cpu", 0), non0.get("memory", 0))
        return self._resource


def pod_info_of(pod_or_info: Any) -> PodInfo:
    return pod_or_info if isinstance(pod_or_info, PodInfo) else PodInfo(pod_or_info)


# --- host ports --------------------------------------------------------------------


def host_ports(pod: dict) -> list[dict]:
    """Container (and sidecar) ports with a hostPort, as upstream ``GetHostPorts``."""
    spec = pod.get("spec") or {}
    out = []
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or ():
            if (p.get("hostPort") or 0) > 0:
                out.append(p)
    return out


class HostPortInfo:
    """Used (ip -> {(protocol, port)}) pairs with upstream's 0.0.0.0 semantics."""

    __slots__ = ("ports",)

    def __init__(self, ports: dict[str, set[tuple[str, int]]] | None = None):
        self.ports = ports or {}

    @staticmethod
    def _sanitize(ip: str | None, protocol: str | None) -> tuple[str, str]:
        return ip or DEFAULT_BIND_ALL_HOST_IP, protocol or "TCP"

    def add(self, ip: str | None, protocol: str | None, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = self._sanitize(ip, protocol)
        self.ports.setdefault(ip, set()).add((protocol, port))

    def remove(self, ip: str | None, protocol: str | None, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = self._sanitize(ip, protocol)
        entries = self.ports.get(ip)
        if entries is not None:
            entries.discard((protocol, port))
            if not entries:
                del self.ports[ip]

    def check_conflict(self, ip: str | None, protocol: str | None, port: int) -> bool:
        if port <= 0:
            return False
        ip, protocol = self._sanitize(ip, protocol)
        pp = (protocol, port)
        if ip == DEFAULT_BIND_ALL_HOST_IP:
            return any(pp in entries for entries in self.ports.values())
        return any(pp in self.ports.get(k, ()) for k in (DEFAULT_BIND_ALL_HOST_IP, ip))

    def __len__(self) -> int:
        return sum(len(v) for v in self.ports.values())

    def clone(self) -> "HostPortInfo":
        return HostPortInfo({ip: set(v) for ip, v in self.ports.items()})


class ImageStateSummary:
    """An image's size and the set of nodes holding it, shared by those nodes'
    NodeInfos so ``num_nodes`` is always the cluster-wide count."""

    __slots__ = ("size", "nodes")

    def __init__(self, size: int, nodes: set[str] | None = None):
        self.size = size
        self.nodes = nodes if nodes is not None else set()

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)


def normalized_image_name(name: str) -> str:
    """Append ``:latest`` when the image has no tag (upstream ImageLocality)."""
    if name.rfind(":") <= name.rfind("/"):
        name += ":latest"
    return name


# --- node info -----------------------------------------------------------------------


class NodeInfo:
    """A node and the pods the scheduler believes run on it (assumed ones included)."""

    __slots__ = ("node", "name", "labels", "taints", "unschedulable", "pods", "pods_with_affinity",
                 "pods_with_required_anti_affinity", "used_ports", "requested", "non_zero_requested",
                 "allocatable", "image_states", "pvc_ref_counts", "generation", "_pod_index")

    def __init__(self, node: dict | None = None):
        self.node: dict | None = None
        self.name = ""
        self.labels: dict = {}
        self.taints: list[dict] = []
        self.unschedulable = False
        self.pods: list[PodInfo] = []
        self.pods_with_affinity: list[PodInfo] = []
        self.pods_with_required_anti_affinity: list[PodInfo] = []
        self.used_ports = HostPortInfo()
        self.requested = Resource()
        self.non_zero_requested = Resource()
        self.allocatable = Resource()
        self.image_states: dict[str, ImageStateSummary] = {}
        self.pvc_ref_counts: dict[str, int] = {}
        self.generation = next_generation()
        self._pod_index: dict[str, int] = {}
        if node is not None:
            self.set_node(node)

    def set_node(self, node: dict) -> None:
        self.node = node
        meta, spec = node.get("metadata") or {}, node.get("spec") or {}
        self.name = meta.get("name") or ""
        # Read on every Filter/Score call: parsed once per node change.
        self.labels = meta.get("labels") or {}
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        self.allocatable = Resource.from_values(
            resource_list_values((node.get("status") or {}).get("allocatable")))
        self.generation = next_generation()

    def remove_node(self) -> None:
        self.node = None
        self.generation = next_generation()

    def add_pod(self, pod: dict) -> None:
        self.add_pod_info(PodInfo(pod))

    def add_pod_info(self, pi: PodInfo) -> None:
        self._pod_index[pi.uid] = len(self.pods)
        self.pods.append(pi)
        if pi.has_affinity:
            self.pods_with_affinity.append(pi)
        if pi.has_required_anti_affinity:
            self.pods_with_required_anti_affinity.append(pi)
        self._update(pi, 1)

    def remove_pod(self, pod: dict) -> None:
        """Remove by UID; ``KeyError`` when the pod is not on this node."""
        uid = (pod.get("metadata") or {}).get("uid") or ""
        index = self._pod_index.pop(uid)
        removed = self.pods[index]
        last = self.pods.pop()
        if index < len(self.pods):
            # Swap-remove, as upstream: order of pods on a node carries no meaning.
            self.pods[index] = last
            self._pod_index[last.uid] = index
        if removed.has_affinity:
            self.pods_with_affinity = [p for p in self.pods_with_affinity if p.uid != uid]
        if removed.has_required_anti_affinity:
            self.pods_with_required_anti_affinity = [
                p for p in self.pods_with_required_anti_affinity if p.uid != uid]
        self._update(removed, -1)

    def has_pod(self, uid: str) -> bool:
        return uid in self._pod_index

    def _update(self, pi: PodInfo, sign: int) -> None:
        reqs, non0_cpu, non0_mem = pi.resource()
        self.requested.add(reqs, sign)
        self.non_zero_requested.milli_cpu += sign * non0_cpu
        self.non_zero_requested.memory += sign * non0_mem
        for port in host_ports(pi.pod):
            op = self.used_ports.add if sign > 0 else self.used_ports.remove
            op(port.get("hostIP"), port.get("protocol"), int(port.get("hostPort") or 0))
        ns = (pi.pod.get("metadata") or {}).get("namespace") or ""
        for vol in (pi.pod.get("spec") or {}).get("volumes") or ():
            claim = vol.get("persistentVolumeClaim")
            if claim:
                key = f"{ns}/{claim.get('claimName')}"
                count = self.pvc_ref_counts.get(key, 0) + sign
                if count > 0:
                    self.pvc_ref_counts[key] = count
                else:
                    self.pvc_ref_counts.pop(key, None)
        self.generation = next_generation()

    def snapshot(self) -> "NodeInfo":
        """A copy safe to mutate independently (``PodInfo``s and the node shared)."""
        clone = NodeInfo.__new__(NodeInfo)
        clone.node = self.node
        clone.name = self.name
        clone.labels = self.labels
        clone.taints = self.taints
        clone.unschedulable = self.unschedulable
        clone.pods = list(self.pods)
        clone.pods_with_affinity = list(self.pods_with_affinity)
        clone.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        clone.used_ports = self.used_ports.clone()
        clone.requested = self.requested.clone()
        clone.non_zero_requested = self.non_zero_requested.clone()
        clone.allocatable = self.allocatable.clone()
        clone.image_states = dict(self.image_states)
        clone.pvc_ref_counts = dict(self.pvc_ref_counts)
        clone.generation = self.generation
        clone._pod_index = dict(self._pod_index)
        return clone

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={[p.pod['metadata'].get('name') for p in self.pods]})"


def new_node_info(node: dict, *pods: dict) -> NodeInfo:
    """A NodeInfo for tests and hints: ``node`` with ``pods`` on it."""
    ni = NodeInfo(node)
    for pod in pods:
        ni.add_pod(pod)
    return ni

