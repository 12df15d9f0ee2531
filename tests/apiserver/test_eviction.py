"""pods/eviction honours PodDisruptionBudgets, as `kubectl drain` relies on."""
import json

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException


def running_ready_pod(cluster, ns, name):
    cluster.kubectl("run", name, "--image=busybox", "--restart=Never", "-l", "app=db",
                    "-n", ns, "--overrides",
                    '{"spec":{"nodeName":"node-x","automountServiceAccountToken":false}}')
    cluster.kubectl("patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True"}]}}))


def pdb_with_status(cluster, ns, allowed):
    cluster.kubectl("create", "pdb", "db", "-n", ns, "--selector=app=db", "--min-available=1")
    gen = json.loads(cluster.kubectl("get", "pdb", "db", "-n", ns, "-o", "json").stdout)[
        "metadata"]["generation"]
    # What the disruption controller would report.
    cluster.kubectl("patch", "pdb", "db", "-n", ns, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {
                        "observedGeneration": gen, "currentHealthy": 1 + allowed,
                        "desiredHealthy": 1, "expectedPods": 1 + allowed,
                        "disruptionsAllowed": allowed}}))


def evict(client, ns, name):
    return k8s.CoreV1Api(client).create_namespaced_pod_eviction(name, ns, k8s.V1Eviction(
        metadata=k8s.V1ObjectMeta(name=name, namespace=ns)))


def test_eviction_refused_when_it_breaks_a_budget(cluster, client, ns):
    running_ready_pod(cluster, ns, "db-0")
    pdb_with_status(cluster, ns, allowed=0)
    with pytest.raises(ApiException) as err:
        evict(client, ns, "db-0")
    assert err.value.status == 429
    assert "Cannot evict pod as it would violate the pod's disruption budget." in err.value.body
    assert cluster.kubectl("get", "pod", "db-0", "-n", ns, check=False).returncode == 0


def test_eviction_allowed_within_the_budget(cluster, client, ns):
    running_ready_pod(cluster, ns, "db-0")
    pdb_with_status(cluster, ns, allowed=1)
    evict(client, ns, "db-0")
    pdb = json.loads(cluster.kubectl("get", "pdb", "db", "-n", ns, "-o", "json").stdout)
    assert pdb["status"]["disruptionsAllowed"] == 0
    assert "db-0" in pdb["status"]["disruptedPods"]
    pod = cluster.kubectl("get", "pod", "db-0", "-n", ns, "-o", "json", check=False)
    if pod.returncode == 0:  # scheduled pods terminate gracefully
        conds = json.loads(pod.stdout)["status"]["conditions"]
        assert any(c["type"] == "DisruptionTarget" for c in conds)
