"""metrics.k8s.io/v1beta1 served by the API server, from a stand-in kubelet's
/stats/summary: `kubectl top`, `kubectl get --raw`, discovery, 404s and RBAC, as a
user of metrics-server sees them.

The stand-in kubelet's cumulative CPU counters grow at a fixed rate with the wall
clock (node 250m, container 100m), so the rate the API server computes from two
scrapes is known; this module's API server scrapes every 2 s (the rate divides by the
API server's own time between scrapes, so a short window makes scrape latency on a
loaded machine a large error).
"""
import json
import os
import time
import uuid

import pytest
from aiohttp import web

from support.cluster import KUBECTL, Cluster, free_port
from support.waiting import poll
from pyk8s.kubelet.server import self_signed, ssl_context

NODE_RATE, CONTAINER_RATE = 250_000_000, 100_000_000  # nanocores
MEMORY = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("metrics")), free_port())
    c.start(extra=("--metric-resolution", "2s"))
    yield c
    c.stop()


class StatsKubelet:
    """/stats/summary for one node holding the pods in ``pods`` [(ns, name, uid)]."""

    def __init__(self, node: str):
        self.node = node
        self.pods: list[tuple[str, str]] = []
        self.t0 = time.time()
        self.requests = 0

    def summary(self) -> dict:
        elapsed = time.time() - self.t0
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cpu = lambda rate: {"time": now, "usageCoreNanoSeconds": int(elapsed * rate)}  # noqa
        memory = {"time": now, "workingSetBytes": MEMORY, "usageBytes": MEMORY}
        return {"node": {"nodeName": self.node, "cpu": cpu(NODE_RATE), "memory": memory},
                "pods": [{"podRef": {"namespace": ns, "name": name, "uid": "x"},
                          "containers": [{"name": "app", "startTime": "2026-01-01T00:00:00Z",
                                          "cpu": cpu(CONTAINER_RATE), "memory": memory}]}
                         for ns, name in self.pods]}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(self.summary())


@pytest.fixture
async def kubelet(cluster, tmp_path):
    node = "mnode-" + uuid.uuid4().hex[:6]
    fake = StatsKubelet(node)
    app = web.Application()
    app.router.add_get("/stats/summary", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    cert, key = self_signed(tmp_path, node, ["127.0.0.1"])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context(cert, key))
    await site.start()
    port = runner.addresses[0][1]
    await cluster.akubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": node, "labels": {"metrics-test": node}}}))
    await cluster.akubectl("patch", "node", node, "--subresource=status", "--type=merge",
                           "-p", json.dumps({"status": {
                               "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    yield fake
    await cluster.akubectl("delete", "node", node, "--wait=false", check=False)
    await runner.cleanup()


@pytest.fixture
def ns(cluster):
    name = "m-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("apply", "-n", name, "-f", "-", input='{"apiVersion": "v1", "kind": '
                    '"ServiceAccount", "metadata": {"name": "default"}}')
    yield name


async def add_pod(cluster, ns: str, name: str, node: str, labels=None) -> None:
    await cluster.akubectl("create", "-n", ns, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "labels": labels or {}},
         "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}))


def millicores(cell: str) -> int:
    assert cell.endswith("m"), cell
    return int(cell[:-1])


async def test_kubectl_top_node_and_pod_show_the_kubelets_rates(cluster, kubelet, ns):
    await add_pod(cluster, ns, "busy", kubelet.node, {"app": "busy"})
    kubelet.pods.append((ns, "busy"))

    async def top_pod():
        r = await cluster.akubectl("top", "pod", "-n", ns, check=False)
        return r.stdout if r.returncode == 0 and "busy" in r.stdout else None

    out = await poll(top_pod, "kubectl top pod")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, memory = row.split()
    assert name == "busy" and 80 <= millicores(cpu) <= 120 and memory == "64Mi"

    r = await cluster.akubectl("top", "node", kubelet.node)
    header, row = r.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
    cells = row.split()
    assert cells[0] == kubelet.node and 200 <= millicores(cells[1]) <= 300
    assert "64Mi" in cells

    node = json.loads((await cluster.akubectl(
        "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/nodes/{kubelet.node}")).stdout)
    assert node["kind"] == "NodeMetrics" and node["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert node["metadata"]["labels"]["metrics-test"] == kubelet.node
    assert node["usage"]["cpu"].endswith("n") and node["usage"]["memory"] == "64Mi"
    assert node["window"].endswith("s") and node["timestamp"].endswith("Z")

    pod = json.loads((await cluster.akubectl(
        "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/busy")).stdout)
    assert pod["kind"] == "PodMetrics" and pod["metadata"]["namespace"] == ns
    [container] = pod["containers"]
    assert container["name"] == "app" and container["usage"]["memory"] == "64Mi"


async def test_lists_honour_label_selectors_and_span_namespaces(cluster, kubelet, ns):
    await add_pod(cluster, ns, "a", kubelet.node, {"tier": "front"})
    await add_pod(cluster, ns, "b", kubelet.node, {"tier": "back"})
    kubelet.pods += [(ns, "a"), (ns, "b")]

    async def listed():
        r = await cluster.akubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/pods")
        items = json.loads(r.stdout)["items"]
        names = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items}
        return names if {(ns, "a"), (ns, "b")} <= names else None

    await poll(listed, "pod metrics across namespaces")
    r = await cluster.akubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}"
                               f"/pods?labelSelector=tier%3Dfront")
    body = json.loads(r.stdout)
    assert body["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["a"]
    r = await cluster.akubectl("top", "pod", "-n", ns, "-l", "tier=back", "--no-headers")
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["b"]
    r = await cluster.akubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"
                               f"?labelSelector=metrics-test%3D{kubelet.node}")
    assert [i["metadata"]["name"] for i in json.loads(r.stdout)["items"]] == [kubelet.node]
    r = await cluster.akubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"
                               "?labelSelector=metrics-test%3Dnobody")
    assert json.loads(r.stdout)["items"] == []


async def test_a_pod_not_yet_scraped_is_not_found(cluster, kubelet, ns):
    await add_pod(cluster, ns, "quiet", kubelet.node)  # the kubelet does not report it
    r = await cluster.akubectl("top", "pod", "quiet", "-n", ns, check=False)
    assert r.returncode != 0
    assert f'podmetrics.metrics.k8s.io "{ns}/quiet" not found' in r.stderr
    r = await cluster.akubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/nowhere",
                               check=False)
    assert 'nodemetrics.metrics.k8s.io "nowhere" not found' in r.stderr


async def test_discovery_lists_the_metrics_group(cluster):
    r = await cluster.akubectl("api-resources", "--api-group=metrics.k8s.io", "-o", "wide")
    lines = r.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"nodes", "pods"}
    assert "NodeMetrics" in rows["nodes"] and "false" in rows["nodes"]
    assert "PodMetrics" in rows["pods"] and rows["pods"].split()[4] == "get,list"
    legacy = json.loads((await cluster.akubectl(
        "get", "--raw", "/apis/metrics.k8s.io/v1beta1")).stdout)
    assert {r["name"]: r["verbs"] for r in legacy["resources"]} == {
        "nodes": ["get", "list"], "pods": ["get", "list"]}
    assert "metrics.k8s.io/v1beta1" in (await cluster.akubectl("api-versions")).stdout


async def test_watch_and_writes_are_refused(cluster, ns):
    r = await cluster.akubectl("get", "--raw",
                               "/apis/metrics.k8s.io/v1beta1/pods?watch=true", check=False)
    assert r.returncode != 0 and "(MethodNotAllowed)" in r.stderr
    r = await cluster.akubectl("delete", "--raw",
                               f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/x",
                               check=False)
    assert r.returncode != 0 and "(MethodNotAllowed): delete is not supported" in r.stderr


async def test_view_role_reads_metrics_through_aggregation(cluster, ns):
    user = f"system:serviceaccount:{ns}:default"
    await cluster.akubectl("create", "rolebinding", "viewers", "-n", ns,
                           "--clusterrole=view", f"--serviceaccount={ns}:default")
    role = json.loads((await cluster.akubectl(
        "get", "clusterrole", "system:aggregated-metrics-reader", "-o", "json")).stdout)
    assert role["rules"][0]["apiGroups"] == ["metrics.k8s.io"]

    async def allowed():
        r = await cluster.akubectl("auth", "can-i", "list", "pods.metrics.k8s.io", "-n", ns,
                                   "--as", user, check=False)
        return r.stdout.strip() == "yes"

    await poll(allowed, "view to include the metrics reader rules")
    r = await cluster.akubectl("auth", "can-i", "list", "nodes.metrics.k8s.io", "--as", user,
                               check=False)
    assert r.stdout.strip() == "no"  # a RoleBinding grants nothing cluster-scoped


# --- the scraper's arithmetic, without a server ------------------------------------------

def _summary(node_cpu: int, container_cpu: int, start: str = "s1") -> dict:
    return {"node": {"cpu": {"usageCoreNanoSeconds": node_cpu},
                     "memory": {"workingSetBytes": 4096}},
            "pods": [{"podRef": {"namespace": "ns", "name": "p"},
                      "containers": [{"name": "c", "startTime": start,
                                      "cpu": {"usageCoreNanoSeconds": container_cpu},
                                      "memory": {"workingSetBytes": 1536}}]}]}


def test_rates_need_two_scrapes_and_restart_over():
    from pyk8s.apiserver.metricsapi import MetricsStore, go_duration, parse_summary
    store = MetricsStore()
    store.store({"n": parse_summary(_summary(0, 0), 100.0)})
    assert store.node_metrics("n") is None and store.pod_metrics("n", "ns", "p") is None
    store.store({"n": parse_summary(_summary(5 * 10**9, 10**9), 110.0)})
    _, window, use = store.node_metrics("n")
    assert window == "10s" and use == {"cpu": "500m", "memory": "4Ki"}
    _, _, [container] = store.pod_metrics("n", "ns", "p")
    assert container == {"name": "c", "usage": {"cpu": "100m", "memory": "1536"}}
    # a restarted container (new start time) has no rate until the next scrape
    store.store({"n": parse_summary(_summary(6 * 10**9, 10, start="s2"), 120.0)})
    assert store.pod_metrics("n", "ns", "p") is None and store.node_metrics("n")
    # a node missing from a round loses its figures
    store.store({})
    assert store.node_metrics("n") is None
    assert go_duration(15.0021) == "15.002s" and go_duration(75) == "1m15s"
