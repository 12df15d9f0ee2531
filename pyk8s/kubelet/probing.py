"""Probe workers per container and their results: upstream's prober_manager.go and worker.go.

Role: `ProbeManager.add_pod` starts one worker task per (pod, container, probe
kind) the spec declares, for regular containers and sidecars (init containers
with `restartPolicy: Always`). A worker probes every `periodSeconds` on the injected
clock, counts consecutive results against `successThreshold`/`failureThreshold`
and stores the verdict per container ID. The kubelet asks the manager when it
generates a status (`started`, `ready`: upstream's UpdatePodStatus) and when it
syncs a pod (`liveness_failed`, `startup_failed`: containers to restart); a
changed verdict wakes the pod's worker through `wake(uid)`.

Invariants (upstream's worker.doProbe):
- A new container instance starts from the initial verdicts: readiness Failure,
  liveness Success, startup none; a worker that failed a container's liveness or
  startup probe holds until the container is replaced.
- Startup gates the others: until a container has started, only its startup probe
  runs; once it has, the startup probe stops.
- No probe runs before `initialDelaySeconds` since the container started; a pod
  being deleted stops its liveness and startup probes with a Success verdict.
- Probe errors (not failures) are thrown away and change no count.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Callable

from pyk8s.client.clock import Clock
from pyk8s.kubelet import pods
from pyk8s.kubelet.probes import Prober, Result

log = logging.getLogger(__name__)

LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"
KINDS = (STARTUP, LIVENESS, READINESS)
INITIAL = {READINESS: Result.FAILURE, LIVENESS: Result.SUCCESS, STARTUP: None}


def runtime_id(container_id: str) -> str:
    return container_id.split("://", 1)[-1]


def _statuses(api: dict) -> list[dict]:
    """The statuses of containers that may be probed: regular ones and sidecars."""
    return (api.get("containerStatuses") or []) + (api.get("initContainerStatuses") or [])


def _started_at(status: dict) -> datetime.datetime | None:
    running = (status.get("state") or {}).get("running") or {}
    text = running.get("startedAt")
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class ProbeWorker:
    def __init__(self, manager: "ProbeManager", pod: dict, container: dict, kind: str):
        self.manager, self.pod, self.container, self.kind = manager, pod, container, kind
        self.spec = container.get(f"{kind.lower()}Probe") or {}
        self.uid = pods.uid(pod)
        self.container_id = ""
        self.on_hold = False
        self.last_result: Result | None = None
        self.result_run = 0
        self.trigger_event = asyncio.Event()
        self.task: asyncio.Task | None = None

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or 10)

    async def run(self) -> None:
        try:
            while await self.do_probe():
                await self._wait(self.period)
        except asyncio.CancelledError:
            raise
        except Exception:  # a worker must not die silently: log and stop probing
            log.exception("probe worker %s/%s/%s failed", self.uid, self.container["name"],
                          self.kind)
        finally:
            self.manager.worker_done(self)

    async def _wait(self, seconds: float) -> None:
        timer = self.manager.clock.call_later(seconds, self.trigger_event.set)
        try:
            await self.trigger_event.wait()
        finally:
            timer.cancel()
            self.trigger_event.clear()

    def _status(self) -> dict | None:
        api = self.manager.get_status(self.uid)
        if api is None:
            return None
        return next((s for s in _statuses(api) if s.get("name") == self.container["name"]),
                    None)

    async def do_probe(self) -> bool:
        """One round; False when the worker should stop."""
        api = self.manager.get_status(self.uid) or {}
        if api.get("phase") in ("Failed", "Succeeded"):
            return False
        status = self._status()
        if status is None or not status.get("containerID"):
            return True  # not created yet
        cid = runtime_id(status["containerID"])
        if cid != self.container_id:
            if self.container_id:
                self.manager.forget(self.kind, self.container_id)
            self.container_id, self.on_hold = cid, False
            self.last_result, self.result_run = None, 0
            self.manager.set_result(self.uid, self.kind, cid, INITIAL[self.kind])
        if self.on_hold:
            return True
        state = status.get("state") or {}
        if "running" not in state:
            self.manager.set_result(self.uid, self.kind, cid, Result.FAILURE)
            # a container that will not run again needs no more probing (a sidecar
            # is restarted whatever the pod's restart policy)
            return "terminated" not in state or pods.restart_policy(self.pod) != "Never" \
                or self.container.get("restartPolicy") == "Always"
        pod = self.manager.get_pod(self.uid) or self.pod
        if pods.meta(pod).get("deletionTimestamp") and self.kind in (LIVENESS, STARTUP):
            # graceful shutdown: a quiet last verdict, no more probing
            self.manager.set_result(self.uid, self.kind, cid, Result.SUCCESS)
            return False
        started_at = _started_at(status)
        delay = int(self.spec.get("initialDelaySeconds") or 0)
        if started_at is not None and \
                (self.manager.clock.now() - started_at).total_seconds() < delay:
            return True
        if status.get("started"):
            if self.kind == STARTUP:
                return True  # kept alive for the container's next instance
        elif self.kind != STARTUP:
            return True  # other probes wait for the startup probe
        ips = [p["ip"] for p in api.get("podIPs") or [] if p.get("ip")]
        result = await self.manager.prober.probe(self.kind, pod, self.container, cid, ips)
        if result is Result.ERROR or cid != self.container_id:
            return True
        if result is Result.WARNING:
            result = Result.SUCCESS
        self.result_run = self.result_run + 1 if result is self.last_result else 1
        self.last_result = result
        threshold = int(self.spec.get("failureThreshold") or 3) if result is Result.FAILURE \
            else int(self.spec.get("successThreshold") or 1)
        if self.result_run < threshold:
            return True
        self.manager.set_result(self.uid, self.kind, cid, result)
        if result is Result.FAILURE and self.kind in (LIVENESS, STARTUP):
            # the container will be restarted: hold until the new instance shows up
            self.on_hold, self.result_run = True, 0
        return True


class ProbeManager:
    def __init__(self, prober: Prober, *, clock: Clock,
                 get_status: Callable[[str], dict | None],
                 get_pod: Callable[[str], dict | None], wake: Callable[[str], None]):
        self.prober, self.clock = prober, clock
        self.get_status, self.get_pod, self.wake = get_status, get_pod, wake
        self.workers: dict[tuple[str, str, str], ProbeWorker] = {}
        self.results: dict[str, dict[str, Result]] = {k: {} for k in KINDS}

    # ---- workers -----------------------------------------------------------------------

    def add_pod(self, pod: dict) -> None:
        """Start the workers `pod`'s containers declare (idempotent)."""
        uid = pods.uid(pod)
        sidecars = [c for c in pods.init_containers(pod) if c.get("restartPolicy") == "Always"]
        for c in sidecars + pods.containers(pod):
            for kind in KINDS:
                key = (uid, c["name"], kind)
                if c.get(f"{kind.lower()}Probe") and key not in self.workers:
                    worker = ProbeWorker(self, pod, c, kind)
                    self.workers[key] = worker
                    worker.task = asyncio.create_task(
                        worker.run(), name=f"probe {kind} {uid}/{c['name']}")

    def worker_done(self, worker: ProbeWorker) -> None:
        key = (worker.uid, worker.container["name"], worker.kind)
        if self.workers.get(key) is worker:
            del self.workers[key]
        if worker.container_id:
            self.forget(worker.kind, worker.container_id)

    def _stop(self, uid: str, kinds: tuple[str, ...]) -> None:
        for key, worker in list(self.workers.items()):
            if key[0] == uid and key[2] in kinds and worker.task is not None:
                worker.task.cancel()
                self.worker_done(worker)

    def stop_liveness_and_startup(self, uid: str) -> None:
        """The pod is terminating: no more restarts because of probes."""
        self._stop(uid, (LIVENESS, STARTUP))

    def remove_pod(self, uid: str) -> None:
        self._stop(uid, KINDS)

    def status_updated(self, uid: str) -> None:
        """A new status was generated: a new container instance's readiness is probed
        at once (upstream's manual trigger); liveness and startup wait their period,
        which also paces restarts that a failing probe causes."""
        api = self.get_status(uid) or {}
        by_name = {s.get("name"): s for s in _statuses(api)}
        for (w_uid, name, kind), worker in self.workers.items():
            s = by_name.get(name)
            if w_uid == uid and kind == READINESS and s and s.get("containerID") \
                    and runtime_id(s["containerID"]) != worker.container_id:
                worker.trigger_event.set()

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers.clear()

    # ---- results -----------------------------------------------------------------------

    def set_result(self, uid: str, kind: str, cid: str, result: Result | None) -> None:
        previous = self.results[kind].get(cid)
        if result is None:
            self.results[kind].pop(cid, None)
        else:
            self.results[kind][cid] = result
        if previous is not result:
            self.wake(uid)

    def forget(self, kind: str, cid: str) -> None:
        self.results[kind].pop(cid, None)

    def _has_worker(self, uid: str, name: str, kind: str) -> bool:
        return (uid, name, kind) in self.workers

    def started(self, uid: str, status: dict) -> bool | None:
        """A running container's `started`; None when no startup probe decides it."""
        cid = runtime_id(status.get("containerID") or "")
        result = self.results[STARTUP].get(cid)
        if result is not None:
            return result is Result.SUCCESS
        return False if self._has_worker(uid, status.get("name"), STARTUP) else None

    def ready(self, uid: str, status: dict) -> bool | None:
        """A running container's readiness; None when it has no readiness probe."""
        cid = runtime_id(status.get("containerID") or "")
        if self.results[READINESS].get(cid) is Result.SUCCESS:
            return True
        return False if self._has_worker(uid, status.get("name"), READINESS) else None

    def succeeded(self, kind: str) -> frozenset[str]:
        """Runtime ids of containers whose `kind` probe succeeded (started sidecars)."""
        return frozenset(cid for cid, r in self.results[kind].items() if r is Result.SUCCESS)

    def failed(self, kind: str) -> frozenset[str]:
        """Runtime ids of containers whose `kind` probe failed (to be restarted)."""
        return frozenset(cid for cid, r in self.results[kind].items() if r is Result.FAILURE)
