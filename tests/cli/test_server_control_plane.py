"""`pyk8s server --disable-agent`: the control plane in one process, and the
auto-deploying manifests folder."""
import json
import os
import subprocess
import sys
import time

import pytest

from support.cluster import KUBECTL, free_port, stop_process


def wait_for(fn, what, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def control_plane(tmp_path):
    data_dir = str(tmp_path)
    manifests = tmp_path / "server" / "manifests"
    manifests.mkdir(parents=True)
    (manifests / "app.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-manifest}\ndata: {v: '1'}\n"
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: addons}\n")
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "server", "--data-dir",
                             data_dir, "--https-port", str(free_port()), "--disable-agent"],
                            stdout=log, stderr=subprocess.STDOUT)
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "kubeconfig.yaml"), HOME=data_dir)

    def kubectl(*args, check=True, input=None):
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env,
                           timeout=60, input=input)
        assert not check or r.returncode == 0, r.stderr
        return r
    try:
        wait_for(lambda: "cluster ready" in (tmp_path / "server.log").read_text(
            errors="replace") or proc.poll() is not None, "the server")
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        yield kubectl, manifests
    finally:
        stop_process(proc, 30)


def test_manifests_apply_at_start_and_on_change(control_plane):
    kubectl, manifests = control_plane
    wait_for(lambda: kubectl("get", "cm", "from-manifest", check=False).returncode == 0,
             "the manifest's ConfigMap")
    # the file's objects are applied one request at a time: the Namespace (second in
    # the file) may land just after the ConfigMap
    wait_for(lambda: kubectl("get", "ns", "addons", check=False).returncode == 0,
             "the manifest's Namespace")
    (manifests / "app.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-manifest}\ndata: {v: '2'}\n")
    wait_for(lambda: kubectl("get", "cm", "from-manifest", "-o",
                             "jsonpath={.data.v}").stdout == "2", "the change to apply")


def test_controllers_and_scheduler_run(control_plane):
    kubectl, _ = control_plane
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
    kubectl("create", "-f", "-", input=json.dumps(node))
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")

    def scheduled():
        pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)
        nodes = [p["spec"].get("nodeName") for p in pods["items"]]
        return len(nodes) == 2 and all(n == "n1" for n in nodes)
    wait_for(scheduled, "the deployment's pods to be created and scheduled")

    def recorded():  # events are written in the background, after the actions
        events = kubectl("get", "events", "-o", "json").stdout
        return "ScalingReplicaSet" in events and "Successfully assigned default/web-" in events
    wait_for(recorded, "the ScalingReplicaSet and Scheduled events")
