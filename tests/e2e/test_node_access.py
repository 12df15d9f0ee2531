"""Reaching a node as a user does on `pyk8s server`: `kubectl logs` and `kubectl exec`
through the API server, the kubelet's stats through nodes/proxy, and the kubelet's
own door (401 without credentials, RBAC's nodes/* for a token).

Traffic goes only to 127.0.0.1 (the API server and the kubelet's port)."""
import json
import subprocess

import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.root


def curl_kubelet(port: str, path: str, token: str = "") -> tuple[str, str]:
    args = ["curl", "-sk", "-m", "10", "-w", "\n%{http_code}"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args + [f"https://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True).stdout
    body, _, code = out.rpartition("\n")
    return code, body


def test_logs_exec_and_stats_through_a_secured_kubelet(server):
    kubectl = server
    kubectl("run", "sleeper", "--image=busybox", "--restart=Never", "--",
            "sh", "-c", "echo started; sleep 3600")
    kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=90s", timeout=100)
    # Ready says the container runs, not that its shell has written its first line yet
    wait_for(lambda: kubectl("logs", "sleeper").stdout == "started\n",
             "the pod's output through kubectl logs", 30)
    assert kubectl("exec", "sleeper", "--", "echo", "hi").stdout == "hi\n"
    node = kubectl("get", "pod", "sleeper", "-o", "jsonpath={.spec.nodeName}").stdout
    summary = json.loads(kubectl("get", "--raw",
                                 f"/api/v1/nodes/{node}/proxy/stats/summary").stdout)
    assert any(p["podRef"]["name"] == "sleeper" for p in summary["pods"])

    port = kubectl("get", "node", node, "-o",
                   "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}").stdout
    assert curl_kubelet(port, "/pods") == ("401", "Unauthorized")
    assert curl_kubelet(port, "/healthz") == ("200", "ok")
    kubectl("create", "serviceaccount", "probe")
    token = kubectl("create", "token", "probe").stdout.strip()
    assert curl_kubelet(port, "/pods", token) == (
        "403", "Forbidden (user=system:serviceaccount:default:probe, verb=get, "
               "resource=nodes, subresource=proxy)")
    kubectl("create", "clusterrolebinding", "probe-kubelet",
            "--clusterrole=system:kubelet-api-admin", "--serviceaccount=default:probe")
    wait_for(lambda: kubectl("auth", "can-i", "get", "nodes", "--subresource=stats",
                             "--as=system:serviceaccount:default:probe",
                             check=False).stdout.strip() == "yes", "the grant", 30)
    code, body = curl_kubelet(port, "/stats/summary", token)
    assert code == "200" and json.loads(body)["node"]["nodeName"] == node
    kubectl("delete", "pod", "sleeper", "--grace-period=1")
