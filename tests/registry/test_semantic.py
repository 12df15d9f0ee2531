"""Semantic validation: the errors a v1.32 API server reports, word for word."""
from __future__ import annotations

import copy

import pytest

from pyk8s.registry.checks.field import FieldError, invalid, not_supported, required
from pyk8s.registry.defaulting import apply_defaults
from pyk8s.registry.defaults.batch import generate_job_selector
from pyk8s.registry.semantic import aggregate_message, validate

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
               "start with an alphabetic character, and end with an alphanumeric character (e.g. "
               "'my-name',  or 'abc-123', regex used for validation is "
               "'[a-z]([-a-z0-9]*[a-z0-9])?')")
KINDS = {"Deployment": "apps", "ReplicaSet": "apps", "StatefulSet": "apps", "DaemonSet": "apps",
         "Job": "batch", "CronJob": "batch", "HorizontalPodAutoscaler": "autoscaling"}


def messages(obj: dict, old: dict | None = None, *, version: str = "v1") -> list[str]:
    kind = obj["kind"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return [e.message() for e in validate(group, version, kind, obj, old)]


def stored(obj: dict, *, version: str = "v1") -> dict:
    """The object as the store would hold it after create: defaulted, with system fields."""
    obj = copy.deepcopy(obj)
    kind = obj["kind"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    obj["metadata"].setdefault("uid", "6f7c1b52-0000-4000-8000-000000000001")
    obj["metadata"].setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
    if kind == "Job":
        generate_job_selector(obj)
    apply_defaults(group, version, kind, obj)
    return obj


def updated(old: dict, change) -> dict:
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "7"
    change(new)
    return new


def deployment(**spec) -> dict:
    return stored({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nginx"}},
                 "template": {"metadata": {"labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                       "resources": {}}]}},
                 "strategy": {}, **spec}})


def pod(**spec) -> dict:
    base = {"containers": [{"name": "web", "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "name": "http"}]}]}
    return stored({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "web", "namespace": "default"}, "spec": {**base, **spec}})


def service(**spec) -> dict:
    base = {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    return stored({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": "default"}, "spec": {**base, **spec}})


def job(**spec) -> dict:
    base = {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}],
                                  "restartPolicy": "Never"}}}
    return stored({"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": "pi", "namespace": "default"}, "spec": {**base, **spec}})


def cron_job(**spec) -> dict:
    base = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "hello", "image": "busybox:1.36"}], "restartPolicy": "OnFailure"}}}}}
    return stored({"apiVersion": "batch/v1", "kind": "CronJob",
                   "metadata": {"name": "hello", "namespace": "default"}, "spec": {**base, **spec}})


def stateful_set(**spec) -> dict:
    base = {"serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
    return stored({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "web", "namespace": "default"}, "spec": {**base, **spec}})


# --- valid objects -------------------------------------------------------------------

@pytest.mark.parametrize("make", [deployment, pod, service, job, cron_job, stateful_set])
def test_realistic_objects_are_valid_on_create_and_unchanged_update(make):
    obj = make()
    assert messages(obj) == []
    assert messages(updated(obj, lambda o: None), obj) == []


def test_other_valid_kinds():
    objs = [
        stored({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "kube-system"},
                "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}}),
        stored({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        stored({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
                "data": {"app.properties": "x=1", "KEY_2": "y"}}),
        stored({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
                "data": {"password": "c2VjcmV0"}}),
        stored({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "read:pods", "namespace": "default"},
                "roleRef": {"kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "User", "name": "jane"}]}),
        stored({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                         "maxReplicas": 5}}, version="v2"),
    ]
    for obj in objs:
        version = "v2" if obj["kind"] == "HorizontalPodAutoscaler" else "v1"
        assert messages(obj, version=version) == [], obj["kind"]


# --- names and metadata ------------------------------------------------------------------

def test_object_names_per_kind():
    bad_pod = pod()
    bad_pod["metadata"]["name"] = "Foo"
    assert messages(bad_pod) == [f'metadata.name: Invalid value: "Foo": {SUBDOMAIN_MSG}']
    bad_svc = service()
    bad_svc["metadata"]["name"] = "1web"
    assert messages(bad_svc) == [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']
    ns = stored({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}})
    assert messages(ns) == ['metadata.name: Invalid value: "team.a": must not contain dots']
    sts = stateful_set()
    sts["metadata"]["name"] = "web.v2"
    assert messages(sts) == ['metadata.name: Invalid value: "web.v2": must not contain dots']
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "a/b", "namespace": "default"}, "rules": []}
    assert messages(role) == ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]


def test_missing_name_namespace_and_generate_name():
    obj = pod()
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "Web-"
    obj["metadata"]["namespace"] = ""
    assert messages(obj) == [
        f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MSG}',
        "metadata.name: Required value: name or generateName is required",
        "metadata.namespace: Required value",
    ]
    cluster_scoped = stored({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "ok", "namespace": "default"}})
    assert messages(cluster_scoped) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_labels_and_annotations():
    obj = pod()
    obj["metadata"]["labels"] = {"app": "web server", "-bad": "x"}
    obj["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    assert messages(obj) == [
        'metadata.labels: Invalid value: "web server": a valid label must be an empty string or '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
        "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        'metadata.labels: Invalid value: "-bad": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        "metadata.annotations: Too long: may not be more than 262144 bytes",
    ]


def test_finalizers_and_owner_references():
    obj = pod()
    obj["metadata"]["finalizers"] = ["cleanup"]
    obj["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                           "name": "", "uid": "1"}]
    assert messages(obj) == [
        'metadata.ownerReferences.name: Invalid value: "": name must not be empty',
        'metadata.finalizers[0]: Invalid value: "cleanup": name is neither a standard finalizer '
        "name nor is it fully qualified",
    ]


def test_custom_resources_get_metadata_checks():
    cr = {"apiVersion": "example.com/v1", "kind": "Widget",
          "metadata": {"name": "Big", "namespace": "default"}}
    assert validate("example.com", "v1", "Widget", cr, namespaced=True)[0].message() == (
        f'metadata.name: Invalid value: "Big": {SUBDOMAIN_MSG}')
    cr["metadata"]["name"] = "big"
    assert validate("example.com", "v1", "Widget", cr, namespaced=True) == []


# --- workloads ----------------------------------------------------------------------------

def test_deployment_selector_must_match_template_labels():
    obj = deployment()
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "x"}
    assert messages(obj) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
        "`selector` does not match template `labels`"]


def test_deployment_without_selector():
    obj = deployment()
    del obj["spec"]["selector"]
    assert messages(obj) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"nginx"}: '
        "`selector` does not match template `labels`"]


def test_deployment_spec_bounds():
    obj = deployment(replicas=-1, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": "150"}}, progressDeadlineSeconds=0, minReadySeconds=5)
    assert messages(obj) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: 150: a valid percent string must "
        "be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
        "validation is '[0-9]+%')",
        "spec.progressDeadlineSeconds: Invalid value: 0: must be greater than minReadySeconds",
    ]
    both_zero = deployment(strategy={"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}})
    assert messages(both_zero) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when "
        "`maxSurge` is 0"]
    bad_type = deployment(strategy={"type": "BlueGreen"})
    assert messages(bad_type) == [
        'spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
        'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", '
        '"RollingUpdate"']


def test_deployment_selector_is_immutable():
    old = deployment()
    new = updated(old, lambda o: o["spec"].update(
        selector={"matchLabels": {"app": "nginx", "tier": "web"}}))
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    assert messages(new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":'
        '"nginx", "tier":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "field is immutable"]
    scaled = updated(old, lambda o: o["spec"].update(replicas=3))
    assert messages(scaled, old) == []


def test_workload_templates_must_restart_always():
    obj = deployment()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert messages(obj) == ['spec.template.spec.restartPolicy: Unsupported value: "Never": '
                             'supported values: "Always"']


def test_daemonset_rules():
    ds = stored({"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "agent", "namespace": "default"},
                 "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                     "metadata": {"labels": {"app": "other"}},
                     "spec": {"containers": [{"name": "a", "image": "busybox"}]}},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}})
    assert messages(ds) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
        "`selector` does not match template `labels`",
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when "
        "maxSurge is 0",
    ]


def test_statefulset_update_may_only_touch_some_fields():
    old = stateful_set()
    scaled = updated(old, lambda o: o["spec"].update(replicas=3))
    assert messages(scaled, old) == []
    resized = updated(old, lambda o: o["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]
                      ["requests"].update(storage="2Gi"))
    assert messages(resized, old) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"]


def test_statefulset_selector_and_policy():
    obj = stateful_set(podManagementPolicy="Random")
    obj["spec"]["selector"] = {}
    assert messages(obj) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "statefulset",
    ]


# --- pods ----------------------------------------------------------------------------------

def test_pod_containers_required_and_named():
    obj = pod(containers=[])
    assert messages(obj) == ["spec.containers: Required value"]
    obj = pod(containers=[{"name": "Web", "image": "nginx"}, {"name": "Web", "image": ""}])
    assert messages(obj) == [
        f'spec.containers[0].name: Invalid value: "Web": {LABEL_MSG}',
        f'spec.containers[1].name: Invalid value: "Web": {LABEL_MSG}',
        "spec.containers[1].image: Required value",
        'spec.containers[1].name: Duplicate value: "Web"',
    ]


def test_pod_ports_volumes_and_mounts():
    obj = pod(containers=[{"name": "web", "image": "nginx",
                           "ports": [{"containerPort": 70000}, {"containerPort": 80, "protocol": "ICMP"}],
                           "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                            {"name": "cache", "mountPath": "/data"}]}],
              volumes=[{"name": "data"}, {"name": "data"}])
    assert messages(obj) == [
        'spec.volumes[1].name: Duplicate value: "data"',
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and "
        "65535, inclusive",
        'spec.containers[0].ports[1].protocol: Unsupported value: "ICMP": supported values: '
        '"SCTP", "TCP", "UDP"',
        'spec.containers[0].volumeMounts[1].name: Not found: "cache"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique',
    ]


def test_pod_restart_policy_and_probes():
    obj = pod(restartPolicy="Sometimes")
    obj["spec"]["containers"][0]["livenessProbe"] = {"exec": {"command": ["true"]},
                                                     "successThreshold": 2}
    obj["spec"]["containers"][0]["readinessProbe"] = {"periodSeconds": 5}
    assert messages(obj) == [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"',
    ]


def test_pod_env_and_resources():
    obj = pod(containers=[{"name": "web", "image": "nginx", "env": [
        {"name": "A=B", "value": "x"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}],
        "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}])
    assert messages(obj) == [
        'spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable '
        "name must consist only of printable ASCII characters other than '='",
        'spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: '
        '"status.phase": supported values: "metadata.name", "metadata.namespace", '
        '"metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", '
        '"status.hostIPs", "status.podIP", "status.podIPs"',
        'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal '
        "to cpu limit of 1",
    ]


def test_pod_update_may_change_only_images_and_deadline():
    old = pod()
    new_image = updated(old, lambda o: o["spec"]["containers"][0].update(image="nginx:1.27"))
    assert messages(new_image, old) == []
    new_port = updated(old, lambda o: o["spec"]["containers"][0]["ports"][0].update(containerPort=81))
    errs = messages(new_port, old)
    assert len(errs) == 1
    assert errs[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
        "negative)\n")
    assert "containers[0].ports[0].containerPort" in errs[0]
    more = updated(old, lambda o: o["spec"]["containers"].append({"name": "b", "image": "b"}))
    apply_defaults("", "v1", "Pod", more)
    assert messages(more, old) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"]
    with_deadline = updated(old, lambda o: o["spec"].update(activeDeadlineSeconds=30))
    assert messages(with_deadline, old) == []
    longer = updated(with_deadline, lambda o: o["spec"].update(activeDeadlineSeconds=60))
    assert messages(longer, with_deadline) == [
        "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"]


def test_pod_tolerations_may_only_be_added():
    old = pod(tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}])
    added = updated(old, lambda o: o["spec"]["tolerations"].append(
        {"key": "x", "operator": "Equal", "value": "y", "effect": "NoExecute",
         "tolerationSeconds": 30}))
    assert messages(added, old) == []
    removed = updated(old, lambda o: o["spec"].update(tolerations=[]))
    assert messages(removed, old) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its "
        "tolerationSeconds"]


def test_update_errors_repeat_like_upstream_causes():
    old = pod()
    new = updated(old, lambda o: o["metadata"].update(labels={"app": "a b"}))
    # Upstream checks labels four times on a pod update (the common create and update
    # metadata passes, then ValidatePodUpdate's two); the Status message shows it once.
    errs = validate("", "v1", "Pod", new, old)
    label_error = ('metadata.labels: Invalid value: "a b": a valid label must be an empty string '
                   "or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                   "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                   "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    assert [e.message() for e in errs] == [label_error] * 4
    assert aggregate_message(errs) == label_error
    unconditional = copy.deepcopy(old)  # a PUT without resourceVersion is the store's business
    assert messages(unconditional, old) == []


# --- services ------------------------------------------------------------------------------

def test_service_ports():
    obj = service(ports=[{"port": 70000}, {"port": 80, "name": "http"}])
    assert messages(obj) == [
        "spec.ports[0].name: Required value",
        "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ]
    assert messages(service(ports=[])) == ["spec.ports: Required value"]
    headless = service(ports=[], clusterIP="None")
    assert messages(headless) == []
    dup = service(ports=[{"port": 80, "name": "a"}, {"port": 80, "name": "b"}])
    assert messages(dup) == [
        'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
        'AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, '
        'StrVal:""}, NodePort:0}']


def test_service_types_and_external_names():
    assert messages(service(type="Public")) == [
        'spec.type: Unsupported value: "Public": supported values: "ClusterIP", "ExternalName", '
        '"LoadBalancer", "NodePort"']
    ext = stored({"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": "db", "namespace": "default"},
                  "spec": {"type": "ExternalName", "externalName": "DB.example.com"}})
    assert messages(ext) == [f'spec.externalName: Invalid value: "DB.example.com": {SUBDOMAIN_MSG}']
    node_port = service(type="ClusterIP")
    node_port["spec"]["ports"][0]["nodePort"] = 30080
    assert messages(node_port) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]


def test_service_cluster_ip_is_immutable():
    old = service(clusterIP="10.43.0.20", clusterIPs=["10.43.0.20"], ipFamilies=["IPv4"],
                  ipFamilyPolicy="SingleStack")
    moved = updated(old, lambda o: o["spec"].update(clusterIP="10.43.0.21",
                                                    clusterIPs=["10.43.0.21"]))
    assert messages(moved, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.43.0.21"}: may not change once set']
    # kubectl replace without the allocated fields keeps them, as upstream's registry does.
    replaced = updated(old, lambda o: [o["spec"].pop(k) for k in
                                       ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy")])
    assert messages(replaced, old) == []


# --- configmaps and secrets -------------------------------------------------------------------

def test_config_map_keys_and_immutability():
    cm = stored({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "cfg", "namespace": "default"}, "data": {"a b": "1"}})
    assert messages(cm) == [
        'data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric '
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
        "used for validation is '[-._a-zA-Z0-9]+')"]
    frozen = stored({"apiVersion": "v1", "kind": "ConfigMap", "immutable": True,
                     "metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "1"}})
    changed = updated(frozen, lambda o: o["data"].update(a="2"))
    assert messages(changed, frozen) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    thawed = updated(frozen, lambda o: o.pop("immutable"))
    assert messages(thawed, frozen) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"]


def test_secret_rules():
    frozen = stored({"apiVersion": "v1", "kind": "Secret", "immutable": True,
                     "metadata": {"name": "s", "namespace": "default"}, "data": {"k": "dg=="}})
    changed = updated(frozen, lambda o: o["data"].update(k="dw=="))
    assert messages(changed, frozen) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    retyped = updated(frozen, lambda o: o.update(type="kubernetes.io/tls"))
    assert messages(retyped, frozen)[0] == (
        'type: Invalid value: "kubernetes.io/tls": field is immutable')
    tls = stored({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                  "metadata": {"name": "t", "namespace": "default"}, "data": {"tls.crt": "eA=="}})
    assert messages(tls) == ["data[tls.key]: Required value"]


# --- batch -------------------------------------------------------------------------------------

def test_job_restart_policy_must_not_be_always():
    obj = job()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert messages(obj) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']


def test_job_bounds():
    obj = job(completions=-1, parallelism=-2, backoffLimit=-1)
    assert messages(obj) == [
        "spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
        "spec.completions: Invalid value: -1: must be greater than or equal to 0",
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
    ]


def test_job_without_generated_selector():
    obj = copy.deepcopy(job())
    obj["spec"]["selector"] = {"matchLabels": {"app": "pi"}}
    assert messages(obj) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"
        '"app":"pi"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "`selector` not auto-generated",
        'spec.template.metadata.labels: Invalid value: map[string]string{'
        '"batch.kubernetes.io/controller-uid":"6f7c1b52-0000-4000-8000-000000000001", '
        '"batch.kubernetes.io/job-name":"pi", '
        '"controller-uid":"6f7c1b52-0000-4000-8000-000000000001", "job-name":"pi"}: '
        "`selector` does not match template `labels`",
    ]


def test_job_template_is_immutable():
    old = job()
    new = updated(old, lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
        image="perl:5.36"))
    errs = messages(new, old)
    assert len(errs) == 1
    assert errs[0].startswith("spec.template: Invalid value: core.PodTemplateSpec{")
    assert errs[0].endswith(": field is immutable")
    suspended = updated(old, lambda o: o["spec"].update(suspend=True))
    assert messages(suspended, old) == []


def test_cron_job_schedule_name_and_time_zone():
    assert messages(cron_job(schedule="61 * * * *")) == [
        'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']
    assert messages(cron_job(schedule="every minute")) == [
        'spec.schedule: Invalid value: "every minute": expected exactly 5 fields, found 2: '
        "[every minute]"]
    assert messages(cron_job(schedule="TZ=UTC 0 * * * *")) == [
        'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, '
        "use timeZone field instead"]
    assert messages(cron_job(timeZone="Mars/Olympus")) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']
    assert messages(cron_job(timeZone="Europe/Paris", schedule="@daily")) == []
    long_name = cron_job()
    long_name["metadata"]["name"] = "a" * 53
    assert messages(long_name) == [
        f'metadata.name: Invalid value: "{"a" * 53}": must be no more than 52 characters']


# --- rbac, autoscaling -----------------------------------------------------------------------

def test_rbac_rules_and_bindings():
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["pods"]},
                      {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}
    assert messages(role) == [
        "rules[0].verbs: Required value: verbs must contain at least one value",
        'rules[1].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot '
        "apply to non-resource URLs",
    ]
    old = stored({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": "admins"},
                  "roleRef": {"kind": "ClusterRole", "name": "admin"},
                  "subjects": [{"kind": "ServiceAccount", "name": "ci"}]})
    assert messages(old) == ["subjects[0].namespace: Required value"]
    old["subjects"][0]["namespace"] = "ci"
    new = updated(old, lambda o: o["roleRef"].update(name="edit"))
    assert messages(new, old) == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
        'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef']


def test_hpa_min_and_max_replicas():
    hpa = stored({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                           "minReplicas": 0, "maxReplicas": 0}}, version="v2")
    assert messages(hpa, version="v2") == [
        "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
        "spec.maxReplicas: Invalid value: 0: must be greater than 0",
    ]
    hpa["spec"].update(minReplicas=4, maxReplicas=2)
    assert messages(hpa, version="v2") == [
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]


# --- the error type ----------------------------------------------------------------------------

def test_field_error_rendering_and_causes():
    err = invalid("spec.flag", True, "must be false")
    assert err.message() == "spec.flag: Invalid value: true: must be false"
    assert err.cause() == {"reason": "FieldValueInvalid", "field": "spec.flag",
                           "message": "Invalid value: true: must be false"}
    assert invalid("x", None, "d").message() == "x: Invalid value: null: d"
    assert invalid("x", 0.5, "d").message() == "x: Invalid value: 0.5: d"
    assert invalid("x", 'say "hi"\n', "d").message() == 'x: Invalid value: "say \\"hi\\"\\n": d'
    assert required("spec.x").message() == "spec.x: Required value"
    assert not_supported("k", "z", ["a", "b"]).message() == (
        'k: Unsupported value: "z": supported values: "a", "b"')
    assert isinstance(err, FieldError) and err.type == "FieldValueInvalid"


def test_aggregate_message_deduplicates_like_upstream():
    one = required("spec.selector")
    two = invalid("spec.replicas", -1, "must be greater than or equal to 0")
    assert aggregate_message([one]) == "spec.selector: Required value"
    assert aggregate_message([one, two, one]) == (
        "[spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater "
        "than or equal to 0]")


def test_validation_never_mutates_its_input():
    old = service(clusterIP="10.43.0.20", clusterIPs=["10.43.0.20"])
    new = updated(old, lambda o: [o["spec"].pop("clusterIP"), o["spec"].pop("clusterIPs")])
    before = copy.deepcopy(new)
    validate("", "v1", "Service", new, old)
    assert new == before


# --- robustness -----------------------------------------------------------------------------

def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(value, prefix + (i,))


_SAME_TYPE = {bool: [True, False], int: [0, -1, 70000], str: ["", "x", "Bad Name"],
              list: [[]], dict: [{}]}


@pytest.mark.parametrize("make", [deployment, pod, service, job, cron_job, stateful_set])
def test_damaged_objects_yield_errors_not_exceptions(make):
    """Nulls, missing fields and odd values of the right JSON type never crash a check."""
    from hypothesis import given, settings, strategies as st

    base = make()
    group = base["apiVersion"].split("/")[0] if "/" in base["apiVersion"] else ""
    paths = [p for p in _paths(base) if p[0] not in ("apiVersion", "kind")]

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(paths), st.integers(0, 3)), max_size=4))
    def check(changes):
        obj = copy.deepcopy(base)
        for path, choice in changes:
            target = obj
            try:
                for step in path[:-1]:
                    target = target[step]
                current = target[path[-1]]
            except (KeyError, IndexError, TypeError):
                continue
            options = [None] + _SAME_TYPE.get(type(current), [])
            if isinstance(target, dict) and choice == 3:
                del target[path[-1]]
            else:
                target[path[-1]] = options[choice % len(options)]
        for old in (None, base):
            errs = validate(group, "v1", base["kind"], obj, old)
            assert all(isinstance(e, FieldError) for e in errs)

    check()


def test_subresource_writes_are_checked_like_upstream():
    old = pod()
    bound = updated(old, lambda o: o["spec"].update(nodeName="node-1"))
    assert messages(bound, old)[0].startswith("spec: Forbidden: pod updates may not change")
    assert validate("", "v1", "Pod", bound, old, subresource="binding") == []
    status = updated(old, lambda o: o.setdefault("status", {}).update(phase="Running"))
    assert validate("", "v1", "Pod", status, old, subresource="status") == []
    debug = {"name": "debugger", "image": "busybox", "imagePullPolicy": "IfNotPresent",
             "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    with_debug = updated(old, lambda o: o["spec"].update(ephemeralContainers=[debug]))
    assert validate("", "v1", "Pod", with_debug, old, subresource="ephemeralcontainers") == []
    changed = updated(with_debug, lambda o: o["spec"]["ephemeralContainers"][0].update(image="x"))
    assert [e.message() for e in validate("", "v1", "Pod", changed, with_debug,
                                          subresource="ephemeralcontainers")] == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not '
        "be changed\n  image: changed\n"]
