"""The kubelet's /stats/summary, /metrics, /metrics/resource and /pods on a made-up
cgroup tree (v1 and v2 layouts), read through the kubelet's HTTPS app routes."""
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.cri.runtime import ContainerStats
from pyk8s.kubelet.server import make_app
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.stats import Cgroups, PodStartTracker, Rates, SummaryProvider, routes

UID = "0b9a3c1e-0000-4000-8000-000000000001"
CID = "c0ffee"
POD = {"metadata": {"name": "web", "namespace": "ns", "uid": UID,
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
       "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
STATUS = {"phase": "Running", "startTime": "2026-01-01T00:00:01Z",
          "containerStatuses": [{"name": "app", "containerID": f"containerd://{CID}",
                                 "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}]}


class Statuses:
    def get(self, uid):
        return STATUS if uid == UID else None


class Runtime:
    async def list_container_stats(self, **kw):
        return [ContainerStats(id=CID, name="app", labels={}, annotations={}, timestamp=0,
                               cpu_usage_core_nano_seconds=None, cpu_usage_nano_cores=None,
                               memory_working_set_bytes=None, memory_usage_bytes=None,
                               memory_rss_bytes=None, writable_layer_used_bytes=8192)]


class Kubelet:
    def __init__(self, data_dir):
        self.settings = KubeletSettings(node_name="node-a", data_dir=data_dir)
        self.pods_by_uid = {UID: POD}
        self.status_manager = Statuses()
        self.runtime = Runtime()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v2_tree(root, pod_usec: int, container_usec: int):
    write(root / "cgroup.controllers", "cpu memory pids\n")
    pod = root / "kubepods" / "besteffort" / f"pod{UID}"
    for path, usec, mem in ((pod, pod_usec, 3 << 20), (pod / CID, container_usec, 2 << 20)):
        write(path / "cpu.stat", f"usage_usec {usec}\nuser_usec 1\nsystem_usec 1\n")
        write(path / "memory.current", f"{mem}\n")
        write(path / "memory.stat", "anon 1048576\ninactive_file 524288\npgfault 42\n"
                                    "pgmajfault 1\n")
    write(pod / "pids.current", "3\n")


def v1_tree(root, container_ns: int):
    rel = f"kubepods/besteffort/pod{UID}/{CID}"
    write(root / "cpu,cpuacct" / rel / "cpuacct.usage", f"{container_ns}\n")
    (root / "cpuacct").symlink_to("cpu,cpuacct")
    write(root / "memory" / rel / "memory.usage_in_bytes", f"{4 << 20}\n")
    write(root / "memory" / rel / "memory.stat",
          "cache 0\nrss 0\ntotal_rss 2097152\ntotal_inactive_file 1048576\n"
          "total_pgfault 7\ntotal_pgmajfault 0\n")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


async def test_summary_from_a_v2_tree_with_rates(tmp_path):
    root = tmp_path / "cgroup"
    v2_tree(root, 1_000_000, 500_000)
    kubelet = Kubelet(tmp_path / "data")
    logs = kubelet.settings.pod_logs_dir / f"ns_web_{UID}" / "app"
    write(logs / "0.log", "x" * 10000)
    write(kubelet.settings.pods_dir / UID / "volumes" / "kubernetes.io~empty-dir" / "cache" /
          "f", "y" * 5000)
    provider = SummaryProvider(kubelet, cgroups=Cgroups(root))
    provider.rates = Rates(clock := Clock())
    first = await provider.summary()
    [pod] = first["pods"]
    [container] = pod["containers"]
    assert pod["podRef"] == {"name": "web", "namespace": "ns", "uid": UID}
    assert container["cpu"]["usageCoreNanoSeconds"] == 500_000_000
    assert "usageNanoCores" not in container["cpu"]  # one reading is no rate
    assert container["memory"]["usageBytes"] == 2 << 20
    assert container["memory"]["workingSetBytes"] == (2 << 20) - 524288
    assert container["memory"]["rssBytes"] == 1048576
    assert container["memory"]["pageFaults"] == 42
    assert container["rootfs"]["usedBytes"] == 8192
    assert container["logs"]["usedBytes"] >= 10000
    assert container["startTime"] == "2026-01-01T00:00:02Z"
    assert pod["process_stats"] == {"process_count": 3}
    [volume] = pod["volume"]
    assert volume["name"] == "cache" and volume["usedBytes"] >= 5000
    assert pod["ephemeral-storage"]["usedBytes"] >= 10000 + 5000 + 8192
    assert first["node"]["nodeName"] == "node-a"
    assert first["node"]["fs"]["capacityBytes"] > 0
    assert first["node"]["memory"]["workingSetBytes"] > 0

    v2_tree(root, 3_000_000, 1_500_000)  # one more second of CPU in 2 s
    clock.now += 2.0
    second = await provider.summary()
    [pod] = second["pods"]
    assert pod["containers"][0]["cpu"]["usageNanoCores"] == 500_000_000  # half a core
    assert pod["cpu"]["usageNanoCores"] == 1_000_000_000


async def test_summary_from_a_v1_tree(tmp_path):
    root = tmp_path / "cgroup"
    v1_tree(root, 123_456_789)
    provider = SummaryProvider(Kubelet(tmp_path / "data"), cgroups=Cgroups(root))
    [pod] = (await provider.summary())["pods"]
    [container] = pod["containers"]
    assert container["cpu"]["usageCoreNanoSeconds"] == 123_456_789
    assert container["memory"]["workingSetBytes"] == (4 << 20) - 1048576
    assert container["memory"]["rssBytes"] == 2097152
    assert "cpu" not in pod  # the pod's own cgroup is missing: left out, not zero


@pytest.fixture
async def client(tmp_path):
    root = tmp_path / "cgroup"
    v2_tree(root, 2_000_000, 1_000_000)

    class NoLogs:
        async def read_logs(self, *a, **kw):
            raise AssertionError("not used")

    app = make_app(NoLogs(), setups=[routes(Kubelet(tmp_path / "data"),
                                            cgroups=Cgroups(root))])
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_endpoints(client):
    summary = await (await client.get("/stats/summary")).json()
    assert summary["pods"][0]["containers"][0]["cpu"]["usageCoreNanoSeconds"] == 1_000_000_000

    text = await (await client.get("/metrics")).text()
    assert 'kubelet_node_name{node="node-a"} 1.0' in text
    assert "kubelet_running_pods 1.0" in text
    assert 'kubelet_running_containers{container_state="running"} 1.0' in text
    assert "process_cpu_seconds_total" in text
    assert "kubelet_pod_start_duration_seconds_count 0.0" in text

    text = await (await client.get("/metrics/resource")).text()
    assert 'container_cpu_usage_seconds_total{container="app",namespace="ns",pod="web"} 1 ' \
        in text
    assert 'pod_memory_working_set_bytes{namespace="ns",pod="web"} 2621440 ' in text
    assert "scrape_error 0" in text

    pods = await (await client.get("/pods")).json()
    assert pods["kind"] == "PodList"
    assert [p["metadata"]["name"] for p in pods["items"]] == ["web"]
    assert pods["items"][0]["status"]["phase"] == "Running"


async def test_only_cpu_and_memory_leaves_the_filesystems_out(client):
    summary = await (await client.get("/stats/summary",
                                      params={"only_cpu_and_memory": "true"})).json()
    [pod] = summary["pods"]
    assert "fs" not in summary["node"] and "runtime" not in summary["node"]
    assert "memory" in summary["node"] and "cpu" in summary["node"]
    assert "ephemeral-storage" not in pod and "logs" not in pod["containers"][0]
    assert pod["containers"][0]["memory"]["workingSetBytes"] > 0


def test_pod_start_duration_is_observed_once_from_first_sight_to_running():
    observed = []

    class Histogram:
        def observe(self, value):
            observed.append(value)

    clock = Clock()
    tracker = PodStartTracker(Histogram(), clock)
    pending = {"metadata": {"uid": "a"}, "status": {"phase": "Pending"}}
    running = {"metadata": {"uid": "a"}, "status": dict(STATUS)}
    tracker.on_add(pending)
    clock.now += 3.5
    tracker.on_update(pending, pending)
    tracker.on_update(pending, running)
    tracker.on_update(running, running)
    assert observed == [3.5]
    adopted = {"metadata": {"uid": "b"}, "status": dict(STATUS)}
    tracker.on_add(adopted)  # already running when first seen: not a start
    tracker.on_update(adopted, adopted)
    assert observed == [3.5]
