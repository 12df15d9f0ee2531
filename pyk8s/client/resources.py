"""Resources as the client addresses them: group, version, plural, kind, scope.

Role: name the REST collection an object lives in and build its URL paths; list the
built-in v1.32 resources the components use, so they need no discovery round trip.
Anything else (custom resources) is resolved through ``discovery.ResourceMapper``.

Invariants:
- ``Resource`` is immutable and hashable; equal resources address the same URLs.
- ``path()`` of a namespaced resource without a namespace is the all-namespaces
  collection (``/api/v1/pods``); a cluster-scoped resource ignores the namespace.
- ``BUILTIN`` maps ``(apiVersion, kind)`` and ``(group, plural)`` to the same
  ``Resource`` objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str = ""
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None, *,
             subresource: str | None = None) -> str:
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        elif subresource:
            raise ValueError("a subresource needs an object name")
        return "/".join(parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.version}.{self.group}" if self.group \
            else f"{self.plural}.{self.version}"


def _r(group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> Resource:
    return Resource(group, version, plural, kind, namespaced)


# Core v1.
BINDINGS = _r("", "v1", "bindings", "Binding")
CONFIGMAPS = _r("", "v1", "configmaps", "ConfigMap")
ENDPOINTS = _r("", "v1", "endpoints", "Endpoints")
EVENTS = _r("", "v1", "events", "Event")
LIMITRANGES = _r("", "v1", "limitranges", "LimitRange")
NAMESPACES = _r("", "v1", "namespaces", "Namespace", False)
NODES = _r("", "v1", "nodes", "Node", False)
PERSISTENTVOLUMECLAIMS = _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PERSISTENTVOLUMES = _r("", "v1", "persistentvolumes", "PersistentVolume", False)
PODS = _r("", "v1", "pods", "Pod")
PODTEMPLATES = _r("", "v1", "podtemplates", "PodTemplate")
REPLICATIONCONTROLLERS = _r("", "v1", "replicationcontrollers", "ReplicationController")
RESOURCEQUOTAS = _r("", "v1", "resourcequotas", "ResourceQuota")
SECRETS = _r("", "v1", "secrets", "Secret")
SERVICEACCOUNTS = _r("", "v1", "serviceaccounts", "ServiceAccount")
SERVICES = _r("", "v1", "services", "Service")
# apps/v1.
CONTROLLERREVISIONS = _r("apps", "v1", "controllerrevisions", "ControllerRevision")
DAEMONSETS = _r("apps", "v1", "daemonsets", "DaemonSet")
DEPLOYMENTS = _r("apps", "v1", "deployments", "Deployment")
REPLICASETS = _r("apps", "v1", "replicasets", "ReplicaSet")
STATEFULSETS = _r("apps", "v1", "statefulsets", "StatefulSet")
# Other groups.
HORIZONTALPODAUTOSCALERS = _r("autoscaling", "v2", "horizontalpodautoscalers",
                              "HorizontalPodAutoscaler")
CRONJOBS = _r("batch", "v1", "cronjobs", "CronJob")
JOBS = _r("batch", "v1", "jobs", "Job")
LEASES = _r("coordination.k8s.io", "v1", "leases", "Lease")
ENDPOINTSLICES = _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
EVENTS_V1 = _r("events.k8s.io", "v1", "events", "Event")
INGRESSES = _r("networking.k8s.io", "v1", "ingresses", "Ingress")
NETWORKPOLICIES = _r("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
PODDISRUPTIONBUDGETS = _r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
PRIORITYCLASSES = _r("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False)
CLUSTERROLEBINDINGS = _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                         "ClusterRoleBinding", False)
CLUSTERROLES = _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
ROLEBINDINGS = _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
ROLES = _r("rbac.authorization.k8s.io", "v1", "roles", "Role")
CSIDRIVERS = _r("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False)
CSINODES = _r("storage.k8s.io", "v1", "csinodes", "CSINode", False)
STORAGECLASSES = _r("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)
VOLUMEATTACHMENTS = _r("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False)
RUNTIMECLASSES = _r("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False)
CUSTOMRESOURCEDEFINITIONS = _r("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                               "CustomResourceDefinition", False)

ALL: tuple[Resource, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Resource))

BY_KIND: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in ALL}
BY_PLURAL: dict[tuple[str, str], Resource] = {(r.group, r.plural): r for r in ALL}


def builtin(api_version: str, kind: str) -> Resource | None:
    """The built-in resource serving ``kind`` objects of ``api_version``, if any."""
    return BY_KIND.get((api_version, kind))
