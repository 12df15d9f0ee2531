"""Pod startup benchmark: pods created through the API and watched to Running on one node.

Starts a real `pyk8s apiserver` (subprocess) and a kubelet with its own containerd
in a temp dir (in this process, sharing nothing with the API server but HTTPS).
In the same run, on the same containerd, the physical limit: raw CRI
RunPodSandbox + CreateContainer + StartContainer for the same number of pods
(bench/_cri_raw.py). Then N busybox pods are created at once through the API, and
each one's startup latency is measured from its create request to the watch event
that shows it Running (upstream's pod startup SLO: p99 <= 5 s). Prints one line:
both distributions and their ratio. A benchmark, not a test: it asserts nothing.

    sudo .venv/bin/python bench/pod_startup.py [--pods 30]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bench._cri_raw import percentile, raw_pod_start  # noqa: E402
from pyk8s.client import ApiError, Client, is_already_exists, load_config  # noqa: E402
from pyk8s.client import resources  # noqa: E402
from pyk8s.kubelet import node as nodemod  # noqa: E402
from pyk8s.kubelet.kubelet import Kubelet, run  # noqa: E402
from pyk8s.kubelet.settings import KubeletSettings  # noqa: E402

SUBNET = "10.42.247.0/24"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_apiserver(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(data_dir / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "apiserver",
                             "--data-dir", str(data_dir), "--https-port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    kubeconfig = data_dir / "kubeconfig.yaml"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"API server exited; see {data_dir}/server.log")
        if kubeconfig.exists():
            r = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw",
                                "/readyz"], capture_output=True, text=True)
            if r.stdout.strip() == "ok":
                return proc, str(kubeconfig)
        if time.monotonic() > deadline:
            raise RuntimeError("API server not ready after 60 s")
        time.sleep(0.1)


def pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "automountServiceAccountToken": False,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", "3600"]}]}}


async def ensure_service_account(client: Client) -> None:
    """The namespace's default account (no controller makes it yet) for admission."""
    try:
        await client.create(resources.SERVICEACCOUNTS, {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": "default"}}, namespace="default")
    except ApiError as e:
        if not is_already_exists(e):
            raise


async def api_pod_start(client: Client, node: str, n: int) -> list[float]:
    """Create `n` pods at once; seconds from each create request to Running."""
    run_id = secrets.token_hex(3)
    names = [f"bench-{run_id}-{i}" for i in range(n)]
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    listed = await client.list(resources.PODS, namespace="default")
    done = asyncio.Event()

    async def watch() -> None:
        async for event in client.watch(resources.PODS, namespace="default",
                                        resource_version=listed["metadata"]["resourceVersion"]):
            name = event.object["metadata"]["name"]
            if name in sent and name not in running and \
                    (event.object.get("status") or {}).get("phase") == "Running":
                running[name] = time.perf_counter()
                if len(running) == n:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())

    async def create(name: str) -> None:
        sent[name] = time.perf_counter()
        await client.create(resources.PODS, pod(name, node), namespace="default")

    await asyncio.gather(*(create(name) for name in names))
    await asyncio.wait_for(done.wait(), 120)
    watcher.cancel()
    for name in names:
        await client.delete(resources.PODS, name, namespace="default", grace_period_seconds=1)
    return sorted(running[name] - sent[name] for name in names)


async def main(n: int) -> None:
    token = secrets.token_hex(3)
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward")
    forward_before = ip_forward.read_text()
    with tempfile.TemporaryDirectory(prefix="pyk8s-podstart-") as tmp:
        base = Path(tmp)
        (base / "api").mkdir()
        server, kubeconfig = start_apiserver(base / "api")
        settings = KubeletSettings(node_name=f"bench-{token}", data_dir=base / "node",
                                   pod_cidr=SUBNET, node_ip="127.0.0.1",
                                   cgroup_root=f"/pyk8s-bench-{token}", port=free_port())
        bridge = f"pyk8sb{token}"
        stop, ready = asyncio.Event(), asyncio.Event()
        holder: list[Kubelet] = []
        node_task = asyncio.create_task(run(settings, kubeconfig=kubeconfig, bridge=bridge,
                                            stop=stop, started=lambda k: (holder.append(k),
                                                                          ready.set())))
        client = Client(load_config(kubeconfig))
        try:
            await asyncio.wait_for(ready.wait(), 120)
            kubelet = holder[0]
            await ensure_service_account(client)
            raw_opts = {"log_root": base / "raw-logs",
                        "cgroup_parent": f"{settings.cgroup_root}/raw"}
            await raw_pod_start(kubelet.runtime, 2, **raw_opts)  # warm up
            raw = await raw_pod_start(kubelet.runtime, n, **raw_opts)
            await api_pod_start(client, settings.node_name, 2)  # warm up
            api = await api_pod_start(client, settings.node_name, n)
        finally:
            await client.close()
            stop.set()
            await asyncio.gather(node_task, return_exceptions=True)
            await nodemod.reset_node(settings.data_dir, bridge=bridge,
                                     cgroup_root=settings.cgroup_root)
            server.terminate()
            server.wait(10)
            ip_forward.write_text(forward_before)
    a50, a99 = percentile(api, 50), percentile(api, 99)
    r50, r99 = percentile(raw, 50), percentile(raw, 99)
    print(f"pod startup, {n} pods at once on one node: API->Running p50={a50:.3f}s "
          f"p99={a99:.3f}s (SLO p99<=5s); raw CRI p50={r50:.3f}s p99={r99:.3f}s; "
          f"ratio p50 {a50 / r50:.2f}x p99 {a99 / r99:.2f}x")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/pod_startup.py: needs root (containerd, network namespaces)")
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.pods))
