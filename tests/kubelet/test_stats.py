"""The kubelet's /stats/summary, /metrics, /metrics/resource, /metrics/cadvisor and /pods
on a made-up cgroup tree (v1 and v2 layouts) and /proc, read through the kubelet's
HTTPS app routes."""
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.cri.runtime import (ContainerStats, PodSandbox, PodSandboxMetadata,
                               SandboxState)
from pyk8s.kubelet.exposition import go_float
from pyk8s.kubelet.nodestatus import MachineInfo
from pyk8s.kubelet.server import make_app
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.stats import (Cgroups, PodStartTracker, Rates, SummaryProvider,
                                 network_stats, read_net_dev, routes)

UID = "0b9a3c1e-0000-4000-8000-000000000001"
CID = "c0ffee"
SID = "5a4db0c5"  # the pod's sandbox
SANDBOX_CREATED = 1767225600  # 2026-01-01T00:00:00Z
NET_DEV_HEAD = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
    "errs drop fifo colls carrier compressed\n")


def net_dev(*rows: tuple[str, int, int, int, int]) -> str:
    """(name, rx bytes, rx errors, tx bytes, tx errors) rows as /proc/<pid>/net/dev;
    packets are bytes // 100, drops 1."""
    return NET_DEV_HEAD + "".join(
        f"{name:>6}: {rx} {rx // 100} {rxe} 1 0 0 0 0 {tx} {tx // 100} {txe} 1 0 0 0 0\n"
        for name, rx, rxe, tx, txe in rows)
POD = {"metadata": {"name": "web", "namespace": "ns", "uid": UID,
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
       "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
STATUS = {"phase": "Running", "startTime": "2026-01-01T00:00:01Z",
          "containerStatuses": [{"name": "app", "image": "busybox",
                                 "containerID": f"containerd://{CID}",
                                 "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}]}


class Statuses:
    def get(self, uid):
        return STATUS if uid == UID else None


class Runtime:
    async def list_pod_sandboxes(self, *, state=None, **kw):
        assert state == SandboxState.READY
        return [PodSandbox(id=SID, metadata=PodSandboxMetadata(name="web", uid=UID,
                                                                namespace="ns"),
                           state=SandboxState.READY, created_at=SANDBOX_CREATED * 10**9,
                           labels={}, annotations={})]

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
        self.machine_info = MachineInfo(
            cpus=4, memory=8 << 30, memory_available=4 << 30, filesystem=1, filesystem_available=1,
            machine_id="m1", system_uuid="u1", boot_id="b1", kernel="6.1", os_image="Linux",
            architecture="amd64", hostname="node-a")


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
    sandbox = pod / SID
    write(sandbox / "cpu.stat", "usage_usec 2000\n")
    write(sandbox / "memory.current", f"{1 << 20}\n")
    write(sandbox / "memory.stat", "anon 4096\ninactive_file 0\n")
    write(sandbox / "cgroup.procs", "4241\n4242\n")  # 4241 has exited: no /proc entry
    write(pod / CID / "cgroup.procs", "4343\n")


def proc_tree(root, pod_rx: int):
    """The host's (pid 1) and the pod's (pids 4242, 4343) network figures."""
    write(root / "1" / "net" / "dev", net_dev(("lo", 900, 0, 900, 0), ("eth0", 5000, 1, 7000, 2),
                                              ("veth12ab", 300, 0, 400, 0),
                                              ("cni0", 100, 0, 200, 0)))
    pod = net_dev(("lo", 10, 0, 10, 0), ("eth0", pod_rx, 0, 2048, 0))
    write(root / "4242" / "net" / "dev", pod)
    write(root / "4343" / "net" / "dev", pod)


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

    proc_tree(tmp_path / "proc", 1024)
    app = make_app(NoLogs(), setups=[routes(Kubelet(tmp_path / "data"),
                                            cgroups=Cgroups(root), proc=tmp_path / "proc")])
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
    # values as upstream's Go client writes them
    assert 'pod_memory_working_set_bytes{namespace="ns",pod="web"} 2.62144e+06 ' in text
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
    assert "network" not in summary["node"] and "network" not in pod  # as upstream
    assert pod["containers"][0]["memory"]["workingSetBytes"] > 0


async def test_network_of_the_node_and_of_a_pod_in_the_summary(tmp_path):
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    v2_tree(root, 1_000_000, 500_000)
    proc_tree(proc, 4096)
    provider = SummaryProvider(Kubelet(tmp_path / "data"), cgroups=Cgroups(root), proc=proc)
    summary = await provider.summary()
    network = summary["node"]["network"]
    # eth0 is the default interface; lo and veth* are cAdvisor's ignored devices
    assert {k: v for k, v in network.items() if k != "time"} == {
        "name": "eth0", "rxBytes": 5000, "rxErrors": 1, "txBytes": 7000, "txErrors": 2,
        "interfaces": [
            {"name": "eth0", "rxBytes": 5000, "rxErrors": 1, "txBytes": 7000, "txErrors": 2},
            {"name": "cni0", "rxBytes": 100, "rxErrors": 0, "txBytes": 200, "txErrors": 0}]}
    assert network["time"].endswith("Z")
    [pod] = summary["pods"]
    # read from the sandbox's second process (the first has exited)
    assert pod["network"]["name"] == "eth0" and pod["network"]["rxBytes"] == 4096
    assert pod["network"]["interfaces"] == [
        {"name": "eth0", "rxBytes": 4096, "rxErrors": 0, "txBytes": 2048, "txErrors": 0}]
    assert list(pod)[:6] == ["podRef", "startTime", "containers", "cpu", "memory", "network"]

    proc_tree(proc, 9000)  # traffic to the pod
    [pod] = (await provider.summary())["pods"]
    assert pod["network"]["rxBytes"] == 9000


async def test_a_pod_whose_processes_are_gone_has_no_network(tmp_path):
    root = tmp_path / "cgroup"
    v2_tree(root, 1_000_000, 500_000)
    provider = SummaryProvider(Kubelet(tmp_path / "data"), cgroups=Cgroups(root),
                               proc=tmp_path / "empty")
    summary = await provider.summary()
    assert "network" not in summary["pods"][0] and "network" not in summary["node"]


def test_net_dev_parsing(tmp_path):
    path = tmp_path / "dev"
    path.write_text(net_dev(("lo", 1, 0, 1, 0), ("net1", 300, 2, 400, 3),
                            ("docker0", 5, 0, 5, 0), ("nerdctl0", 5, 0, 5, 0)))
    [net1] = read_net_dev(path)
    assert net1 == {"name": "net1", "rxBytes": 300, "rxPackets": 3, "rxErrors": 2,
                    "rxDropped": 1, "txBytes": 400, "txPackets": 4, "txErrors": 3,
                    "txDropped": 1}
    # no eth0: the default interface has no name and no figures, as upstream
    assert network_stats([net1], "T") == {
        "time": "T", "name": "",
        "interfaces": [{"name": "net1", "rxBytes": 300, "rxErrors": 2, "txBytes": 400,
                        "txErrors": 3}]}
    assert network_stats([], "T") == {"time": "T", "name": ""}
    path.write_text(NET_DEV_HEAD + "  eth0: 1 2 3\n")  # a short line: trust nothing
    assert read_net_dev(path) is None
    assert read_net_dev(tmp_path / "missing") is None


async def test_cadvisor_metrics(client):
    response = await client.get("/metrics/cadvisor")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    lines = text.splitlines()

    def sample(family: str, **labels) -> list[str]:
        """The sample lines of ``family`` whose labels include ``labels``."""
        want = [f'{k}="{v}"' for k, v in labels.items()]
        return [line for line in lines if line.startswith(family + "{")
                and all(w in line.split("}")[0] for w in want)]

    pod_cg = f"/kubepods/besteffort/pod{UID}"
    [cpu] = sample("container_cpu_usage_seconds_total", container="app")
    assert cpu.startswith(
        'container_cpu_usage_seconds_total{container="app",cpu="total",'
        f'id="{pod_cg}/{CID}",image="docker.io/library/busybox:latest",name="{CID}",'
        'namespace="ns",pod="web"} 1 ')
    assert int(cpu.split()[-1]) > 1_700_000_000_000  # a timestamp in milliseconds
    [pod_cpu] = sample("container_cpu_usage_seconds_total", id=pod_cg)
    assert 'container="",cpu="total"' in pod_cpu
    assert 'image="",name="",namespace="ns"' in pod_cpu
    assert pod_cpu.split()[1] == "2"
    [working] = sample("container_memory_working_set_bytes", container="app")
    assert working.split()[1] == go_float((2 << 20) - 524288) == "1.572864e+06"
    # the network is the sandbox's (container "", the pause image), per interface
    [rx] = sample("container_network_receive_bytes_total", namespace="ns")
    assert rx.startswith(
        'container_network_receive_bytes_total{container="",'
        f'id="{pod_cg}/{SID}",image="registry.k8s.io/pause:3.9",interface="eth0",'
        f'name="{SID}",namespace="ns",pod="web"}} 1024 ')
    [tx] = sample("container_network_transmit_bytes_total", name=SID)
    assert tx.split()[1] == "2048"
    assert sample("container_network_receive_errors_total", name=SID)[0].split()[1] == "0"
    assert sample("container_network_transmit_packets_total", name=SID)[0].split()[1] == "20"
    # the machine's own interfaces under id "/", lo and veth left out
    assert [line.split('interface="')[1].split('"')[0]
            for line in sample("container_network_receive_bytes_total", id="/")] \
        == ["cni0", "eth0"]
    [started] = sample("container_start_time_seconds", name=SID)
    assert started.endswith(f" {go_float(SANDBOX_CREATED)}")  # no timestamp
    [started] = sample("container_start_time_seconds", container="app")
    assert started.split()[1] == go_float(1767225602)
    assert 'machine_cpu_cores{boot_id="b1",machine_id="m1",system_uuid="u1"} 4' in lines
    assert 'machine_memory_bytes{boot_id="b1",machine_id="m1",system_uuid="u1"} ' \
        '8.589934592e+09' in lines
    assert "container_scrape_error 0" in lines and "machine_scrape_error 0" in lines
    assert "# TYPE container_network_receive_bytes_total counter" in lines
    assert "# HELP container_memory_working_set_bytes Current working set in bytes." in lines
    assert not sample("container_network_receive_bytes_total", container="app")
    assert not [line for line in lines if "container_fs_" in line]  # not measured
    families = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert families == sorted(families)


def test_go_float_matches_the_go_client():
    assert [go_float(v) for v in (0, 1, 0.5, 123456, 1234567, 2.5e-7, 1e21, 0.0001)] == \
        ["0", "1", "0.5", "123456", "1.234567e+06", "2.5e-07", "1e+21", "0.0001"]


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
