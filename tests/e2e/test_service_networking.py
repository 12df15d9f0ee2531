"""Service networking on real pods: endpoint spread, readiness, NodePort, session
affinity, headless StatefulSet names and ExternalName (root only)."""
import json
import subprocess

import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.root

WHOAMI = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: whoami}
spec:
  replicas: 3
  selector: {matchLabels: {app: whoami}}
  template:
    metadata: {labels: {app: whoami}}
    spec:
      automountServiceAccountToken: false
      containers:
      - name: httpd
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: whoami}
spec:
  type: NodePort
  selector: {app: whoami}
  ports: [{port: 80, targetPort: 80}]
"""

HEADLESS = """
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      automountServiceAccountToken: false
      containers:
      - {name: c, image: busybox, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec:
  type: ExternalName
  externalName: whoami.default.svc.cluster.local
"""


def fetch(url: str) -> str:
    r = subprocess.run(["curl", "-s", "-m", "5", url], capture_output=True, text=True)
    return r.stdout.strip()


def run_in_pod(kubectl, name: str, script: str) -> str:
    kubectl("run", name, "--image=busybox", "--restart=Never",
            "--overrides", '{"spec":{"automountServiceAccountToken":false}}', "--",
            "sh", "-c", script)

    def done():
        phase = kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}",
                        check=False).stdout
        return phase if phase in ("Succeeded", "Failed") else None
    phase = wait_for(done, f"pod {name} to finish")
    out = kubectl("logs", name).stdout
    assert phase == "Succeeded", out
    return out


def test_spread_readiness_nodeport_and_affinity(server):
    kubectl = server
    kubectl("apply", "-f", "-", input=WHOAMI)
    kubectl("rollout", "status", "deployment/whoami", "--timeout=90s", timeout=100)
    svc = json.loads(kubectl("get", "svc", "whoami", "-o", "json").stdout)
    vip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    pods = kubectl("get", "pods", "-l", "app=whoami", "-o",
                   "jsonpath={.items[*].metadata.name}").stdout.split()
    wait_for(lambda: len(kubectl("get", "endpointslices", "-l",
                                 "kubernetes.io/service-name=whoami", "-o",
                                 "jsonpath={.items[*].endpoints[*].addresses[0]}")
                         .stdout.split()) == 3, "three endpoints")
    # Traffic spreads over every ready endpoint.
    seen = wait_for(lambda: (lambda s: s if s >= set(pods) else None)(
        {fetch(f"http://{vip}/") for _ in range(30)}), "all three backends to answer", 60)
    assert seen >= set(pods)
    # NodePort answers on localhost.
    assert fetch(f"http://127.0.0.1:{node_port}/") in pods
    # Session affinity pins a client to one backend.
    kubectl("patch", "svc", "whoami", "-p", '{"spec":{"sessionAffinity":"ClientIP"}}')
    wait_for(lambda: len({fetch(f"http://{vip}/") for _ in range(10)}) == 1,
             "affinity to pin the host to one backend", 30)


def test_headless_statefulset_and_external_name_resolve(server):
    kubectl = server
    kubectl("apply", "-f", "-", input=HEADLESS)
    kubectl("rollout", "status", "statefulset/db", "--timeout=120s", timeout=130)
    ip0 = kubectl("get", "pod", "db-0", "-o", "jsonpath={.status.podIP}").stdout

    # DNS answers db-0 from the Service's EndpointSlices, which their controller
    # writes after the pod turned Ready (what the rollout waited for)
    def db0_published():
        slices = json.loads(kubectl("get", "endpointslices", "-l",
                                    "kubernetes.io/service-name=db", "-o", "json").stdout)
        return any(ep.get("hostname") == "db-0" and ip0 in ep.get("addresses", [])
                   and (ep.get("conditions") or {}).get("ready")
                   for sl in slices["items"] for ep in sl.get("endpoints") or [])
    wait_for(db0_published, "db-0's ready endpoint in the db Service's slices", 60)
    out = run_in_pod(kubectl, "resolver",
                     "nslookup db-0.db.default.svc.cluster.local && "
                     "nslookup alias.default.svc.cluster.local")
    assert ip0 in out
    assert "whoami.default.svc.cluster.local" in out
