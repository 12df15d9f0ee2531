"""The built-in resource catalogue says what kube-apiserver v1.32 discovery says."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pytest

from pyk8s.registry import catalogue
from pyk8s.registry.catalogue import GROUP_ORDER, RESOURCES, by_kind, lookup

STANDARD = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@lru_cache(maxsize=1)
def _schema_gvks() -> set[tuple[str, str, str]]:
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / "v1.32.0-local"
    definitions = json.loads((root / "_definitions.json").read_text())["$defs"]
    return {
        (gvk["group"], gvk["version"], gvk["kind"])
        for schema in definitions.values()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }


def test_group_order_is_upstream_priority_order():
    groups = [group for group, _ in GROUP_ORDER]
    assert groups == [
        "", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
        "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy",
        "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
        "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
        "discovery.k8s.io",
    ]
    assert dict(GROUP_ORDER)["autoscaling"] == ("v2", "v1")
    assert catalogue.preferred_version("autoscaling") == "v2"
    assert catalogue.preferred_version("") == "v1"
    assert catalogue.preferred_version("extensions") is None


def test_every_group_version_has_resources_and_every_resource_a_listed_group_version():
    listed = {(group, version) for group, versions in GROUP_ORDER for version in versions}
    served = {(r.group, r.version) for r in RESOURCES}
    assert served == listed


def test_resources_are_unique_by_plural_and_by_kind():
    plurals = [(r.group, r.version, r.plural) for r in RESOURCES]
    kinds = [(r.group, r.version, r.kind) for r in RESOURCES]
    assert len(plurals) == len(set(plurals))
    assert len(kinds) == len(set(kinds))


def test_short_names_are_unique_within_a_group_version():
    for group, versions in GROUP_ORDER:
        for version in versions:
            names = [s for r in catalogue.resources_of(group, version) for s in r.short_names]
            assert len(names) == len(set(names)), (group, version)


def test_pods_as_discovery_shows_them():
    pods = lookup("", "v1", "pods")
    assert pods is not None
    assert (pods.kind, pods.singular, pods.namespaced) == ("Pod", "pod", True)
    assert pods.short_names == ("po",)
    assert pods.categories == ("all",)
    assert pods.verbs == STANDARD
    assert pods.list_kind == "PodList"
    assert pods.group_version == "v1"
    subs = {s.name: (s.kind, s.group, s.version, s.verbs) for s in pods.subresources}
    assert subs == {
        "attach": ("PodAttachOptions", "", "v1", ("create", "get")),
        "binding": ("Binding", "", "v1", ("create",)),
        "ephemeralcontainers": ("Pod", "", "v1", ("get", "patch", "update")),
        "eviction": ("Eviction", "policy", "v1", ("create",)),
        "exec": ("PodExecOptions", "", "v1", ("create", "get")),
        "log": ("Pod", "", "v1", ("get",)),
        "portforward": ("PodPortForwardOptions", "", "v1", ("create", "get")),
        "proxy": ("PodProxyOptions", "", "v1", ("create", "delete", "get", "patch", "update")),
        "status": ("Pod", "", "v1", ("get", "patch", "update")),
    }


def test_scalable_resources_return_autoscaling_v1_scale():
    for group, plural in [("apps", "deployments"), ("apps", "replicasets"),
                          ("apps", "statefulsets"), ("", "replicationcontrollers")]:
        info = lookup(group, "v1", plural)
        scale = info.subresource("scale")
        assert (scale.kind, scale.group, scale.version) == ("Scale", "autoscaling", "v1"), plural
        assert scale.verbs == ("get", "patch", "update")
        assert info.subresource("status").kind == info.kind


def test_special_subresources():
    token = lookup("", "v1", "serviceaccounts").subresource("token")
    assert (token.kind, token.group, token.version, token.verbs) == (
        "TokenRequest", "authentication.k8s.io", "v1", ("create",))
    namespaces = lookup("", "v1", "namespaces")
    assert "deletecollection" not in namespaces.verbs
    assert namespaces.subresource("finalize").verbs == ("update",)
    assert lookup("", "v1", "nodes").subresource("proxy").kind == "NodeProxyOptions"
    assert lookup("", "v1", "services").subresource("proxy").kind == "ServiceProxyOptions"
    csr = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
    assert [s.name for s in csr.subresources] == ["approval", "status"]
    assert csr.short_names == ("csr",)
    assert lookup("", "v1", "pods").subresource("resize") is None  # added in 1.33


def test_category_all_is_what_kubectl_get_all_lists():
    in_all = {(r.group, r.plural) for r in RESOURCES if "all" in r.categories}
    assert in_all == {
        ("", "pods"), ("", "services"), ("", "replicationcontrollers"),
        ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
        ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs"),
        ("autoscaling", "horizontalpodautoscalers"),
    }
    extensions = {r.plural for r in RESOURCES if "api-extensions" in r.categories}
    assert extensions == {
        "customresourcedefinitions", "mutatingwebhookconfigurations",
        "validatingadmissionpolicies", "validatingadmissionpolicybindings",
        "validatingwebhookconfigurations",
    }


@pytest.mark.parametrize("group,plural,short", [
    ("", "configmaps", ("cm",)), ("", "endpoints", ("ep",)), ("", "events", ("ev",)),
    ("", "limitranges", ("limits",)), ("", "namespaces", ("ns",)), ("", "nodes", ("no",)),
    ("", "persistentvolumeclaims", ("pvc",)), ("", "persistentvolumes", ("pv",)),
    ("", "resourcequotas", ("quota",)), ("", "serviceaccounts", ("sa",)),
    ("", "services", ("svc",)), ("", "componentstatuses", ("cs",)),
    ("apps", "deployments", ("deploy",)), ("apps", "daemonsets", ("ds",)),
    ("apps", "statefulsets", ("sts",)), ("batch", "cronjobs", ("cj",)),
    ("networking.k8s.io", "ingresses", ("ing",)), ("networking.k8s.io", "networkpolicies", ("netpol",)),
    ("policy", "poddisruptionbudgets", ("pdb",)), ("storage.k8s.io", "storageclasses", ("sc",)),
    ("apiextensions.k8s.io", "customresourcedefinitions", ("crd", "crds")),
    ("scheduling.k8s.io", "priorityclasses", ("pc",)), ("events.k8s.io", "events", ("ev",)),
    ("", "secrets", ()), ("batch", "jobs", ()), ("coordination.k8s.io", "leases", ()),
])
def test_short_names(group, plural, short):
    version = catalogue.preferred_version(group)
    assert lookup(group, version, plural).short_names == short


def test_virtual_resources_are_not_stored_and_answer_only_their_verbs():
    virtual = {(r.group, r.plural): r.verbs for r in RESOURCES if not r.storage}
    assert virtual == {
        ("", "bindings"): ("create",),
        ("", "componentstatuses"): ("get", "list"),
        ("authentication.k8s.io", "tokenreviews"): ("create",),
        ("authentication.k8s.io", "selfsubjectreviews"): ("create",),
        ("authorization.k8s.io", "subjectaccessreviews"): ("create",),
        ("authorization.k8s.io", "selfsubjectaccessreviews"): ("create",),
        ("authorization.k8s.io", "localsubjectaccessreviews"): ("create",),
        ("authorization.k8s.io", "selfsubjectrulesreviews"): ("create",),
    }
    assert lookup("authorization.k8s.io", "v1", "localsubjectaccessreviews").namespaced


def test_stored_resources_use_the_standard_verbs():
    for r in RESOURCES:
        if r.storage and r.plural != "namespaces":
            assert r.verbs == STANDARD, r.plural


def test_every_kind_has_a_v132_schema():
    gvks = _schema_gvks()
    for r in RESOURCES:
        assert (r.group, r.version, r.kind) in gvks, r
        if r.storage:
            assert (r.group, r.version, r.list_kind) in gvks, r
        for sub in r.subresources:
            if sub.kind.endswith("Options"):
                continue  # connect options travel as query parameters, not bodies
            assert (sub.group, sub.version, sub.kind) in gvks, (r.plural, sub)


def test_lookup_and_by_kind_agree():
    for r in RESOURCES:
        assert lookup(r.group, r.version, r.plural) is r
        assert by_kind(r.group, r.version, r.kind) is r
    assert lookup("apps", "v1beta1", "deployments") is None
    assert by_kind("autoscaling", "v1", "HorizontalPodAutoscaler").version == "v1"
    assert by_kind("", "v1", "Endpoints").singular == "endpoints"


def test_discovery_order_within_a_group_is_by_plural():
    for group, versions in GROUP_ORDER:
        plurals = [r.plural for r in catalogue.resources_of(group, versions[0])]
        assert plurals == sorted(plurals)
