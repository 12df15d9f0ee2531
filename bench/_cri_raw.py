"""Raw CRI pod start: RunPodSandbox + CreateContainer + StartContainer, no kubelet.

The physical limit bench/pod_startup.py sets its figures beside: the same node's
runtime starting the same kind of pod with nothing of pyk8s in between.
`raw_pod_start(runtime, n)` works on any `Runtime` (the kubelet's containerd, or
the fake). Run as a script (root), it starts a scratch containerd in a temp dir
and prints one line.
"""
from __future__ import annotations

import asyncio
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyk8s.cri.runtime import Runtime


async def _one(runtime: Runtime, i: int, *, run_id: str, image: str, log_root: Path | None,
               cgroup_parent: str, namespace: str) -> tuple[float, str]:
    name = f"raw-{run_id}-{i}"
    uid = secrets.token_hex(8)
    sandbox = {
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "attempt": 0},
        "hostname": name,
        "log_directory": str(log_root / f"{namespace}_{name}_{uid}") if log_root else "",
        "labels": {"pyk8s.bench": "raw-cri", "pyk8s.bench/run": run_id},
        "linux": {"cgroup_parent": f"{cgroup_parent}/pod{uid}" if cgroup_parent else "",
                  "security_context": {"namespace_options": {"pid": "CONTAINER"}}},
    }
    container = {
        "metadata": {"name": "main", "attempt": 0}, "image": {"image": image},
        "command": ["sleep", "3600"], "log_path": "main/0.log",
        "linux": {"security_context": {"namespace_options": {"pid": "CONTAINER"}}},
    }
    start = time.perf_counter()
    sandbox_id = await runtime.run_pod_sandbox(sandbox)
    container_id = await runtime.create_container(sandbox_id, container, sandbox)
    await runtime.start_container(container_id)
    return time.perf_counter() - start, sandbox_id


async def raw_pod_start(runtime: Runtime, n: int, *, concurrency: int | None = None,
                        image: str = "busybox", log_root: Path | None = None,
                        cgroup_parent: str = "", namespace: str = "bench-raw") -> list[float]:
    """Start `n` one-container pods straight through `runtime`.

    Returns each pod's RunPodSandbox+CreateContainer+StartContainer seconds, sorted,
    timed from the moment the pod is started. By default all `n` go at once, as pods
    created together through the API do; `concurrency` caps how many are in flight
    (1: one after the other). The pods are stopped and removed afterwards (not
    timed); `image` must be present.
    """
    run_id = secrets.token_hex(3)
    slots = asyncio.Semaphore(concurrency or n)

    async def limited(i: int) -> tuple[float, str]:
        async with slots:
            return await _one(runtime, i, run_id=run_id, image=image, log_root=log_root,
                              cgroup_parent=cgroup_parent, namespace=namespace)
    results = await asyncio.gather(*(limited(i) for i in range(n)), return_exceptions=True)
    for sandbox in await runtime.list_pod_sandboxes(labels={"pyk8s.bench/run": run_id}):
        await runtime.stop_pod_sandbox(sandbox.id)
        await runtime.remove_pod_sandbox(sandbox.id)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return sorted(seconds for seconds, _ in results)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    k = math.ceil(p / 100 * len(sorted_values)) - 1
    return sorted_values[max(0, min(len(sorted_values) - 1, k))]


async def _main(n: int) -> None:
    from pyk8s.cri import cni
    from pyk8s.cri.containerd import (
        Containerd, ContainerdConfig, remove_cgroup_parent, unmount_under)
    from pyk8s.kubelet import images

    token = secrets.token_hex(3)
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward")
    forward_before = ip_forward.read_text()
    with tempfile.TemporaryDirectory(prefix="pyk8s-raw-") as tmp:
        base = Path(tmp)
        config = ContainerdConfig(base_dir=base / "containerd", cni_conf_dir=base / "net.d")
        bridge, parent = f"pyk8sb{token}", f"/pyk8s-bench-{token}"
        await cni.ensure_blackhole_routes()
        cni.write_conflist(config.cni_conf_dir, cni.bridge_conflist(
            subnet="10.42.251.0/24", bridge=bridge, ipam_dir=base / "ipam"))
        containerd = await Containerd.start(config)
        runtime = containerd.runtime()
        try:
            await images.ensure_images(base / "data", address=containerd.address)
            pods = {"log_root": base / "pods", "cgroup_parent": parent}
            await raw_pod_start(runtime, 2, **pods)  # warm up: first snapshots, caches
            serial = await raw_pod_start(runtime, min(n, 10), concurrency=1, **pods)
            seconds = await raw_pod_start(runtime, n, **pods)
        finally:
            await runtime.close()
            await containerd.stop()
            await unmount_under(base)
            await cni.delete_link(bridge)
            remove_cgroup_parent(parent)
            # the bridge plugin (isGateway) turns forwarding on; put back what we found
            ip_forward.write_text(forward_before)
    print(f"raw CRI pod start: {n} at once p50={percentile(seconds, 50):.3f}s "
          f"p99={percentile(seconds, 99):.3f}s; one at a time "
          f"p50={percentile(serial, 50):.3f}s mean={statistics.fmean(serial):.3f}s")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/_cri_raw.py: needs root (containerd, network namespaces)")
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
