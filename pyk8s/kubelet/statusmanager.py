"""The kubelet's pod status cache and its writer: upstream's status/status_manager.go.

Role: pod workers hand every generated status to `set_pod_status` (and
`terminate_pod` when a pod is done); the manager keeps the last one per pod with
stable start and transition times, and a background loop PATCHes `pods/status`
(a two-way strategic merge patch carrying `metadata.uid` as a precondition) when
the status differs from what the API has. Once a pod with a deletionTimestamp has
terminated, the manager deletes it with grace period 0 (a UID precondition keeps a
recreated pod of the same name safe): the kubelet finalises the deletion.

Invariants:
- Statuses are versioned per pod; the loop writes a pod only when its version is
  newer than the last one written, or (every `status_sync_period`) when the API's
  copy drifted. A patch that would change nothing is not sent.
- A container never goes from terminated back to running or waiting under a
  policy that does not restart it (such an update is refused, as upstream).
- `startTime` is set once and kept; a condition's `lastTransitionTime` moves only
  when its status changes.
- Patches are computed against the newest copy of the pod the kubelet knows (the
  informer's or the last patch answer, whichever has the higher resourceVersion).
- Conditions not owned by the kubelet are left to their owners (DisruptionTarget
  is shared: the kubelet sends its own with the move to a terminal phase).
- A static pod's status goes to its mirror pod: `get_pod` answers the mirror, and
  the patch's UID precondition is the mirror's.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Callable

from pyk8s.api.strategicpatch import create_two_way_merge_patch
from pyk8s.client import resources
from pyk8s.client.clock import Clock
from pyk8s.client.errors import ApiError, is_not_found
from pyk8s.client.transport import TransportError
from pyk8s.kubelet import pods
from pyk8s.kubelet.podstatus import KUBELET_CONDITIONS

log = logging.getLogger(__name__)

# Upstream's MaxPodTerminationMessageLogLength: all termination messages of a pod.
MAX_POD_TERMINATION_MESSAGES = 1024 * 12
POD_SCHEMA = "io.k8s.api.core.v1.Pod"
TERMINAL = ("Succeeded", "Failed")


@dataclasses.dataclass
class CachedStatus:
    status: dict
    version: int
    name: str
    namespace: str
    finished: bool = False


def _time(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def _kubelet_view(status: dict) -> dict:
    """The status without conditions the kubelet does not own (for comparisons)."""
    view = dict(status)
    view["conditions"] = [c for c in status.get("conditions") or []
                          if c.get("type") in KUBELET_CONDITIONS]
    return view


def _illegal_transition(old: list[dict], new: list[dict], policy: str,
                        sidecars: frozenset[str] = frozenset()) -> str | None:
    """checkContainerStateTransition; sidecars may always leave the terminated state."""
    if policy == "Always":
        return None
    for o in old:
        terminated = (o.get("state") or {}).get("terminated")
        if terminated is None or o.get("name") in sidecars:
            continue
        if terminated.get("exitCode", 0) != 0 and policy == "OnFailure":
            continue
        for n in new:
            if n.get("name") == o.get("name") and "terminated" not in (n.get("state") or {}):
                return f"terminated container {n['name']} attempted illegal transition to " \
                       "non-terminated state"
    return None


def _truncate_messages(pod: dict, status: dict) -> None:
    count = len(pods.containers(pod)) + len(pods.init_containers(pod))
    limit = MAX_POD_TERMINATION_MESSAGES // max(count, 1)
    for s in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
        for key in ("state", "lastState"):
            terminated = (s.get(key) or {}).get("terminated")
            if terminated and len(terminated.get("message", "")) > limit:
                terminated["message"] = terminated["message"][:limit]


def merge_pod_status(api_status: dict, status: dict) -> dict:
    """Keep the API's foreign conditions; terminal phases force Ready false (mergePodStatus)."""
    merged = dict(status)
    conditions = [c for c in api_status.get("conditions") or []
                  if c.get("type") not in KUBELET_CONDITIONS]
    conditions += [c for c in status.get("conditions") or []
                   if c.get("type") in KUBELET_CONDITIONS]
    # the kubelet shares DisruptionTarget: it sends its own (an eviction) only with the
    # move to a terminal phase, as upstream's mergePodStatus
    if api_status.get("phase") not in TERMINAL and status.get("phase") in TERMINAL:
        for c in status.get("conditions") or []:
            if c.get("type") == "DisruptionTarget":
                conditions = [o for o in conditions if o.get("type") != "DisruptionTarget"]
                conditions.append(c)
    if merged.get("phase") in TERMINAL:
        reason = "PodCompleted" if merged["phase"] == "Succeeded" else "PodFailed"
        for i, c in enumerate(conditions):
            if c.get("type") in ("Ready", "ContainersReady") and c.get("status") == "True":
                conditions[i] = {"type": c["type"], "status": "False", "lastProbeTime": None,
                                 "lastTransitionTime": c.get("lastTransitionTime"),
                                 "reason": reason}
    merged["conditions"] = conditions
    return merged


def _rv(obj: dict | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or -1)
    except ValueError:
        return -1


class StatusManager:
    """See the module docstring. `get_pod(uid)` answers the API's pod (informer)."""

    def __init__(self, client, *, clock: Clock, get_pod: Callable[[str], dict | None],
                 sync_period: float = 10.0, concurrency: int = 16):
        self.client, self.clock, self.get_pod = client, clock, get_pod
        self.sync_period = sync_period
        self.statuses: dict[str, CachedStatus] = {}
        self._written: dict[str, int] = {}  # uid -> version written to the API
        self._answers: dict[str, dict] = {}  # uid -> pod as the last patch answered
        self._dirty = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self.on_deleted: Callable[[str], None] = lambda uid: None

    # ---- the pod workers' side ----------------------------------------------------

    def get(self, uid: str) -> dict | None:
        cached = self.statuses.get(uid)
        return cached.status if cached else None

    def set_pod_status(self, pod: dict, status: dict, *, force: bool = False,
                       finished: bool = False) -> bool:
        """Cache `status` for `pod`; True if it changed (and a write is queued)."""
        uid = pods.uid(pod)
        cached = self.statuses.get(uid)
        if cached is not None:
            old = cached.status
            finished = finished or cached.finished
        else:
            old = pod.get("status") or {}
        policy = pods.restart_policy(pod)
        sidecars = frozenset(c["name"] for c in pods.init_containers(pod)
                             if c.get("restartPolicy") == "Always")
        for key in ("containerStatuses", "initContainerStatuses"):
            error = _illegal_transition(old.get(key) or [], status.get(key) or [], policy,
                                        sidecars if key == "initContainerStatuses"
                                        else frozenset())
            if error:
                log.error("status update on pod %s aborted: %s", pods.full_name(pod), error)
                return False
        status = dict(status)
        now = _time(self.clock)
        olds = {c.get("type"): c for c in old.get("conditions") or []}
        conditions = []
        for c in status.get("conditions") or []:
            c = dict(c)
            if c.get("type") in KUBELET_CONDITIONS:
                previous = olds.get(c["type"])
                same = previous is not None and previous.get("status") == c.get("status")
                c["lastTransitionTime"] = previous.get("lastTransitionTime") if same else now
            conditions.append(c)
        status["conditions"] = conditions
        status["startTime"] = old.get("startTime") or status.get("startTime") or now
        _truncate_messages(pod, status)
        if cached is not None and not force and \
                _kubelet_view(cached.status) == _kubelet_view(status):
            return False
        m = pods.meta(pod)
        self.statuses[uid] = CachedStatus(status=status,
                                          version=(cached.version if cached else 0) + 1,
                                          name=m.get("name", ""),
                                          namespace=m.get("namespace", ""), finished=finished)
        self._dirty.set()
        return True

    def terminate_pod(self, pod: dict) -> None:
        """The pod is done: missing container states become failures, phase terminal."""
        cached = self.statuses.get(pods.uid(pod))
        status = _deep(cached.status if cached else pod.get("status") or {})
        unknown = {"terminated": {"reason": "ContainerStatusUnknown", "exitCode": 137,
                                  "message": "The container could not be located when the "
                                             "pod was terminated"}}
        if _has_initialized(pod):
            for s in status.get("containerStatuses") or []:
                if "terminated" not in (s.get("state") or {}):
                    s["state"] = _deep(unknown)
        inits = status.get("initContainerStatuses") or []
        for s in _initialized_prefix(inits):
            if "terminated" not in (s.get("state") or {}):
                s["state"] = _deep(unknown)
        if status.get("phase") not in TERMINAL:
            status["phase"] = "Failed"
        self.set_pod_status(pod, status, force=True, finished=True)

    def rewrite(self, uid: str) -> None:
        """Write the pod's status again (its API object was replaced: a new mirror pod)."""
        if uid in self.statuses:
            self._written.pop(uid, None)
            self._answers.pop(uid, None)
            self._dirty.set()

    def forget(self, uid: str) -> None:
        """The pod is gone from the API: drop what the manager knows of it."""
        self.statuses.pop(uid, None)
        self._written.pop(uid, None)
        self._answers.pop(uid, None)

    # ---- the writer -------------------------------------------------------------------

    async def run(self) -> None:
        """Write statuses until cancelled: on every change, and all every sync period."""
        next_full = self.clock.monotonic() + self.sync_period
        while True:
            timeout = max(next_full - self.clock.monotonic(), 0.0)
            timer = self.clock.call_later(timeout, self._dirty.set)
            try:
                await self._dirty.wait()
            finally:
                timer.cancel()
            self._dirty.clear()
            full = self.clock.monotonic() >= next_full
            if full:
                next_full = self.clock.monotonic() + self.sync_period
            await self.sync_batch(full=full)

    async def sync_batch(self, *, full: bool = False) -> int:
        """Write every status that needs it; returns how many pods were synced."""
        due = [uid for uid, cached in self.statuses.items()
               if self._written.get(uid, 0) < cached.version
               or (full and self._needs_reconcile(uid, cached))]
        await asyncio.gather(*(self._sync_limited(uid) for uid in due))
        return len(due)

    def _needs_reconcile(self, uid: str, cached: CachedStatus) -> bool:
        pod = self._newest(uid)
        if pod is None:
            return False
        if self._can_be_deleted(pod, cached):
            return True
        api = merge_pod_status(pod.get("status") or {}, cached.status)
        return _kubelet_view(pod.get("status") or {}) != _kubelet_view(api)

    async def _sync_limited(self, uid: str) -> None:
        async with self._slots:
            try:
                await self.sync_pod(uid)
            except (ApiError, TransportError) as e:
                # retried at the next change or full sync, as upstream
                log.info("failed to update status for pod %s: %s", uid, e)

    def _newest(self, uid: str) -> dict | None:
        pod = self.get_pod(uid)
        answer = self._answers.get(uid)
        if pod is None:
            return None
        return answer if answer is not None and _rv(answer) > _rv(pod) else pod

    @staticmethod
    def _can_be_deleted(pod: dict, cached: CachedStatus) -> bool:
        return bool(pods.deletion_requested(pod) and cached.finished
                    and (pod.get("status") or {}).get("phase") in TERMINAL)

    async def sync_pod(self, uid: str) -> None:
        cached = self.statuses.get(uid)
        pod = self._newest(uid)
        if cached is None or pod is None:
            return  # the pod is gone from the API; forget() will follow
        version = cached.version
        api_status = pod.get("status") or {}
        merged = merge_pod_status(api_status, cached.status)
        # the API object's UID: a static pod's status goes to its mirror pod
        api_uid = pods.uid(pod) or uid
        patch = create_two_way_merge_patch({"status": api_status},
                                           {"metadata": {"uid": api_uid}, "status": merged},
                                           POD_SCHEMA)
        if set(patch) - {"metadata"}:
            pod = await self.client.patch(resources.PODS, cached.name, body=patch,
                                          namespace=cached.namespace, patch_type="strategic",
                                          subresource="status")
            self._answers[uid] = pod
        self._written[uid] = max(self._written.get(uid, 0), version)
        if self._can_be_deleted(pod, cached):
            try:
                await self.client.delete(resources.PODS, cached.name,
                                         namespace=cached.namespace, grace_period_seconds=0,
                                         preconditions={"uid": api_uid})
            except ApiError as e:
                if not is_not_found(e) and e.code != 409:
                    raise
            self.forget(uid)
            self.on_deleted(uid)


def _deep(value):
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


def _has_initialized(pod: dict) -> bool:
    """Whether the pod ever got past its init containers (hasPodInitialized)."""
    if not pods.init_containers(pod):
        return True
    status = pod.get("status") or {}
    for s in status.get("containerStatuses") or []:
        if "terminated" in (s.get("lastState") or {}) or "waiting" not in (s.get("state")
                                                                           or {}):
            return True
    inits = status.get("initContainerStatuses") or []
    if inits:
        last = inits[-1]
        for key in ("lastState", "state"):
            terminated = (last.get(key) or {}).get("terminated")
            if terminated and terminated.get("exitCode", 0) == 0:
                return True
    return False


def _initialized_prefix(statuses: list[dict]) -> list[dict]:
    """All but the trailing never-started init containers (at least the first)."""
    for i in range(len(statuses) - 1, -1, -1):
        s = statuses[i]
        if "waiting" not in (s.get("state") or {}) or "terminated" in (s.get("lastState")
                                                                       or {}):
            return statuses[:i + 1]
    return statuses[:1]
