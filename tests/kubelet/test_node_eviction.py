"""A real node put under disk pressure: restarted with `--eviction-hard
nodefs.available<99.99%` (always crossed), it reports DiskPressure, evicts the
BestEffort pod it was running and refuses new pods, as a user sees it with kubectl.
The node is its own (another pod subnet) so no other test's pod is evicted.
"""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from pyk8s.kubelet import node as nodemod

from .conftest import IP_FORWARD, KubeletProcess, _wait

pytestmark = pytest.mark.root
SUBNET = "10.42.246.0/24"


@pytest.fixture(scope="module")
def pressured(cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("eviction")
    forward_before = IP_FORWARD.read_text().strip()
    kubelet = KubeletProcess(base, cluster, subnet=SUBNET)
    try:
        kubelet.start()
        yield kubelet
    finally:
        kubelet.stop()
        cluster.kubectl("delete", "node", kubelet.name, "--wait=false", check=False)
        asyncio.run(nodemod.reset_node(kubelet.data_dir, bridge=kubelet.bridge,
                                       cgroup_root=kubelet.cgroup_root))
        if IP_FORWARD.read_text().strip() != forward_before:
            IP_FORWARD.write_text(forward_before)


def run_pod(cluster, kubelet, ns: str, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": kubelet.name, "automountServiceAccountToken": False,
                     "containers": [{"name": "sh", "image": "busybox",
                                     "command": ["sleep", "3600"]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def test_a_best_effort_pod_is_evicted_while_the_node_reports_disk_pressure(cluster,
                                                                          pressured):
    kubelet = pressured
    ns = "ev-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "serviceaccount", "default", "-n", ns, check=False)
    run_pod(cluster, kubelet, ns, "victim")
    _wait(lambda: cluster.json("get", "pod", "victim", "-n", ns)["status"].get("phase")
          == "Running", timeout=60, what="the pod to run")
    kubelet.stop()
    kubelet.extra_args = ["--eviction-hard", "nodefs.available<99.99%"]
    kubelet.start()

    def evicted():
        p = cluster.json("get", "pod", "victim", "-n", ns)
        return p if p["status"].get("reason") == "Evicted" else None

    p = _wait(evicted, timeout=60, what="the pod to be evicted", interval=0.5)
    assert p["status"]["phase"] == "Failed"
    message = p["status"]["message"]
    assert message.startswith("The node was low on resource: ephemeral-storage. "
                              "Threshold quantity: "), message
    assert ", available: " in message
    target = next(c for c in p["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert target["reason"] == "TerminationByKubelet" and target["message"] == message
    _wait(lambda: "terminated" in cluster.json("get", "pod", "victim", "-n", ns)["status"]
          ["containerStatuses"][0]["state"], timeout=30, what="the container to stop")

    def pressure():
        node = cluster.json("get", "node", kubelet.name)
        c = next(c for c in node["status"]["conditions"] if c["type"] == "DiskPressure")
        return c if c["status"] == "True" else None

    c = _wait(pressure, timeout=30, what="DiskPressure on the node", interval=0.5)
    assert c["reason"] == "KubeletHasDiskPressure"
    assert c["message"] == "kubelet has disk pressure"

    def evicted_event():  # the kubelet writes its events in the background
        events = cluster.json("get", "events", "-n", ns, "--field-selector",
                              "involvedObject.name=victim")["items"]
        return any(e["reason"] == "Evicted" and e["type"] == "Warning"
                   and e["message"] == message for e in events)
    _wait(evicted_event, timeout=30, what="the Evicted event", interval=0.5)

    # a new pod is refused while the node is under disk pressure
    run_pod(cluster, kubelet, ns, "late")
    late = _wait(lambda: (lambda p: p if p["status"].get("phase") == "Failed" else None)(
        cluster.json("get", "pod", "late", "-n", ns)), timeout=60,
        what="the new pod to be refused", interval=0.5)
    assert late["status"]["reason"] == "Evicted"
    assert late["status"]["message"] == \
        "Pod was rejected: The node had condition: [DiskPressure]. "
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
