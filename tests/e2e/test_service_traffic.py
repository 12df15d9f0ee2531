"""Service traffic on real pods: readiness gates endpoints, LoadBalancer Services get
the node's address (ServiceLB) with a health check on healthCheckNodePort, and pod
egress is masqueraded (root only).

Safety: the masquerade test's "outside" host is a network namespace this test
creates, joined to the host by one veth pair on a TEST-NET-3 /30; it is deleted
afterwards. Every other request goes to ClusterIPs, this node's own address or
127.0.0.1.
"""
import json
import socket
import subprocess
import sys
import uuid

import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.root

GATED = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: gated}
spec:
  replicas: 3
  selector: {matchLabels: {app: gated}}
  template:
    metadata: {labels: {app: gated}}
    spec:
      automountServiceAccountToken: false
      volumes: [{name: flags, hostPath: {path: "%(flags)s", type: Directory}}]
      containers:
      - name: httpd
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && httpd -f -p 80 -h /www"]
        volumeMounts: [{name: flags, mountPath: /flags, readOnly: true}]
        readinessProbe:
          exec: {command: ["sh", "-c", "test -f /flags/`hostname`"]}
          periodSeconds: 1
          failureThreshold: 1
          # one slow exec on a loaded machine must not make a ready pod leave
          timeoutSeconds: 5
---
apiVersion: v1
kind: Service
metadata: {name: gated}
spec:
  selector: {app: gated}
  ports: [{port: 80}]
"""

LB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: lbweb}
spec:
  replicas: 1
  selector: {matchLabels: {app: lbweb}}
  template:
    metadata: {labels: {app: lbweb}}
    spec:
      automountServiceAccountToken: false
      containers:
      - name: httpd
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: lbweb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: lbweb}
  ports: [{port: 18080, targetPort: 80}]
"""


def curl(url: str) -> tuple[int, str]:
    """(HTTP status, body) of a GET; status 0 when nothing answered."""
    r = subprocess.run(["curl", "-s", "-m", "5", "-w", "\n%{http_code}", url],
                       capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body.strip()


def answers(url: str, n: int) -> list[str]:
    return [curl(url)[1] for _ in range(n)]


def test_traffic_goes_only_to_ready_pods(server, tmp_path):
    kubectl = server
    flags = tmp_path / "flags"
    flags.mkdir()
    kubectl("apply", "-f", "-", input=GATED % {"flags": flags})
    try:
        def running():
            items = json.loads(kubectl("get", "pods", "-l", "app=gated", "-o", "json")
                               .stdout)["items"]
            names = sorted(p["metadata"]["name"] for p in items
                           if p.get("status", {}).get("phase") == "Running")
            return names if len(names) == 3 else None
        pods = wait_for(running, "three gated pods running", 90)
        vip = kubectl("get", "svc", "gated", "-o", "jsonpath={.spec.clusterIP}").stdout
        url = f"http://{vip}/"
        # Nobody is ready yet: the Service has no endpoints and refuses.
        assert curl(url) == (0, "")
        for name in pods[:2]:
            (flags / name).touch()
        wait_for(lambda: set(answers(url, 20)) == set(pods[:2]), "the two ready pods", 60)
        assert set(answers(url, 30)) == set(pods[:2])  # never the unready third
        # The third becomes ready and joins.
        (flags / pods[2]).touch()
        wait_for(lambda: pods[2] in answers(url, 20), "the third pod to join", 60)
        # A ready pod turning unready leaves again.
        (flags / pods[0]).unlink()
        wait_for(lambda: set(answers(url, 20)) == set(pods[1:]), "the first pod to leave", 60)
        assert pods[0] not in answers(url, 30)
    finally:
        kubectl("delete", "deployment,service", "gated", "--wait=false", check=False)


def test_load_balancer_gets_the_node_address_and_a_health_check(server):
    kubectl = server
    kubectl("apply", "-f", "-", input=LB)
    try:
        kubectl("rollout", "status", "deployment/lbweb", "--timeout=90s", timeout=100)
        node_ip = kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.addresses"
                          "[?(@.type=='InternalIP')].address}").stdout
        assert node_ip
        ingress = wait_for(lambda: kubectl("get", "svc", "lbweb", "-o", "jsonpath="
                                           "{.status.loadBalancer.ingress[*].ip}").stdout,
                           "ServiceLB to set the ingress", 30)
        assert ingress == node_ip
        assert node_ip in kubectl("get", "svc", "lbweb").stdout  # EXTERNAL-IP column
        pod = kubectl("get", "pods", "-l", "app=lbweb", "-o",
                      "jsonpath={.items[0].metadata.name}").stdout
        wait_for(lambda: curl(f"http://{node_ip}:18080/") == (200, pod),
                 "the Service on the node address", 30)
        # The health check an external load balancer would ask.
        hc = int(kubectl("get", "svc", "lbweb", "-o",
                         "jsonpath={.spec.healthCheckNodePort}").stdout)
        want = {"service": {"namespace": "default", "name": "lbweb"}, "localEndpoints": 1,
                "serviceProxyHealthy": True}
        code, body = wait_for(lambda: (lambda a: a if a[0] == 200 else None)(
            curl(f"http://127.0.0.1:{hc}/")), "the health check to answer 200", 30)
        assert json.loads(body) == want
        code, body = curl("http://127.0.0.1:10256/healthz")
        assert code == 200 and json.loads(body)["nodeEligible"] is True
        kubectl("scale", "deployment/lbweb", "--replicas=0")
        code, body = wait_for(lambda: (lambda a: a if a[0] == 503 else None)(
            curl(f"http://127.0.0.1:{hc}/")), "the health check to answer 503", 60)
        assert json.loads(body) == {**want, "localEndpoints": 0}
    finally:
        kubectl("delete", "deployment,service", "lbweb", "--wait=false", check=False)


SERVER = """
import socket, sys
srv = socket.create_server((sys.argv[1], 8080))
while True:
    conn, peer = srv.accept()
    conn.sendall(peer[0].encode() + b"\\n")
    conn.close()
"""


def sh(*args):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{' '.join(args)}: {r.stderr}"


@pytest.fixture
def outside_host():
    """A namespace standing for a host outside the cluster, reached through the node."""
    tag = uuid.uuid4().hex[:6]
    netns, veth = f"pyk8s-out-{tag}", f"pyk8so{tag}"
    host_ip, outside_ip = "203.0.113.1", "203.0.113.2"
    sh("ip", "netns", "add", netns)
    proc = None
    try:
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", netns, "addr", "add", f"{outside_ip}/30", "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        # A way back to pods, so that an un-masqueraded request would show the pod IP.
        sh("ip", "-n", netns, "route", "add", "10.42.0.0/16", "via", host_ip)
        proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", SERVER,
                                 outside_ip])

        def listening():  # the pod's first try must find the server up
            assert proc.poll() is None, "the outside host's server exited"
            try:
                with socket.create_connection((outside_ip, 8080), timeout=2) as conn:
                    return conn.recv(64).strip() == host_ip.encode()
            except OSError:
                return False
        wait_for(listening, "the outside host's server to listen", 30)
        yield host_ip, outside_ip
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "link", "del", veth], capture_output=True)


def test_pod_egress_is_masqueraded(server, outside_host):
    kubectl = server
    host_ip, outside_ip = outside_host
    kubectl("run", "egress", "--image=busybox", "--restart=Never",
            "--overrides", '{"spec":{"automountServiceAccountToken":false}}', "--",
            "sh", "-c", f"for i in 1 2 3 4 5; do nc -w 3 {outside_ip} 8080 </dev/null "
            "&& exit 0; sleep 1; done; exit 1")
    try:
        def done():
            phase = kubectl("get", "pod", "egress", "-o", "jsonpath={.status.phase}",
                            check=False).stdout
            return phase if phase in ("Succeeded", "Failed") else None
        phase = wait_for(done, "the egress pod to finish", 90)
        seen = kubectl("logs", "egress").stdout.strip()
        pod_ip = kubectl("get", "pod", "egress", "-o", "jsonpath={.status.podIP}").stdout
        assert phase == "Succeeded", seen
        assert seen == host_ip, f"the outside host saw {seen!r} (pod IP {pod_ip})"
    finally:
        kubectl("delete", "pod", "egress", "--wait=false", check=False)
