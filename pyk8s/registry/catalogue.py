"""The catalogue of built-in Kubernetes v1.32 resources: pure data, no I/O.

Role: the one place that says which API groups, versions and resources exist, how
discovery names them (plural, singular, kind, short names, categories), which verbs
and subresources each serves, and in which order groups are listed. Discovery
(``/api``, ``/apis``, aggregated discovery), routing and the registry read it; nothing
writes it.

Invariants (tests/registry/test_catalogue.py checks them):

- the data is what a kube-apiserver v1.32 with default feature gates serves for the
  GA groups listed in ``GROUP_ORDER``: verbs, short names, categories and
  subresources match upstream's discovery documents;
- ``(group, version, plural)`` is unique, and so is ``(group, version, kind)``;
- ``GROUP_ORDER`` lists groups by upstream's group priority (the order of
  ``kubectl api-versions`` in aggregated discovery) and each group's versions with the
  preferred one first;
- every resource with ``storage=True`` has a schema in the kubernetes-validate v1.32
  definitions; ``storage=False`` marks resources that are never stored (reviews,
  bindings, component statuses);
- a subresource's ``group``/``version`` is the group-version of the kind it returns:
  the parent's own unless upstream says otherwise (``scale`` returns autoscaling/v1
  ``Scale``, ``eviction`` policy/v1 ``Eviction``, ``token`` authentication.k8s.io/v1
  ``TokenRequest``).
"""
from __future__ import annotations

from dataclasses import dataclass

# The verb lists exactly as upstream's discovery prints them (sorted).
STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")
PROXY_VERBS = ("create", "delete", "get", "patch", "update")
CREATE_ONLY = ("create",)


@dataclass(frozen=True)
class Subresource:
    """One ``<plural>/<name>`` endpoint; ``kind`` is what its requests and answers carry."""

    name: str
    kind: str
    group: str
    version: str
    verbs: tuple[str, ...]


@dataclass(frozen=True)
class ResourceInfo:
    """One resource of one group-version, as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    subresources: tuple[Subresource, ...] = ()
    storage: bool = True

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_version(self) -> str:
        """``apiVersion`` of this resource's objects: ``v1`` or ``<group>/<version>``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None


# Group priority order (upstream's apiVersionPriorities, highest first) restricted to
# the groups pyk8s serves; versions preferred-first. admissionregistration.k8s.io and
# apiextensions.k8s.io tie on priority; the aggregator then orders by name.
GROUP_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("v1",)),
    ("apps", ("v1",)),
    ("events.k8s.io", ("v1",)),
    ("authentication.k8s.io", ("v1",)),
    ("authorization.k8s.io", ("v1",)),
    ("autoscaling", ("v2", "v1")),
    ("batch", ("v1",)),
    ("certificates.k8s.io", ("v1",)),
    ("networking.k8s.io", ("v1",)),
    ("policy", ("v1",)),
    ("rbac.authorization.k8s.io", ("v1",)),
    ("storage.k8s.io", ("v1",)),
    ("admissionregistration.k8s.io", ("v1",)),
    ("apiextensions.k8s.io", ("v1",)),
    ("scheduling.k8s.io", ("v1",)),
    ("coordination.k8s.io", ("v1",)),
    ("node.k8s.io", ("v1",)),
    ("discovery.k8s.io", ("v1",)),
)


def _sub(name: str, kind: str, verbs: tuple[str, ...], gv: tuple[str, str] | None = None) -> tuple:
    """A subresource spec; ``gv`` only when it differs from the parent's."""
    return (name, kind, verbs, gv)


def _status(kind: str) -> tuple:
    return _sub("status", kind, STATUS_VERBS)


_SCALE = _sub("scale", "Scale", STATUS_VERBS, ("autoscaling", "v1"))


def _res(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool,
    short: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    verbs: tuple[str, ...] = STANDARD_VERBS,
    subs: tuple[tuple, ...] = (),
    storage: bool = True,
    singular: str | None = None,
) -> ResourceInfo:
    subresources = tuple(
        Subresource(name=n, kind=k, group=(gv or (group, version))[0],
                    version=(gv or (group, version))[1], verbs=v)
        for n, k, v, gv in subs
    )
    return ResourceInfo(
        group=group, version=version, kind=kind, plural=plural,
        singular=singular if singular is not None else kind.lower(),
        namespaced=namespaced, short_names=short, categories=cats, verbs=verbs,
        subresources=subresources, storage=storage,
    )


def _core() -> list[ResourceInfo]:
    g, v = "", "v1"
    pod_subs = (
        _sub("attach", "PodAttachOptions", ("create", "get")),
        _sub("binding", "Binding", CREATE_ONLY),
        _sub("ephemeralcontainers", "Pod", STATUS_VERBS),
        _sub("eviction", "Eviction", CREATE_ONLY, ("policy", "v1")),
        _sub("exec", "PodExecOptions", ("create", "get")),
        _sub("log", "Pod", ("get",)),
        _sub("portforward", "PodPortForwardOptions", ("create", "get")),
        _sub("proxy", "PodProxyOptions", PROXY_VERBS),
        _status("Pod"),
    )
    return [
        _res(g, v, "bindings", "Binding", namespaced=True, verbs=CREATE_ONLY, storage=False),
        _res(g, v, "componentstatuses", "ComponentStatus", namespaced=False, short=("cs",),
             verbs=("get", "list"), storage=False),
        _res(g, v, "configmaps", "ConfigMap", namespaced=True, short=("cm",)),
        _res(g, v, "endpoints", "Endpoints", namespaced=True, short=("ep",), singular="endpoints"),
        _res(g, v, "events", "Event", namespaced=True, short=("ev",)),
        _res(g, v, "limitranges", "LimitRange", namespaced=True, short=("limits",)),
        _res(g, v, "namespaces", "Namespace", namespaced=False, short=("ns",),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
             subs=(_sub("finalize", "Namespace", ("update",)), _status("Namespace"))),
        _res(g, v, "nodes", "Node", namespaced=False, short=("no",),
             subs=(_sub("proxy", "NodeProxyOptions", PROXY_VERBS), _status("Node"))),
        _res(g, v, "persistentvolumeclaims", "PersistentVolumeClaim", namespaced=True,
             short=("pvc",), subs=(_status("PersistentVolumeClaim"),)),
        _res(g, v, "persistentvolumes", "PersistentVolume", namespaced=False, short=("pv",),
             subs=(_status("PersistentVolume"),)),
        _res(g, v, "pods", "Pod", namespaced=True, short=("po",), cats=("all",), subs=pod_subs),
        _res(g, v, "podtemplates", "PodTemplate", namespaced=True),
        _res(g, v, "replicationcontrollers", "ReplicationController", namespaced=True,
             short=("rc",), cats=("all",), subs=(_SCALE, _status("ReplicationController"))),
        _res(g, v, "resourcequotas", "ResourceQuota", namespaced=True, short=("quota",),
             subs=(_status("ResourceQuota"),)),
        _res(g, v, "secrets", "Secret", namespaced=True),
        _res(g, v, "serviceaccounts", "ServiceAccount", namespaced=True, short=("sa",),
             subs=(_sub("token", "TokenRequest", CREATE_ONLY, ("authentication.k8s.io", "v1")),)),
        _res(g, v, "services", "Service", namespaced=True, short=("svc",), cats=("all",),
             subs=(_sub("proxy", "ServiceProxyOptions", PROXY_VERBS), _status("Service"))),
    ]


def _apps() -> list[ResourceInfo]:
    g, v, all_ = "apps", "v1", ("all",)
    return [
        _res(g, v, "controllerrevisions", "ControllerRevision", namespaced=True),
        _res(g, v, "daemonsets", "DaemonSet", namespaced=True, short=("ds",), cats=all_,
             subs=(_status("DaemonSet"),)),
        _res(g, v, "deployments", "Deployment", namespaced=True, short=("deploy",), cats=all_,
             subs=(_SCALE, _status("Deployment"))),
        _res(g, v, "replicasets", "ReplicaSet", namespaced=True, short=("rs",), cats=all_,
             subs=(_SCALE, _status("ReplicaSet"))),
        _res(g, v, "statefulsets", "StatefulSet", namespaced=True, short=("sts",), cats=all_,
             subs=(_SCALE, _status("StatefulSet"))),
    ]


def _reviews() -> list[ResourceInfo]:
    authn, authz, v = "authentication.k8s.io", "authorization.k8s.io", "v1"
    review = dict(verbs=CREATE_ONLY, storage=False)
    return [
        _res(authn, v, "selfsubjectreviews", "SelfSubjectReview", namespaced=False, **review),
        _res(authn, v, "tokenreviews", "TokenReview", namespaced=False, **review),
        _res(authz, v, "localsubjectaccessreviews", "LocalSubjectAccessReview",
             namespaced=True, **review),
        _res(authz, v, "selfsubjectaccessreviews", "SelfSubjectAccessReview",
             namespaced=False, **review),
        _res(authz, v, "selfsubjectrulesreviews", "SelfSubjectRulesReview",
             namespaced=False, **review),
        _res(authz, v, "subjectaccessreviews", "SubjectAccessReview", namespaced=False, **review),
    ]


def _workload_groups() -> list[ResourceInfo]:
    all_ = ("all",)
    hpa = [
        _res("autoscaling", version, "horizontalpodautoscalers", "HorizontalPodAutoscaler",
             namespaced=True, short=("hpa",), cats=all_,
             subs=(_status("HorizontalPodAutoscaler"),))
        for version in ("v2", "v1")
    ]
    return hpa + [
        _res("batch", "v1", "cronjobs", "CronJob", namespaced=True, short=("cj",), cats=all_,
             subs=(_status("CronJob"),)),
        _res("batch", "v1", "jobs", "Job", namespaced=True, cats=all_, subs=(_status("Job"),)),
        _res("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", namespaced=True,
             short=("pdb",), subs=(_status("PodDisruptionBudget"),)),
        _res("events.k8s.io", "v1", "events", "Event", namespaced=True, short=("ev",)),
        _res("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False,
             short=("pc",)),
        _res("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True),
        _res("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", namespaced=False),
    ]


def _network_groups() -> list[ResourceInfo]:
    net, v = "networking.k8s.io", "v1"
    return [
        _res(net, v, "ingressclasses", "IngressClass", namespaced=False),
        _res(net, v, "ingresses", "Ingress", namespaced=True, short=("ing",),
             subs=(_status("Ingress"),)),
        _res(net, v, "networkpolicies", "NetworkPolicy", namespaced=True, short=("netpol",)),
        _res("discovery.k8s.io", v, "endpointslices", "EndpointSlice", namespaced=True),
    ]


def _cluster_groups() -> list[ResourceInfo]:
    rbac, st, adm, v = "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io", "v1"
    ext = ("api-extensions",)
    return [
        _res("certificates.k8s.io", v, "certificatesigningrequests", "CertificateSigningRequest",
             namespaced=False, short=("csr",),
             subs=(_sub("approval", "CertificateSigningRequest", STATUS_VERBS),
                   _status("CertificateSigningRequest"))),
        _res(rbac, v, "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
        _res(rbac, v, "clusterroles", "ClusterRole", namespaced=False),
        _res(rbac, v, "rolebindings", "RoleBinding", namespaced=True),
        _res(rbac, v, "roles", "Role", namespaced=True),
        _res(st, v, "csidrivers", "CSIDriver", namespaced=False),
        _res(st, v, "csinodes", "CSINode", namespaced=False),
        _res(st, v, "csistoragecapacities", "CSIStorageCapacity", namespaced=True),
        _res(st, v, "storageclasses", "StorageClass", namespaced=False, short=("sc",)),
        _res(st, v, "volumeattachments", "VolumeAttachment", namespaced=False,
             subs=(_status("VolumeAttachment"),)),
        _res(adm, v, "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
             namespaced=False, cats=ext),
        _res(adm, v, "validatingadmissionpolicies", "ValidatingAdmissionPolicy",
             namespaced=False, cats=ext, subs=(_status("ValidatingAdmissionPolicy"),)),
        _res(adm, v, "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding",
             namespaced=False, cats=ext),
        _res(adm, v, "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
             namespaced=False, cats=ext),
        _res("apiextensions.k8s.io", v, "customresourcedefinitions", "CustomResourceDefinition",
             namespaced=False, short=("crd", "crds"), cats=ext,
             subs=(_status("CustomResourceDefinition"),)),
    ]


def _ordered(resources: list[ResourceInfo]) -> tuple[ResourceInfo, ...]:
    """Group order first, then version preference, then plural (discovery's order)."""
    rank = {
        (group, version): (gi, vi)
        for gi, (group, versions) in enumerate(GROUP_ORDER)
        for vi, version in enumerate(versions)
    }
    return tuple(sorted(resources, key=lambda r: (rank[(r.group, r.version)], r.plural)))


RESOURCES: tuple[ResourceInfo, ...] = _ordered(
    _core() + _apps() + _reviews() + _workload_groups() + _network_groups() + _cluster_groups()
)

_BY_PLURAL = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.group, r.version, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceInfo | None:
    """The resource served at ``/apis/<group>/<version>/<plural>`` (``/api/v1`` for core)."""
    return _BY_PLURAL.get((group, version, plural))


def by_kind(group: str, version: str, kind: str) -> ResourceInfo | None:
    """The resource whose objects have this group, version and kind."""
    return _BY_KIND.get((group, version, kind))


def resources_of(group: str, version: str) -> tuple[ResourceInfo, ...]:
    """All resources of one group-version, in discovery order (by plural)."""
    return tuple(r for r in RESOURCES if r.group == group and r.version == version)


def preferred_version(group: str) -> str | None:
    """The version discovery names as the group's preferredVersion."""
    for name, versions in GROUP_ORDER:
        if name == group:
            return versions[0]
    return None
