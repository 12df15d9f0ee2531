"""Two nodes on one machine: `pyk8s agent` joins the e2e server's cluster (root only).

The agent gets its own data dir (containerd, images, pod logs), bridge, kubelet
port and cgroup root, and leaves kube-proxy and DNS to the server's node: both
bridges are in the host's network namespace, so the kernel routes between the
two pod /24s and one kube-proxy and one DNS serve every node. Traffic goes only
to the pods and Service this test creates; the agent is reset afterwards (its
containerd, bridge and cgroups gone) and its Node deleted.
"""
import base64
import json
import os
import subprocess
import sys

import pytest
import yaml

from support.cluster import free_port, stop_process
from support.waiting import wait_for

pytestmark = pytest.mark.root

AGENT = "e2e-agent"
BRIDGE = "pyk8s1"
CGROUP_ROOT = f"/kubepods-{AGENT}"

SPREAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 2
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      automountServiceAccountToken: false
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: web
        image: busybox
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']
---
apiVersion: v1
kind: Service
metadata: {name: spread}
spec:
  selector: {app: spread}
  ports: [{port: 80}]
"""


def pyk8s(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "pyk8s.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout)


def cgroup_dirs(root: str) -> list[str]:
    base = "/sys/fs/cgroup"
    tops = [os.path.join(base, d) for d in os.listdir(base)] + [base]
    return [t + root for t in tops if os.path.isdir(t + root)]


class Agent:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.proc = None

    def start(self, kubectl):
        config = yaml.safe_load(kubectl("config", "view", "--raw").stdout)
        cluster = config["clusters"][0]["cluster"]
        kubeconfig = os.path.join(self.data_dir, "admin.kubeconfig")
        with open(kubeconfig, "w") as f:
            yaml.safe_dump(config, f)
        ca_file = os.path.join(self.data_dir, "ca.crt")
        with open(ca_file, "wb") as f:
            f.write(base64.b64decode(cluster["certificate-authority-data"]))
        token = pyk8s("token", "create", "--kubeconfig", kubeconfig, "--ttl", "600")
        assert token.returncode == 0, token.stderr
        log = open(os.path.join(self.data_dir, "agent.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", "agent", "--server", cluster["server"],
             "--token", token.stdout.strip(), "--ca-file", ca_file, "--data-dir",
             self.data_dir, "--node-name", AGENT, "--bridge", BRIDGE,
             "--kubelet-port", str(free_port()), "--cgroup-root", CGROUP_ROOT,
             "--disable-kube-proxy", "--disable-dns"],
            stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return open(os.path.join(self.data_dir, "agent.log"), errors="replace").read()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_process(self.proc, 30)


@pytest.fixture(scope="module")
def two_nodes(server, tmp_path_factory):
    kubectl = server
    agent = Agent(str(tmp_path_factory.mktemp("agent")))
    try:
        agent.start(kubectl)

        def ready():
            if agent.proc.poll() is not None:
                raise AssertionError("pyk8s agent exited:\n" + agent.log())
            return f"node {AGENT} ready" in agent.log()
        wait_for(ready, "the agent's node to start", 120)
        wait_for(lambda: kubectl("get", "node", AGENT, "-o",
                                 "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                                 check=False).stdout == "True", "the agent's node to be Ready")
        yield kubectl, agent
    finally:
        kubectl("delete", "deployment", "spread", "--ignore-not-found", check=False)
        kubectl("delete", "service", "spread", "--ignore-not-found", check=False)
        kubectl("delete", "pod", "from-agent", "from-server", "--ignore-not-found",
                "--grace-period=1", check=False)
        agent.stop()
        pyk8s("reset", "--data-dir", agent.data_dir)
        kubectl("delete", "node", AGENT, "--ignore-not-found", check=False)


def test_the_agent_joins_with_its_own_pod_network(two_nodes):
    kubectl, agent = two_nodes
    assert f"node {AGENT} has its certificate (system:node:{AGENT})" in agent.log()
    assert "kube-proxy disabled" in agent.log() and "cluster DNS disabled" in agent.log()
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    cidrs = {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in nodes}
    assert len(nodes) == 2 and len(set(cidrs.values())) == 2, cidrs
    assert cidrs[AGENT].startswith("10.42.") and cidrs[AGENT].endswith("/24")


def _pods(kubectl) -> dict[str, tuple[str, str]]:
    pods = json.loads(kubectl("get", "pods", "-l", "app=spread", "-o", "json").stdout)
    return {p["metadata"]["name"]: (p["spec"].get("nodeName"), p["status"].get("podIP"))
            for p in pods["items"] if not p["metadata"].get("deletionTimestamp")}


def test_a_service_spreads_over_pods_on_both_nodes(two_nodes):
    kubectl, _ = two_nodes
    kubectl("apply", "-f", "-", input=SPREAD)
    kubectl("rollout", "status", "deployment/spread", "--timeout=120s", timeout=130)
    pods = _pods(kubectl)
    assert len({node for node, _ in pods.values()}) == 2, pods
    ip = kubectl("get", "svc", "spread", "-o", "jsonpath={.spec.clusterIP}").stdout
    answers: set[str] = set()

    def both_answer():
        r = subprocess.run(["curl", "-s", "-m", "3", f"http://{ip}/"], capture_output=True,
                           text=True)
        answers.add(r.stdout.strip())
        return set(pods) <= answers
    wait_for(both_answer, "both pods to answer through the ClusterIP", 60, interval=0.2)


def _client(kubectl, name: str, node: str, url: str) -> str:
    overrides = json.dumps({"spec": {"nodeName": node, "automountServiceAccountToken": False}})
    kubectl("run", name, "--image=busybox", "--restart=Never", f"--overrides={overrides}",
            "--", "wget", "-qO-", url)  # (busybox 1.35's wget -T crashes)

    def done():
        phase = kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}",
                        check=False).stdout
        return phase if phase in ("Succeeded", "Failed") else None
    phase = wait_for(done, f"{name} to finish", 90)
    out = kubectl("logs", name).stdout  # through the API server to that node's kubelet
    assert phase == "Succeeded", out
    return out.strip()


def test_pods_reach_pods_on_the_other_node_by_ip_and_name(two_nodes):
    kubectl, _ = two_nodes
    by_node = {node: (name, ip) for name, (node, ip) in _pods(kubectl).items()}
    server_node = next(n for n in by_node if n != AGENT)
    name, ip = by_node[server_node]
    assert _client(kubectl, "from-agent", AGENT, f"http://{ip}/") == name
    name, ip = by_node[AGENT]
    assert _client(kubectl, "from-server", server_node, f"http://{ip}/") == name
    # the agent's pods use the one cluster DNS and kube-proxy on this machine
    kubectl("delete", "pod", "from-agent", "--grace-period=1")
    wait_for(lambda: kubectl("get", "pod", "from-agent", check=False).returncode != 0,
             "from-agent to go")
    answer = _client(kubectl, "from-agent", AGENT, "http://spread.default.svc.cluster.local/")
    assert answer in {n for n, _ in by_node.values()}


def test_reset_removes_the_agent_and_leaves_the_server_node(two_nodes):
    kubectl, agent = two_nodes
    kubectl("delete", "pod", "from-agent", "from-server", "--grace-period=1")
    kubectl("delete", "deployment", "spread")
    agent.stop()
    out = pyk8s("reset", "--data-dir", agent.data_dir)
    assert out.returncode == 0 and "node reset" in out.stdout, out.stderr
    assert subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0
    assert cgroup_dirs(CGROUP_ROOT) == []
    sock = os.path.join(agent.data_dir, "agent", "containerd", "containerd.sock")
    assert not os.path.exists(sock) or subprocess.run(
        ["ctr", "-a", sock, "version"], capture_output=True, timeout=10).returncode != 0
    # the server's node and its Service routing are untouched
    assert subprocess.run(["nft", "list", "table", "ip", "pyk8s"],
                          capture_output=True).returncode == 0
    kubectl("delete", "node", AGENT)
    ip = kubectl("get", "svc", "spread", "-o", "jsonpath={.spec.clusterIP}").stdout
    kubectl("create", "deployment", "spread", "--image=busybox", "--replicas=1", "--",
            "sh", "-c", "mkdir -p /www && hostname > /www/index.html && "
            "exec httpd -f -p 80 -h /www")
    kubectl("rollout", "status", "deployment/spread", "--timeout=90s", timeout=100)
    wait_for(lambda: subprocess.run(["curl", "-s", "-m", "3", f"http://{ip}/"],
                                    capture_output=True, text=True).stdout.startswith("spread-"),
             "the server node's pod to answer", 60)
