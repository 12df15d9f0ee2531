"""A real node's resource figures and proxies, read through the API server as a user
would: nodes/proxy to the kubelet's /stats/summary, /metrics, /metrics/resource,
/metrics/cadvisor and /pods, and pods/proxy to a pod's own server."""
from __future__ import annotations

import json
import urllib.request

import pytest

from .conftest import _wait
from .test_node import apply, wait_phase

pytestmark = pytest.mark.root

BUSY = ("while true; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; "
        "sleep 0.5; done")


def raw(cluster, path: str, check: bool = True):
    return cluster.kubectl("get", "--raw", path, check=check)


def test_stats_summary_shows_a_busy_pods_cpu_and_memory(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "busy", [{"name": "app", "image": "busybox",
                                          "command": ["sh", "-c", BUSY]}])
    pod = wait_phase(cluster, ns, "busy", ("Running",))
    base = f"/api/v1/nodes/{kubelet.name}/proxy"

    def busy_stats():
        summary = json.loads(raw(cluster, base + "/stats/summary").stdout)
        found = [p for p in summary["pods"] if p["podRef"]["name"] == "busy"
                 and p["podRef"]["namespace"] == ns]
        if not found:
            return None
        [container] = found[0]["containers"]
        # a rate needs two readings a second apart: poll until the kubelet has them
        return (summary, found[0], container) if container.get("cpu", {}).get(
            "usageNanoCores") else None

    summary, stats, container = _wait(busy_stats, timeout=30, what="CPU rates", interval=0.5)
    assert stats["podRef"]["uid"] == pod["metadata"]["uid"]
    assert container["name"] == "app"
    assert container["cpu"]["usageCoreNanoSeconds"] > 0
    assert container["cpu"]["usageNanoCores"] > 0
    assert container["memory"]["workingSetBytes"] > 0
    assert container["memory"]["usageBytes"] >= container["memory"]["workingSetBytes"]
    assert stats["cpu"]["usageCoreNanoSeconds"] >= container["cpu"]["usageCoreNanoSeconds"]
    assert stats["memory"]["workingSetBytes"] > 0
    assert container["logs"]["capacityBytes"] > 0
    assert stats["ephemeral-storage"]["usedBytes"] >= 0
    node = summary["node"]
    assert node["nodeName"] == kubelet.name
    assert node["cpu"]["usageCoreNanoSeconds"] > 0
    assert node["memory"]["workingSetBytes"] > 0 and node["fs"]["capacityBytes"] > 0
    assert node["runtime"]["imageFs"]["usedBytes"] > 0

    resource = raw(cluster, base + "/metrics/resource").stdout
    assert f'container_cpu_usage_seconds_total{{container="app",namespace="{ns}",' \
           f'pod="busy"}}' in resource
    metrics = raw(cluster, base + "/metrics").stdout
    running = next(line for line in metrics.splitlines()
                   if line.startswith("kubelet_running_pods "))
    assert float(running.split()[1]) >= 1
    started = next(line for line in metrics.splitlines()
                   if line.startswith("kubelet_pod_start_duration_seconds_count "))
    assert float(started.split()[1]) >= 1  # at least the busy pod's start was timed
    listed = json.loads(raw(cluster, base + "/pods").stdout)
    assert any(p["metadata"]["name"] == "busy" and p["status"]["phase"] == "Running"
               for p in listed["items"])


def test_pod_proxy_reaches_nginx_in_a_real_pod(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "web", [{"name": "nginx", "image": "nginx",
                                         "ports": [{"containerPort": 80}]}])
    wait_phase(cluster, ns, "web", ("Running",))

    def page():
        r = raw(cluster, f"/api/v1/namespaces/{ns}/pods/web/proxy/", check=False)
        return r.stdout if r.returncode == 0 else None

    assert "Welcome to nginx!" in _wait(page, timeout=60, what="nginx through the proxy",
                                        interval=0.3)
    r = raw(cluster, f"/api/v1/namespaces/{ns}/pods/web:80/proxy/missing", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr, r.stderr


PAD = 4000  # bytes of header in each request sent to the pod


def test_a_pods_network_figures_grow_with_traffic_to_it(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "web", [{"name": "nginx", "image": "nginx"}])
    pod = wait_phase(cluster, ns, "web", ("Running",))
    ip, base = pod["status"]["podIP"], f"/api/v1/nodes/{kubelet.name}/proxy"

    def summary(query: str = "") -> dict:
        return json.loads(raw(cluster, base + "/stats/summary" + query).stdout)

    def web_stats(found: dict) -> dict | None:
        return next((p for p in found["pods"] if p["podRef"]["name"] == "web"
                     and p["podRef"]["namespace"] == ns), None)

    def fetch() -> bool:
        request = urllib.request.Request(f"http://{ip}/", headers={"X-Pad": "a" * PAD})
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                return r.status == 200 and b"nginx" in r.read()
        except OSError:
            return False

    _wait(fetch, timeout=30, what="nginx on the pod IP", interval=0.3)
    first = summary()
    before = web_stats(first)["network"]
    assert before["name"] == "eth0"  # the pod's interface, as upstream's default
    assert [i["name"] for i in before["interfaces"]] == ["eth0"]
    assert first["node"]["network"]["time"] and "interfaces" in first["node"]["network"]
    for _ in range(20):
        assert fetch()
    after = web_stats(summary())["network"]
    assert after["rxBytes"] >= before["rxBytes"] + 20 * PAD
    assert after["txBytes"] > before["txBytes"]

    # only_cpu_and_memory (what metrics scrapers ask for) leaves the network out
    lean = summary("?only_cpu_and_memory=true")
    assert "network" not in lean["node"] and "network" not in web_stats(lean)

    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://")[1]
    lines = raw(cluster, base + "/metrics/cadvisor").stdout.splitlines()
    [cpu] = [line for line in lines if line.startswith("container_cpu_usage_seconds_total{")
             and f'name="{cid}"' in line]
    assert 'container="nginx",cpu="total",' in cpu
    assert 'image="docker.io/library/nginx:latest"' in cpu
    assert f'namespace="{ns}",pod="web"}}' in cpu and float(cpu.split()[1]) > 0
    [received] = [line for line in lines
                  if line.startswith("container_network_receive_bytes_total{")
                  and f'namespace="{ns}",pod="web"}}' in line]
    assert 'container="",' in received and 'interface="eth0"' in received
    assert float(received.split()[1]) >= after["rxBytes"]
