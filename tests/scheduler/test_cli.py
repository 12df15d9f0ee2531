"""The scheduler as users start it: ``pyk8s server --scheduler-config FILE`` and
``pyk8s scheduler --config FILE --hostname-override NAME``, observed through kubectl."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest

from support.cluster import KUBECTL, free_port, stop_process

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")]

TWO_PROFILES = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: {leader_elect}
  resourceName: {lease}
  leaseDuration: 15s
  renewDeadline: 10s
  retryPeriod: 2s
profiles:
- schedulerName: {first}
- schedulerName: {packer}
  plugins:
    score:
      disabled: [{{name: "*"}}]
      enabled: [{{name: NodeResourcesFit, weight: 5}}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy: {{type: MostAllocated}}
"""


def poll(fn, what: str, deadline: float = 60.0):
    end = time.monotonic() + deadline
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Kubectl:
    def __init__(self, kubeconfig: str, home: str):
        self.env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=home)

    def __call__(self, *args, check=True, input=None) -> subprocess.CompletedProcess:
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=self.env, timeout=60, input=input)
        assert not check or r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r

    def json(self, *args):
        return json.loads(self(*args, "-o", "json").stdout)


def add_node(kubectl: Kubectl, name: str, cpu: str) -> None:
    status = {"capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
              "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
              "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
    kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": name, "labels": {"kubernetes.io/hostname": name}}, "status": status}))
    kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))
    # Admission taints a new node not-ready; with no node lifecycle controller (the
    # bare API server) or before it runs, lift the taint as that controller would.
    kubectl("patch", "node", name, "--type=merge", "-p", '{"spec":{"taints":null}}')


def add_pod(kubectl: Kubectl, ns: str, name: str, scheduler: str) -> None:
    kubectl("create", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"schedulerName": scheduler, "containers": [
            {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}]}}))


def node_of(kubectl: Kubectl, ns: str, name: str) -> str:
    return poll(lambda: kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.spec.nodeName}").stdout,
                f"pod {name} to be bound")


def scheduled_event(kubectl: Kubectl, ns: str, pod: str) -> dict:
    def find():
        for ev in kubectl.json("get", "events.v1.events.k8s.io", "-n", ns)["items"]:
            if ev.get("reason") == "Scheduled" and (ev.get("regarding") or {}).get("name") == pod:
                return ev
        return None
    return poll(find, f"the Scheduled event of {pod}")


def core_scheduled_event(kubectl: Kubectl, ns: str, pod: str) -> dict:
    return next(ev for ev in kubectl.json("get", "events", "-n", ns)["items"]
                if ev.get("reason") == "Scheduled" and ev["involvedObject"]["name"] == pod)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        stop_process(proc, 30)


def check_two_profiles(kubectl: Kubectl, ns: str, first: str, packer: str) -> None:
    add_node(kubectl, f"{ns}-small", "2")
    add_node(kubectl, f"{ns}-large", "16")
    add_pod(kubectl, ns, "spread", first)
    add_pod(kubectl, ns, "packed", packer)
    # The first profile is upstream's default (LeastAllocated), the second packs
    # (MostAllocated): each pod's placement shows which profile scheduled it.
    assert node_of(kubectl, ns, "spread") == f"{ns}-large"
    assert node_of(kubectl, ns, "packed") == f"{ns}-small"
    for pod, profile, node in (("spread", first, "large"), ("packed", packer, "small")):
        ev = scheduled_event(kubectl, ns, pod)
        assert ev["reportingController"] == profile
        assert ev["note"] == f"Successfully assigned {ns}/{pod} to {ns}-{node}"
        assert core_scheduled_event(kubectl, ns, pod)["source"]["component"] == profile
    table = kubectl("get", "events", "-n", ns, "--field-selector", "reason=Scheduled").stdout
    assert re.search(rf"pod/packed\s+Successfully assigned {ns}/packed to {ns}-small", table)


def test_server_scheduler_config_two_profiles(tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text(TWO_PROFILES.format(leader_elect="true", lease="kube-scheduler",
                                          first="default-scheduler", packer="bin-packer"))
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "server", "--data-dir", str(tmp_path),
                             "--https-port", str(free_port()), "--disable-agent",
                             "--scheduler-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        poll(lambda: "cluster ready" in (tmp_path / "server.log").read_text(errors="replace")
             or proc.poll() is not None, "the server")
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        kubectl = Kubectl(str(tmp_path / "kubeconfig.yaml"), str(tmp_path))
        kubectl("create", "namespace", "two")
        poll(lambda: kubectl("get", "serviceaccount", "default", "-n", "two", check=False).returncode == 0,
             "the default service account")
        check_two_profiles(kubectl, "two", "default-scheduler", "bin-packer")
        # The config's leaderElection applies: a lease held as <hostname>_<uuid>.
        holder = kubectl("get", "lease", "kube-scheduler", "-n", "kube-system",
                         "-o", "jsonpath={.spec.holderIdentity}").stdout
        assert re.fullmatch(r".+_[0-9a-f-]{36}", holder), holder
    finally:
        stop(proc)


def test_server_rejects_an_unknown_config_version(tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text("apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n")
    r = subprocess.run([sys.executable, "-m", "pyk8s.cli.main", "server", "--data-dir", str(tmp_path),
                        "--https-port", str(free_port()), "--disable-agent", "--scheduler-config", str(config)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert ('no kind "KubeSchedulerConfiguration" is registered for version "kubescheduler.config.k8s.io/v1beta3"'
            in r.stderr)


def test_scheduler_command_config_and_hostname_override(cluster, ns, tmp_path):
    kubectl = Kubectl(cluster.kubeconfig, cluster.data_dir)
    lease = f"sched-{ns}"
    first, packer = f"first-{ns}", f"packer-{ns}"
    config = tmp_path / "scheduler.yaml"
    config.write_text(TWO_PROFILES.format(leader_elect="true", lease=lease, first=first, packer=packer))
    log = open(tmp_path / "scheduler.log", "wb")
    host = f"host-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "scheduler", "--kubeconfig", cluster.kubeconfig,
                             "--config", str(config), "--hostname-override", host],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        holder = poll(lambda: kubectl("get", "lease", lease, "-n", "kube-system", "-o",
                                      "jsonpath={.spec.holderIdentity}", check=False).stdout,
                      "the scheduler to take its lease")
        assert re.fullmatch(rf"{host}_[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}",
                            holder), holder
        check_two_profiles(kubectl, ns, first, packer)
        # the leader election events name the first profile
        lease_events = kubectl.json("get", "events", "-n", "kube-system", "--field-selector",
                                    f"involvedObject.name={lease}")["items"]
        assert any(ev["reason"] == "LeaderElection" and ev["source"]["component"] == first
                   and ev["message"] == f"{holder} became leader" for ev in lease_events), lease_events
    finally:
        stop(proc)
        for n in ("small", "large"):
            kubectl("delete", "node", f"{ns}-{n}", "--ignore-not-found", check=False)


def test_scheduler_command_rejects_bad_config(tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text("apiVersion: kubescheduler.config.k8s.io/unknown\nkind: KubeSchedulerConfiguration\n")
    r = subprocess.run([sys.executable, "-m", "pyk8s.cli.main", "scheduler", "--kubeconfig",
                        str(tmp_path / "none.yaml"), "--config", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == ('pyk8s: scheduler: no kind "KubeSchedulerConfiguration" is registered for '
                                'version "kubescheduler.config.k8s.io/unknown" in scheme '
                                '"pkg/scheduler/apis/config/scheme/scheme.go:30"')
