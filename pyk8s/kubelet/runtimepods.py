"""What the runtime holds for a pod: upstream's kubecontainer.PodStatus, read through CRI.

Role: `get_pod_status` gathers, for one pod UID, every sandbox and container the
runtime has (found by the `io.kubernetes.pod.uid` label), converted into
`ContainerRecord`s that carry what the kubelet wrote into each container's labels
and annotations (name, restart count, hash, termination-message settings).
`list_runtime_pods` does the same for all pods at once (housekeeping, adoption).

Invariants:
- `sandboxes` and `containers` are sorted newest first (by creation time), as
  upstream: `sandboxes[0]` is the current sandbox, the first record of a name is
  the container's latest instance.
- The pod IPs are those of the newest sandbox, and only while it is READY.
- A sandbox or container that vanishes between the list and its status call is
  skipped, not an error (another task may be removing it).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

from pyk8s.cri.runtime import (
    ContainerState, ContainerStatus, NotFound, PodSandboxStatus, Runtime, SandboxState,
)
from pyk8s.kubelet import pods


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContainerRecord:
    """One container instance as the runtime reports it (kubecontainer.Status)."""

    id: str
    name: str
    sandbox_id: str
    state: ContainerState
    created_at: int  # Unix ns
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image_ref: str = ""
    restart_count: int = 0
    hash: str = ""
    container_type: str = pods.REGULAR
    termination_message_path: str = ""
    termination_message_policy: str = "File"
    log_path: str = ""

    @property
    def exited(self) -> bool:
        return self.state == ContainerState.EXITED

    @property
    def running(self) -> bool:
        return self.state == ContainerState.RUNNING


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimePodStatus:
    uid: str
    name: str
    namespace: str
    sandboxes: tuple[PodSandboxStatus, ...] = ()
    containers: tuple[ContainerRecord, ...] = ()
    ips: tuple[str, ...] = ()

    def latest(self, name: str) -> ContainerRecord | None:
        """The newest instance of container `name` (upstream's FindContainerStatusByName)."""
        return next((c for c in self.containers if c.name == name), None)

    def instances(self, name: str) -> list[ContainerRecord]:
        return [c for c in self.containers if c.name == name]

    @property
    def running_containers(self) -> list[ContainerRecord]:
        return [c for c in self.containers if c.state in (ContainerState.RUNNING,
                                                          ContainerState.UNKNOWN)]

    @property
    def ready_sandboxes(self) -> list[PodSandboxStatus]:
        return [s for s in self.sandboxes if s.state == SandboxState.READY]

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not self.containers


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def record(status: ContainerStatus, sandbox_id: str) -> ContainerRecord:
    a = status.annotations
    return ContainerRecord(
        id=status.id, name=status.labels.get(pods.CONTAINER_NAME_LABEL, status.metadata.name),
        sandbox_id=sandbox_id, state=status.state, created_at=status.created_at,
        started_at=status.started_at, finished_at=status.finished_at,
        exit_code=status.exit_code, reason=status.reason, message=status.message,
        image_ref=status.image_ref,
        restart_count=_int(a.get(pods.RESTART_COUNT), status.metadata.attempt),
        hash=a.get(pods.CONTAINER_HASH, ""),
        container_type=a.get(pods.CONTAINER_TYPE, pods.REGULAR),
        termination_message_path=a.get(pods.TERMINATION_MESSAGE_PATH, ""),
        termination_message_policy=a.get(pods.TERMINATION_MESSAGE_POLICY, "File"),
        log_path=status.log_path)


async def get_pod_status(runtime: Runtime, uid: str, name: str = "",
                         namespace: str = "") -> RuntimePodStatus:
    """Every sandbox and container of pod `uid`, newest first."""
    selector = {pods.POD_UID_LABEL: uid}
    sandboxes = []
    for s in await runtime.list_pod_sandboxes(labels=selector):
        try:
            sandboxes.append(await runtime.pod_sandbox_status(s.id))
        except NotFound:
            continue
    # newest first; the attempt breaks ties of coarse clocks
    sandboxes.sort(key=lambda s: (s.created_at, s.metadata.attempt), reverse=True)
    records = []
    for c in await runtime.list_containers(labels=selector):
        try:
            records.append(record(await runtime.container_status(c.id), c.pod_sandbox_id))
        except NotFound:
            continue
    records.sort(key=lambda c: (c.created_at, c.restart_count), reverse=True)
    ips: tuple[str, ...] = ()
    if sandboxes and sandboxes[0].state == SandboxState.READY:
        ips = sandboxes[0].ips
    if sandboxes and not name:
        name, namespace = sandboxes[0].metadata.name, sandboxes[0].metadata.namespace
    return RuntimePodStatus(uid=uid, name=name, namespace=namespace,
                            sandboxes=tuple(sandboxes), containers=tuple(records), ips=ips)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimePod:
    """A pod as the runtime lists it, without per-object status calls."""

    uid: str
    name: str
    namespace: str
    sandbox_ids: tuple[str, ...]
    running_sandboxes: int
    running_containers: int


async def list_runtime_pods(runtime: Runtime) -> dict[str, RuntimePod]:
    """Every pod (by UID) that has a sandbox or a container in the runtime."""
    sandboxes = await runtime.list_pod_sandboxes()
    containers = await runtime.list_containers()
    found: dict[str, dict] = {}

    def entry(labels: dict[str, str]) -> dict | None:
        uid = labels.get(pods.POD_UID_LABEL)
        if not uid:
            return None  # not a pod of a kubelet
        return found.setdefault(uid, {
            "name": labels.get(pods.POD_NAME_LABEL, ""),
            "namespace": labels.get(pods.POD_NAMESPACE_LABEL, ""),
            "sandboxes": [], "ready": 0, "running": 0})

    for s in sandboxes:
        e = entry(s.labels)
        if e is not None:
            e["sandboxes"].append(s.id)
            e["ready"] += s.state == SandboxState.READY
    for c in containers:
        e = entry(c.labels)
        if e is not None:
            e["running"] += c.state == ContainerState.RUNNING
    return {uid: RuntimePod(uid=uid, name=e["name"], namespace=e["namespace"],
                            sandbox_ids=tuple(e["sandboxes"]), running_sandboxes=e["ready"],
                            running_containers=e["running"])
            for uid, e in found.items()}


def states_fingerprint(sandboxes: Iterable, containers: Iterable) -> dict[str, tuple]:
    """Per pod UID, the ids and states of its sandboxes and containers (PLEG relist)."""
    out: dict[str, list] = {}
    for s in sandboxes:
        uid = s.labels.get(pods.POD_UID_LABEL)
        if uid:
            out.setdefault(uid, []).append((s.id, s.state.value))
    for c in containers:
        uid = c.labels.get(pods.POD_UID_LABEL)
        if uid:
            out.setdefault(uid, []).append((c.id, c.state.value))
    return {uid: tuple(sorted(items)) for uid, items in out.items()}
