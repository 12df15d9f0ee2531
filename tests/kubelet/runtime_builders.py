"""Runtime states built by hand, for the pure decision and status functions."""
from __future__ import annotations

import itertools

from pyk8s.cri.runtime import (
    ContainerState, PodSandboxMetadata, PodSandboxStatus, SandboxState,
)
from pyk8s.kubelet import pods
from pyk8s.kubelet.runtimepods import ContainerRecord, RuntimePodStatus

_ids = itertools.count(1)
SECOND = 10 ** 9
T0 = 1_735_689_600 * SECOND  # 2025-01-01T00:00:00Z


def sandbox(pod: dict, *, ready: bool = True, attempt: int = 0, ip: str = "10.42.0.5",
            created: int = T0, host_network: bool = False) -> PodSandboxStatus:
    m = pod["metadata"]
    return PodSandboxStatus(
        id=f"sb{next(_ids)}", metadata=PodSandboxMetadata(
            name=m["name"], uid=m["uid"], namespace=m["namespace"], attempt=attempt),
        state=SandboxState.READY if ready else SandboxState.NOTREADY, created_at=created,
        ip="" if host_network else (ip if ready else ""), additional_ips=(),
        network_mode="NODE" if host_network else "POD", labels={}, annotations={})


def record(pod: dict, name: str, state: str = "running", *, exit_code: int = 0,
           restart: int = 0, created: int = T0, reason: str = "",
           init: bool = False, spec_hash: str | None = None) -> ContainerRecord:
    state_ = {"running": ContainerState.RUNNING, "exited": ContainerState.EXITED,
              "created": ContainerState.CREATED, "unknown": ContainerState.UNKNOWN}[state]
    c = pods.find_container(pod, name) or {"name": name}
    return ContainerRecord(
        id=f"c{next(_ids)}", name=name, sandbox_id="sb", state=state_, created_at=created,
        started_at=created + SECOND if state != "created" else 0,
        finished_at=created + 5 * SECOND if state == "exited" else 0,
        exit_code=exit_code, reason=reason or ("" if state != "exited" else
                                               "Completed" if exit_code == 0 else "Error"),
        image_ref="sha256:abc", restart_count=restart,
        hash=pods.container_hash(c) if spec_hash is None else spec_hash,
        container_type=pods.INIT if init else pods.REGULAR)


def status(pod: dict, sandboxes=(), containers=()) -> RuntimePodStatus:
    sandboxes = sorted(sandboxes, key=lambda s: s.created_at, reverse=True)
    containers = sorted(containers, key=lambda c: c.created_at, reverse=True)
    ips = sandboxes[0].ips if sandboxes and sandboxes[0].state == SandboxState.READY else ()
    m = pod["metadata"]
    return RuntimePodStatus(uid=m["uid"], name=m["name"], namespace=m["namespace"],
                            sandboxes=tuple(sandboxes), containers=tuple(containers), ips=ips)
