"""Probes and the environment on a real node (containerd), as kubectl shows them."""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess

import pytest

from .conftest import SUBNET, _wait
from .test_node import apply, get, read_logs, wait_phase

pytestmark = pytest.mark.root


def condition(p: dict, kind: str) -> str | None:
    return next((c["status"] for c in p["status"].get("conditions") or []
                 if c["type"] == kind), None)


def test_readiness_gates_the_ready_condition(cluster, kubelet, ns):
    # the probe passes only once the test has made the file: the pod stays not
    # ready until then, however late its Running status arrives
    apply(cluster, ns, kubelet, "slow", [{
        "name": "app", "image": "busybox", "command": ["sleep", "3600"],
        "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]},
                           "periodSeconds": 1}}])
    p = wait_phase(cluster, ns, "slow", ("Running",))
    assert condition(p, "Ready") == "False"
    assert p["status"]["containerStatuses"][0]["ready"] is False
    cluster.kubectl("exec", "slow", "-n", ns, "--", "touch", "/tmp/ready")

    def ready():
        q = get(cluster, ns, "slow")
        return q if condition(q, "Ready") == "True" else None
    q = _wait(ready, timeout=30, what="the pod to become Ready", interval=0.5)
    assert condition(q, "ContainersReady") == "True"
    assert q["status"]["containerStatuses"][0]["ready"] is True


def _subnet_routes() -> int:
    out = subprocess.run(["ip", "route", "show", SUBNET], capture_output=True, text=True)
    return len([line for line in out.stdout.splitlines() if line.strip()])


def test_http_readiness_probes_reach_nginx_on_its_pod_ip(cluster, kubelet, ns):
    if _subnet_routes() > 1:
        # another node test on this machine put up a bridge with the same subnet:
        # the host's route to pod IPs may lead to the other bridge
        pytest.skip(f"{SUBNET} is routed to several bridges; pod IPs are ambiguous")
    apply(cluster, ns, kubelet, "web", [{
        "name": "nginx", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        # the pod's network may take a moment after start: no early restarts
        "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 2,
                          "initialDelaySeconds": 10, "failureThreshold": 5}}])

    def ready():
        q = get(cluster, ns, "web")
        return q if condition(q, "Ready") == "True" else None
    try:
        q = _wait(ready, timeout=60, what="nginx to become Ready", interval=0.5)
    except AssertionError:
        raise AssertionError(cluster.kubectl("get", "events", "-n", ns).stdout) from None
    assert q["status"]["containerStatuses"][0]["restartCount"] == 0


def test_a_failing_liveness_probe_restarts_the_container(cluster, kubelet, ns):
    script = "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600"
    apply(cluster, ns, kubelet, "sick", [{
        "name": "app", "image": "busybox", "command": ["sh", "-c", script],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                          "periodSeconds": 1, "failureThreshold": 1}}],
          terminationGracePeriodSeconds=1)

    def restarted():
        q = get(cluster, ns, "sick")
        statuses = q["status"].get("containerStatuses") or []
        return q if statuses and statuses[0].get("restartCount", 0) >= 1 else None
    _wait(restarted, timeout=60, what="a liveness restart", interval=0.5)

    def events():  # written in the background: poll for both
        out = cluster.json("get", "events", "-n", ns,
                           "--field-selector", "involvedObject.name=sick")
        messages = [e.get("message", "") for e in out["items"]]
        return messages if any("failed liveness probe, will be restarted" in m
                               for m in messages) and any(
            m.startswith("Liveness probe failed: cat:") for m in messages) else None
    messages = _wait(events, timeout=60, what="the liveness events", interval=0.5)
    assert "Container app failed liveness probe, will be restarted" in messages
    assert any(m.startswith("Liveness probe failed: cat: can't open '/tmp/healthy'")
               for m in messages), messages


def test_environment_from_a_config_map_shows_in_the_logs(cluster, kubelet, ns):
    cluster.kubectl("create", "configmap", "settings", "-n", ns,
                    "--from-literal=color=blue", "--from-literal=size=XL")
    script = ('echo "color=$COLOR size=$CFG_size pod=$POD_NAME ip=$POD_IP '
              'k8s=$KUBERNETES_SERVICE_HOST"')
    apply(cluster, ns, kubelet, "env", [{
        "name": "app", "image": "busybox", "command": ["sh", "-c", script],
        "args": [],
        "env": [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                                    "key": "color"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}]}],
          restartPolicy="Never")
    wait_phase(cluster, ns, "env", ("Succeeded", "Failed"))
    code, text = read_logs(kubelet, ns, "env", "app")
    assert code == 200, text
    service = cluster.kubectl("get", "service", "kubernetes", "-n", "default", "-o", "json",
                              check=False)
    k8s = json.loads(service.stdout)["spec"]["clusterIP"] if service.returncode == 0 else ""
    prefix, ip, rest = re.fullmatch(r"(color=blue size=XL pod=env) ip=(\S+) (.*)\n",
                                    text).groups()
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)
    assert rest == f"k8s={k8s}"
