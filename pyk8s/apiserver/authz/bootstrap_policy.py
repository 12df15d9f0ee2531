"""Upstream's default RBAC policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).

The ClusterRoles, ClusterRoleBindings, Roles and RoleBindings every v1.32 cluster
starts with: cluster-admin; admin, edit and view built by aggregation from the
``system:aggregate-to-*`` roles; the ``system:*`` roles for discovery, basic users,
nodes, the scheduler, the controller manager and its per-controller service accounts
(``system:controller:*``), kube-proxy and CSR approval; plus pyk8s' bindings for node
TLS bootstrap (kubeadm's ``kubelet-bootstrap`` and auto-approval bindings) and the
roles of the two controllers pyk8s' controller manager runs that upstream's does not:
k3s' ``local-path-provisioner-role`` and ``pyk8s:apiserver-endpoints`` (each bound to
its kube-system service account, as ``controllers.manager.SERVICE_ACCOUNTS`` names).

``reconcile`` runs at every start, as upstream's storage_rbac PostStartHook: missing
objects are created, and an object annotated ``rbac.authorization.kubernetes.io/
autoupdate: "true"`` gets missing rules or subjects added back (never removed).
"""
from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

from ...api import errors
from ...registry.generic import WriteOptions

if TYPE_CHECKING:
    from ..app import APIServer

log = logging.getLogger(__name__)
GROUP = "rbac.authorization.k8s.io"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update",
              "watch")
EVENTS = ("", "events.k8s.io")


def r(verbs, groups, resources, names=()) -> dict:
    rule = {"apiGroups": list(groups), "resources": list(resources)}
    if names:
        rule["resourceNames"] = list(names)
    rule["verbs"] = sorted(verbs)
    return rule


def urls(verbs, *paths) -> dict:
    return {"nonResourceURLs": list(paths), "verbs": sorted(verbs)}


def events_rule() -> dict:
    return r(("create", "update", "patch"), EVENTS, ("events",))


# -- cluster roles ---------------------------------------------------------------------

AGGREGATE_TO_VIEW = [
    r(READ, [""], ("configmaps", "endpoints", "persistentvolumeclaims",
                   "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                   "replicationcontrollers/scale", "serviceaccounts", "services",
                   "services/status")),
    r(READ, [""], ("bindings", "events", "limitranges", "namespaces/status", "pods/log",
                   "pods/status", "replicationcontrollers/status", "resourcequotas",
                   "resourcequotas/status")),
    r(READ, [""], ("namespaces",)),
    r(READ, ["discovery.k8s.io"], ("endpointslices",)),
    r(READ, ["apps"], ("controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                       "deployments/scale", "deployments/status", "replicasets",
                       "replicasets/scale", "replicasets/status", "statefulsets",
                       "statefulsets/scale", "statefulsets/status")),
    r(READ, ["autoscaling"], ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
    r(READ, ["batch"], ("cronjobs", "cronjobs/status", "jobs", "jobs/status")),
    r(READ, ["extensions"], ("daemonsets", "daemonsets/status", "deployments",
                             "deployments/scale", "deployments/status", "ingresses",
                             "ingresses/status", "networkpolicies", "replicasets",
                             "replicasets/scale", "replicasets/status",
                             "replicationcontrollers/scale")),
    r(READ, ["policy"], ("poddisruptionbudgets", "poddisruptionbudgets/status")),
    r(READ, ["networking.k8s.io"], ("ingresses", "ingresses/status", "networkpolicies")),
]

AGGREGATE_TO_EDIT = [
    r(READ, [""], ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                   "services/proxy")),
    r(("impersonate",), [""], ("serviceaccounts",)),
    r(WRITE, [""], ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy")),
    r(("create",), [""], ("pods/eviction",)),
    r(WRITE, [""], ("configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                    "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                    "services/proxy")),
    r(("create",), [""], ("serviceaccounts/token",)),
    r(WRITE, ["apps"], ("daemonsets", "deployments", "deployments/rollback",
                        "deployments/scale", "replicasets", "replicasets/scale",
                        "statefulsets", "statefulsets/scale")),
    r(WRITE, ["autoscaling"], ("horizontalpodautoscalers",)),
    r(WRITE, ["batch"], ("cronjobs", "jobs")),
    r(WRITE, ["extensions"], ("daemonsets", "deployments", "deployments/rollback",
                              "deployments/scale", "ingresses", "networkpolicies",
                              "replicasets", "replicasets/scale",
                              "replicationcontrollers/scale")),
    r(WRITE, ["policy"], ("poddisruptionbudgets",)),
    r(WRITE, ["networking.k8s.io"], ("ingresses", "networkpolicies")),
    r(READ_WRITE, ["coordination.k8s.io"], ("leases",)),
]

AGGREGATE_TO_ADMIN = [
    r(("create",), ["authorization.k8s.io"], ("localsubjectaccessreviews",)),
    r(READ_WRITE, [GROUP], ("rolebindings", "roles")),
]

NODE_RULES = [
    r(("create",), ["authentication.k8s.io"], ("tokenreviews",)),
    r(("create",), ["authorization.k8s.io"], ("localsubjectaccessreviews",
                                              "subjectaccessreviews")),
    r(READ, [""], ("services",)),
    r(("create", "get", "list", "watch"), [""], ("nodes",)),
    r(("patch", "update"), [""], ("nodes/status",)),
    r(("patch", "update"), [""], ("nodes",)),
    r(("create", "patch", "update"), [""], ("events",)),
    r(READ, [""], ("pods",)),
    r(("create", "delete"), [""], ("pods",)),
    r(("patch", "update"), [""], ("pods/status",)),
    r(("create",), [""], ("pods/eviction",)),
    r(READ, [""], ("configmaps", "secrets")),
    r(("get",), [""], ("persistentvolumeclaims", "persistentvolumes")),
    r(("get",), [""], ("endpoints",)),
    r(("create", "get", "list", "watch"), ["certificates.k8s.io"],
      ("certificatesigningrequests",)),
    r(("create", "delete", "get", "patch", "update"), ["coordination.k8s.io"], ("leases",)),
    r(("get",), ["storage.k8s.io"], ("volumeattachments",)),
    r(("create",), [""], ("serviceaccounts/token",)),
    r(("get", "patch", "update"), [""], ("persistentvolumeclaims/status",)),
    r(READ, ["storage.k8s.io"], ("csidrivers",)),
    r(("create", "delete", "get", "patch", "update"), ["storage.k8s.io"], ("csinodes",)),
    r(READ, ["node.k8s.io"], ("runtimeclasses",)),
]


def _leader_rules(name: str) -> list[dict]:
    return [r(("create",), ["coordination.k8s.io"], ("leases",)),
            r(("get", "update"), ["coordination.k8s.io"], ("leases",), (name,))]


def _signer_role(signer: str) -> tuple[str, list[dict]]:
    short = signer.split("/", 1)[1]
    return (f"system:certificates.k8s.io:{short}-approver",
            [r(("approve",), ["certificates.k8s.io"], ("signers",), (signer,))])


def cluster_roles() -> list[tuple[str, list[dict] | None, dict, dict | None]]:
    """(name, rules, extra labels, aggregationRule) of every default ClusterRole."""
    def agg(label: str) -> dict:
        return {"clusterRoleSelectors": [{"matchLabels": {
            f"rbac.authorization.k8s.io/aggregate-to-{label}": "true"}}]}
    to = lambda label: {f"rbac.authorization.k8s.io/aggregate-to-{label}": "true"}  # noqa
    roles = [
        ("cluster-admin", [r(("*",), ["*"], ("*",)), urls(("*",), "*")], {}, None),
        ("admin", None, {}, agg("admin")),
        ("edit", None, to("admin"), agg("edit")),
        ("view", None, to("edit"), agg("view")),
        ("system:aggregate-to-admin", AGGREGATE_TO_ADMIN, to("admin"), None),
        ("system:aggregate-to-edit", AGGREGATE_TO_EDIT, to("edit"), None),
        ("system:aggregate-to-view", AGGREGATE_TO_VIEW, to("view"), None),
        ("system:discovery", [urls(("get",), "/api", "/api/*", "/apis", "/apis/*",
                                   "/healthz", "/livez", "/openapi", "/openapi/*",
                                   "/readyz", "/version", "/version/")], {}, None),
        ("system:public-info-viewer", [urls(("get",), "/healthz", "/livez", "/readyz",
                                            "/version", "/version/")], {}, None),
        ("system:monitoring", [urls(("get",), "/healthz", "/healthz/*", "/livez", "/livez/*",
                                    "/metrics", "/metrics/slis", "/readyz", "/readyz/*")],
         {}, None),
        ("system:basic-user", [
            r(("create",), ["authorization.k8s.io"], ("selfsubjectaccessreviews",
                                                      "selfsubjectrulesreviews")),
            r(("create",), ["authentication.k8s.io"], ("selfsubjectreviews",))], {}, None),
        ("system:auth-delegator", [
            r(("create",), ["authentication.k8s.io"], ("tokenreviews",)),
            r(("create",), ["authorization.k8s.io"], ("subjectaccessreviews",))], {}, None),
        ("system:heapster", [r(READ, [""], ("events", "namespaces", "nodes", "pods")),
                             r(READ, ["extensions"], ("deployments",))], {}, None),
        ("system:node", NODE_RULES, {}, None),
        ("system:node-problem-detector", [r(("get",), [""], ("nodes",)),
                                          r(("patch",), [""], ("nodes/status",)),
                                          events_rule()], {}, None),
        ("system:kubelet-api-admin", [
            r(READ, [""], ("nodes",)), r(("proxy",), [""], ("nodes",)),
            r(("*",), [""], ("nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"))],
         {}, None),
        ("system:node-bootstrapper", [r(("create", "get", "list", "watch"),
                                        ["certificates.k8s.io"],
                                        ("certificatesigningrequests",))], {}, None),
        ("system:node-proxier", [r(("list", "watch"), [""], ("endpoints", "services")),
                                 r(READ, [""], ("nodes",)), events_rule(),
                                 r(("list", "watch"), ["discovery.k8s.io"],
                                   ("endpointslices",))], {}, None),
        ("system:kube-aggregator", [r(READ, [""], ("endpoints", "services"))], {}, None),
        ("system:kube-controller-manager", [
            events_rule(), *_leader_rules("kube-controller-manager"),
            r(("create",), [""], ("secrets", "serviceaccounts")),
            r(("delete",), [""], ("secrets",)),
            r(("get",), [""], ("configmaps", "namespaces", "secrets", "serviceaccounts")),
            r(("update",), [""], ("secrets", "serviceaccounts")),
            r(("create",), ["authentication.k8s.io"], ("tokenreviews",)),
            r(("create",), ["authorization.k8s.io"], ("subjectaccessreviews",)),
            r(("list", "watch"), ["*"], ("*",)),
            r(("create",), [""], ("serviceaccounts/token",))], {}, None),
        ("system:kube-dns", [r(("list", "watch"), [""], ("endpoints", "services"))], {}, None),
        ("system:kube-scheduler", [
            events_rule(), *_leader_rules("kube-scheduler"),
            r(READ, [""], ("nodes",)),
            r(("delete", "get", "list", "watch"), [""], ("pods",)),
            r(("create",), [""], ("bindings", "pods/binding")),
            r(("patch", "update"), [""], ("pods/status",)),
            r(READ, [""], ("replicationcontrollers", "services")),
            r(READ, ["apps", "extensions"], ("replicasets",)),
            r(READ, ["apps"], ("statefulsets",)),
            r(READ, ["policy"], ("poddisruptionbudgets",)),
            r(READ, [""], ("persistentvolumeclaims", "persistentvolumes")),
            r(("create",), ["authentication.k8s.io"], ("tokenreviews",)),
            r(("create",), ["authorization.k8s.io"], ("subjectaccessreviews",)),
            r(READ, ["storage.k8s.io"], ("csinodes",)),
            r(READ, [""], ("namespaces",)),
            r(READ, ["storage.k8s.io"], ("csidrivers",)),
            r(READ, ["storage.k8s.io"], ("csistoragecapacities",))], {}, None),
        ("system:volume-scheduler", [
            r(("get", "list", "patch", "update", "watch"), [""], ("persistentvolumes",)),
            r(READ, ["storage.k8s.io"], ("storageclasses",)),
            r(("get", "list", "patch", "update", "watch"), [""], ("persistentvolumeclaims",))],
         {}, None),
        ("system:persistent-volume-provisioner", [
            r(("create", "delete", "get", "list", "watch"), [""], ("persistentvolumes",)),
            r(("get", "list", "update", "watch"), [""], ("persistentvolumeclaims",)),
            r(READ, ["storage.k8s.io"], ("storageclasses",)),
            r(("watch",), [""], ("events",)), events_rule()], {}, None),
        ("system:service-account-issuer-discovery", [
            urls(("get",), "/.well-known/openid-configuration", "/openid/v1/jwks")], {}, None),
        ("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
            r(("create",), ["certificates.k8s.io"], ("certificatesigningrequests/nodeclient",))],
         {}, None),
        ("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
            r(("create",), ["certificates.k8s.io"],
              ("certificatesigningrequests/selfnodeclient",))], {}, None),
    ]
    for signer in ("kubernetes.io/kube-apiserver-client",
                   "kubernetes.io/kube-apiserver-client-kubelet",
                   "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown"):
        name, rules = _signer_role(signer)
        roles.append((name, rules, {}, None))
    for name, rules in controller_roles():
        roles.append((name, rules, {}, None))
    # k3s' local-path-provisioner role (manifests/local-storage.yaml), narrowed: its
    # helper pods are a kube-system Role's (below), and it creates its StorageClass,
    # which k3s applies from a manifest instead.
    roles.append((LOCAL_PATH_ROLE, [
        r(READ, [""], ("nodes", "persistentvolumeclaims")),
        r(("create", "delete", "get", "list", "patch", "update", "watch"), [""],
          ("persistentvolumes",)),
        r(("create", "patch"), [""], ("events",)),
        r(("create", "get", "list", "watch"), ["storage.k8s.io"], ("storageclasses",))],
        {}, None))
    return roles


# pyk8s' own controllers' service accounts (kube-system) and roles; upstream and k3s
# run these outside kube-controller-manager.
LOCAL_PATH_SA = "local-path-provisioner-service-account"
LOCAL_PATH_ROLE = "local-path-provisioner-role"
LOCAL_PATH_BINDING = "local-path-provisioner-bind"
APISERVER_ENDPOINTS_SA = "apiserver-endpoints-controller"
APISERVER_ENDPOINTS_ROLE = "pyk8s:apiserver-endpoints"


def controller_roles() -> list[tuple[str, list[dict]]]:
    """``system:controller:<name>`` roles, each bound to kube-system's SA ``<name>``."""
    ev = events_rule()
    pods = ("pods",)
    return [(f"system:controller:{n}", rules) for n, rules in [
        ("attachdetach-controller", [
            r(("list", "watch"), [""], ("persistentvolumes", "persistentvolumeclaims")),
            r(READ, [""], ("nodes",)), r(("patch", "update"), [""], ("nodes/status",)),
            r(("list", "watch"), [""], pods), ev,
            r(("get", "create", "delete", "list", "watch"), ["storage.k8s.io"],
              ("volumeattachments",)),
            r(READ, ["storage.k8s.io"], ("csidrivers",)),
            r(READ, ["storage.k8s.io"], ("csinodes",))]),
        ("clusterrole-aggregation-controller", [
            r(("escalate", "get", "list", "watch", "update", "patch"), [GROUP],
              ("clusterroles",))]),
        ("cronjob-controller", [
            r(("get", "list", "watch", "update"), ["batch"], ("cronjobs",)),
            r(("get", "list", "watch", "create", "update", "delete", "patch"), ["batch"],
              ("jobs",)),
            r(("update",), ["batch"], ("cronjobs/status",)),
            r(("update",), ["batch"], ("cronjobs/finalizers",)),
            r(("list", "watch", "delete"), [""], pods), ev]),
        ("daemon-set-controller", [
            r(READ, ["extensions", "apps"], ("daemonsets",)),
            r(("update",), ["extensions", "apps"], ("daemonsets/status",)),
            r(("update",), ["extensions", "apps"], ("daemonsets/finalizers",)),
            r(("list", "watch"), [""], ("nodes",)),
            r(("list", "watch", "create", "delete", "patch"), [""], pods),
            r(("create",), [""], ("pods/binding",)),
            r(("get", "list", "watch", "create", "delete", "update", "patch"), ["apps"],
              ("controllerrevisions",)), ev]),
        ("deployment-controller", [
            r(("get", "list", "watch", "update"), ["extensions", "apps"], ("deployments",)),
            # NOT upstream's: pyk8s' deployment controller writes the revision
            # annotations with a merge patch, because this API server's deployments/
            # status drops metadata changes (upstream's status strategy keeps
            # annotations, so its controller uses UpdateStatus). Remove with that.
            r(("patch",), ["apps"], ("deployments",)),
            r(("update",), ["extensions", "apps"], ("deployments/status",)),
            r(("update",), ["extensions", "apps"], ("deployments/finalizers",)),
            r(("get", "list", "watch", "create", "update", "patch", "delete"),
              ["apps", "extensions"], ("replicasets",)),
            r(("get", "list", "watch", "update"), [""], pods), ev]),
        ("disruption-controller", [
            r(READ, ["extensions", "apps"], ("deployments",)),
            r(READ, ["apps", "extensions"], ("replicasets",)),
            r(READ, [""], ("replicationcontrollers",)),
            r(READ, ["policy"], ("poddisruptionbudgets",)),
            r(READ, ["apps"], ("statefulsets",)),
            r(("update",), ["policy"], ("poddisruptionbudgets/status",)),
            r(("patch", "update"), [""], ("pods/status",)),
            r(("get",), ["*"], ("*/scale",)), ev]),
        ("endpoint-controller", [
            r(READ, [""], ("services", "pods")),
            r(("get", "list", "watch", "create", "update", "delete"), [""], ("endpoints",)),
            r(("create",), [""], ("endpoints/restricted",)), ev]),
        ("endpointslice-controller", [
            r(READ, [""], ("services", "pods", "nodes")),
            r(("update",), [""], ("services/finalizers",)),
            r(("get", "list", "watch", "create", "update", "delete"), ["discovery.k8s.io"],
              ("endpointslices",)), ev]),
        ("endpointslicemirroring-controller", [
            r(READ, [""], ("services", "endpoints")),
            r(("update",), [""], ("services/finalizers",)),
            r(("update",), [""], ("endpoints/finalizers",)),
            r(("get", "list", "watch", "create", "update", "delete"), ["discovery.k8s.io"],
              ("endpointslices",)), ev]),
        ("expand-controller", [
            r(("get", "list", "watch", "update", "patch"), [""], ("persistentvolumes",)),
            r(("update", "patch"), [""], ("persistentvolumeclaims/status",)),
            r(READ, [""], ("persistentvolumeclaims",)), ev,
            r(("get",), [""], ("services",))]),
        ("ephemeral-volume-controller", [
            r(READ, [""], pods), r(("update",), [""], ("pods/finalizers",)),
            r(("get", "list", "watch", "create"), [""], ("persistentvolumeclaims",)), ev]),
        ("generic-garbage-collector", [
            r(("get", "list", "watch", "patch", "update", "delete"), ["*"], ("*",)), ev]),
        ("horizontal-pod-autoscaler", [
            r(READ, ["autoscaling"], ("horizontalpodautoscalers",)),
            r(("update",), ["autoscaling"], ("horizontalpodautoscalers/status",)),
            r(("get", "update"), ["*"], ("*/scale",)),
            r(("list", "watch"), [""], pods),
            r(("list", "watch"), ["metrics.k8s.io"], pods),
            r(READ, ["custom.metrics.k8s.io"], ("*",)),
            r(READ, ["external.metrics.k8s.io"], ("*",)), ev]),
        ("job-controller", [
            r(("get", "list", "watch", "update", "patch"), ["batch"], ("jobs",)),
            r(("update",), ["batch"], ("jobs/status",)),
            r(("update",), ["batch"], ("jobs/finalizers",)),
            r(("list", "watch", "create", "delete", "patch"), [""], pods), ev]),
        ("namespace-controller", [
            r(("get", "list", "watch", "delete"), [""], ("namespaces",)),
            r(("update",), [""], ("namespaces/finalize", "namespaces/status")),
            r(("get", "list", "watch", "delete", "deletecollection"), ["*"], ("*",))]),
        ("node-controller", [
            r(("get", "list", "watch", "update", "delete", "patch"), [""], ("nodes",)),
            r(("patch", "update"), [""], ("nodes/status",)),
            r(("patch", "update"), [""], ("pods/status",)),
            r(("list", "watch", "get", "delete"), [""], pods), ev]),
        ("persistent-volume-binder", [
            r(("get", "list", "watch", "update", "create", "delete"), [""],
              ("persistentvolumes",)),
            r(("update",), [""], ("persistentvolumes/status",)),
            r(("get", "list", "watch", "update"), [""], ("persistentvolumeclaims",)),
            r(("update",), [""], ("persistentvolumeclaims/status",)),
            r(("list", "watch", "get", "create", "delete"), [""], pods),
            r(READ, ["storage.k8s.io"], ("storageclasses",)),
            r(("list", "watch"), [""], ("nodes",)), ev,
            r(("watch",), [""], ("events",)), r(("get",), [""], ("services",))]),
        ("pod-garbage-collector", [
            r(("list", "watch", "delete"), [""], pods), r(READ, [""], ("nodes",)),
            r(("patch",), [""], ("pods/status",))]),
        ("replicaset-controller", [
            r(("get", "list", "watch", "update"), ["apps", "extensions"], ("replicasets",)),
            r(("update",), ["apps", "extensions"], ("replicasets/status",)),
            r(("update",), ["apps", "extensions"], ("replicasets/finalizers",)),
            r(("list", "watch", "patch", "create", "delete"), [""], pods), ev]),
        ("replication-controller", [
            r(("get", "list", "watch", "update"), [""], ("replicationcontrollers",)),
            r(("update",), [""], ("replicationcontrollers/status",)),
            r(("update",), [""], ("replicationcontrollers/finalizers",)),
            r(("list", "watch", "patch", "create", "delete"), [""], pods), ev]),
        ("resourcequota-controller", [
            r(("list", "watch"), ["*"], ("*",)),
            r(("update",), [""], ("resourcequotas/status",)), ev]),
        ("route-controller", [r(("list", "watch"), [""], ("nodes",)),
                              r(("patch",), [""], ("nodes/status",)), ev]),
        ("service-account-controller", [r(("create",), [""], ("serviceaccounts",)), ev]),
        ("service-controller", [
            r(READ, [""], ("services",)), r(("patch", "update"), [""], ("services/status",)),
            r(("list", "watch"), [""], ("nodes",)), ev]),
        ("statefulset-controller", [
            r(("list", "watch"), [""], pods), r(READ, ["apps"], ("statefulsets",)),
            r(("update",), ["apps"], ("statefulsets/status",)),
            r(("update",), ["apps"], ("statefulsets/finalizers",)),
            r(("get", "create", "delete", "update", "patch"), [""], pods),
            r(("get", "create", "delete", "update", "patch", "list", "watch"), ["apps"],
              ("controllerrevisions",)),
            r(("get", "create", "list", "watch"), [""], ("persistentvolumeclaims",)),
            r(("update", "delete"), [""], ("persistentvolumeclaims",)),
            r(("update",), [""], ("pods/finalizers",)), ev,
            # NOT upstream's: pyk8s' statefulset controller sets the claims' owner
            # references (claim retention) with a patch where upstream's uses Update.
            r(("patch",), [""], ("persistentvolumeclaims",))]),
        ("ttl-controller", [r(("update", "patch", "list", "watch"), [""], ("nodes",)), ev]),
        ("certificate-controller", [
            r(("get", "list", "watch", "delete"), ["certificates.k8s.io"],
              ("certificatesigningrequests",)),
            r(("update",), ["certificates.k8s.io"], ("certificatesigningrequests/status",
                                                     "certificatesigningrequests/approval")),
            r(("approve",), ["certificates.k8s.io"], ("signers",),
              ("kubernetes.io/kube-apiserver-client-kubelet",)),
            r(("sign",), ["certificates.k8s.io"], ("signers",),
              ("kubernetes.io/legacy-unknown", "kubernetes.io/kube-apiserver-client",
               "kubernetes.io/kube-apiserver-client-kubelet",
               "kubernetes.io/kubelet-serving")),
            r(("create",), ["authorization.k8s.io"], ("subjectaccessreviews",)), ev]),
        ("pvc-protection-controller", [
            r(("get", "list", "watch", "update"), [""], ("persistentvolumeclaims",)),
            r(("list", "watch", "get"), [""], pods), ev]),
        ("pv-protection-controller", [
            r(("get", "list", "watch", "update"), [""], ("persistentvolumes",)), ev]),
        ("ttl-after-finished-controller", [
            r(("get", "list", "watch", "delete"), ["batch"], ("jobs",)), ev]),
        ("root-ca-cert-publisher", [r(("create", "update"), [""], ("configmaps",)), ev]),
        ("validatingadmissionpolicy-status-controller", [
            r(READ, ["admissionregistration.k8s.io"], ("validatingadmissionpolicies",)),
            r(("get", "patch", "update"), ["admissionregistration.k8s.io"],
              ("validatingadmissionpolicies/status",)), ev]),
        ("legacy-service-account-token-cleaner", [
            r(("get",), [""], ("configmaps",), ("kube-apiserver-legacy-service-account-token"
                                                "-tracking",)),
            r(("patch", "delete"), [""], ("secrets",))]),
    ]]


# -- bindings ----------------------------------------------------------------------------

def _user(name: str) -> dict:
    return {"apiGroup": GROUP, "kind": "User", "name": name}


def _group(name: str) -> dict:
    return {"apiGroup": GROUP, "kind": "Group", "name": name}


def _sa(namespace: str, name: str) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def cluster_role_bindings() -> list[tuple[str, str, list[dict]]]:
    """(binding name, ClusterRole name, subjects)."""
    out = [
        ("cluster-admin", "cluster-admin", [_group("system:masters")]),
        ("system:monitoring", "system:monitoring", [_group("system:monitoring")]),
        ("system:discovery", "system:discovery", [_group("system:authenticated")]),
        ("system:basic-user", "system:basic-user", [_group("system:authenticated")]),
        ("system:public-info-viewer", "system:public-info-viewer",
         [_group("system:authenticated"), _group("system:unauthenticated")]),
        ("system:node-proxier", "system:node-proxier", [_user("system:kube-proxy")]),
        ("system:kube-controller-manager", "system:kube-controller-manager",
         [_user("system:kube-controller-manager")]),
        ("system:kube-dns", "system:kube-dns", [_sa("kube-system", "kube-dns")]),
        ("system:kube-scheduler", "system:kube-scheduler", [_user("system:kube-scheduler")]),
        ("system:volume-scheduler", "system:volume-scheduler",
         [_user("system:kube-scheduler")]),
        # Kept without subjects, as upstream: the Node authorizer serves kubelets.
        ("system:node", "system:node", []),
        ("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
         [_group("system:serviceaccounts")]),
        # Node TLS bootstrap, as kubeadm's kubelet-bootstrap and auto-approval bindings.
        ("pyk8s:kubelet-bootstrap", "system:node-bootstrapper",
         [_group("system:bootstrappers")]),
        ("pyk8s:node-autoapprove-bootstrap",
         "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
         [_group("system:bootstrappers")]),
        ("pyk8s:node-autoapprove-certificate-rotation",
         "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
         [_group("system:nodes")]),
        # `pyk8s agent` runs kube-proxy and cluster DNS with the node's own
        # credentials (k3s hands agents a kube-proxy certificate instead): both
        # list Services and EndpointSlices, which a node may otherwise not.
        ("pyk8s:node-proxier", "system:node-proxier", [_group("system:nodes")]),
    ]
    for name, _ in controller_roles():
        out.append((name, name, [_sa("kube-system", name[len("system:controller:"):])]))
    out.append((LOCAL_PATH_BINDING, LOCAL_PATH_ROLE, [_sa("kube-system", LOCAL_PATH_SA)]))
    return out


def namespace_roles() -> list[tuple[str, str, list[dict]]]:
    """(namespace, Role name, rules)."""
    return [
        ("kube-system", "extension-apiserver-authentication-reader",
         [r(READ, [""], ("configmaps",), ("extension-apiserver-authentication",))]),
        ("kube-system", "system::leader-locking-kube-controller-manager",
         [r(("watch",), [""], ("configmaps",)),
          r(("get", "update"), [""], ("configmaps",), ("kube-controller-manager",))]),
        ("kube-system", "system::leader-locking-kube-scheduler",
         [r(("watch",), [""], ("configmaps",)),
          r(("get", "update"), [""], ("configmaps",), ("kube-scheduler",))]),
        ("kube-system", "system:controller:bootstrap-signer",
         [r(READ, [""], ("secrets",))]),
        ("kube-system", "system:controller:cloud-provider",
         [r(("create", "get", "list", "watch"), [""], ("configmaps",))]),
        ("kube-system", "system:controller:token-cleaner",
         [r(("delete", "get", "list", "watch"), [""], ("secrets",)), events_rule()]),
        ("kube-public", "system:controller:bootstrap-signer",
         [r(READ, [""], ("configmaps",)),
          r(("update",), [""], ("configmaps",), ("cluster-info",)), events_rule()]),
        # the local-path provisioner's helper pods, which remove released volumes' data
        ("kube-system", LOCAL_PATH_ROLE,
         [r(("create", "delete", "get", "list", "watch"), [""], ("pods",))]),
        # what upstream's API server does for itself: the kubernetes Service's
        # Endpoints and EndpointSlice at the API servers' addresses
        ("default", APISERVER_ENDPOINTS_ROLE,
         [r(("create", "delete", "get", "update"), [""], ("endpoints",)),
          r(("create", "delete", "get", "update"), ["discovery.k8s.io"],
            ("endpointslices",))]),
    ]


def namespace_role_bindings() -> list[tuple[str, str, str, list[dict]]]:
    """(namespace, binding name, Role name, subjects)."""
    return [
        ("kube-system", "system::extension-apiserver-authentication-reader",
         "extension-apiserver-authentication-reader",
         [_user("system:kube-controller-manager"), _user("system:kube-scheduler")]),
        ("kube-system", "system::leader-locking-kube-controller-manager",
         "system::leader-locking-kube-controller-manager",
         [_user("system:kube-controller-manager"),
          _sa("kube-system", "kube-controller-manager")]),
        ("kube-system", "system::leader-locking-kube-scheduler",
         "system::leader-locking-kube-scheduler",
         [_user("system:kube-scheduler"), _sa("kube-system", "kube-scheduler")]),
        ("kube-system", "system:controller:bootstrap-signer",
         "system:controller:bootstrap-signer", [_sa("kube-system", "bootstrap-signer")]),
        ("kube-system", "system:controller:cloud-provider", "system:controller:cloud-provider",
         [_sa("kube-system", "cloud-provider")]),
        ("kube-system", "system:controller:token-cleaner", "system:controller:token-cleaner",
         [_sa("kube-system", "token-cleaner")]),
        ("kube-public", "system:controller:bootstrap-signer",
         "system:controller:bootstrap-signer", [_sa("kube-system", "bootstrap-signer")]),
        ("kube-system", LOCAL_PATH_BINDING, LOCAL_PATH_ROLE,
         [_sa("kube-system", LOCAL_PATH_SA)]),
        ("default", APISERVER_ENDPOINTS_ROLE, APISERVER_ENDPOINTS_ROLE,
         [_sa("kube-system", APISERVER_ENDPOINTS_SA)]),
    ]


# -- objects and reconciliation -------------------------------------------------------------

def _meta(name: str, namespace: str = "", labels: dict | None = None) -> dict:
    meta = {"name": name, "labels": dict(LABELS, **(labels or {})),
            "annotations": {AUTOUPDATE: "true"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _ref(kind: str, name: str) -> dict:
    return {"apiGroup": GROUP, "kind": kind, "name": name}


def default_objects() -> list[tuple[str, dict]]:
    """(plural, object) for every default RBAC object, in creation order."""
    out: list[tuple[str, dict]] = []
    for name, rules, labels, aggregation in cluster_roles():
        obj = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
               "metadata": _meta(name, labels=labels)}
        if aggregation is not None:
            obj["aggregationRule"] = aggregation
        obj["rules"] = copy.deepcopy(rules) if rules is not None else []
        out.append(("clusterroles", obj))
    for name, role, subjects in cluster_role_bindings():
        out.append(("clusterrolebindings", {
            "apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta(name), "roleRef": _ref("ClusterRole", role),
            "subjects": copy.deepcopy(subjects)}))
    for ns, name, rules in namespace_roles():
        out.append(("roles", {"apiVersion": f"{GROUP}/v1", "kind": "Role",
                              "metadata": _meta(name, ns), "rules": copy.deepcopy(rules)}))
    for ns, name, role, subjects in namespace_role_bindings():
        out.append(("rolebindings", {
            "apiVersion": f"{GROUP}/v1", "kind": "RoleBinding", "metadata": _meta(name, ns),
            "roleRef": _ref("Role", role), "subjects": copy.deepcopy(subjects)}))
    return out


def _reconciled(plural: str, existing: dict, wanted: dict) -> dict | None:
    """``existing`` with what ``wanted`` adds, or None when nothing is missing."""
    if (existing["metadata"].get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    out = copy.deepcopy(existing)
    changed = False
    if plural in ("clusterroles", "roles"):
        from .rbac import covers
        if wanted.get("aggregationRule") and out.get("aggregationRule") != \
                wanted["aggregationRule"]:
            out["aggregationRule"] = wanted["aggregationRule"]
            changed = True
        elif not wanted.get("aggregationRule"):
            ok, _ = covers(out.get("rules") or [], wanted.get("rules") or [])
            if not ok:
                have = out.setdefault("rules", [])
                have += [rule for rule in wanted["rules"] if rule not in have]
                changed = True
    else:
        subjects = out.setdefault("subjects", [])
        for s in wanted.get("subjects") or []:
            if s not in subjects:
                subjects.append(s)
                changed = True
    labels = out["metadata"].setdefault("labels", {})
    for k, v in wanted["metadata"]["labels"].items():
        if labels.get(k) != v:
            labels[k] = v
            changed = True
    return out if changed else None


async def reconcile(server: "APIServer") -> None:
    """Create missing default RBAC objects; top up auto-updated ones."""
    for plural, obj in default_objects():
        store = server.stores[(GROUP, "v1", plural)]
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        existing = store.cache.objects.get(store.key(ns, meta["name"]))
        if existing is None:
            try:
                await store.create(ns, copy.deepcopy(obj), WriteOptions())
            except errors.APIError as err:
                if err.code != 409:
                    raise
            continue
        updated = _reconciled(plural, existing, obj)
        if updated is None:
            continue

        def transform(current: dict, updated=updated) -> dict:
            return _reconciled(plural, current, obj) or current
        try:
            await store.patch(ns, meta["name"], transform, WriteOptions())
        except errors.APIError as err:
            log.warning("reconciling %s %s: %s", plural, meta["name"], err.message)
