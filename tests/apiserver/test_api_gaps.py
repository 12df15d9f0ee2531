"""API details a Kubernetes v1.32 user sees, driven through real kubectl and the
official Python client: componentstatuses, CRD schema error wording, empty field
paths and TooLong, remainingItemCount, enum in served OpenAPI, template
creationTimestamp, zero-valued status as Go marshals it, and the ``kubernetes``
Service's target port."""
import datetime
import json
import os
import time

import pytest

from support.cluster import Cluster, free_port

DEPRECATION = "Warning: v1 ComponentStatus is deprecated in v1.19+"


# -- 1. componentstatuses ------------------------------------------------------------

def _lease(name, renewed, holder="h1", duration=15):
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": name, "namespace": "kube-system"},
                       "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                                "acquireTime": stamp, "renewTime": stamp}})


def _rows(out):
    return {line.split()[0]: line for line in out.splitlines()[1:]}


def test_componentstatuses_probe_leases_and_storage(cluster, client):
    import kubernetes
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        # No scheduler runs beside the test server: no lease, so Unhealthy.
        cluster.kubectl("delete", "lease", "-n", "kube-system", "kube-scheduler",
                        "kube-controller-manager", "--ignore-not-found")
        r = cluster.kubectl("get", "cs")
        assert DEPRECATION in r.stderr
        assert r.stdout.splitlines()[0].split() == ["NAME", "STATUS", "MESSAGE", "ERROR"]
        rows = _rows(r.stdout)
        assert set(rows) == {"scheduler", "controller-manager", "sqlite-0"}
        assert rows["sqlite-0"].split()[1:3] == ["Healthy", "ok"]
        assert rows["scheduler"].split()[1] == "Unhealthy"
        assert "no leader: Lease kube-system/kube-scheduler not found" in rows["scheduler"]

        # A leader renewing its lease is healthy; one that stopped renewing is not.
        # (Renewed now, for longer than the rest of this test may take on a busy machine.)
        cluster.kubectl("apply", "-f", "-", input=_lease(
            "kube-scheduler", datetime.datetime.now(datetime.timezone.utc), duration=600))
        cluster.kubectl("apply", "-f", "-",
                        input=_lease("kube-controller-manager",
                                     now - datetime.timedelta(seconds=60)))
        rows = _rows(cluster.kubectl("get", "componentstatuses").stdout)
        assert rows["scheduler"].split()[1:3] == ["Healthy", "ok"]
        assert rows["controller-manager"].split()[1] == "Unhealthy"
        assert "stopped renewing Lease kube-system/kube-controller-manager" in \
            rows["controller-manager"]

        # Get by name, the upstream object shape, and an unknown component.
        got = json.loads(cluster.kubectl("get", "cs", "scheduler", "-o", "json").stdout)
        assert got["kind"] == "ComponentStatus" and got["apiVersion"] == "v1"
        assert got["metadata"] == {"name": "scheduler", "creationTimestamp": None}
        assert got["conditions"] == [{"type": "Healthy", "status": "True", "message": "ok"}]
        r = cluster.kubectl("get", "cs", "etcd-0", check=False)
        assert "Error from server (InternalError): Internal error occurred: " \
               "Component not found: etcd-0" in r.stderr
        r = cluster.kubectl("delete", "cs", "scheduler", check=False)
        assert 'Error from server (MethodNotAllowed): delete is not supported on resources ' \
               'of kind "componentstatuses"' in r.stderr

        # The official client reads the list as a typed ComponentStatusList.
        items = kubernetes.client.CoreV1Api(client).list_component_status().items
        by_name = {i.metadata.name: i for i in items}
        assert by_name["sqlite-0"].conditions[0].status == "True"
        assert by_name["controller-manager"].conditions[0].status == "False"
    finally:
        cluster.kubectl("delete", "lease", "-n", "kube-system", "kube-scheduler",
                        "kube-controller-manager", "--ignore-not-found")


# -- 2. CRD structural schema errors --------------------------------------------------

GADGETS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: schemagaps.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: schemagaps, singular: schemagap, kind: SchemaGap}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [owner]
            properties:
              owner: {type: string}
              size: {type: integer, minimum: 1, maximum: 10}
              ratio: {type: number, minimum: 0, exclusiveMinimum: true,
                      maximum: 1, exclusiveMaximum: true}
              step: {type: integer, multipleOf: 5}
              code: {type: string, minLength: 3, maxLength: 5, pattern: '^[a-z]+$'}
              tags: {type: array, minItems: 1, maxItems: 2, items: {type: string}}
              zones: {type: array, x-kubernetes-list-type: set, items: {type: string}}
              color: {type: string, enum: [red, blue]}
              label: {type: string}
              when: {type: string, format: date-time}
"""


def _gadget(name, **spec):
    return json.dumps({"apiVersion": "example.com/v1", "kind": "SchemaGap",
                       "metadata": {"name": name}, "spec": spec})


def _wait_served(cluster, ns, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cluster.kubectl("get", "schemagaps", "-n", ns, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError("schemagaps not served")


@pytest.fixture
def schemagaps(cluster, ns):
    cluster.kubectl("apply", "-f", "-", input=GADGETS)
    _wait_served(cluster, ns)
    yield ns
    cluster.kubectl("delete", "crd", "schemagaps.example.com", "--ignore-not-found")


CASES = [
    ({"size": 0}, "spec.size: Invalid value: 0: spec.size in body should be greater "
                  "than or equal to 1"),
    ({"size": 11}, "spec.size: Invalid value: 11: spec.size in body should be less "
                   "than or equal to 10"),
    ({"ratio": 0}, "spec.ratio: Invalid value: 0: spec.ratio in body should be greater "
                   "than 0"),
    ({"ratio": 1}, "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"),
    ({"step": 7}, "spec.step: Invalid value: 7: spec.step in body should be a multiple "
                  "of 5"),
    ({"code": "ab"}, 'spec.code: Invalid value: "ab": spec.code in body should be at '
                     'least 3 chars long'),
    ({"code": "abcdefg"}, "spec.code: Too long: may not be more than 5 bytes"),
    ({"code": "AB1"}, "spec.code: Invalid value: \"AB1\": spec.code in body should match "
                      "'^[a-z]+$'"),
    ({"tags": []}, "spec.tags: Invalid value: 0: spec.tags in body should have at least "
                   "1 items"),
    ({"tags": ["a", "b", "c"]}, "spec.tags: Too many: 3: must have at most 2 items"),
    ({"zones": ["a", "a"]}, 'spec.zones[1]: Duplicate value: "a"'),
    ({"color": "green"}, 'spec.color: Unsupported value: "green": supported values: '
                         '"red", "blue"'),
    ({"label": 3}, 'spec.label: Invalid value: "integer": spec.label in body must be of '
                   'type string: "integer"'),
    ({"when": "yesterday"}, 'spec.when: Invalid value: "yesterday": spec.when in body '
                            'must be of type date-time: "yesterday"'),
]


def test_crd_schema_errors_use_upstream_wording(cluster, schemagaps):
    ns = schemagaps
    for i, (spec, message) in enumerate(CASES):
        r = cluster.kubectl("create", "-n", ns, "-f", "-",
                            input=_gadget(f"g{i}", owner="me", **spec), check=False)
        assert r.returncode == 1, spec
        assert f'The SchemaGap "g{i}" is invalid: {message}' in r.stderr, (spec, r.stderr)
    r = cluster.kubectl("create", "-n", ns, "-f", "-", input=_gadget("nobody"),
                        check=False)
    assert 'The SchemaGap "nobody" is invalid: spec.owner: Required value' in r.stderr
    ok = _gadget("fine", owner="me", size=5, ratio=0.5, step=10, code="abc",
                 tags=["x"], zones=["a", "b"], color="red", when="2024-05-01T10:00:00Z")
    assert cluster.kubectl("create", "-n", ns, "-f", "-", input=ok).stdout.strip() == \
        "schemagap.example.com/fine created"


# -- 3. empty field path and TooLong ---------------------------------------------------

def test_configmap_over_one_mib_is_too_long_on_the_whole_object(cluster, ns, tmp_path):
    big = tmp_path / "big"
    big.write_text("a" * (1024 * 1024 + 1))
    r = cluster.kubectl("create", "configmap", "big", "-n", ns, f"--from-file=data={big}",
                        check=False)
    assert r.returncode == 1
    assert 'ConfigMap "big" is invalid: []: Too long: may not be more than 1048576 bytes' \
        in r.stderr


def test_python_client_sees_empty_path_cause(cluster, client, ns):
    import kubernetes
    api = kubernetes.client.CoreV1Api(client)
    body = {"metadata": {"name": "big2"}, "data": {"a": "b" * (1024 * 1024 + 1)}}
    with pytest.raises(kubernetes.client.ApiException) as info:
        api.create_namespaced_config_map(ns, body)
    status = json.loads(info.value.body)
    assert status["reason"] == "Invalid" and status["code"] == 422
    assert status["details"]["causes"] == [{
        "reason": "FieldValueTooLong", "field": "[]",
        "message": "Too long: may not be more than 1048576 bytes"}]


# -- 4. remainingItemCount -------------------------------------------------------------

def test_limited_list_reports_remaining_items_without_selectors(cluster, ns):
    for i in range(5):
        cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"c{i}", "labels": {"odd": "yes" if i % 2 else "no"}}}))
    # kube-root-ca.crt may or may not be there: count what the namespace holds.
    total = len(json.loads(cluster.kubectl("get", "cm", "-n", ns, "-o",
                                           "json").stdout)["items"])
    page = json.loads(cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{ns}/configmaps?limit=2").stdout)
    assert page["metadata"]["remainingItemCount"] == total - 2
    assert page["metadata"]["continue"]
    nxt = json.loads(cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{ns}/configmaps?limit=2&continue="
        f"{page['metadata']['continue']}").stdout)
    assert nxt["metadata"]["remainingItemCount"] == total - 4
    # A selector makes the count unknowable cheaply: upstream leaves it out.
    sel = json.loads(cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{ns}/configmaps?limit=1&labelSelector=odd%3Dno"
    ).stdout)
    assert sel["metadata"]["continue"] and "remainingItemCount" not in sel["metadata"]
    # The last page has neither.
    last = json.loads(cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{ns}/configmaps?limit={total}").stdout)
    assert "remainingItemCount" not in last["metadata"]
    assert "continue" not in last["metadata"]


# -- 5. enum in served OpenAPI ----------------------------------------------------------

def test_explain_shows_enum_values(cluster):
    out = cluster.kubectl("explain", "pod.spec.restartPolicy").stdout
    assert "FIELD: restartPolicy <string>\nENUM:\n    Always\n    Never\n    OnFailure\n" \
        in out
    out = cluster.kubectl("explain", "service.spec.type").stdout
    assert "ENUM:\n    ClusterIP\n    ExternalName\n    LoadBalancer\n    NodePort\n" in out
    out = cluster.kubectl("explain", "deployment.spec.strategy.type").stdout
    assert "ENUM:\n    Recreate\n    RollingUpdate\n" in out
    # apiVersion/kind carry no enum upstream.
    assert "ENUM" not in cluster.kubectl("explain", "pod.kind").stdout


def test_enum_in_openapi_does_not_change_validation(cluster, ns):
    # Upstream checks restartPolicy semantically, with its own message, not the schema.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"restartPolicy": "Sometimes",
                    "containers": [{"name": "c", "image": "busybox"}]}}
    r = cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod), check=False)
    assert 'spec.restartPolicy: Unsupported value: "Sometimes": supported values: ' \
           '"Always", "OnFailure", "Never"' in r.stderr


# -- 6. creationTimestamp: null in templates --------------------------------------------

def test_templates_show_null_creation_timestamp(cluster, client, ns):
    import kubernetes
    cluster.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx")
    cluster.kubectl("create", "cronjob", "cj", "-n", ns, "--image=busybox",
                    "--schedule=* * * * *")
    out = cluster.kubectl("get", "deploy", "web", "-n", ns, "-o", "yaml").stdout
    assert "  template:\n    metadata:\n      creationTimestamp: null\n      labels:\n" \
           "        app: web\n" in out
    cj = json.loads(cluster.kubectl("get", "cronjob", "cj", "-n", ns, "-o", "json").stdout)
    assert cj["spec"]["jobTemplate"]["metadata"] == {"creationTimestamp": None,
                                                     "name": "cj"}
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"] == {
        "creationTimestamp": None}
    # The top-level object keeps its real timestamp; the typed client reads None.
    dep = kubernetes.client.AppsV1Api(client).read_namespaced_deployment("web", ns)
    assert dep.metadata.creation_timestamp is not None
    assert dep.spec.template.metadata.creation_timestamp is None
    # Applying the same manifest twice stays unchanged (client- and server-side).
    manifest = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": "app"},
                           "spec": {"selector": {"matchLabels": {"a": "b"}},
                                    "template": {"metadata": {"labels": {"a": "b"}},
                                                 "spec": {"containers": [
                                                     {"name": "c", "image": "nginx"}]}}}})
    for flags in ((), ("--server-side",)):
        cluster.kubectl("apply", "-n", ns, *flags, "-f", "-", input=manifest)
        again = cluster.kubectl("apply", "-n", ns, *flags, "-f", "-", input=manifest)
        assert again.stdout.strip() in ("deployment.apps/app unchanged",
                                        "deployment.apps/app serverside-applied")
    got = json.loads(cluster.kubectl("get", "deploy", "app", "-n", ns, "-o", "json",
                                     "--show-managed-fields").stdout)
    assert got["metadata"]["managedFields"]
    for entry in got["metadata"]["managedFields"]:
        assert "f:creationTimestamp" not in json.dumps(entry.get("fieldsV1", {}))


# -- 6b. status as its Go struct marshals -------------------------------------------

_TEMPLATE = {"metadata": {"labels": {"a": "z"}},
             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
_SELECTOR = {"matchLabels": {"a": "z"}}


def test_new_objects_show_upstream_zero_status(cluster, client, ns):
    import kubernetes
    objects = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
         "spec": {"replicas": 0, "selector": _SELECTOR, "template": _TEMPLATE}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sts"},
         "spec": {"replicas": 0, "serviceName": "sts", "selector": _SELECTOR,
                  "template": _TEMPLATE}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
         "spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep"},
         "spec": {"replicas": 0, "selector": _SELECTOR, "template": _TEMPLATE}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
         "spec": {"ports": [{"port": 80}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": _SELECTOR}},
    ]
    cluster.kubectl("create", "-n", ns, "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    got = json.loads(cluster.kubectl("get", "-n", ns, "-o", "json",
                                     "rs/rs", "sts/sts", "ds/ds", "deploy/dep", "svc/svc",
                                     "pdb/pdb").stdout)
    status = {o["kind"]: o.get("status") for o in got["items"]}
    assert status == {
        "ReplicaSet": {"replicas": 0},
        "StatefulSet": {"replicas": 0, "availableReplicas": 0},
        "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                      "desiredNumberScheduled": 0, "numberReady": 0},
        "Deployment": {},
        "Service": {"loadBalancer": {}},
        "PodDisruptionBudget": {"disruptionsAllowed": 0, "currentHealthy": 0,
                                "desiredHealthy": 0, "expectedPods": 0},
    }
    # A status writer that leaves the zeros out (as Go's omitempty-free fields never
    # are) still reads back whole: the official client requires ReplicaSetStatus
    # replicas and the DaemonSet's counts.
    cluster.kubectl("patch", "-n", ns, "rs", "rs", "--subresource=status", "--type=json",
                    "-p", '[{"op": "replace", "path": "/status", "value": '
                          '{"observedGeneration": 1}}]')
    cluster.kubectl("patch", "-n", ns, "ds", "ds", "--subresource=status", "--type=json",
                    "-p", '[{"op": "replace", "path": "/status", "value": {}}]')
    apps = kubernetes.client.AppsV1Api(client)
    rs = apps.read_namespaced_replica_set("rs", ns)
    assert (rs.status.replicas, rs.status.observed_generation) == (0, 1)
    ds = apps.list_namespaced_daemon_set(ns).items[0]
    assert (ds.status.desired_number_scheduled, ds.status.number_ready) == (0, 0)


# -- 7. the kubernetes Service's targetPort -------------------------------------------

def test_kubernetes_service_targets_the_secure_port_across_restarts(tmp_path):
    c = Cluster(str(tmp_path), free_port())
    c.start()
    try:
        ports = json.loads(c.kubectl("get", "svc", "kubernetes", "-o",
                                     "jsonpath={.spec.ports}").stdout)
        assert ports == [{"name": "https", "port": 443, "protocol": "TCP",
                          "targetPort": c.port}]
        c.stop()
        c.port = free_port()
        c.url = f"https://127.0.0.1:{c.port}"
        c.start()
        ports = json.loads(c.kubectl("get", "svc", "kubernetes", "-o",
                                     "jsonpath={.spec.ports}").stdout)
        assert ports[0]["targetPort"] == c.port
    finally:
        c.stop()
        assert not os.path.exists(c.kubeconfig)
