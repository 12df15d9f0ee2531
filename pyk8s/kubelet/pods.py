"""Pod helpers the kubelet shares: names, QoS, the labels it puts on CRI objects.

Role: the pure facts about a pod (a plain dict in the API's shape) that every other
kubelet module asks: its QoS class (upstream's `v1qos.GetPodQOS`), its grace period,
whether it runs on the host network, the CRI labels and annotations through which a
restarted kubelet recognises its sandboxes and containers (upstream's
`kuberuntime/labels.go`), and a container's spec hash.

Invariants:
- Nothing here does I/O or mutates its arguments.
- The label and annotation keys are upstream's, so a sandbox or container carries
  the same identity it would under the real kubelet: `io.kubernetes.pod.uid` is
  the key to everything.
- `container_hash` depends only on the container's spec, minus fields that may
  change without a restart (resources), so the same spec always hashes the same,
  also across kubelet restarts.
"""
from __future__ import annotations

import json
import zlib
from typing import Iterator

from pyk8s.api.quantities import Quantity, parse_quantity

POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"

CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
POD_DELETION_GRACE = "io.kubernetes.pod.deletionGracePeriod"
POD_TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
CONTAINER_PORTS = "io.kubernetes.container.ports"
# Not upstream's: which list of the spec the container comes from, so a kubelet
# that restarted tells init containers from regular ones without the spec.
CONTAINER_TYPE = "io.kubernetes.container.type"
INIT, REGULAR = "init", "regular"

GUARANTEED, BURSTABLE, BEST_EFFORT = "Guaranteed", "Burstable", "BestEffort"
_QOS_RESOURCES = ("cpu", "memory")
_ZERO = Quantity()

# Upstream's DefaultTerminationGracePeriodSeconds (API defaulting sets it too).
DEFAULT_TERMINATION_GRACE = 30


def meta(pod: dict) -> dict:
    return pod.get("metadata") or {}


def spec(pod: dict) -> dict:
    return pod.get("spec") or {}


def uid(pod: dict) -> str:
    return meta(pod).get("uid", "")


def full_name(pod: dict) -> str:
    """`name_namespace(uid)`, as upstream's format.Pod in messages."""
    m = meta(pod)
    return f"{m.get('name', '')}_{m.get('namespace', '')}({m.get('uid', '')})"


def containers(pod: dict) -> list[dict]:
    return spec(pod).get("containers") or []


def init_containers(pod: dict) -> list[dict]:
    return spec(pod).get("initContainers") or []


def find_container(pod: dict, name: str) -> dict | None:
    return next((c for c in init_containers(pod) + containers(pod) if c.get("name") == name),
                None)


def is_host_network(pod: dict) -> bool:
    return bool(spec(pod).get("hostNetwork"))


def restart_policy(pod: dict) -> str:
    return spec(pod).get("restartPolicy") or "Always"


def should_restart_on_failure(pod: dict) -> bool:
    return restart_policy(pod) != "Never"


def deletion_requested(pod: dict) -> bool:
    return bool(meta(pod).get("deletionTimestamp"))


def termination_grace_period(pod: dict) -> int:
    """The grace period a deletion gives the pod: the API's, else the spec's."""
    deletion = meta(pod).get("deletionGracePeriodSeconds")
    if deletion is not None:
        return int(deletion)
    value = spec(pod).get("terminationGracePeriodSeconds")
    return DEFAULT_TERMINATION_GRACE if value is None else int(value)


def _resources(container: dict, kind: str) -> dict:
    return (container.get("resources") or {}).get(kind) or {}


def quantity(container: dict, kind: str, resource: str) -> Quantity | None:
    """`resources.<kind>.<resource>` of a container, None when absent."""
    value = _resources(container, kind).get(resource)
    return None if value is None else parse_quantity(value)


def qos_class(pod: dict) -> str:
    """Upstream's ComputePodQOS over containers and init containers."""
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    guaranteed = True
    for c in containers(pod) + init_containers(pod):
        for name, value in _resources(c, "requests").items():
            q = parse_quantity(value)
            if name in _QOS_RESOURCES and q > _ZERO:
                requests[name] = requests.get(name, Quantity()) + q
        found = set()
        for name, value in _resources(c, "limits").items():
            q = parse_quantity(value)
            if name in _QOS_RESOURCES and q > _ZERO:
                found.add(name)
                limits[name] = limits.get(name, Quantity()) + q
        if not found >= set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and all(name in limits and limits[name] == req
                          for name, req in requests.items()):
        if len(requests) == len(limits):
            return GUARANTEED
    return BURSTABLE


def pod_qos(pod: dict) -> str:
    """The QoS class the API recorded, else the computed one (upstream's GetPodQOS)."""
    return (pod.get("status") or {}).get("qosClass") or qos_class(pod)


def sandbox_labels(pod: dict) -> dict[str, str]:
    """The pod's labels plus the identity labels (upstream's newPodLabels)."""
    m = meta(pod)
    labels = dict(m.get("labels") or {})
    labels.update({POD_NAME_LABEL: m.get("name", ""),
                   POD_NAMESPACE_LABEL: m.get("namespace", ""),
                   POD_UID_LABEL: m.get("uid", "")})
    return labels


def container_labels(pod: dict, container: dict) -> dict[str, str]:
    m = meta(pod)
    return {POD_NAME_LABEL: m.get("name", ""), POD_NAMESPACE_LABEL: m.get("namespace", ""),
            POD_UID_LABEL: m.get("uid", ""), CONTAINER_NAME_LABEL: container["name"]}


def container_annotations(pod: dict, container: dict, *, restart_count: int,
                          container_type: str) -> dict[str, str]:
    """Upstream's newContainerAnnotations (plus the container type)."""
    annotations = {
        CONTAINER_HASH: container_hash(container),
        RESTART_COUNT: str(restart_count),
        TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath",
                                               "/dev/termination-log"),
        TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy", "File"),
        CONTAINER_TYPE: container_type,
    }
    m = meta(pod)
    if m.get("deletionGracePeriodSeconds") is not None:
        annotations[POD_DELETION_GRACE] = str(m["deletionGracePeriodSeconds"])
    grace = spec(pod).get("terminationGracePeriodSeconds")
    if grace is not None:
        annotations[POD_TERMINATION_GRACE] = str(grace)
    if container.get("ports"):
        annotations[CONTAINER_PORTS] = json.dumps(container["ports"], separators=(",", ":"))
    return annotations


def container_hash(container: dict) -> str:
    """A stable hash of the spec fields whose change needs a new container."""
    relevant = {k: v for k, v in container.items() if k not in ("resources", "resizePolicy")}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return format(zlib.crc32(text.encode()), "x")


def all_container_names(pod: dict) -> Iterator[str]:
    for c in init_containers(pod) + containers(pod):
        yield c["name"]
