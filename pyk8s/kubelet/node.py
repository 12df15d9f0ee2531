"""Preparing and resetting the machine side of a node: containerd, pod network, routes.

Role: the parts of a kubelet start that are not the kubelet proper: the network
safety routes (DESIGN.md), containerd with its config under the data dir (or a
runtime someone else runs), the offline images, and the CNI conflist for the
node's pod /24 on its bridge, with the masquerade of pod traffic leaving the
cluster range (`cni.apply_masquerade`). `reset_node` is the inverse for a node torn down for
good (tests, a future `pyk8s agent --reset`): every pod removed, containerd stopped
by PID, mounts under the data dir unmounted, the bridge, its masquerade table and
the pods' cgroups gone.

Invariants:
- Every path is under `<data-dir>/agent`: containerd's root, state and socket, the
  CNI config and host-local's allocations. Nodes with different data dirs, bridges
  and pod CIDRs coexist on one machine.
- Blackhole routes for the cluster and service CIDRs are in place before the first
  pod can get an address. The CIDRs are the server's `--cluster-cidr` and
  `--service-cidr`, recorded by the CLI in `<data-dir>/agent/network.json`
  (`record_cluster_network`) before the kubelet starts; without a record, k3s'
  defaults 10.42.0.0/16 and 10.43.0.0/16.
- Stopping a kubelet leaves containerd and the pods running; the next start adopts
  both.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
import time
from pathlib import Path

from pyk8s.cri import cni
from pyk8s.cri.containerd import (
    Containerd, ContainerdConfig, remove_cgroup_parent, unmount_under,
)
from pyk8s.cri.remote import RemoteRuntime
from pyk8s.cri.runtime import CRIError
from pyk8s.kubelet import images

log = logging.getLogger(__name__)
DEFAULT_BRIDGE = "pyk8s0"


def agent_dir(data_dir: Path) -> Path:
    return data_dir / "agent"


def containerd_config(data_dir: Path) -> ContainerdConfig:
    agent = agent_dir(data_dir)
    return ContainerdConfig(base_dir=agent / "containerd",
                            cni_conf_dir=agent / "etc" / "cni" / "net.d")


NETWORK_RECORD = Path("agent") / "network.json"


def record_cluster_network(data_dir: Path, *, cluster_cidr: str = cni.CLUSTER_CIDR,
                           service_cidr: str = cni.SERVICE_CIDR) -> None:
    """Record the cluster's pod and Service ranges for this node's routes and
    masquerade (written atomically; validated here so a typo fails at start)."""
    cidrs = {"clusterCIDR": str(ipaddress.ip_network(cluster_cidr)),
             "serviceCIDR": str(ipaddress.ip_network(service_cidr))}
    path = Path(data_dir) / NETWORK_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cidrs) + "\n")
    tmp.replace(path)


def cluster_network(data_dir: Path) -> tuple[str, str]:
    """(cluster CIDR, service CIDR) recorded for this data dir, else the defaults."""
    try:
        saved = json.loads((Path(data_dir) / NETWORK_RECORD).read_text())
    except FileNotFoundError:
        return cni.CLUSTER_CIDR, cni.SERVICE_CIDR
    return (saved.get("clusterCIDR") or cni.CLUSTER_CIDR,
            saved.get("serviceCIDR") or cni.SERVICE_CIDR)


async def start_runtime(data_dir: Path, *, endpoint: str = "") -> Containerd:
    """Blackhole routes, then containerd (ours, adopted, or `endpoint`), then images."""
    cluster_cidr, service_cidr = await asyncio.to_thread(cluster_network, data_dir)
    added = await cni.ensure_blackhole_routes(
        tuple(dict.fromkeys(c for c in (cluster_cidr, service_cidr)
                            if ipaddress.ip_network(c).version == 4)))
    if added:
        log.info("blackhole routes added for %s", ", ".join(added))
    if endpoint:
        containerd = await Containerd.existing(endpoint)
    else:
        containerd = await Containerd.start(containerd_config(data_dir))
    await images.ensure_images(data_dir, address=containerd.address)
    return containerd


def write_network(data_dir: Path, *, pod_cidr: str, bridge: str = DEFAULT_BRIDGE,
                  conf_dir: Path | None = None, cluster_cidr: str = "",
                  service_cidr: str = "") -> Path:
    """The node's CNI conflist (bridge + host-local on `pod_cidr` + portmap) and the
    masquerade of its pods' traffic leaving the cluster range (the recorded ranges
    unless given). Blocking: run it in a thread."""
    recorded = cluster_network(data_dir)
    cluster_cidr = cluster_cidr or recorded[0]
    service_cidr = service_cidr or recorded[1]
    conflist = cni.bridge_conflist(subnet=pod_cidr, bridge=bridge, name="pyk8s",
                                   ipam_dir=agent_dir(data_dir) / "cni" / "networks")
    path = cni.write_conflist(conf_dir or containerd_config(data_dir).cni_conf_dir, conflist)
    if ipaddress.ip_network(pod_cidr).version == 4:
        cni.apply_masquerade(bridge=bridge, pod_cidr=pod_cidr, cluster_cidr=cluster_cidr,
                             service_cidr=service_cidr)
    return path


def _shim_pids(address: str) -> list[int]:
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


async def remove_pod_sandboxes(runtime: RemoteRuntime, *, timeout: float = 30.0) -> list[str]:
    """Stop and remove every pod sandbox of ``runtime``; a failure is tried again (as
    the kubelet's pod workers would) until ``timeout``: containerd 1.6 can answer
    "ttrpc: closed", or fail a removal, while a container's shim is exiting. Returns
    what could not be removed. A failure to list raises CRIError."""
    deadline = time.monotonic() + timeout
    while True:
        failed: dict[str, str] = {}
        for sandbox in await runtime.list_pod_sandboxes():
            try:
                await runtime.stop_pod_sandbox(sandbox.id)
                await runtime.remove_pod_sandbox(sandbox.id)
            except CRIError as e:
                failed[sandbox.id] = e.message
        if not failed or time.monotonic() > deadline:
            return [f"could not remove pod sandbox {sid}: {message}"
                    for sid, message in failed.items()]
        log.info("retrying the removal of %d pod sandbox(es): %s", len(failed),
                 "; ".join(failed.values()))
        await asyncio.sleep(0.5)


async def reset_node(data_dir: Path, *, bridge: str = DEFAULT_BRIDGE,
                     cgroup_root: str = "/kubepods") -> list[str]:
    """Remove every pod, stop our containerd, unmount, delete the bridge and cgroups.

    Returns notes on what had to be forced (leftover shims, mounts).
    """
    notes = []
    config = containerd_config(data_dir)
    answered = False
    if config.address.is_socket():
        runtime = RemoteRuntime(str(config.address), request_timeout=30)
        try:
            notes += await remove_pod_sandboxes(runtime)
            answered = True
        except CRIError as e:
            notes.append(f"could not list pods: {e.message}")
        finally:
            await runtime.close()
    if answered and config.pid_path.exists():
        # our containerd answers: adopt it by its pidfile, then stop it by PID
        containerd = await Containerd.start(config)
        await containerd.stop()
    for pid in await asyncio.to_thread(_shim_pids, str(config.address)):
        notes.append(f"killed leftover shim {pid}")
        os.kill(pid, signal.SIGKILL)
    unmounted = await unmount_under(data_dir)
    if unmounted:
        notes.append(f"unmounted {unmounted}")
    await cni.delete_link(bridge)
    try:
        await asyncio.to_thread(cni.remove_masquerade, bridge)
    except RuntimeError as e:
        notes.append(f"masquerade table of {bridge} not removed: {e}")
    try:
        remove_cgroup_parent(cgroup_root)
    except OSError as e:
        notes.append(f"cgroup {cgroup_root} not removed: {e}")
    return notes
