"""The API as real kubectl 1.32 users see it."""
import json
import subprocess
import time

import yaml

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
"""


def test_version_reports_1_32(cluster):
    out = cluster.kubectl("version", "-o", "json").stdout
    server = json.loads(out)["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "32")


def test_default_namespaces_and_kubernetes_service(cluster):
    names = cluster.kubectl("get", "namespaces", "-o", "name").stdout.split()
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{ns}" in names
    svc = json.loads(cluster.kubectl("get", "service", "kubernetes", "-n", "default",
                                     "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == "10.43.0.1"


def test_api_resources_lists_builtin_groups(cluster):
    out = cluster.kubectl("api-resources", "-o", "wide").stdout
    lines: dict[str, str] = {}
    for line in out.splitlines()[1:]:  # the first of a name: metrics.k8s.io has pods too
        lines.setdefault(line.split()[0], line)
    assert "po" in lines["pods"].split()
    assert "apps/v1" in lines["deployments"]
    # componentstatuses: short name cs, cluster-scoped, get and list only (and served).
    assert lines["componentstatuses"].split()[1:] == ["cs", "v1", "false", "ComponentStatus",
                                                      "get,list"]
    assert cluster.kubectl("get", "cs", "-o", "name").stdout.split()
    for name in ("configmaps", "secrets", "services", "jobs", "cronjobs", "ingresses",
                 "roles", "leases", "customresourcedefinitions"):
        assert name in lines
    versions = cluster.kubectl("api-versions").stdout.split()
    assert {"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"} <= set(versions)


def test_configmap_lifecycle_and_errors(cluster, ns):
    r = cluster.kubectl("create", "configmap", "demo", "-n", ns, "--from-literal=a=1")
    assert r.stdout.strip() == "configmap/demo created"
    r = cluster.kubectl("create", "configmap", "demo", "-n", ns, "--from-literal=a=1",
                        check=False)
    assert r.returncode == 1
    # The typed command words it its own way, as against Kubernetes.
    assert 'error: failed to create configmap: configmaps "demo" already exists' in r.stderr
    manifest = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"demo"}}'
    r = cluster.kubectl("create", "-n", ns, "-f", "-", input=manifest, check=False)
    assert 'Error from server (AlreadyExists): error when creating "STDIN": configmaps ' \
           '"demo" already exists' in r.stderr
    cm = json.loads(cluster.kubectl("get", "cm", "demo", "-n", ns, "-o", "json").stdout)
    assert cm["data"] == {"a": "1"}
    assert cm["metadata"]["uid"] and int(cm["metadata"]["resourceVersion"]) > 0
    r = cluster.kubectl("get", "configmap", "nope", "-n", ns, check=False)
    assert 'Error from server (NotFound): configmaps "nope" not found' in r.stderr
    assert cluster.kubectl("delete", "cm", "demo", "-n", ns).stdout.strip() == \
        'configmap "demo" deleted'
    r = cluster.kubectl("get", "configmap", "demo", "-n", ns, check=False)
    assert r.returncode == 1


def test_apply_twice_is_unchanged_and_defaults_are_upstream(cluster, ns):
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY)
    assert r.stdout.strip() == "deployment.apps/web created"
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY)
    assert r.stdout.strip() == "deployment.apps/web unchanged"
    d = yaml.safe_load(cluster.kubectl("get", "deploy", "web", "-n", ns, "-o",
                                       "yaml").stdout)
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": "25%", "maxUnavailable": "25%"}}
    assert d["spec"]["revisionHistoryLimit"] == 10
    assert d["spec"]["progressDeadlineSeconds"] == 600
    pod = d["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["schedulerName"] == "default-scheduler"
    c = pod["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["ports"][0]["protocol"] == "TCP"
    assert d["metadata"]["generation"] == 1
    changed = DEPLOY.replace("replicas: 2", "replicas: 3")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=changed)
    assert r.stdout.strip() == "deployment.apps/web configured"
    d = json.loads(cluster.kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert d["spec"]["replicas"] == 3 and d["metadata"]["generation"] == 2


def test_typed_create_commands_send_protobuf(cluster, ns):
    cluster.kubectl("create", "deployment", "api", "--image=nginx", "--replicas=2",
                    "-n", ns)
    d = json.loads(cluster.kubectl("get", "deploy", "api", "-n", ns, "-o", "json").stdout)
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    assert d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    cluster.kubectl("create", "secret", "generic", "s", "--from-literal=k=v", "-n", ns)
    s = json.loads(cluster.kubectl("get", "secret", "s", "-n", ns, "-o", "json").stdout)
    assert s["type"] == "Opaque" and s["data"] == {"k": "dg=="}
    out = cluster.kubectl("create", "service", "clusterip", "api", "--tcp=80:8080",
                          "-n", ns).stdout
    assert "service/api created" in out
    svc = json.loads(cluster.kubectl("get", "svc", "api", "-n", ns, "-o", "json").stdout)
    assert svc["spec"]["clusterIP"].startswith("10.43.")
    assert svc["spec"]["ports"][0]["targetPort"] == 8080


def test_get_table_columns(cluster, ns):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY)
    out = cluster.kubectl("get", "deployments", "-n", ns).stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out[1].split()[:4] == ["web", "0/2", "0", "0"]
    wide = cluster.kubectl("get", "deploy", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    labels = cluster.kubectl("get", "deploy", "-n", ns, "--show-labels").stdout
    assert "app=web" in labels
    allns = cluster.kubectl("get", "deploy", "-A").stdout
    assert ns in allns


def test_label_annotate_and_selectors(cluster, ns):
    for name in ("a", "b", "c"):
        cluster.kubectl("create", "configmap", name, "-n", ns)
    cluster.kubectl("label", "cm", "a", "b", "tier=front", "-n", ns)
    cluster.kubectl("annotate", "cm", "a", "note=hello", "-n", ns)
    names = cluster.kubectl("get", "cm", "-n", ns, "-l", "tier=front", "-o",
                            "name").stdout.split()
    assert names == ["configmap/a", "configmap/b"]
    names = cluster.kubectl("get", "cm", "-n", ns, "-l", "tier!=front", "-o",
                            "name").stdout.split()
    assert "configmap/c" in names and "configmap/a" not in names
    names = cluster.kubectl("get", "cm", "-n", ns, "--field-selector", "metadata.name=b",
                            "-o", "name").stdout.split()
    assert names == ["configmap/b"]
    note = cluster.kubectl("get", "cm", "a", "-n", ns, "-o",
                           "jsonpath={.metadata.annotations.note}").stdout
    assert note == "hello"
    r = cluster.kubectl("get", "pods", "-n", ns, "--field-selector", "spec.bogus=1",
                        check=False)
    assert "field label not supported: spec.bogus" in r.stderr


def test_paging_with_chunk_size(cluster, ns):
    for i in range(12):
        cluster.kubectl("create", "configmap", f"cm-{i:02d}", "-n", ns)
    out = cluster.kubectl("get", "cm", "-n", ns, "--chunk-size=5", "-o",
                          "name").stdout.split()
    assert [n for n in out if n.startswith("configmap/cm-")] == \
        [f"configmap/cm-{i:02d}" for i in range(12)]


def test_scale_patch_and_conflict(cluster, ns):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY)
    assert "scaled" in cluster.kubectl("scale", "deploy", "web", "--replicas=5",
                                       "-n", ns).stdout
    d = json.loads(cluster.kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert d["spec"]["replicas"] == 5
    cluster.kubectl("patch", "deploy", "web", "-n", ns, "--type=merge", "-p",
                    '{"spec":{"minReadySeconds":3}}')
    cluster.kubectl("patch", "deploy", "web", "-n", ns, "--type=json", "-p",
                    '[{"op":"replace","path":"/spec/replicas","value":1}]')
    cluster.kubectl("patch", "deploy", "web", "-n", ns, "-p",
                    '{"spec":{"template":{"spec":{"containers":[{"name":"web",'
                    '"image":"nginx:1.26"}]}}}}')
    d = json.loads(cluster.kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert d["spec"]["minReadySeconds"] == 3 and d["spec"]["replicas"] == 1
    c = d["spec"]["template"]["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "nginx:1.26" and c[0]["ports"]
    stale = dict(d)
    stale["metadata"] = dict(d["metadata"], resourceVersion="1")
    r = cluster.kubectl("replace", "-f", "-", input=json.dumps(stale), check=False)
    assert r.returncode == 1
    assert "the object has been modified; please apply your changes to the latest " \
           "version and try again" in r.stderr


def test_validation_errors(cluster, ns):
    bad = DEPLOY.replace("name: web\n  labels", "name: Web_1\n  labels")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=bad, check=False)
    assert r.returncode == 1
    assert 'The Deployment "Web_1" is invalid: metadata.name: Invalid value: "Web_1"' \
        in r.stderr
    mismatch = DEPLOY.replace("template:\n    metadata: {labels: {app: web}}",
                              "template:\n    metadata: {labels: {app: other}}")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=mismatch, check=False)
    assert "`selector` does not match template `labels`" in r.stderr
    unknown = DEPLOY.replace("replicas: 2", "replicas: 2\n  bogus: 1")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=unknown, check=False)
    assert r.returncode == 1
    assert 'unknown field "spec.bogus"' in r.stderr
    assert cluster.kubectl("get", "deploy", "-n", ns, "-o", "name").stdout.strip() == ""


def test_watch_streams_changes(cluster, ns):
    env_kubeconfig = cluster.kubeconfig
    proc = subprocess.Popen(
        ["kubectl", "get", "cm", "-n", ns, "-w", "-o", "name", "--request-timeout=30s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"KUBECONFIG": env_kubeconfig, "HOME": cluster.data_dir, "PATH": "/usr/bin:/bin"})
    try:
        # The watch lists first: wait until its initial (empty but for defaults) output.
        deadline = time.monotonic() + 20
        cluster.kubectl("create", "configmap", "w1", "-n", ns)
        seen = []
        while time.monotonic() < deadline and "configmap/w1" not in seen:
            line = proc.stdout.readline().strip()
            if line:
                seen.append(line)
        assert "configmap/w1" in seen
    finally:
        proc.kill()
        proc.wait()


def test_explain_uses_openapi(cluster):
    out = cluster.kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:" in out and "Deployment" in out
    assert "rollingUpdate" in out


def test_describe_deployment(cluster, ns):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY)
    out = cluster.kubectl("describe", "deployment", "web", "-n", ns).stdout
    assert "Name:" in out and "web" in out
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in out


def test_dry_run_server_writes_nothing(cluster, ns):
    out = cluster.kubectl("create", "configmap", "dry", "-n", ns, "--dry-run=server",
                          "-o", "json").stdout
    assert json.loads(out)["metadata"]["name"] == "dry"
    r = cluster.kubectl("get", "cm", "dry", "-n", ns, check=False)
    assert r.returncode == 1


def test_create_in_missing_namespace(cluster):
    r = cluster.kubectl("create", "configmap", "x", "-n", "does-not-exist", check=False)
    assert 'namespaces "does-not-exist" not found' in r.stderr


def test_edit_with_an_editor(cluster, ns, tmp_path):
    cluster.kubectl("create", "configmap", "ed", "-n", ns, "--from-literal=color=red")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/color: red/color: blue/' \"$1\"\n")
    editor.chmod(0o755)
    import os
    env_editor = dict(os.environ, KUBE_EDITOR=str(editor))
    r = subprocess.run(["kubectl", "edit", "cm", "ed", "-n", ns], capture_output=True,
                       text=True, env=dict(env_editor, KUBECONFIG=cluster.kubeconfig,
                                           HOME=cluster.data_dir), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "configmap/ed edited"
    color = cluster.kubectl("get", "cm", "ed", "-n", ns, "-o",
                            "jsonpath={.data.color}").stdout
    assert color == "blue"


def test_delete_all_and_wait(cluster, ns):
    for i in range(3):
        cluster.kubectl("create", "configmap", f"gone-{i}", "-n", ns)
    out = cluster.kubectl("delete", "cm", "--all", "-n", ns).stdout
    assert all(f'configmap "gone-{i}" deleted' in out for i in range(3))
    assert cluster.kubectl("get", "cm", "-n", ns, "-o", "name").stdout.strip() == ""


def test_pod_binding_and_graceful_delete(cluster, client, ns):
    from kubernetes import client as k8s
    core = k8s.CoreV1Api(client)
    cluster.kubectl("run", "p", "--image=busybox", "--restart=Never", "-n", ns)
    pod = json.loads(cluster.kubectl("get", "pod", "p", "-n", ns, "-o", "json").stdout)
    assert pod["status"]["phase"] == "Pending" and pod["status"]["qosClass"] == "BestEffort"
    core.create_namespaced_pod_binding("p", ns, k8s.V1Binding(
        metadata=k8s.V1ObjectMeta(name="p"),
        target=k8s.V1ObjectReference(kind="Node", name="node-a")), _preload_content=False)
    wide = cluster.kubectl("get", "pod", "p", "-n", ns, "-o", "wide").stdout
    assert "node-a" in wide
    r = cluster.kubectl("get", "pods", "-n", ns, "--field-selector", "spec.nodeName=node-a",
                        "-o", "name")
    assert r.stdout.split() == ["pod/p"]
    # A scheduled pod is deleted gracefully: it stays, Terminating, for its kubelet.
    cluster.kubectl("delete", "pod", "p", "-n", ns, "--wait=false")
    pod = json.loads(cluster.kubectl("get", "pod", "p", "-n", ns, "-o", "json").stdout)
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    assert "Terminating" in cluster.kubectl("get", "pod", "p", "-n", ns).stdout
    cluster.kubectl("delete", "pod", "p", "-n", ns, "--grace-period=0", "--force")
    assert cluster.kubectl("get", "pod", "p", "-n", ns, check=False).returncode == 1


def test_secret_string_data_is_folded_into_data(cluster, ns):
    manifest = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sd"},
                           "stringData": {"password": "hunter2"}, "data": {"a": "Yg=="}})
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    s = json.loads(cluster.kubectl("get", "secret", "sd", "-n", ns, "-o", "json").stdout)
    assert s["data"] == {"a": "Yg==", "password": "aHVudGVyMg=="}
    assert "stringData" not in s
