"""What a pod sync must do: upstream's computePodActions, as a pure function.

Role: compare a pod's spec with what the runtime holds for it (`RuntimePodStatus`)
and decide: (re)create the sandbox, kill the whole pod, start init containers,
start or kill regular containers. `syncing.PodSyncer` carries the decision out;
`podstatus` uses the same restart rule to show containers as waiting. Follows
kuberuntime_manager.go (`computePodActions`, `PodSandboxChanged`,
`ShouldContainerBeRestarted`) and kuberuntime_container.go
(`computeInitContainerActions`) with SidecarContainers on, as in v1.32:
init containers with `restartPolicy: Always` (sidecars) keep running.

Invariants:
- Pure: no I/O, arguments untouched, same inputs give the same actions.
- A new sandbox means every container starts over: init containers from the
  first, then the regular ones (minus those that already succeeded under
  OnFailure).
- Init containers run in order: the next one starts once the previous one
  exited 0 or, for a sidecar, runs and has started (its startup probe, if any,
  succeeded: its id is in `startup_succeeded`; a caller that runs no probes on
  sidecars passes None and a running sidecar has started). Regular containers
  start once the last init container is done.
- A sidecar that exited, failed its liveness or startup probe or whose spec hash
  changed is restarted whatever the pod's restart policy, also after
  initialisation; other init containers are never run again once a regular
  container has been created.
- A pod whose regular containers are all done and must not restart is killed (its
  sandbox stopped, its sidecars with it: sidecars never keep a pod alive) and
  never gets a new sandbox.
- A regular container whose spec hash changed, or that failed its liveness or
  startup probe, is killed and restarted (the first regardless of restart policy,
  the others only if the policy restarts failures).
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
    init_containers_to_start: list[int] = dataclasses.field(default_factory=list)
    containers_to_start: list[int] = dataclasses.field(default_factory=list)
    containers_to_kill: dict[str, KillInfo] = dataclasses.field(default_factory=dict)

    @property
    def nothing(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.init_containers_to_start
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


def is_restartable(container: dict) -> bool:
    """A sidecar: an init container with `restartPolicy: Always` (IsRestartableInitContainer)."""
    return container.get("restartPolicy") == "Always"


def should_restart(container: dict, pod: dict, status: RuntimePodStatus) -> bool:
    """Whether container must be (re)started now or after its back-off.

    A sidecar is restarted whatever the pod's restart policy.
    """
    if pods.deletion_requested(pod):
        return False
    latest = status.latest(container["name"])
    if latest is None:
        return True
    if latest.state == ContainerState.RUNNING:
        return False
    if latest.state in (ContainerState.UNKNOWN, ContainerState.CREATED):
        return True
    if is_restartable(container) and any(c.get("name") == container["name"]
                                         for c in pods.init_containers(pod)):
        return True
    policy = pods.restart_policy(pod)
    if policy == "Never":
        return False
    if policy == "OnFailure" and latest.exit_code == 0:
        return False
    return True


def init_failed(record: ContainerRecord) -> bool:
    """isInitContainerFailed."""
    if record.reason == "OOMKilled":
        return True
    if record.state == ContainerState.EXITED and record.exit_code != 0:
        return True
    return record.state == ContainerState.UNKNOWN


def any_regular_created(pod: dict, status: RuntimePodStatus) -> bool:
    """hasAnyRegularContainerCreated: initialisation happened in the past."""
    for c in pods.containers(pod):
        latest = status.latest(c["name"])
        if latest is not None and latest.state in (
                ContainerState.CREATED, ContainerState.RUNNING, ContainerState.EXITED):
            return True
    return False


def _regular_running(pod: dict, status: RuntimePodStatus) -> bool:
    for c in pods.containers(pod):
        latest = status.latest(c["name"])
        if latest is not None and latest.state in (ContainerState.CREATED,
                                                   ContainerState.RUNNING):
            return True
    return False


def compute_init_actions(pod: dict, status: RuntimePodStatus, actions: PodActions, *,
                         liveness_failed: AbstractSet[str] = frozenset(),
                         startup_failed: AbstractSet[str] = frozenset(),
                         startup_succeeded: AbstractSet[str] | None = None) -> bool:
    """Fill `actions` with the init containers to (re)start; True once initialised.

    Upstream's computeInitContainerActions: the init containers are walked from the
    last, since finished ones may have been removed from the runtime.
    """
    inits = pods.init_containers(pod)
    if not inits:
        return True
    # A created or running regular container means initialisation happened in the
    # past, even if the init containers have been removed since (an exited one may
    # be from before a reboot, so it does not count).
    initialized = _regular_running(pod, status)
    previously = initialized
    restart_on_failure = pods.should_restart_on_failure(pod)
    to_start: list[int] = []
    last = len(inits) - 1
    for i in range(last, -1, -1):
        c = inits[i]
        sidecar = is_restartable(c)
        latest = status.latest(c["name"])
        if latest is None:
            if previously and sidecar:
                to_start.append(i)
            continue
        if previously and not sidecar:
            continue  # after initialisation only sidecars are kept running
        if latest.state == ContainerState.CREATED:
            to_start.append(i)  # the runtime failed to start it: start it anew
        elif latest.running:
            if sidecar:
                _running_sidecar(c, i, latest, last, previously, to_start, actions,
                                 liveness_failed, startup_failed, startup_succeeded)
                if i == last and _sidecar_started(c, latest, startup_succeeded):
                    initialized = True
            # a running init container: wait for it to finish
        elif latest.exited:
            if sidecar:
                to_start.append(i)
            elif init_failed(latest):
                if not restart_on_failure:
                    actions.kill_pod = True
                    actions.init_containers_to_start = []
                    return False
                to_start.append(i)
            elif i == last:
                initialized = True
            else:
                to_start.append(i + 1)
        else:  # unknown: kill it before starting it again
            if not sidecar and not restart_on_failure:
                actions.kill_pod = True
                actions.init_containers_to_start = []
                return False
            actions.containers_to_kill[latest.id] = KillInfo(
                c["name"], f"Init container is in \"{latest.state.value}\" state, try "
                "killing it before restart")
            to_start.append(i)
        previously = True
    if not previously:
        to_start.append(0)  # nothing ran yet: start the first
    actions.init_containers_to_start = sorted(set(to_start))
    return initialized


def _sidecar_started(c: dict, latest: ContainerRecord,
                     startup_succeeded: AbstractSet[str] | None) -> bool:
    """A running sidecar has started: no startup probe, or it succeeded."""
    if startup_succeeded is None or not c.get("startupProbe"):
        return True
    return latest.id in startup_succeeded


def _running_sidecar(c: dict, i: int, latest: ContainerRecord, last: int, previously: bool,
                     to_start: list[int], actions: PodActions,
                     liveness_failed: AbstractSet[str], startup_failed: AbstractSet[str],
                     startup_succeeded: AbstractSet[str] | None) -> None:
    name = c["name"]
    if latest.id in startup_failed:
        actions.containers_to_kill[latest.id] = KillInfo(
            name, f"Init container {name} failed startup probe", REASON_STARTUP)
        to_start.append(i)
        return
    if not _sidecar_started(c, latest, startup_succeeded):
        return  # not started yet: the next init container waits
    if i != last and not previously:
        to_start.append(i + 1)  # started for the first time: on to the next one
    if latest.hash and latest.hash != pods.container_hash(c):
        actions.containers_to_kill[latest.id] = KillInfo(
            name, f"Init container {name} definition changed")
        to_start.append(i)
        return
    if latest.id in liveness_failed:
        actions.containers_to_kill[latest.id] = KillInfo(
            name, f"Init container {name} failed liveness probe", REASON_LIVENESS)
        to_start.append(i)


def _succeeded(container: dict, status: RuntimePodStatus) -> bool:
    latest = status.latest(container["name"])
    return latest is not None and latest.exited and latest.exit_code == 0


def compute_pod_actions(pod: dict, status: RuntimePodStatus, *,
                        liveness_failed: AbstractSet[str] = frozenset(),
                        startup_failed: AbstractSet[str] = frozenset(),
                        startup_succeeded: AbstractSet[str] | None = None) -> PodActions:
    """The actions that bring the runtime to the pod's spec (computePodActions).

    `liveness_failed`/`startup_failed` hold ids of containers whose probe failed,
    `startup_succeeded` (None: no startup probes are run on sidecars) ids of
    containers whose startup probe succeeded: a sidecar with a startup probe that
    is not among them has not started (upstream waits while no result is found).
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
        if not to_start and any_regular_created(pod, status):
            actions.create_sandbox = False
            return actions
        if pods.init_containers(pod):
            actions.init_containers_to_start = [0]
            return actions
        actions.containers_to_start = to_start
        return actions

    initialized = compute_init_actions(pod, status, actions, liveness_failed=liveness_failed,
                                       startup_failed=startup_failed,
                                       startup_succeeded=startup_succeeded)
    if actions.kill_pod or not initialized:
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
        # nothing left to run: the pod is done, its sidecars do not keep it alive
        actions.kill_pod = True
        actions.init_containers_to_start = []
    return actions
