"""A pod's API status from what the runtime holds: upstream's generateAPIPodStatus.

Role: pure functions that compute `status` as the kubelet reports it: the phase
(`get_phase`), the kubelet-owned conditions (PodReadyToStartContainers,
Initialized, Ready, ContainersReady, PodScheduled; status/generate.go), container
and init container statuses with state, lastState, restartCount, ready, started,
image, imageID, containerID (`convertToAPIContainerStatuses`), pod and host IPs,
and the QoS class. The status manager then keeps start time and transition times
stable and writes the result.

Invariants:
- Pure: the caller passes everything read elsewhere (runtime status, the previous
  status, start-failure reasons, termination messages, node IPs, readiness).
- A phase never leaves Succeeded or Failed once the API or the previous status had
  it; the phase reason and message are kept while the phase stays.
- Conditions not owned by the kubelet are preserved, in their order, before the
  kubelet's own ones.
- `image` is the image the pod spec names (containerd reports the image's first
  tag), `containerID` is `containerd://<id>` (the runtime's name as prefix).
- Timestamps are RFC 3339 to the second, as the API stores them.
- A sidecar (init container with `restartPolicy: Always`) is started and ready as a
  regular container is; a terminated sidecar does not count for the phase, a
  running one keeps the pod Running, and Initialized waits for it to have started.
"""
from __future__ import annotations

import dataclasses
import datetime
from typing import AbstractSet, Callable, Mapping

from pyk8s.cri.runtime import ContainerState
from pyk8s.kubelet import actions, pods
from pyk8s.kubelet.runtimepods import ContainerRecord, RuntimePodStatus

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready",
                      "ContainersReady", "PodScheduled")
CONTAINER_CREATING, POD_INITIALIZING = "ContainerCreating", "PodInitializing"
STATUS_UNKNOWN = "ContainerStatusUnknown"


@dataclasses.dataclass(frozen=True)
class StartFailure:
    """Why the last start of a container failed (upstream's reasonCache entry)."""

    reason: str  # CrashLoopBackOff, ErrImagePull, CreateContainerConfigError, ...
    message: str


def format_ns(ns: int) -> str | None:
    if not ns:
        return None
    t = datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def container_id(runtime_name: str, cid: str) -> str:
    return f"{runtime_name}://{cid}"


def _state(record: ContainerRecord, old: dict | None, cid: str, message: str) -> dict:
    if record.state == ContainerState.RUNNING:
        return {"running": {"startedAt": format_ns(record.started_at)}}
    if record.state == ContainerState.CREATED:
        return {"waiting": {}}
    if record.state == ContainerState.EXITED:
        terminated = {"exitCode": record.exit_code, "startedAt": format_ns(record.started_at),
                      "finishedAt": format_ns(record.finished_at), "containerID": cid}
        if record.reason:
            terminated["reason"] = record.reason
        if message:
            terminated["message"] = message
        return {"terminated": terminated}
    if old is not None and "running" in (old.get("state") or {}):
        return {"terminated": {"reason": STATUS_UNKNOWN, "exitCode": 137,
                               "message": "The container could not be located when the "
                                          "pod was terminated"}}
    return {"waiting": {}}


def _volume_mounts(container: dict) -> list[dict]:
    mounts = []
    for m in container.get("volumeMounts") or []:
        status = {"name": m.get("name"), "mountPath": m.get("mountPath")}
        if m.get("readOnly"):
            status["readOnly"] = True
            status["recursiveReadOnly"] = "Disabled"
        mounts.append(status)
    return mounts


def _record_message(record: ContainerRecord, termination_messages: Mapping[str, str]) -> str:
    message = record.message
    extra = termination_messages.get(record.id, "")
    if extra:
        message = f"{message}: {extra}" if message else extra
    return message


def container_statuses(pod: dict, status: RuntimePodStatus, previous: list[dict],
                       specs: list[dict], *, init: bool, runtime_name: str,
                       start_failures: Mapping[str, StartFailure],
                       termination_messages: Mapping[str, str]) -> list[dict]:
    """Upstream's convertToAPIContainerStatuses for one list of containers."""
    has_init = bool(pods.init_containers(pod))
    default_reason = POD_INITIALIZING if has_init else CONTAINER_CREATING
    olds = {s.get("name"): s for s in previous}
    statuses: dict[str, dict] = {}
    for c in specs:
        s = {"name": c["name"], "image": c.get("image", ""), "imageID": "",
             "state": {"waiting": {"reason": default_reason}}, "lastState": {},
             "ready": False, "restartCount": 0, "started": False}
        if c.get("volumeMounts"):
            s["volumeMounts"] = _volume_mounts(c)
        old = olds.get(c["name"])
        if old is not None:
            if "terminated" in (old.get("state") or {}):
                s = _copy(old)
            else:
                s["restartCount"] = old.get("restartCount", 0)
                s["lastState"] = _copy(old.get("lastState") or {})
        statuses[c["name"]] = s

    # A container that ran and vanished from the runtime terminated: record it.
    known = {r.name for r in status.containers}
    for c in specs:
        old = olds.get(c["name"])
        if c["name"] in known or old is None:
            continue
        if "terminated" in (old.get("state") or {}) or "running" not in (old.get("state")
                                                                         or {}):
            continue
        s = statuses[c["name"]]
        if (s["state"].get("waiting") or {}).get("reason") != default_reason:
            continue
        if "terminated" in s["lastState"]:
            continue
        s["lastState"] = {"terminated": {
            "reason": STATUS_UNKNOWN, "exitCode": 137,
            "message": "The container could not be located when the pod was deleted.  "
                       "The container used to be Running"}}
        if not pods.deletion_requested(pod):
            s["restartCount"] += 1

    seen: dict[str, int] = {}
    for record in status.containers:  # newest first
        if record.name not in statuses or seen.get(record.name, 0) >= 2:
            continue
        old = olds.get(record.name)
        cid = container_id(runtime_name, record.id)
        state = _state(record, old, cid, _record_message(record, termination_messages))
        if seen.get(record.name, 0) == 0:
            s = statuses[record.name]
            s.update(state=state, restartCount=record.restart_count, imageID=record.image_ref,
                     containerID=cid)
            image = (pods.find_container(pod, record.name) or {}).get("image")
            if image:
                s["image"] = image
            if "terminated" in state and state["terminated"].get("reason") == STATUS_UNKNOWN:
                s["restartCount"] = (old or {}).get("restartCount", 0) + 1
        else:
            statuses[record.name]["lastState"] = state
        seen[record.name] = seen.get(record.name, 0) + 1

    for c in specs:
        if init:
            latest = status.latest(c["name"])
            if latest is not None and latest.exited and latest.exit_code == 0:
                continue
        if not actions.should_restart(c, pod, status):
            continue
        failure = start_failures.get(c["name"])
        if failure is None:
            continue
        s = statuses[c["name"]]
        if "terminated" in s["state"]:
            s["lastState"] = s["state"]
        s["state"] = {"waiting": {"reason": failure.reason, "message": failure.message}}
    if init:
        return [statuses[c["name"]] for c in specs]
    return [statuses[name] for name in sorted(statuses)]


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def set_readiness(statuses: list[dict], *, init: bool,
                  ready: Callable[[dict], bool | None],
                  started: Callable[[dict], bool | None] = lambda s: None,
                  sidecars: AbstractSet[str] = frozenset()) -> None:
    """ready/started as the probe manager sets them (no probe: ready once running).

    `ready(status)` answers a readiness probe's verdict for a running container, or
    None when it has no readiness probe; `started(status)` likewise for the startup
    probe. A container that has not started is not ready. An init container is
    ready once it exited 0; a sidecar (named in `sidecars`) is started and ready
    as a regular container.
    """
    for s in statuses:
        state = s.get("state") or {}
        running = "running" in state
        if init and s.get("name") not in sidecars:
            s["started"] = running
            terminated = state.get("terminated")
            s["ready"] = bool(terminated and terminated.get("exitCode") == 0)
            continue
        began = started(s) if running else False
        s["started"] = running if began is None else bool(began)
        if not s["started"]:
            s["ready"] = False
            continue
        verdict = ready(s)
        s["ready"] = running if verdict is None else bool(verdict)


def _counts(pod: dict, by_name: Mapping[str, dict]) -> tuple[int, int, dict[str, int]]:
    pending = failed = 0
    n = {"unknown": 0, "running": 0, "waiting": 0, "stopped": 0, "succeeded": 0}
    for c in pods.init_containers(pod):
        s = by_name.get(c["name"])
        restartable = c.get("restartPolicy") == "Always"
        state, last = ((s or {}).get("state") or {}), ((s or {}).get("lastState") or {})
        if restartable:
            if s is None:
                n["unknown"] += 1
            elif "running" in state:
                pending += not s.get("started")
                n["running"] += 1
            elif "waiting" in state and "terminated" not in last:
                pending += 1
                n["waiting"] += 1
            elif "terminated" not in state and "waiting" not in state:
                pending += 1
                n["unknown"] += 1
            continue
        if s is None or "running" in state:
            pending += 1
        elif "terminated" in state:
            failed += state["terminated"].get("exitCode", 0) != 0
        elif "waiting" in state:
            if "terminated" in last:
                failed += last["terminated"].get("exitCode", 0) != 0
            else:
                pending += 1
        else:
            pending += 1
    for c in pods.containers(pod):
        s = by_name.get(c["name"])
        state, last = ((s or {}).get("state") or {}), ((s or {}).get("lastState") or {})
        if s is None:
            n["unknown"] += 1
        elif "running" in state:
            n["running"] += 1
        elif "terminated" in state:
            n["stopped"] += 1
            n["succeeded"] += state["terminated"].get("exitCode", 0) == 0
        elif "waiting" in state:
            n["stopped" if "terminated" in last else "waiting"] += 1
        else:
            n["unknown"] += 1
    return pending, failed, n


def any_regular_started(pod: dict, statuses: list[dict]) -> bool:
    names = {c["name"] for c in pods.containers(pod)}
    return any(s.get("name") in names and ("running" in (s.get("state") or {})
                                           or "terminated" in (s.get("state") or {}))
               for s in statuses)


def get_phase(pod: dict, statuses: list[dict], terminal: bool) -> str:
    """Upstream's getPhase over container and init container statuses."""
    by_name = {s["name"]: s for s in statuses}
    pending, failed, n = _counts(pod, by_name)
    policy = pods.restart_policy(pod)
    if failed and policy == "Never":
        return "Failed"
    if (pending and not any_regular_started(pod, statuses)) or n["waiting"]:
        return "Pending"
    if n["running"] and not n["unknown"]:
        return "Running"
    if not n["running"] and n["stopped"] and not n["unknown"]:
        if terminal:
            return "Succeeded" if n["stopped"] == n["succeeded"] else "Failed"
        if policy == "Always":
            return "Running"
        if n["stopped"] == n["succeeded"]:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict:
    c = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def containers_ready_condition(pod: dict, statuses: list[dict], phase: str) -> dict:
    by_name = {s["name"]: s for s in statuses}
    unknown, unready = [], []
    for c in [c for c in pods.init_containers(pod) if c.get("restartPolicy") == "Always"] \
            + pods.containers(pod):
        s = by_name.get(c["name"])
        if s is None:
            unknown.append(c["name"])
        elif not s.get("ready"):
            unready.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return _condition("ContainersReady", False, "PodCompleted")
    if phase == "Failed":
        return _condition("ContainersReady", False, "PodFailed")
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_go_list(unready)}")
    if messages:
        return _condition("ContainersReady", False, "ContainersNotReady", ", ".join(messages))
    return _condition("ContainersReady", True)


def ready_condition(pod: dict, conditions: list[dict], statuses: list[dict],
                    phase: str) -> dict:
    containers = containers_ready_condition(pod, statuses, phase)
    if containers["status"] != "True":
        return dict(containers, type="Ready")
    messages = []
    for gate in pods.spec(pod).get("readinessGates") or []:
        kind = gate.get("conditionType")
        found = next((c for c in conditions if c.get("type") == kind), None)
        if found is None:
            messages.append(f"corresponding condition of pod readiness gate \"{kind}\" "
                            "does not exist.")
        elif found.get("status") != "True":
            messages.append(f"the status of pod readiness gate \"{kind}\" is not \"True\", "
                            f"but {found.get('status')}")
    if messages:
        return _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(messages))
    return _condition("Ready", True)


def initialized_condition(pod: dict, statuses: list[dict], phase: str) -> dict:
    by_name = {s["name"]: s for s in statuses}
    unknown, incomplete = [], []
    for c in pods.init_containers(pod):
        s = by_name.get(c["name"])
        if s is None:
            unknown.append(c["name"])
        elif not (s.get("started") if c.get("restartPolicy") == "Always" else s.get("ready")):
            incomplete.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return _condition("Initialized", True, "PodCompleted")
    if any_regular_started(pod, statuses):
        return _condition("Initialized", True)
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_go_list(incomplete)}")
    if messages:
        return _condition("Initialized", False, "ContainersNotInitialized", ", ".join(messages))
    return _condition("Initialized", True)


def generate(pod: dict, status: RuntimePodStatus, *, old: dict, terminal: bool,
             runtime_name: str, host_ips: list[str],
             start_failures: Mapping[str, StartFailure] | None = None,
             termination_messages: Mapping[str, str] | None = None,
             ready: Callable[[dict], bool | None] = lambda s: None,
             started: Callable[[dict], bool | None] = lambda s: None) -> dict:
    """The pod's status as the kubelet writes it (before the status manager's touches).

    `old` is the status manager's last status for the pod, or the API's.
    """
    api = pod.get("status") or {}
    s: dict = {}
    ips = list(status.ips)
    if pods.is_host_network(pod) and not ips:
        ips = host_ips[:1]  # a hostNetwork pod has the node's address
    if ips:
        s["podIP"] = ips[0]
        s["podIPs"] = [{"ip": ip} for ip in ips]
    s["qosClass"] = pods.pod_qos(pod)
    common = dict(runtime_name=runtime_name, start_failures=start_failures or {},
                  termination_messages=termination_messages or {})
    s["containerStatuses"] = container_statuses(
        pod, status, old.get("containerStatuses") or [], pods.containers(pod), init=False,
        **common)
    set_readiness(s["containerStatuses"], init=False, ready=ready, started=started)
    if pods.init_containers(pod):
        s["initContainerStatuses"] = container_statuses(
            pod, status, old.get("initContainerStatuses") or [], pods.init_containers(pod),
            init=True, **common)
        sidecars = {c["name"] for c in pods.init_containers(pod) if actions.is_restartable(c)}
        set_readiness(s["initContainerStatuses"], init=True, ready=ready, started=started,
                      sidecars=sidecars)
    everything = s["containerStatuses"] + s.get("initContainerStatuses", [])
    phase = get_phase(pod, everything, terminal)
    if phase not in ("Failed", "Succeeded"):
        if old.get("phase") in ("Failed", "Succeeded"):
            phase = old["phase"]
        elif api.get("phase") in ("Failed", "Succeeded"):
            phase = api["phase"]
    if api.get("phase") in ("Failed", "Succeeded"):
        phase = api["phase"]  # no transition out of a terminal phase
    s["phase"] = phase
    if phase == old.get("phase"):
        for key in ("reason", "message"):
            value = old.get(key) or api.get(key)
            if value:
                s[key] = value
    conditions = [c for c in api.get("conditions") or []
                  if c.get("type") not in KUBELET_CONDITIONS]
    needs_sandbox, _, _ = actions.sandbox_changed(pod, status)
    conditions.append(_condition("PodReadyToStartContainers", not needs_sandbox))
    all_statuses = s.get("initContainerStatuses", []) + s["containerStatuses"]
    conditions.append(initialized_condition(pod, all_statuses, phase))
    conditions.append(ready_condition(pod, conditions, all_statuses, phase))
    conditions.append(containers_ready_condition(pod, all_statuses, phase))
    conditions.append(_condition("PodScheduled", True))
    s["conditions"] = conditions
    if host_ips:
        s["hostIP"] = host_ips[0]
        s["hostIPs"] = [{"ip": ip} for ip in host_ips]
    if api.get("startTime"):
        s["startTime"] = api["startTime"]
    return s
