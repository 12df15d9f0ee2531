"""The core controllers against a real API server, driven by kubectl and the official
client: what a user of the cluster sees.

The controllers run in a background thread (their own event loop) for the whole
module, with upstream's behaviour but short timeouts (node grace 3 s, ...).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import threading
import time
import uuid

import kubernetes
import pytest
import urllib3
import yaml

from pyk8s.client import Client, load_kubeconfig
from pyk8s.controllers import core_manager
from pyk8s.controllers.corecontext import (CoreSettings, DisruptionSettings, GCSettings,
                                           NamespaceSettings, NodeLifecycleSettings,
                                           PodGCSettings)

API_ADDRESS = "192.0.2.10"   # TEST-NET: published as the kubernetes Service's endpoint

log = logging.getLogger(__name__)


def wait_for(fn, timeout: float = 30.0, what: str = "condition"):
    """Poll ``fn`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except AssertionError as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def core_test_settings(data_dir: str) -> CoreSettings:
    with open(os.path.join(data_dir, "kubeconfig.yaml")) as f:
        kc = yaml.safe_load(f)
    ca = base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    with open(os.path.join(data_dir, "server", "tls", "service.key"), "rb") as f:
        key = f.read()
    base = CoreSettings(
        gc=GCSettings(discovery_period=2.0),
        namespace=NamespaceSettings(deletion_grace=0.2),
        nodes=NodeLifecycleSettings(monitor_period=0.5, grace_period=3.0,
                                    startup_grace_period=3.0, eviction_qps=100.0),
        disruption=DisruptionSettings(deletion_timeout=120.0),
        podgc=PodGCSettings(period=1.0, quarantine=2.0))
    return core_manager.core_settings(data_dir=data_dir, apiserver_addresses=[API_ADDRESS],
                                      root_ca_pem=ca, signing_key_pem=key, base=base)


class ControllerThread:
    """All core controllers on their own event loop in a background thread."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.task = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="core-controllers", daemon=True)
        self.started = threading.Event()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._run())
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err
        finally:
            self.started.set()

    async def _run(self) -> None:
        client = Client(load_kubeconfig(self.cluster.kubeconfig))
        ctx = core_manager.new_context(client, settings=core_test_settings(self.cluster.data_dir))
        self.task = asyncio.current_task()
        self.started.set()
        try:
            await core_manager.run_controllers(ctx)
        except asyncio.CancelledError:
            pass
        finally:
            await client.close()

    def start(self) -> None:
        self.thread.start()
        self.started.wait(30)

    def stop(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(20)


@pytest.fixture(scope="module")
def controllers(cluster):
    t = ControllerThread(cluster)
    t.start()
    yield t
    t.stop()
    if t.error is not None and not isinstance(t.error, asyncio.CancelledError):
        raise t.error


@pytest.fixture
def kubectl(cluster, controllers):
    def run(*args, **kw):
        assert controllers.error is None, controllers.error
        return cluster.kubectl(*args, **kw)
    return run


def get_json(kubectl, *args, check=True):
    r = kubectl("get", *args, "-o", "json", check=check)
    return json.loads(r.stdout) if r.returncode == 0 else None


# --- namespaces and service accounts ------------------------------------------------------

def test_every_namespace_gets_default_service_account_and_root_ca(kubectl, cluster):
    name = "sa-" + uuid.uuid4().hex[:6]
    kubectl("create", "namespace", name)
    sa = wait_for(lambda: get_json(kubectl, "serviceaccount", "default", "-n", name,
                                   check=False), what="default service account")
    assert sa["metadata"]["name"] == "default"
    cm = wait_for(lambda: get_json(kubectl, "configmap", "kube-root-ca.crt", "-n", name,
                                   check=False), what="kube-root-ca.crt")
    assert cm["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    # Deleted: recreated.
    kubectl("delete", "serviceaccount", "default", "-n", name)
    wait_for(lambda: get_json(kubectl, "serviceaccount", "default", "-n", name, check=False),
             what="default service account again")


def test_legacy_token_secret_is_filled_in(kubectl, cluster):
    name = "tok-" + uuid.uuid4().hex[:6]
    kubectl("create", "namespace", name)
    wait_for(lambda: get_json(kubectl, "serviceaccount", "default", "-n", name, check=False))
    kubectl("apply", "-n", name, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "default-token",
                     "annotations": {"kubernetes.io/service-account.name": "default"}}}))
    secret = wait_for(lambda: (get_json(kubectl, "secret", "default-token", "-n", name)
                               .get("data") or {}).get("token") and
                      get_json(kubectl, "secret", "default-token", "-n", name),
                      what="token in the secret")
    token = base64.b64decode(secret["data"]["token"]).decode()
    # Only the token: no client certificate from the admin kubeconfig.
    who = kubectl("--kubeconfig", os.devnull, "--server", cluster.url,
                  "--insecure-skip-tls-verify", "--token", token, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == \
        f"system:serviceaccount:{name}:default"


def test_kubectl_delete_namespace_empties_and_removes_it(kubectl):
    name = "del-" + uuid.uuid4().hex[:6]
    kubectl("create", "namespace", name)
    kubectl("create", "configmap", "c1", "--from-literal=a=b", "-n", name)
    kubectl("create", "secret", "generic", "s1", "--from-literal=a=b", "-n", name)
    kubectl("create", "service", "clusterip", "svc", "--tcp=80:80", "-n", name)
    kubectl("run", "p1", "--image=busybox", "-n", name)
    # kubectl waits until the namespace is gone: that needs the controller.
    kubectl("delete", "namespace", name, "--timeout=60s", timeout=90)
    r = kubectl("get", "namespace", name, check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
    # ... and nothing it held is left behind.
    for kind in ("configmaps", "secrets", "services", "pods", "serviceaccounts"):
        left = json.loads(kubectl("get", "--raw", f"/api/v1/namespaces/{name}/{kind}").stdout)
        assert left["items"] == [], (kind, left["items"])


def test_namespace_with_stuck_content_reports_conditions(kubectl):
    name = "stuck-" + uuid.uuid4().hex[:6]
    kubectl("create", "namespace", name)
    kubectl("apply", "-n", name, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))
    kubectl("delete", "namespace", name, "--wait=false")

    def conditions():
        ns = get_json(kubectl, "namespace", name)
        conds = {c["type"]: c for c in ns["status"].get("conditions") or []}
        return conds if "NamespaceFinalizersRemaining" in conds and \
            conds["NamespaceFinalizersRemaining"]["status"] == "True" else None
    conds = wait_for(conditions, what="namespace conditions")
    assert conds["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
        "resource instances")
    assert conds["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: configmaps. has 1 resource instances")
    assert get_json(kubectl, "namespace", name)["status"]["phase"] == "Terminating"
    kubectl("patch", "configmap", "held", "-n", name, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}')
    wait_for(lambda: kubectl("get", "namespace", name, check=False).returncode != 0,
             what="namespace removed")


# --- garbage collection -----------------------------------------------------------------------

def make_chain(kubectl, ns: str, name: str) -> None:
    """Deployment -> ReplicaSet -> Pod, linked by hand with ownerReferences."""
    labels = {"app": name}
    template = {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}}))
    dep = get_json(kubectl, "deployment", name, "-n", ns)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{name}-rs", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
            "uid": dep["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}}))
    rs = get_json(kubectl, "replicaset", f"{name}-rs", "-n", ns)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-pod", "labels": labels, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{name}-rs",
            "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "spec": template["spec"]}))


def gone(kubectl, *args) -> bool:
    return kubectl("get", *args, check=False).returncode != 0


def test_cascading_delete_background(kubectl, ns):
    make_chain(kubectl, ns, "bg")
    kubectl("delete", "deployment", "bg", "-n", ns, "--cascade=background")
    wait_for(lambda: gone(kubectl, "replicaset", "bg-rs", "-n", ns), what="replicaset gone")
    wait_for(lambda: gone(kubectl, "pod", "bg-pod", "-n", ns), what="pod gone")


def test_cascading_delete_foreground(kubectl, ns):
    make_chain(kubectl, ns, "fg")
    # kubectl waits for the Deployment itself to disappear, which the collector allows
    # only once the ReplicaSet, and before it the Pod, are gone.
    kubectl("delete", "deployment", "fg", "-n", ns, "--cascade=foreground", "--timeout=60s",
            timeout=90)
    assert gone(kubectl, "deployment", "fg", "-n", ns)
    assert gone(kubectl, "replicaset", "fg-rs", "-n", ns)
    assert gone(kubectl, "pod", "fg-pod", "-n", ns)


def test_foreground_deletion_is_visible_while_dependents_remain(kubectl, ns, pyclient):
    import kubernetes
    make_chain(kubectl, ns, "hold")
    kubectl("patch", "pod", "hold-pod", "-n", ns, "--type=merge",
            "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    apps = kubernetes.client.AppsV1Api(pyclient)
    apps.delete_namespaced_deployment("hold", ns, propagation_policy="Foreground")

    def waiting():
        dep = get_json(kubectl, "deployment", "hold", "-n", ns, check=False)
        return dep if dep and dep["metadata"].get("deletionTimestamp") else None
    dep = wait_for(waiting)
    assert "foregroundDeletion" in dep["metadata"]["finalizers"]
    wait_for(lambda: (get_json(kubectl, "replicaset", "hold-rs", "-n", ns) or {})
             ["metadata"].get("deletionTimestamp"), what="replicaset in foreground deletion")
    assert not gone(kubectl, "deployment", "hold", "-n", ns)
    kubectl("patch", "pod", "hold-pod", "-n", ns, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}')
    wait_for(lambda: gone(kubectl, "deployment", "hold", "-n", ns), what="deployment gone")
    assert gone(kubectl, "replicaset", "hold-rs", "-n", ns)


def test_cascading_delete_orphan(kubectl, ns):
    make_chain(kubectl, ns, "or")
    kubectl("delete", "deployment", "or", "-n", ns, "--cascade=orphan", "--timeout=60s",
            timeout=90)
    assert gone(kubectl, "deployment", "or", "-n", ns)
    rs = get_json(kubectl, "replicaset", "or-rs", "-n", ns)
    assert not rs["metadata"].get("ownerReferences")
    pod = get_json(kubectl, "pod", "or-pod", "-n", ns)
    assert pod["metadata"]["ownerReferences"][0]["name"] == "or-rs"


def test_custom_resources_are_collected(kubectl, ns):
    group = f"gc{uuid.uuid4().hex[:6]}.example.com"
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]}}))
    wait_for(lambda: kubectl("get", f"widgets.{group}", "-n", ns, check=False).returncode == 0,
             what="CRD served")
    kubectl("create", "configmap", "owner", "-n", ns)
    owner = get_json(kubectl, "configmap", "owner", "-n", ns)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": f"{group}/v1", "kind": "Widget",
        "metadata": {"name": "w", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner["metadata"]["uid"]}]}}))
    kubectl("delete", "configmap", "owner", "-n", ns)
    wait_for(lambda: gone(kubectl, f"widgets.{group}", "w", "-n", ns), timeout=40,
             what="custom resource collected")


# --- endpoints ------------------------------------------------------------------------------

# Test nodes have no kubelet: after the (short) grace period they turn Unknown and
# get tainted; pods that tolerate that stay put, as daemon pods do.
TOLERATE_SILENT_NODE = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute"},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute"}]


def node_manifest(name: str, zone: str = "z1") -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "topology.kubernetes.io/zone": zone}}}


@pytest.fixture
def make_node(kubectl):
    """Creates a Node (no kubelet), deleted after the test whatever its outcome: one left
    behind turns Unknown and counts against its zone's health in the tests after."""
    made = []

    def make(name: str) -> None:
        kubectl("apply", "-f", "-", input=json.dumps(node_manifest(name)))
        made.append(name)
    yield make
    if made:
        kubectl("delete", "node", *made, "--ignore-not-found", check=False)


def renew_lease(pyclient, name: str) -> None:
    import kubernetes
    from datetime import datetime, timezone
    coord = kubernetes.client.CoordinationV1Api(pyclient)
    now = datetime.now(timezone.utc)
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
    try:
        lease = coord.read_namespaced_lease(name, "kube-node-lease")
        lease.spec.renew_time = now
        coord.replace_namespaced_lease(name, "kube-node-lease", lease)
    except kubernetes.client.ApiException as err:
        if err.status != 404:
            raise
        coord.create_namespaced_lease("kube-node-lease", body)


@contextlib.contextmanager
def kubelets(pyclient, names: set):
    """While the block runs, renew the Lease of every node in ``names`` each 0.5 s (well
    within the 3 s grace), as its kubelet would; discard a name to silence that node."""
    stop = threading.Event()

    def beat():
        while not stop.wait(0.5):
            for name in list(names):
                try:
                    renew_lease(pyclient, name)
                except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as err:
                    log.info("renewing lease %s failed (the next beat retries): %s", name, err)
    thread = threading.Thread(target=beat, name="test-kubelets", daemon=True)
    thread.start()
    try:
        yield names
    finally:
        stop.set()
        thread.join(30)


def set_node_ready(pyclient, name: str) -> None:
    import kubernetes
    from datetime import datetime, timezone
    core = kubernetes.client.CoreV1Api(pyclient)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    core.patch_node_status(name, {"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
        "lastTransitionTime": now}]}})


def set_pod_status(pyclient, ns: str, name: str, *, ip: str, ready: bool) -> None:
    import kubernetes
    core = kubernetes.client.CoreV1Api(pyclient)
    status = "True" if ready else "False"
    core.patch_namespaced_pod_status(name, ns, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status},
                       {"type": "ContainersReady", "status": status}]}})


def test_endpoints_follow_pod_readiness(kubectl, ns, pyclient, make_node):
    node = "ep-" + uuid.uuid4().hex[:6]
    make_node(node)
    renew_lease(pyclient, node)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "hostname": "web-0", "subdomain": "web",
                 "tolerations": TOLERATE_SILENT_NODE,
                 "containers": [{"name": "c", "image": "nginx",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]}}))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))
    set_pod_status(pyclient, ns, "web-0", ip="10.42.7.7", ready=False)

    def endpoints(field):
        ep = get_json(kubectl, "endpoints", "web", "-n", ns, check=False)
        subsets = (ep or {}).get("subsets") or []
        return subsets if subsets and subsets[0].get(field) else None
    subsets = wait_for(lambda: endpoints("notReadyAddresses"), what="not ready address")
    assert subsets[0]["notReadyAddresses"][0]["ip"] == "10.42.7.7"
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]

    set_pod_status(pyclient, ns, "web-0", ip="10.42.7.7", ready=True)
    subsets = wait_for(lambda: endpoints("addresses"), what="ready address")
    assert subsets[0]["addresses"][0]["targetRef"]["name"] == "web-0"
    assert "notReadyAddresses" not in subsets[0]

    def slice_ready():
        slices = get_json(kubectl, "endpointslices", "-n", ns,
                          "-l", "kubernetes.io/service-name=web")["items"]
        eps = [e for s in slices for e in s.get("endpoints") or []]
        return slices if eps and eps[0]["conditions"]["ready"] else None
    (eps,) = wait_for(slice_ready, what="ready endpoint in the slice")
    assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert eps["metadata"]["ownerReferences"][0]["name"] == "web"
    assert eps["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    (endpoint,) = eps["endpoints"]
    assert endpoint["addresses"] == ["10.42.7.7"]
    assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert endpoint["nodeName"] == node and endpoint["zone"] == "z1"


def test_selectorless_endpoints_are_mirrored(kubectl, ns):
    kubectl("create", "service", "clusterip", "ext", "--tcp=5432:5432", "-n", ns)
    kubectl("patch", "service", "ext", "-n", ns, "--type=json",
            "-p", '[{"op":"remove","path":"/spec/selector"}]', check=False)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "192.0.2.44"}],
                     "ports": [{"name": "5432-5432", "port": 5432, "protocol": "TCP"}]}]}))

    def mirrored():
        items = get_json(kubectl, "endpointslices", "-n", ns, "-l",
                         "endpointslice.kubernetes.io/managed-by="
                         "endpointslicemirroring-controller.k8s.io")["items"]
        return items or None
    (eps,) = wait_for(mirrored, what="mirrored slice")
    assert eps["endpoints"] == [{"addresses": ["192.0.2.44"], "conditions": {"ready": True}}]


def test_kubernetes_service_endpoints_point_at_the_api_server(kubectl):
    ep = wait_for(lambda: get_json(kubectl, "endpoints", "kubernetes", "-n", "default",
                                   check=False), what="kubernetes endpoints")
    assert ep["subsets"] == [{"addresses": [{"ip": API_ADDRESS}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    eps = wait_for(lambda: get_json(kubectl, "endpointslice", "kubernetes", "-n", "default",
                                    check=False), what="kubernetes endpointslice")
    assert eps["endpoints"][0]["addresses"] == [API_ADDRESS]


# --- nodes ---------------------------------------------------------------------------------------

def test_silent_node_turns_unknown_and_its_pods_are_evicted(kubectl, ns, pyclient, make_node):
    alive, dead = "alive-" + uuid.uuid4().hex[:5], "dead-" + uuid.uuid4().hex[:5]
    # Both nodes' kubelets run until the pod is set up, however long that takes: the dead
    # node must turn Unknown only once its pod is Ready, for the pod to be marked not ready.
    with kubelets(pyclient, set()) as beating:
        for n in (alive, dead):
            make_node(n)
            set_node_ready(pyclient, n)
            renew_lease(pyclient, n)
            beating.add(n)
        cidr = wait_for(lambda: get_json(kubectl, "node", dead)["spec"].get("podCIDR"),
                        what="pod CIDR")
        assert cidr.startswith("10.42.") and cidr.endswith("/24")
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
            "spec": {"nodeName": dead, "containers": [{"name": "c", "image": "busybox"}],
                     "tolerations": [{"key": "node.kubernetes.io/unreachable",
                                      "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": 2}]}}))
        set_pod_status(pyclient, ns, "victim", ip="10.42.9.9", ready=True)
        beating.discard(dead)    # only the dead node falls silent

        def dead_and_tainted():
            node = get_json(kubectl, "node", dead)
            ready = {c["type"]: c for c in node["status"]["conditions"]}["Ready"]
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
            if ready["status"] == "Unknown" and \
                    ("node.kubernetes.io/unreachable", "NoExecute") in taints:
                return node
            return None
        node = wait_for(dead_and_tainted, timeout=40, what="node Unknown and tainted")
        ready = {c["type"]: c for c in node["status"]["conditions"]}["Ready"]
        assert ready["reason"] == "NodeStatusUnknown"
        assert ready["message"] == "Kubelet stopped posting node status."

        def evicted():
            pod = get_json(kubectl, "pod", "victim", "-n", ns, check=False)
            return pod is None or pod["metadata"].get("deletionTimestamp")
        wait_for(evicted, timeout=30, what="pod evicted")
        pod = get_json(kubectl, "pod", "victim", "-n", ns, check=False)
        if pod is not None:
            conds = {c["type"]: c for c in pod["status"]["conditions"]}
            assert conds["DisruptionTarget"]["reason"] == "DeletionByTaintManager"
            assert conds["Ready"]["status"] == "False"
        alive_node = get_json(kubectl, "node", alive)
        assert {c["type"]: c for c in alive_node["status"]["conditions"]}["Ready"]["status"] == \
            "True"


# --- volumes ---------------------------------------------------------------------------------

def test_pvc_gets_a_local_path_volume(kubectl, ns, pyclient, make_node):
    node = "vol-" + uuid.uuid4().hex[:6]
    make_node(node)
    wait_for(lambda: get_json(kubectl, "storageclass", "local-path", check=False),
             what="local-path storage class")
    sc = get_json(kubectl, "storageclass", "local-path")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                 "resources": {"requests": {"storage": "1Gi"}}}}))
    events = wait_for(lambda: [e for e in get_json(kubectl, "events", "-n", ns)["items"]
                               if e["reason"] == "WaitForFirstConsumer"],
                      what="WaitForFirstConsumer event")
    assert events[0]["message"] == "waiting for first consumer to be created before binding"
    assert get_json(kubectl, "pvc", "data", "-n", ns)["status"]["phase"] == "Pending"
    # The scheduler picks a node for the first consumer.
    kubectl("annotate", "pvc", "data", "-n", ns, f"volume.kubernetes.io/selected-node={node}")
    pvc = wait_for(lambda: (lambda p: p if p["status"].get("phase") == "Bound" else None)(
        get_json(kubectl, "pvc", "data", "-n", ns)), what="claim bound")
    pv = get_json(kubectl, "pv", pvc["spec"]["volumeName"])
    assert pv["metadata"]["name"] == f"pvc-{pvc['metadata']['uid']}"
    assert pv["spec"]["hostPath"]["path"].endswith(f"_{ns}_data")
    assert "/storage/" in pv["spec"]["hostPath"]["path"]
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0][
        "values"] == [node]
    assert pv["status"]["phase"] == "Bound"
    assert pvc["status"]["capacity"] == {"storage": "1Gi"}
    # Deleting the claim releases the volume; a helper pod cleans it on its node.
    kubectl("delete", "pvc", "data", "-n", ns, "--wait=false")
    helper = f"helper-pod-delete-{pv['metadata']['name']}"
    wait_for(lambda: get_json(kubectl, "pod", helper, "-n", "kube-system", check=False),
             what="helper pod")
    import kubernetes
    kubernetes.client.CoreV1Api(pyclient).patch_namespaced_pod_status(
        helper, "kube-system", {"status": {"phase": "Succeeded"}})
    wait_for(lambda: gone(kubectl, "pv", pv["metadata"]["name"]), what="volume deleted")


# --- disruption ---------------------------------------------------------------------------------

def test_pdb_status_counts_healthy_pods(kubectl, ns, pyclient, make_node):
    node = "pdb-" + uuid.uuid4().hex[:6]
    make_node(node)
    for i in range(3):
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"db-{i}", "labels": {"app": "db"}},
            "spec": {"nodeName": node, "tolerations": TOLERATE_SILENT_NODE,
                     "containers": [{"name": "c", "image": "busybox"}]}}))
        set_pod_status(pyclient, ns, f"db-{i}", ip=f"10.42.8.{i + 1}", ready=True)
    kubectl("create", "poddisruptionbudget", "db", "-n", ns, "--selector=app=db",
            "--min-available=2")

    def status():
        pdb = get_json(kubectl, "pdb", "db", "-n", ns)
        st = pdb.get("status") or {}
        # The first status may predate the controller seeing the last pod Ready.
        return st if st.get("expectedPods") == 3 and st.get("observedGeneration") \
            and st.get("currentHealthy") == 3 else None
    st = wait_for(status, what="pdb status with 3 healthy pods")
    assert (st["desiredHealthy"], st["disruptionsAllowed"]) == (2, 1)
    cond = {c["type"]: c for c in st["conditions"]}["DisruptionAllowed"]
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")
    set_pod_status(pyclient, ns, "db-2", ip="10.42.8.3", ready=False)

    def blocked():
        st = get_json(kubectl, "pdb", "db", "-n", ns)["status"]
        return st if st["disruptionsAllowed"] == 0 else None
    st = wait_for(blocked, what="no disruptions allowed")
    assert st["currentHealthy"] == 2
    # The eviction check the API server runs refuses a ready pod now.
    from pyk8s.controllers.disruption import pdb_allows_eviction
    pod = get_json(kubectl, "pod", "db-0", "-n", ns)
    allowed, message = pdb_allows_eviction(pod, [get_json(kubectl, "pdb", "db", "-n", ns)])
    assert not allowed
    assert message == "Cannot evict pod as it would violate the pod's disruption budget."


# --- jobs and quotas ------------------------------------------------------------------------------

def test_finished_job_is_deleted_after_its_ttl(kubectl, ns, pyclient):
    import kubernetes
    from datetime import datetime, timezone
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"ttlSecondsAfterFinished": 1, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubernetes.client.BatchV1Api(pyclient).patch_namespaced_job_status("once", ns, {"status": {
        "startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True",
                        "lastTransitionTime": now},
                       {"type": "Complete", "status": "True", "lastTransitionTime": now}]}})
    wait_for(lambda: gone(kubectl, "job", "once", "-n", ns), what="job deleted")


def test_quota_usage_drops_when_objects_go(kubectl, ns):
    kubectl("create", "quota", "q", "-n", ns, "--hard=configmaps=10,secrets=10")
    kubectl("create", "configmap", "one", "-n", ns)
    kubectl("create", "configmap", "two", "-n", ns)

    def used(n):
        q = get_json(kubectl, "quota", "q", "-n", ns)
        u = (q.get("status") or {}).get("used") or {}
        return u if u.get("configmaps") == n else None

    def counted():
        # Usage is refreshed in the background after each create: wait until it counts
        # every configmap there is (ours and the namespace's kube-root-ca.crt).
        names = {c["metadata"]["name"] for c in get_json(kubectl, "configmaps", "-n", ns)["items"]}
        return {"one", "two", "kube-root-ca.crt"} <= names and used(str(len(names))) and len(names)
    base = wait_for(counted, what="quota usage counting every configmap")
    kubectl("delete", "configmap", "one", "-n", ns)
    wait_for(lambda: used(str(base - 1)), what="usage replenished")
