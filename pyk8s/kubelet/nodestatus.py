"""The Node object a kubelet registers and keeps current: upstream's nodestatus/setters.go.

Role: read the machine (`MachineInfo`: CPUs, memory, the data dir's filesystem,
ids, kernel, OS), build the Node to register (labels, podCIDR), and compute its
status: capacity and allocatable (capacity minus the hard eviction thresholds),
addresses (InternalIP, Hostname), nodeInfo (kubelet v1.32.0,
`containerd://<version>`), daemonEndpoints, images, and the MemoryPressure,
DiskPressure, PIDPressure and Ready conditions with upstream's reasons and messages
(the pressure conditions as the eviction manager observed them, once it has).
`NodeStatusReporter` registers the node and PATCHes `nodes/status` every
`node_status_update_frequency` when something changed, or every
`node_status_report_frequency` regardless.

Invariants:
- A condition's `lastTransitionTime` moves only when its status changes; its
  `lastHeartbeatTime` is the time of the write that carries it.
- A registered node keeps what others set on it (taints, other labels, an already
  assigned podCIDR); the kubelet adds its default labels and a missing podCIDR.
- Reading the machine blocks (files, statvfs, `ip`): it runs in a thread.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Awaitable, Callable

from pyk8s.api.quantities import Quantity, parse_quantity
from pyk8s.api.strategicpatch import create_two_way_merge_patch
from pyk8s.client import resources
from pyk8s.client.clock import Clock
from pyk8s.client.errors import ApiError, is_already_exists, is_not_found
from pyk8s.client.transport import TransportError
from pyk8s.cri.runtime import RuntimeStatus, VersionInfo
from pyk8s.kubelet.eviction import MEMORY_AVAILABLE, NODEFS_AVAILABLE, threshold_for
from pyk8s.kubelet.settings import KUBELET_VERSION, KubeletSettings

log = logging.getLogger(__name__)
NODE_SCHEMA = "io.k8s.api.core.v1.Node"
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
          "s390x": "s390x"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class MachineInfo:
    cpus: int
    memory: int  # bytes
    memory_available: int
    filesystem: int  # bytes of the filesystem holding the data dir
    filesystem_available: int
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel: str
    os_image: str
    architecture: str
    hostname: str


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _meminfo() -> dict[str, int]:
    info = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields:
            info[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return info


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def read_machine_info(data_dir: Path) -> MachineInfo:
    """The machine as the kubelet reports it (blocking)."""
    memory = _meminfo()
    data_dir.mkdir(parents=True, exist_ok=True)
    fs = os.statvfs(data_dir)
    machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    return MachineInfo(
        cpus=os.cpu_count() or 1, memory=memory.get("MemTotal", 0),
        memory_available=memory.get("MemAvailable", 0),
        filesystem=fs.f_blocks * fs.f_frsize, filesystem_available=fs.f_bavail * fs.f_frsize,
        machine_id=machine_id,
        system_uuid=_read("/sys/class/dmi/id/product_uuid").lower() or machine_id,
        boot_id=_read("/proc/sys/kernel/random/boot_id"), kernel=platform.release(),
        os_image=_os_image(), architecture=ARCHES.get(platform.machine(), platform.machine()),
        hostname=socket.gethostname().lower())


def detect_node_ip() -> str:
    """The address of the interface holding the default route (blocking)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "route", "show", "default"],
                             capture_output=True, text=True, check=True).stdout.split()
        dev = out[out.index("dev") + 1]
        addrs = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", dev, "scope",
                                "global"], capture_output=True, text=True,
                               check=True).stdout.split()
        return addrs[addrs.index("inet") + 1].split("/")[0]
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return "127.0.0.1"


def capacity(settings: KubeletSettings, machine: MachineInfo) -> dict[str, str]:
    return {"cpu": str(machine.cpus), "memory": f"{machine.memory // 1024}Ki",
            "pods": str(settings.max_pods), "ephemeral-storage": f"{machine.filesystem // 1024}Ki",
            "hugepages-1Gi": "0", "hugepages-2Mi": "0"}


def allocatable(settings: KubeletSettings, machine: MachineInfo) -> dict[str, str]:
    """Capacity minus the hard eviction thresholds (no reservations configured)."""
    memory = max(machine.memory - threshold_for(settings, MEMORY_AVAILABLE, machine.memory), 0)
    storage = max(machine.filesystem - threshold_for(settings, NODEFS_AVAILABLE,
                                                     machine.filesystem), 0)
    return dict(capacity(settings, machine), memory=f"{memory // 1024}Ki",
                **{"ephemeral-storage": str(storage)})


def allocatable_quantities(settings: KubeletSettings, machine: MachineInfo
                           ) -> dict[str, Quantity]:
    return {k: parse_quantity(v) for k, v in allocatable(settings, machine).items()}


def default_labels(settings: KubeletSettings, machine: MachineInfo) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": settings.node_name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": machine.architecture, "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": machine.architecture}
    labels.update(dict(settings.node_labels))
    return labels


def initial_node(settings: KubeletSettings, machine: MachineInfo) -> dict:
    node: dict = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": settings.node_name,
                     "labels": default_labels(settings, machine),
                     "annotations": {
                         "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {},
    }
    if settings.pod_cidr:
        node["spec"] = {"podCIDR": settings.pod_cidr, "podCIDRs": [settings.pod_cidr]}
    return node


def _condition(kind: str, ok_is_true: bool, good: bool, reason: str, message: str) -> dict:
    status = "True" if (good == ok_is_true) else "False"
    return {"type": kind, "status": status, "reason": reason, "message": message}


def conditions(settings: KubeletSettings, machine: MachineInfo, runtime: RuntimeStatus | None,
               runtime_error: str = "", pressure: frozenset[str] | None = None) -> list[dict]:
    """The four conditions, before timestamps (upstream's order).

    `pressure` is what the eviction manager observed; without it (hollow nodes,
    before its first pass) the machine's figures are compared with the thresholds.
    """
    if pressure is None:
        memory_ok = machine.memory_available >= threshold_for(settings, MEMORY_AVAILABLE,
                                                              machine.memory)
        disk_ok = machine.filesystem_available >= threshold_for(settings, NODEFS_AVAILABLE,
                                                                machine.filesystem)
    else:
        memory_ok = "MemoryPressure" not in pressure
        disk_ok = "DiskPressure" not in pressure
    errors = []
    if runtime_error:
        errors.append(f"container runtime is down: {runtime_error}")
    elif runtime is None:
        errors.append("container runtime status check may not have completed yet")
    else:
        for kind in ("RuntimeReady", "NetworkReady"):
            c = runtime.condition(kind)
            if c is None or not c.status:
                what = "network " if kind == "NetworkReady" else ""
                detail = (f"{kind}=false reason:{c.reason} message:{c.message}" if c
                          else f"{kind} condition missing")
                errors.append(f"container runtime {what}not ready: {detail}")
    out = [
        _condition("MemoryPressure", False, memory_ok,
                   "KubeletHasSufficientMemory" if memory_ok else "KubeletHasInsufficientMemory",
                   "kubelet has sufficient memory available" if memory_ok
                   else "kubelet has insufficient memory available"),
        _condition("DiskPressure", False, disk_ok,
                   "KubeletHasNoDiskPressure" if disk_ok else "KubeletHasDiskPressure",
                   "kubelet has no disk pressure" if disk_ok else "kubelet has disk pressure"),
        _condition("PIDPressure", False, True, "KubeletHasSufficientPID",
                   "kubelet has sufficient PID available"),
    ]
    if errors:
        out.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                    "message": ",".join(errors)})
    else:
        out.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status"})
    return out


def stamp_conditions(new: list[dict], old: list[dict], now: str) -> list[dict]:
    olds = {c.get("type"): c for c in old}
    out = []
    for c in new:
        previous = olds.get(c["type"])
        same = previous is not None and previous.get("status") == c["status"]
        out.append(dict(c, lastHeartbeatTime=now,
                        lastTransitionTime=previous.get("lastTransitionTime") if same else now))
    return out


def node_status(settings: KubeletSettings, machine: MachineInfo, *, node_ip: str,
                version: VersionInfo | None, runtime: RuntimeStatus | None,
                runtime_error: str = "", images: list[dict] | None = None,
                pressure: frozenset[str] | None = None) -> dict:
    """The status without timestamps (`stamp_conditions` adds them)."""
    runtime_version = f"{version.runtime_name}://{version.runtime_version}" if version else ""
    return {
        "capacity": capacity(settings, machine),
        "allocatable": allocatable(settings, machine),
        "conditions": conditions(settings, machine, runtime, runtime_error, pressure),
        "addresses": [{"type": "InternalIP", "address": node_ip},
                      {"type": "Hostname", "address": machine.hostname}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": settings.port}},
        "nodeInfo": {"machineID": machine.machine_id, "systemUUID": machine.system_uuid,
                     "bootID": machine.boot_id, "kernelVersion": machine.kernel,
                     "osImage": machine.os_image, "containerRuntimeVersion": runtime_version,
                     "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": machine.architecture},
        "images": images or [],
    }


def node_images(images, limit: int) -> list[dict]:
    """The runtime's images, biggest first (upstream's nodeStatusMaxImages)."""
    ordered = sorted(images, key=lambda i: i.size, reverse=True)[:limit]
    return [{"names": list(i.repo_digests) + list(i.repo_tags), "sizeBytes": i.size}
            for i in ordered if i.repo_digests or i.repo_tags]


TRANSITION_EVENTS = {
    ("MemoryPressure", "False"): "NodeHasSufficientMemory",
    ("MemoryPressure", "True"): "NodeHasInsufficientMemory",
    ("DiskPressure", "False"): "NodeHasNoDiskPressure",
    ("DiskPressure", "True"): "NodeHasDiskPressure",
    ("PIDPressure", "False"): "NodeHasSufficientPID",
    ("PIDPressure", "True"): "NodeHasInsufficientPID",
    ("Ready", "True"): "NodeReady",
    ("Ready", "False"): "NodeNotReady",
}


def _comparable(status: dict) -> dict:
    """The status without heartbeat times (what decides whether to write)."""
    view = dict(status)
    view["conditions"] = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                          for c in status.get("conditions") or []]
    return view


class NodeStatusReporter:
    """Registers the node and keeps `nodes/<name>/status` current."""

    def __init__(self, client, settings: KubeletSettings, *, clock: Clock,
                 machine: Callable[[], Awaitable[MachineInfo]], node_ip: str,
                 runtime_state: Callable[[], Awaitable[tuple]],
                 event: Callable[[dict, str, str, str], None] = lambda *a: None,
                 pressure: Callable[[], frozenset[str] | None] = lambda: None):
        self.client, self.settings, self.clock = client, settings, clock
        self.pressure = pressure  # the eviction manager's conditions under pressure
        self.machine, self.node_ip = machine, node_ip
        self.runtime_state = runtime_state  # -> (version, status, error, images)
        self.event = event  # (node, type, reason, message)
        self.node: dict | None = None
        self._last_report = float("-inf")
        self.registered = asyncio.Event()

    async def register(self) -> dict:
        """Create the Node, or adopt the existing one (adding our labels and podCIDR)."""
        machine = await self.machine()
        wanted = initial_node(self.settings, machine)
        try:
            node = await self.client.create(resources.NODES, wanted)
        except ApiError as e:
            if not is_already_exists(e):
                raise
            node = await self.client.get(resources.NODES, self.settings.node_name)
            patch: dict = {}
            labels = (node.get("metadata") or {}).get("labels") or {}
            missing = {k: v for k, v in wanted["metadata"]["labels"].items()
                       if labels.get(k) != v}
            if missing:
                patch["metadata"] = {"labels": missing}
            if self.settings.pod_cidr and not (node.get("spec") or {}).get("podCIDR"):
                patch["spec"] = wanted["spec"]
            if patch:
                node = await self.client.patch(resources.NODES, self.settings.node_name,
                                               body=patch, patch_type="strategic")
        self.node = node
        self.registered.set()
        return node

    @property
    def pod_cidr(self) -> str:
        return ((self.node or {}).get("spec") or {}).get("podCIDR") or self.settings.pod_cidr

    async def update(self, *, force: bool = False) -> bool:
        """Write the status if it changed or the report period passed; True if written."""
        if self.node is None:
            await self.register()
        else:
            # As upstream's tryUpdateNodeStatus: compare with the Node as the API has it
            # (from the watch cache), not our last write, so a status someone else
            # changed (the lifecycle controller's Unknown) is reported over at once.
            self.node = await self.client.get(resources.NODES, self.settings.node_name,
                                              params=[("resourceVersion", "0")])
        machine = await self.machine()
        version, runtime, error, images = await self.runtime_state()
        fresh = node_status(self.settings, machine, node_ip=self.node_ip, version=version,
                            runtime=runtime, runtime_error=error,
                            images=node_images(images, self.settings.node_status_max_images),
                            pressure=self.pressure())
        old = (self.node or {}).get("status") or {}
        now = self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        fresh["conditions"] = stamp_conditions(fresh["conditions"], old.get("conditions") or [],
                                               now)
        due = self.clock.monotonic() - self._last_report >= \
            self.settings.node_status_report_frequency
        if not force and not due and _comparable(fresh) == _comparable(old):
            return False
        patch = create_two_way_merge_patch({"status": old}, {"status": fresh}, NODE_SCHEMA)
        self.node = await self.client.patch(resources.NODES, self.settings.node_name,
                                            body=patch, patch_type="strategic",
                                            subresource="status")
        self._last_report = self.clock.monotonic()
        self._record_transitions(old.get("conditions") or [], fresh["conditions"])
        return True

    def _record_transitions(self, old: list[dict], new: list[dict]) -> None:
        """Upstream's node events: NodeHasSufficientMemory, NodeReady, ..."""
        before = {c.get("type"): c.get("status") for c in old}
        for c in new:
            if before.get(c["type"]) == c["status"]:
                continue
            reason = TRANSITION_EVENTS.get((c["type"], c["status"]))
            if reason:
                self.event(self.node or {}, "Normal", reason,
                           f"Node {self.settings.node_name} status is now: {reason}")

    async def run(self) -> None:
        """Update every `node_status_update_frequency` until cancelled."""
        while True:
            try:
                await self.update()
            except ApiError as e:
                log.warning("updating node status failed: %s", e)
                if is_not_found(e):
                    self.node = None  # deleted: register again at the next update
            except TransportError as e:  # the API server is unreachable: try again
                log.warning("updating node status failed: %s", e)
            except Exception:  # noqa: BLE001 - keep reporting; the next try may work
                log.exception("updating node status failed")
            await self.clock.sleep(self.settings.node_status_update_frequency)
