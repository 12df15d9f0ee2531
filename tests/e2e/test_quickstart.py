"""The README quick start, run as a new user would: `pyk8s server`, then kubectl.

Real containerd, CNI, nftables and DNS: root only. Traffic goes only to the pods
and Service this test creates (their addresses are on this machine's pod bridge
and redirected locally by kube-proxy's rules), and the node is reset afterwards.
"""
import json
import re
import subprocess

import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.root


def test_nginx_behind_a_service_answers(server):
    kubectl = server
    kubectl("create", "deployment", "nginx", "--image=nginx", "--replicas=2")
    kubectl("expose", "deployment", "nginx", "--port=80")
    kubectl("rollout", "status", "deployment/nginx", "--timeout=90s", timeout=100)
    pods = json.loads(kubectl("get", "pods", "-l", "app=nginx", "-o", "json").stdout)
    ips = [p["status"]["podIP"] for p in pods["items"]]
    assert len(ips) == 2 and all(ip.startswith("10.42.") for ip in ips)
    cluster_ip = kubectl("get", "svc", "nginx", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert cluster_ip.startswith("10.43.")

    def curl():
        r = subprocess.run(["curl", "-s", "-m", "5", f"http://{cluster_ip}/"],
                           capture_output=True, text=True)
        return "Welcome to nginx!" in r.stdout
    wait_for(curl, "the ClusterIP to answer", 30)
    # the pod kubectl picks may not be the one that answered: its start-up notices
    # are written by nginx itself, after the container is reported running
    wait_for(lambda: "nginx" in kubectl("logs", "deployment/nginx").stdout,
             "nginx's own lines in kubectl logs", 30)


def test_pods_resolve_services_by_name(server):
    kubectl = server
    wait_for(lambda: kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=nginx",
                             "-o", "name", check=False).stdout.strip(), "nginx endpoints")
    kubectl("run", "client", "--image=busybox", "--restart=Never", "--",
            "sh", "-c", "wget -qO- http://nginx && nslookup nginx.default.svc.cluster.local")

    def done():
        phase = kubectl("get", "pod", "client", "-o", "jsonpath={.status.phase}",
                        check=False).stdout
        return phase if phase in ("Succeeded", "Failed") else None
    phase = wait_for(done, "the client pod to finish")
    out = kubectl("logs", "client").stdout
    assert phase == "Succeeded", out
    assert "Welcome to nginx!" in out
    assert "10.43." in out  # nslookup answered with the ClusterIP


def test_scale_and_rolling_update_with_rollback(server):
    kubectl = server
    kubectl("scale", "deployment/nginx", "--replicas=3")
    kubectl("rollout", "status", "deployment/nginx", "--timeout=90s", timeout=100)
    kubectl("set", "image", "deployment/nginx", "nginx=nginx:1.22")
    kubectl("rollout", "status", "deployment/nginx", "--timeout=90s", timeout=100)
    history = kubectl("rollout", "history", "deployment/nginx").stdout
    assert "2" in history.split()
    kubectl("rollout", "undo", "deployment/nginx")
    kubectl("rollout", "status", "deployment/nginx", "--timeout=90s", timeout=100)
    image = kubectl("get", "deploy", "nginx", "-o",
                    "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == "nginx"


def test_crash_loop_back_off_and_previous_logs(server):
    kubectl = server
    kubectl("run", "crash", "--image=busybox", "--", "sh", "-c", "echo boom $(date +%s%N); exit 3")

    def backing_off():
        out = kubectl("get", "pod", "crash", check=False).stdout
        return "CrashLoopBackOff" in out and out
    wait_for(backing_off, "CrashLoopBackOff", 120)
    pod = json.loads(kubectl("get", "pod", "crash", "-o", "json").stdout)
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    previous = kubectl("logs", "crash", "--previous").stdout
    assert previous.startswith("boom ")
    kubectl("delete", "pod", "crash", "--grace-period=1")


def test_logs_follow_until_the_container_ends(server):
    kubectl = server
    kubectl("run", "counter", "--image=busybox", "--restart=Never", "--",
            "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 1; done")
    wait_for(lambda: kubectl("get", "pod", "counter", "-o", "jsonpath={.status.phase}",
                             check=False).stdout in ("Running", "Succeeded"), "counter to start")
    out = kubectl("logs", "-f", "counter", timeout=60).stdout
    assert out.split("\n")[:3] == ["line 1", "line 2", "line 3"]
    assert kubectl("logs", "counter", "--tail=1").stdout.strip() == "line 3"


def test_drain_evicts_and_uncordon_brings_pods_back(server):
    kubectl = server
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout
    try:
        out = kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                      "--force", "--timeout=90s", timeout=120).stdout
        assert f"node/{node} cordoned" in out and "evicting pod default/nginx-" in out
        assert kubectl("get", "node", node, "-o",
                       "jsonpath={.spec.unschedulable}").stdout == "true"
        evicted = set(re.findall(r"evicting pod default/(nginx-\S+)", out))
    finally:  # the session's only node: later tests need it schedulable
        kubectl("uncordon", node, check=False)
    replicas = int(kubectl("get", "deployment", "nginx", "-o",
                           "jsonpath={.spec.replicas}").stdout)

    # The Deployment's status may still be the one from before the drain (its
    # controller writes it after the ReplicaSet's): wait for the pods themselves.
    def back():
        items = json.loads(kubectl("get", "pods", "-l", "app=nginx", "-o", "json").stdout)
        ready = [p for p in items["items"] if p["metadata"]["name"] not in evicted
                 and not p["metadata"].get("deletionTimestamp")
                 and any(c["type"] == "Ready" and c["status"] == "True"
                         for c in p["status"].get("conditions") or [])]
        return len(ready) == replicas
    wait_for(back, f"{replicas} new nginx pods to be Ready after the uncordon", 90)
    kubectl("rollout", "status", "deployment/nginx", "--timeout=90s", timeout=100)


def test_drain_respects_a_disruption_budget(server):
    kubectl = server
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout
    kubectl("create", "pdb", "nginx", "--selector=app=nginx", "--min-available=100%")
    try:
        wait_for(lambda: kubectl("get", "pdb", "nginx", "-o",
                                 "jsonpath={.status.observedGeneration}").stdout == "1",
                 "the disruption controller to observe the budget")
        r = kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
                    "--pod-selector=app=nginx", "--timeout=8s", check=False, timeout=60)
        assert r.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in r.stderr
        assert len(kubectl("get", "pods", "-l", "app=nginx", "-o", "name").stdout.split()) >= 2
    finally:  # the drain cordoned the session's only node, whatever it evicted
        kubectl("uncordon", node, check=False)
        kubectl("delete", "pdb", "nginx", "--ignore-not-found", check=False)
