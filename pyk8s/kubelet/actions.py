"""What a pod sync must do: upstream's computePodActions, as a pure function.

Role: compare a pod's spec with what the runtime holds for it (`RuntimePodStatus`)
and decide: (re)create the sandbox, kill the whole pod, start the next init
container, start or kill regular containers. `syncing.PodSyncer` carries the
decision out; `podstatus` uses the same restart rule to show containers as
waiting. Follows kuberuntime_manager.go (`computePodActions`,
`findNextInitContainerToRun`, `PodSandboxChanged`, `ShouldContainerBeRestarted`)
for pods without restartable init containers.

Invariants:
- Pure: no I/O, arguments untouched, same inputs give the same actions.
- A new sandbox means every container starts over: init containers from the
  first, then the regular ones (minus those that already succeeded under
  OnFailure).
- A pod whose containers are all done and must not restart is killed (its sandbox
  stopped) and never gets a new sandbox.
- A container whose spec hash changed, or that failed its liveness or startup
  probe, is killed and restarted (the first regardless of restart policy, the
  others only if the policy restarts failures).
"""
from __future__ import annotations

import dataclasses
from typing import AbstractSet

from pyk8s.cri.runtime import ContainerState, SandboxState
from pyk8s.kubelet import pods
from pyk8s.kubelet.runtimepods import ContainerRecord, RuntimePodStatus

REASON_UNKNOWN = ""
REASON_LIVENESS = "LivenessProbe"
REASON_STARTUP = "StartupProbe"


@dataclasses.dataclass(frozen=True)
class KillInfo:
    name: str
    message: str
    reason: str = REASON_UNKNOWN


@dataclasses.dataclass(kw_only=True)
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    next_init_container: dict | None = None
    containers_to_start: list[int] = dataclasses.field(default_factory=list)
    containers_to_kill: dict[str, KillInfo] = dataclasses.field(default_factory=dict)

    @property
    def nothing(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.next_init_container
                    or self.containers_to_start or self.containers_to_kill)


def sandbox_changed(pod: dict, status: RuntimePodStatus) -> tuple[bool, int, str]:
    """(need a new sandbox?, its attempt number, the id of the sandbox to replace)."""
    if not status.sandboxes:
        return True, 0, ""
    latest = status.sandboxes[0]
    attempt = latest.metadata.attempt
    if len(status.ready_sandboxes) > 1 or latest.state != SandboxState.READY:
        return True, attempt + 1, latest.id
    wanted = "NODE" if pods.is_host_network(pod) else "POD"
    if latest.network_mode != wanted:
        return True, attempt + 1, ""
    if not pods.is_host_network(pod) and not latest.ip:
        return True, attempt + 1, latest.id
    return False, attempt, latest.id


def should_restart(container: dict, pod: dict, status: RuntimePodStatus) -> bool:
    """Whether container must be (re)started now or after its back-off."""
    if pods.deletion_requested(pod):
        return False
    latest = status.latest(container["name"])
    if latest is None:
        return True
    if latest.state == ContainerState.RUNNING:
        return False
    if latest.state in (ContainerState.UNKNOWN, ContainerState.CREATED):
        return True
    policy = pods.restart_policy(pod)
    if policy == "Never":
        return False
    if policy == "OnFailure" and latest.exit_code == 0:
        return False
    return True


def init_failed(record: ContainerRecord) -> bool:
    if record.reason == "OOMKilled":
        return True
    if record.state == ContainerState.EXITED and record.exit_code != 0:
        return True
    return record.state == ContainerState.UNKNOWN


def next_init_container(pod: dict, status: RuntimePodStatus
                        ) -> tuple[ContainerRecord | None, dict | None, bool]:
    """(status of the last failed init container, the init container to run, done?)."""
    inits = pods.init_containers(pod)
    if not inits:
        return None, None, True
    # A running regular container means initialisation happened in the past, even
    # if the init containers have been removed since.
    for c in pods.containers(pod):
        latest = status.latest(c["name"])
        if latest is not None and latest.running:
            return None, None, True
    for c in reversed(inits):
        latest = status.latest(c["name"])
        if latest is not None and init_failed(latest):
            return latest, c, False
    for i in range(len(inits) - 1, -1, -1):
        latest = status.latest(inits[i]["name"])
        if latest is None:
            continue
        if latest.running:
            return None, None, False
        if latest.exited:
            if i == len(inits) - 1:
                return None, None, True
            return None, inits[i + 1], False
    return None, inits[0], False


def _succeeded(container: dict, status: RuntimePodStatus) -> bool:
    latest = status.latest(container["name"])
    return latest is not None and latest.exited and latest.exit_code == 0


def compute_pod_actions(pod: dict, status: RuntimePodStatus, *,
                        liveness_failed: AbstractSet[str] = frozenset(),
                        startup_failed: AbstractSet[str] = frozenset()) -> PodActions:
    """The actions that bring the runtime to the pod's spec (computePodActions).

    `liveness_failed`/`startup_failed` hold ids of containers whose probe failed.
    """
    create, attempt, sandbox_id = sandbox_changed(pod, status)
    actions = PodActions(kill_pod=create, create_sandbox=create, sandbox_id=sandbox_id,
                         attempt=attempt)
    regular = pods.containers(pod)
    if create:
        if not pods.should_restart_on_failure(pod) and attempt != 0 and status.containers:
            # The containers ran and must not run again: no new sandbox, just
            # make sure the old one is down.
            actions.create_sandbox = False
            return actions
        to_start = [i for i, c in enumerate(regular)
                    if not (pods.restart_policy(pod) == "OnFailure" and _succeeded(c, status))]
        if not to_start:
            _, _, initialized = next_init_container(pod, status)
            if initialized:
                actions.create_sandbox = False
                return actions
        if pods.init_containers(pod):
            actions.next_init_container = pods.init_containers(pod)[0]
            return actions
        actions.containers_to_start = to_start
        return actions

    last_init, next_init, done = next_init_container(pod, status)
    if not done:
        if next_init is not None:
            if last_init is not None and init_failed(last_init) \
                    and not pods.should_restart_on_failure(pod):
                actions.kill_pod = True
            else:
                if last_init is not None and last_init.state == ContainerState.UNKNOWN:
                    actions.containers_to_kill[last_init.id] = KillInfo(
                        next_init["name"], f"Init container is in \"{last_init.state.value}\" "
                        "state, try killing it before restart")
                actions.next_init_container = next_init
        return actions

    keep = 0
    for i, c in enumerate(regular):
        latest = status.latest(c["name"])
        if latest is None or not latest.running:
            if should_restart(c, pod, status):
                actions.containers_to_start.append(i)
                if latest is not None and latest.state == ContainerState.UNKNOWN:
                    actions.containers_to_kill[latest.id] = KillInfo(
                        c["name"], f"Container is in \"{latest.state.value}\" state, try "
                        "killing it before restart")
            continue
        restart = pods.should_restart_on_failure(pod)
        if latest.hash and latest.hash != pods.container_hash(c):
            message, reason = f"Container {c['name']} definition changed", REASON_UNKNOWN
            restart = True
        elif latest.id in liveness_failed:
            message, reason = f"Container {c['name']} failed liveness probe", REASON_LIVENESS
        elif latest.id in startup_failed:
            message, reason = f"Container {c['name']} failed startup probe", REASON_STARTUP
        else:
            keep += 1
            continue
        if restart:
            message += ", will be restarted"
            actions.containers_to_start.append(i)
        actions.containers_to_kill[latest.id] = KillInfo(c["name"], message, reason)
    if keep == 0 and not actions.containers_to_start:
        actions.kill_pod = True
    return actions
