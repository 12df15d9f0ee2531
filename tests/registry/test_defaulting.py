"""Defaulting: objects as kubectl sends them come back as a v1.32 API server stores them."""
from __future__ import annotations

import copy

import pytest

from pyk8s.registry.defaulting import apply_defaults
from pyk8s.registry.defaults.batch import generate_job_selector
from pyk8s.registry.defaults.core import pull_policy

POD_SPEC_DEFAULTS = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}
CONTAINER_DEFAULTS = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}


def defaulted(group: str, version: str, kind: str, obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    apply_defaults(group, version, kind, obj)
    return obj


def test_deployment_as_kubectl_create_deployment_sends_it():
    sent = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nginx"}},
                 "template": {"metadata": {"labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                       "resources": {}}]}},
                 "strategy": {}},
        "status": {},
    }
    assert defaulted("apps", "v1", "Deployment", sent) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx", "resources": {},
                                    "imagePullPolicy": "Always", **CONTAINER_DEFAULTS}],
                    **POD_SPEC_DEFAULTS,
                },
            },
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    }


def test_pod_gets_pod_only_defaults_and_nested_ones():
    sent = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx:1.25",
                "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "0.5", "memory": "128Mi"}},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 5},
            }],
            "volumes": [
                {"name": "scratch"},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "tls", "secret": {"secretName": "tls"}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "token", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token"}}]}},
            ],
        },
    }
    pod = defaulted("", "v1", "Pod", sent)
    assert pod["spec"]["containers"] == [{
        "name": "web", "image": "nginx:1.25",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                      "requests": {"cpu": "500m", "memory": "128Mi"}},
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName",
                                                             "apiVersion": "v1"}}}],
        "livenessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                          "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                          "failureThreshold": 3},
        "readinessProbe": {"grpc": {"port": 9090, "service": ""}, "periodSeconds": 5,
                           "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "imagePullPolicy": "IfNotPresent", **CONTAINER_DEFAULTS,
    }]
    assert pod["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
        {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 420}},
        {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
        {"name": "info", "downwardAPI": {"defaultMode": 420, "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels", "apiVersion": "v1"}}]}},
        {"name": "token", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}},
    ]
    assert {k: pod["spec"][k] for k in POD_SPEC_DEFAULTS} == POD_SPEC_DEFAULTS
    assert pod["spec"]["enableServiceLinks"] is True
    # Admission's business, not defaulting's.
    for field in ("tolerations", "priority", "preemptionPolicy", "serviceAccountName"):
        assert field not in pod["spec"]


def test_requests_from_limits_only_for_pods_not_templates():
    container = {"name": "c", "image": "busybox", "resources": {"limits": {"memory": "64Mi"}}}
    rs = defaulted("apps", "v1", "ReplicaSet", {
        "spec": {"template": {"spec": {"containers": [copy.deepcopy(container)]}}}})
    assert rs["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "64Mi"}}
    assert "enableServiceLinks" not in rs["spec"]["template"]["spec"]
    pod = defaulted("", "v1", "Pod", {"spec": {"containers": [copy.deepcopy(container)]}})
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"memory": "64Mi"}


def test_host_network_pods_publish_container_ports_on_the_host():
    pod = defaulted("", "v1", "Pod", {"spec": {"hostNetwork": True, "containers": [
        {"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}})
    assert pod["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("registry.local:5000/team/app", "Always"), ("registry.local:5000/team/app:v2", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"), ("NotValid", "IfNotPresent"),
])
def test_image_pull_policy_follows_the_tag(image, policy):
    assert pull_policy(image) == policy


def test_quantities_round_up_to_milli_and_serialize_like_upstream():
    pod = defaulted("", "v1", "Pod", {"spec": {"containers": [{"name": "c", "image": "x:1",
        "resources": {"requests": {"cpu": "0.0001", "memory": "1Gi"},
                      "limits": {"cpu": "1000m", "memory": "1073741824"}}}]}})
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "1m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1073741824"}}


def test_service_as_kubectl_create_service_clusterip_sends_it():
    sent = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svx", "labels": {"app": "svx"}},
            "spec": {"ports": [{"name": "80-80", "port": 80, "targetPort": 80}],
                     "selector": {"app": "svx"}, "type": "ClusterIP"}}
    assert defaulted("", "v1", "Service", sent)["spec"] == {
        "ports": [{"name": "80-80", "port": 80, "targetPort": 80, "protocol": "TCP"}],
        "selector": {"app": "svx"},
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
    }


def test_service_defaults_by_type():
    svc = defaulted("", "v1", "Service", {"spec": {"ports": [{"port": 443}]}})
    assert svc["spec"]["ports"] == [{"port": 443, "protocol": "TCP", "targetPort": 443}]
    assert "externalTrafficPolicy" not in svc["spec"]
    node_port = defaulted("", "v1", "Service", {"spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    assert node_port["spec"]["externalTrafficPolicy"] == "Cluster"
    lb = defaulted("", "v1", "Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    sticky = defaulted("", "v1", "Service", {"spec": {"sessionAffinity": "ClientIP"}})
    assert sticky["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    external = defaulted("", "v1", "Service", {"spec": {"type": "ExternalName",
                                                        "externalName": "db.example.com"}})
    assert "internalTrafficPolicy" not in external["spec"]
    # Cluster IPs and IP families belong to the allocator.
    assert not {"clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"} & set(svc["spec"])


def test_job_as_kubectl_create_job_sends_it_after_selector_generation():
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "jx", "namespace": "default", "uid": "0b1e"},
           "spec": {"template": {"metadata": {}, "spec": {
               "containers": [{"name": "jx", "image": "busybox", "resources": {}}],
               "restartPolicy": "Never"}}}}
    generate_job_selector(job)
    apply_defaults("batch", "v1", "Job", job)
    generated = {"batch.kubernetes.io/controller-uid": "0b1e",
                 "batch.kubernetes.io/job-name": "jx", "controller-uid": "0b1e", "job-name": "jx"}
    assert job["metadata"]["labels"] == generated
    assert job["spec"] == {
        "backoffLimit": 6, "completionMode": "NonIndexed", "completions": 1,
        "manualSelector": False, "parallelism": 1,
        "podReplacementPolicy": "TerminatingOrFailed",
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "0b1e"}},
        "suspend": False,
        "template": {"metadata": {"labels": generated}, "spec": {
            "containers": [{"name": "jx", "image": "busybox", "resources": {},
                            "imagePullPolicy": "Always", **CONTAINER_DEFAULTS}],
            **{**POD_SPEC_DEFAULTS, "restartPolicy": "Never"}}},
    }


def test_job_parallelism_completions_and_backoff_rules():
    only_parallel = defaulted("batch", "v1", "Job", {"spec": {"parallelism": 3}})["spec"]
    assert only_parallel["parallelism"] == 3 and "completions" not in only_parallel
    per_index = defaulted("batch", "v1", "Job", {"spec": {"completionMode": "Indexed",
                                                           "completions": 4,
                                                           "backoffLimitPerIndex": 1}})
    assert per_index["spec"]["backoffLimit"] == 2147483647
    with_policy = defaulted("batch", "v1", "Job", {"spec": {"podFailurePolicy": {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}})
    assert with_policy["spec"]["podReplacementPolicy"] == "Failed"
    assert with_policy["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}]


def test_manual_selector_jobs_are_not_labelled():
    job = {"metadata": {"name": "m", "uid": "u"},
           "spec": {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}}}}
    generate_job_selector(job)
    assert job["spec"]["selector"] == {"matchLabels": {"a": "b"}}
    assert job["spec"]["template"]["metadata"]["labels"] == {"a": "b"}


def test_cronjob_defaults_leave_the_job_template_spec_alone():
    cj = defaulted("batch", "v1", "CronJob", {"spec": {"schedule": "*/5 * * * *", "jobTemplate": {
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}],
                                       "restartPolicy": "OnFailure"}}}}}})
    spec = cj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    job_spec = spec["jobTemplate"]["spec"]
    assert set(job_spec) == {"template"}
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert job_spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_statefulset_defaults_and_claim_templates():
    sts = defaulted("apps", "v1", "StatefulSet", {"spec": {
        "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                            "whenScaled": "Retain"}
    assert (spec["replicas"], spec["revisionHistoryLimit"]) == (1, 10)
    assert spec["volumeClaimTemplates"] == [{
        "metadata": {"name": "www"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"}}]
    on_delete = defaulted("apps", "v1", "StatefulSet", {"spec": {"updateStrategy": {"type": "OnDelete"}}})
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_daemonset_and_replicaset_defaults():
    ds = defaulted("apps", "v1", "DaemonSet", {"spec": {}})["spec"]
    assert ds["updateStrategy"] == {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["revisionHistoryLimit"] == 10
    assert defaulted("apps", "v1", "ReplicaSet", {"spec": {}})["spec"]["replicas"] == 1
    recreate = defaulted("apps", "v1", "Deployment", {"spec": {"strategy": {"type": "Recreate"}}})
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_replication_controller_copies_template_labels():
    rc = defaulted("", "v1", "ReplicationController", {"metadata": {"name": "rc"}, "spec": {
        "template": {"metadata": {"labels": {"app": "rc"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    assert rc["spec"]["selector"] == {"app": "rc"}
    assert rc["metadata"]["labels"] == {"app": "rc"}
    assert rc["spec"]["replicas"] == 1


def test_small_core_kinds():
    assert defaulted("", "v1", "Secret", {"data": {}})["type"] == "Opaque"
    ns = defaulted("", "v1", "Namespace", {"metadata": {"name": "team-a"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["status"] == {"phase": "Active"}
    assert "spec" not in ns  # the kubernetes finalizer is the registry's
    cm = {"metadata": {"name": "c"}}
    assert defaulted("", "v1", "ConfigMap", cm) == cm
    pvc = defaulted("", "v1", "PersistentVolumeClaim", {"spec": {"accessModes": ["ReadWriteOnce"]}})
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}
    pv = defaulted("", "v1", "PersistentVolume", {"spec": {"hostPath": {"path": "/data"},
                                                           "capacity": {"storage": "1Gi"}}})
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["spec"]["hostPath"] == {"path": "/data", "type": ""}
    ep = defaulted("", "v1", "Endpoints", {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    node = defaulted("", "v1", "Node", {"status": {"capacity": {"cpu": "2", "memory": "4Gi"}}})
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi"}
    lr = defaulted("", "v1", "LimitRange", {"spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}})
    assert lr["spec"]["limits"][0]["default"] == {"cpu": "2"}
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}


def test_autoscaling_v2_defaults_metrics_and_behavior():
    hpa = defaulted("autoscaling", "v2", "HorizontalPodAutoscaler", {"spec": {
        "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}})
    spec = hpa["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    }
    without = defaulted("autoscaling", "v2", "HorizontalPodAutoscaler", {"spec": {"maxReplicas": 2}})
    assert "behavior" not in without["spec"]
    v1 = defaulted("autoscaling", "v1", "HorizontalPodAutoscaler", {"spec": {"maxReplicas": 2}})
    assert v1["spec"] == {"maxReplicas": 2, "minReplicas": 1}


def test_other_groups():
    rb = defaulted("rbac.authorization.k8s.io", "v1", "RoleBinding", {
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "ann"}, {"kind": "Group", "name": "devs"},
                     {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert [s["apiGroup"] for s in rb["subjects"]] == [
        "rbac.authorization.k8s.io", "rbac.authorization.k8s.io", ""]
    sc = defaulted("storage.k8s.io", "v1", "StorageClass", {"provisioner": "x.io/p"})
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")
    pc = defaulted("scheduling.k8s.io", "v1", "PriorityClass", {"value": 10})
    assert pc["preemptionPolicy"] == "PreemptLowerPriority"
    np = defaulted("networking.k8s.io", "v1", "NetworkPolicy", {"spec": {
        "podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}})
    assert np["spec"]["policyTypes"] == ["Ingress"]
    assert np["spec"]["ingress"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    eps = defaulted("discovery.k8s.io", "v1", "EndpointSlice", {"ports": [{"port": 80}]})
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    mwc = defaulted("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", {
        "webhooks": [{"name": "m.example.com", "clientConfig": {"service": {"name": "s", "namespace": "n"}},
                      "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                 "resources": ["pods"]}],
                      "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})
    hook = mwc["webhooks"][0]
    assert {k: hook[k] for k in ("failurePolicy", "matchPolicy", "namespaceSelector",
                                 "objectSelector", "timeoutSeconds", "reinvocationPolicy")} == {
        "failurePolicy": "Fail", "matchPolicy": "Equivalent", "namespaceSelector": {},
        "objectSelector": {}, "timeoutSeconds": 10, "reinvocationPolicy": "Never"}
    assert hook["rules"][0]["scope"] == "*"
    assert hook["clientConfig"]["service"]["port"] == 443
    crd = defaulted("apiextensions.k8s.io", "v1", "CustomResourceDefinition", {"spec": {
        "group": "example.com", "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [{"name": "v1", "served": True, "storage": True}]}})
    assert crd["spec"]["names"] == {"kind": "Widget", "plural": "widgets", "singular": "widget",
                                    "listKind": "WidgetList"}
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    assert crd["status"]["storedVersions"] == ["v1"]
    csi = defaulted("storage.k8s.io", "v1", "CSIDriver", {"spec": {}})
    assert csi["spec"]["attachRequired"] is True
    assert csi["spec"]["volumeLifecycleModes"] == ["Persistent"]


def test_kinds_without_defaults_are_untouched():
    for group, kind in (("policy", "PodDisruptionBudget"), ("coordination.k8s.io", "Lease"),
                        ("networking.k8s.io", "Ingress"), ("example.com", "Widget")):
        obj = {"metadata": {"name": "x"}, "spec": {"a": 1}}
        assert defaulted(group, "v1", kind, obj) == obj


@pytest.mark.parametrize(("group", "version", "kind", "obj"), [
    ("apps", "v1", "Deployment", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "nginx", "livenessProbe": {"tcpSocket": {"port": 80}}}]}}}}),
    ("", "v1", "Pod", {"spec": {"containers": [{"name": "c", "image": "x",
                                                "resources": {"limits": {"cpu": "0.25"}}}]}}),
    ("", "v1", "Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    ("batch", "v1", "CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "x"}]}}}}}}),
    ("apps", "v1", "StatefulSet", {"spec": {"volumeClaimTemplates": [{"spec": {}}]}}),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", {"spec": {"behavior": {}}}),
])
def test_defaulting_is_idempotent(group, version, kind, obj):
    once = defaulted(group, version, kind, obj)
    assert defaulted(group, version, kind, once) == once


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(value, prefix + (i,))


@pytest.mark.parametrize(("group", "version", "kind", "obj"), [
    ("apps", "v1", "Deployment", {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}}, "strategy": {"rollingUpdate": {"maxSurge": 1}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
            "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 1}],
                            "env": [{"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "f"}}}],
                            "resources": {"limits": {"cpu": "1"}},
                            "livenessProbe": {"httpGet": {"port": 1}},
                            "lifecycle": {"preStop": {"httpGet": {"port": 1}}}}],
            "volumes": [{"name": "v", "secret": {"secretName": "s"}},
                        {"name": "p", "projected": {"sources": [{"downwardAPI": {"items": [
                            {"path": "x", "fieldRef": {"fieldPath": "f"}}]}}]}}]}}}}),
    ("", "v1", "Pod", {"spec": {"hostNetwork": True, "containers": [
        {"name": "c", "image": "x", "ports": [{"containerPort": 1}],
         "resources": {"limits": {"cpu": "1"}, "requests": {}}}]}}),
    ("", "v1", "Service", {"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
                                    "sessionAffinityConfig": {"clientIP": {}},
                                    "ports": [{"port": 80}]},
                           "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
    ("batch", "v1", "Job", {"spec": {"podFailurePolicy": {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "T"}]}]}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}}}),
    ("apps", "v1", "StatefulSet", {"spec": {"updateStrategy": {"rollingUpdate": {}},
                                            "volumeClaimTemplates": [{"spec": {"resources": {
                                                "requests": {"storage": "1Gi"}}}}]}}),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", {"spec": {"behavior": {"scaleUp": {}}}}),
])
def test_defaulting_survives_nulls_and_odd_values(group, version, kind, obj):
    from hypothesis import given, settings, strategies as st

    paths = list(_paths(obj))

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(paths), st.sampled_from([None, "", 0, [], {}, "x"])),
                    max_size=3))
    def check(changes):
        damaged = copy.deepcopy(obj)
        for path, value in changes:
            target = damaged
            try:
                for step in path[:-1]:
                    target = target[step]
                target[path[-1]] = copy.deepcopy(value)
            except (KeyError, IndexError, TypeError):
                continue
        apply_defaults(group, version, kind, damaged)

    check()
