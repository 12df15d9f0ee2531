"""``spec.healthCheckNodePort``: the API server allocates it for LoadBalancer Services
with ``externalTrafficPolicy: Local``, as upstream's registry does (real kubectl)."""
from __future__ import annotations

import json
import os
import subprocess

from .apiserver import KUBECTL

LB_LOCAL = """
apiVersion: v1
kind: Service
metadata: {name: %(name)s}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: x}
  ports: [{port: 80}]
"""


def get(api_server, name: str) -> dict:
    return json.loads(api_server.kubectl("get", "svc", name, "-o", "json").stdout)["spec"]


def kubectl_stdin(api_server, verb: str, text: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=api_server.kubeconfig, HOME=api_server.data_dir)
    return subprocess.run([KUBECTL, verb, "-f", "-"], input=text, capture_output=True,
                          text=True, env=env, timeout=60)


def apply(api_server, text: str) -> subprocess.CompletedProcess:
    return kubectl_stdin(api_server, "apply", text)


def test_allocated_kept_on_update_and_released_when_no_longer_needed(api_server):
    r = apply(api_server, LB_LOCAL % {"name": "hc1"})
    assert r.returncode == 0, r.stderr
    spec = get(api_server, "hc1")
    port = spec["healthCheckNodePort"]
    assert 30000 <= port <= 32767 and port != spec["ports"][0]["nodePort"]
    # An update that does not mention it keeps it (upstream's patchAllocatedValues).
    obj = json.loads(api_server.kubectl("get", "svc", "hc1", "-o", "json").stdout)
    del obj["spec"]["healthCheckNodePort"]
    obj["metadata"]["labels"] = {"touched": "yes"}
    r = kubectl_stdin(api_server, "replace", json.dumps(obj))
    assert r.returncode == 0, r.stderr
    assert get(api_server, "hc1")["healthCheckNodePort"] == port
    # Changing it is forbidden.
    r = api_server.kubectl("patch", "svc", "hc1", "-p",
                           '{"spec":{"healthCheckNodePort":%d}}' % (port + 1 if port < 32767
                                                                      else port - 1),
                           check=False)
    assert r.returncode != 0 and "spec.healthCheckNodePort: Forbidden: field is immutable" \
        in r.stderr, r.stderr
    # A requested port held by another Service is refused as upstream words it.
    r = apply(api_server, (LB_LOCAL % {"name": "hc2"}).replace(
        "type: LoadBalancer", f"type: LoadBalancer\n  healthCheckNodePort: {port}"))
    assert r.returncode != 0
    assert (f"failed to allocate requested HealthCheck NodePort {port}: provided port is "
            "already allocated") in r.stderr, r.stderr
    # Cluster policy: the field is cleared and the port is free again.
    api_server.kubectl("patch", "svc", "hc1", "-p",
                       '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    assert "healthCheckNodePort" not in get(api_server, "hc1")
    r = apply(api_server, (LB_LOCAL % {"name": "hc2"}).replace(
        "type: LoadBalancer", f"type: LoadBalancer\n  healthCheckNodePort: {port}"))
    assert r.returncode == 0, r.stderr
    assert get(api_server, "hc2")["healthCheckNodePort"] == port


def test_only_load_balancers_with_local_policy_may_set_it(api_server):
    r = apply(api_server, (LB_LOCAL % {"name": "hc3"}).replace(
        "type: LoadBalancer", "type: NodePort\n  healthCheckNodePort: 31999"))
    assert r.returncode != 0
    assert "spec.healthCheckNodePort: Invalid value: 31999: may only be set when `type` is " \
           "'LoadBalancer' and `externalTrafficPolicy` is 'Local'" in r.stderr, r.stderr
