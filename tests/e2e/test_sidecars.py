"""Sidecar containers (KEP-753) on the real node, as a user meets them through kubectl.

A Job-style pod (restartPolicy Never) with a busybox sidecar that writes to an
emptyDir and a main container that reads it: the pod completes when the main
container exits, the sidecar is stopped, and the statuses say so. Root only (real
containerd); what is created is deleted.
"""
import json
import uuid

import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.root


def test_a_job_style_pod_with_a_sidecar_completes(server):
    kubectl = server
    name = f"sidecar-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [{
                "name": "side", "image": "busybox", "restartPolicy": "Always",
                "command": ["sh", "-c", "echo side > /shared/log; sleep 3600"],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
            "containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", "until [ -s /shared/log ]; do sleep 0.1; done; "
                                        "echo main read: $(cat /shared/log)"],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}]}}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    try:
        def get() -> dict:
            return json.loads(kubectl("get", "pod", name, "-o", "json").stdout)

        def sidecar_started():
            p = get()
            [side] = p["status"].get("initContainerStatuses") or [{}]
            return side.get("started") is True and "running" in side.get("state", {}) and p
        wait_for(sidecar_started, "the sidecar to start", 60, 0.3)

        wait_for(lambda: get()["status"].get("phase") == "Succeeded",
                 "the pod to succeed", 90, 0.5)
        line = kubectl("get", "pod", name, "--no-headers").stdout.split()
        assert line[0] == name and line[2] == "Completed", line
        assert kubectl("logs", name, "-c", "main").stdout == "main read: side\n"

        status = get()["status"]
        [main] = status["containerStatuses"]
        assert main["state"]["terminated"]["exitCode"] == 0
        assert main["state"]["terminated"]["reason"] == "Completed"
        [side] = status["initContainerStatuses"]
        # stopped by the kubelet once the main container was done, never restarted
        assert "terminated" in side["state"] and side["restartCount"] == 0
        assert side["started"] is False and side["ready"] is False
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Initialized"]["status"] == "True"
        assert conditions["Ready"]["status"] == "False"
        assert conditions["Ready"].get("reason") == "PodCompleted"
    finally:
        kubectl("delete", "pod", name, "--ignore-not-found", "--wait=false", check=False)
