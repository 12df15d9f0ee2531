"""A scratch node for the CRI tests: a containerd of our own in a temp dir.

One containerd per test session (started once, ~0.2 s; images built and imported
once, ~1.5 s). Its pods sit on a test-only bridge with 10.42.250.0/24; blackhole
routes for the cluster and service CIDRs go in first (DESIGN.md, network safety).
Teardown removes every sandbox, stops containerd by PID, unmounts what is left
under the temp dir and deletes the bridge and the pods' cgroup parent.

Needs root, containerd, runc, ctr, gcc and the CNI plugins; tests that use `node`
are skipped with the reason otherwise.
"""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import secrets
import signal
import time
from pathlib import Path

import pytest
import pytest_asyncio

from pyk8s.cri import cni
from pyk8s.cri.containerd import (
    Containerd, ContainerdConfig, mounts_under, remove_cgroup_parent, unmount_under,
)
from pyk8s.cri.remote import RemoteRuntime
from pyk8s.cri.runtime import CRIError
from pyk8s.kubelet import images
from pyk8s.kubelet.node import remove_pod_sandboxes

from .helpers import missing_requirements

TEST_SUBNET = "10.42.250.0/24"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


@dataclasses.dataclass
class Node:
    base: Path
    data_dir: Path
    log_root: Path
    config: ContainerdConfig
    containerd: Containerd
    bridge: str
    subnet: ipaddress.IPv4Network
    cgroup_parent: str
    built: list[images.BuiltImage]

    @property
    def address(self) -> str:
        return self.containerd.address


def _shim_pids(address: str) -> list[int]:
    """containerd-shim processes serving our containerd (found by its socket path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and address.encode() in argv:
            pids.append(int(entry.name))
    return pids


async def _start(base: Path) -> Node:
    token = secrets.token_hex(3)
    bridge = f"pyk8st{token}"
    data_dir = base / "data"
    config = ContainerdConfig(base_dir=base / "containerd", cni_conf_dir=base / "net.d")
    # Safety first: nothing for 10.42/16 or 10.43/16 may leave the machine.
    await cni.ensure_blackhole_routes()
    cni.write_conflist(config.cni_conf_dir, cni.bridge_conflist(
        subnet=TEST_SUBNET, bridge=bridge, name=f"pyk8s-test-{token}",
        ipam_dir=base / "ipam"))
    containerd = await Containerd.start(config)
    try:
        built = await images.ensure_images(data_dir, address=containerd.address)
    except BaseException:
        await containerd.stop()
        raise
    return Node(base=base, data_dir=data_dir, log_root=base / "pods", config=config,
                containerd=containerd, bridge=bridge,
                subnet=ipaddress.ip_network(TEST_SUBNET),
                cgroup_parent=f"/pyk8s-test-{token}", built=built)


async def _teardown(node: Node) -> list[str]:
    problems = []
    runtime = RemoteRuntime(node.address, request_timeout=30)
    try:
        problems += await remove_pod_sandboxes(runtime)
    finally:
        await runtime.close()
    await node.containerd.stop()
    # Safety net after a failed test: shims of our containerd outlive it.
    for pid in _shim_pids(node.address):
        problems.append(f"killed leftover shim {pid}")
        os.kill(pid, signal.SIGKILL)
    leftover = await unmount_under(node.base)
    if leftover:
        problems.append(f"had to unmount {leftover}")
    await cni.delete_link(node.bridge)
    remove_cgroup_parent(node.cgroup_parent)
    return problems


@pytest.fixture(scope="session")
def node(tmp_path_factory) -> Node:
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("cri")
    forward_before = IP_FORWARD.read_text().strip()
    started = asyncio.run(_start(base))
    yield started
    problems = asyncio.run(_teardown(started))
    # The bridge plugin (isGateway) turns on IP forwarding; put back what we found.
    if IP_FORWARD.read_text().strip() != forward_before:
        IP_FORWARD.write_text(forward_before)
    assert not mounts_under(base), f"mounts left under {base}"
    assert not problems, problems


@pytest_asyncio.fixture
async def runtime(node: Node):
    rt = RemoteRuntime(node.address, request_timeout=30)
    yield rt
    await rt.close()


@dataclasses.dataclass
class Pod:
    id: str
    config: dict
    ip: str


@pytest_asyncio.fixture
async def pods(node: Node, runtime: RemoteRuntime):
    """Factory: `await pods(name, **linux)` runs a sandbox; all removed after the test."""
    created: list[str] = []

    async def run(name: str, *, host_network: bool = False, share_pid: bool = False) -> Pod:
        uid = secrets.token_hex(8)
        namespaces = {"network": "NODE" if host_network else "POD",
                      "pid": "POD" if share_pid else "CONTAINER"}
        config = {
            "metadata": {"name": name, "namespace": "cri-test", "uid": uid, "attempt": 0},
            # as upstream's kubelet: a hostNetwork pod keeps the node's UTS
            # namespace, and runc refuses a hostname without a private one
            "hostname": "" if host_network else name,
            "log_directory": str(node.log_root / f"cri-test_{name}_{uid}"),
            "labels": {"io.kubernetes.pod.name": name, "test": "cri"},
            "annotations": {"pyk8s.test/annotation": "kept"},
            "linux": {"cgroup_parent": f"{node.cgroup_parent}/pod{uid}",
                      "security_context": {"namespace_options": namespaces}},
        }
        sandbox_id = await runtime.run_pod_sandbox(config)
        created.append(sandbox_id)
        status = await runtime.pod_sandbox_status(sandbox_id)
        if not host_network:
            # traffic goes only to pods this test created, on the test subnet
            assert ipaddress.ip_address(status.ip) in node.subnet, status.ip
        return Pod(id=sandbox_id, config=config, ip=status.ip)

    yield run
    for sandbox_id in created:
        # containerd 1.6 can answer "ttrpc: closed" when a container's shim exits
        # while the stop kills it; the kubelet retries, so does the cleanup
        deadline = time.monotonic() + 30
        while True:
            try:
                await runtime.stop_pod_sandbox(sandbox_id)
                break
            except CRIError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        await runtime.remove_pod_sandbox(sandbox_id)
