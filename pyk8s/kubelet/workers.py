"""One worker per pod, moving it through upstream's pod lifecycle (pod_workers.go).

Role: `PodWorkers` owns an asyncio task per pod UID. A worker takes the newest
version of its pod and drives it through three states, calling a `PodHandler`:

- SYNCING: `sync_pod` until the pod is terminal (its phase Succeeded/Failed),
  deleted (deletionTimestamp) or gone from the API;
- TERMINATING: `sync_terminating_pod` with the effective grace period (the API's
  deletion grace period, else the spec's, at least 1 s; it only ever shrinks, and
  a shorter one interrupts a kill in progress);
- TERMINATED: `sync_terminated_pod` once, then, when the pod is gone from the
  API, `pod_removed` and the worker ends.

Invariants:
- A pod is never synced by two tasks at once; updates that arrive while a sync runs
  collapse into one more sync with the newest pod.
- A worker sleeps until woken: by an update, by the PLEG (`wake`), or by a timer
  (`retry_after` from a sync, the resync period, a retry after an error). Timers
  use the injected clock, so tests advance time instead of sleeping.
- States only move forward: SYNCING -> TERMINATING -> TERMINATED -> done.
- `wait_idle` returns once no worker has work pending (for tests and benchmarks).
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from typing import Protocol

from pyk8s.client.clock import Clock, Timer
from pyk8s.kubelet import pods

log = logging.getLogger(__name__)


class State(enum.Enum):
    SYNCING = "syncing"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    DONE = "done"


@dataclasses.dataclass
class SyncOutcome:
    terminal: bool = False
    retry_after: float | None = None


class PodHandler(Protocol):
    async def sync_pod(self, pod: dict) -> SyncOutcome:
        """Make the runtime match the pod and report its status."""
        ...

    async def sync_terminating_pod(self, pod: dict, grace_period: int) -> None:
        """Stop every container of the pod within `grace_period` seconds, then its
        sandbox, and report its final status. Raising retries."""
        ...

    async def sync_terminated_pod(self, pod: dict) -> None:
        """Release what the stopped pod still holds (cgroups) and mark it finished."""
        ...

    async def pod_removed(self, uid: str, pod: dict) -> None:
        """The pod left the API: remove its containers, sandboxes, logs, directories."""
        ...


class PodWorker:
    def __init__(self, workers: "PodWorkers", pod: dict):
        self.workers = workers
        self.uid = pods.uid(pod)
        self.pod = pod
        self.state = State.SYNCING
        self.removed = False
        self.grace: int | None = None
        self.wake_event = asyncio.Event()
        self.busy = True
        self.timer: Timer | None = None
        self.timer_deadline: float | None = None
        self.task: asyncio.Task | None = None
        self.terminated_synced = False
        self.errors = 0
        self.kill_grace: int | None = None  # a kill the kubelet asked for (eviction)

    def update(self, pod: dict) -> None:
        self.pod = pod
        self.wake()

    def wake(self) -> None:
        self.wake_event.set()
        self.workers._idle.clear()

    def schedule(self, delay: float) -> None:
        """Wake after `delay` seconds unless an earlier timer is already set."""
        clock = self.workers.clock
        deadline = clock.monotonic() + max(delay, 0.0)
        if self.timer is not None and self.timer_deadline is not None \
                and self.timer_deadline <= deadline:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer_deadline = deadline
        self.timer = clock.call_later(max(delay, 0.0), self._fire)

    def _fire(self) -> None:
        self.timer, self.timer_deadline = None, None
        self.wake()

    def effective_grace(self) -> int:
        """The grace period for termination; it only ever shrinks (at least 1 s)."""
        wanted = pods.termination_grace_period(self.pod)
        if self.kill_grace is not None:
            wanted = min(wanted, self.kill_grace)
        if self.grace is not None:
            wanted = min(wanted, self.grace)
        self.grace = max(wanted, 1)
        return self.grace

    async def run(self) -> None:
        handler = self.workers.handler
        while self.state != State.DONE:
            self.busy = False
            self.workers._idle_changed()
            await self.wake_event.wait()
            self.busy = True
            self.wake_event.clear()
            try:
                await self._step(handler)
                self.errors = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failing pod must not kill its worker
                self.errors += 1
                delay = min(self.workers.error_backoff * 2 ** (self.errors - 1),
                            self.workers.max_error_backoff)
                log.exception("pod %s: sync failed (retry in %.1fs)",
                              pods.full_name(self.pod), delay)
                self.schedule(delay)
        self.busy = False
        self.workers._finished(self)

    async def _step(self, handler: PodHandler) -> None:
        if self.state == State.SYNCING:
            if self.removed or pods.deletion_requested(self.pod) or \
                    self.kill_grace is not None:
                self.state = State.TERMINATING
            else:
                outcome = await handler.sync_pod(self.pod)
                if outcome.terminal:
                    self.state = State.TERMINATING
                else:
                    self.schedule(outcome.retry_after if outcome.retry_after is not None
                                  else self.workers.resync_period)
                    return
        if self.state == State.TERMINATING:
            await self._terminate(handler)
            self.state = State.TERMINATED
        if self.state == State.TERMINATED:
            if not self.terminated_synced:
                await handler.sync_terminated_pod(self.pod)
                self.terminated_synced = True
            if self.removed:
                await handler.pod_removed(self.uid, self.pod)
                self.state = State.DONE

    async def _terminate(self, handler: PodHandler) -> None:
        """Kill with the current grace period; restart the kill if it shrinks."""
        while True:
            grace = self.effective_grace()
            kill = asyncio.ensure_future(handler.sync_terminating_pod(self.pod, grace))
            while not kill.done():
                waker = asyncio.ensure_future(self.wake_event.wait())
                await asyncio.wait({kill, waker}, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                if kill.done():
                    break
                self.wake_event.clear()
                if self.effective_grace() < grace:
                    kill.cancel()
                    await asyncio.gather(kill, return_exceptions=True)
                    break
            if kill.cancelled():
                continue
            kill.result()
            return


class PodWorkers:
    """The set of pod workers; the kubelet feeds it pod updates and wake-ups."""

    def __init__(self, handler: PodHandler, *, clock: Clock, resync_period: float = 60.0,
                 error_backoff: float = 1.0, max_error_backoff: float = 30.0):
        self.handler, self.clock = handler, clock
        self.resync_period = resync_period
        self.error_backoff, self.max_error_backoff = error_backoff, max_error_backoff
        self.workers: dict[str, PodWorker] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def update(self, pod: dict, *, wake: bool = True) -> None:
        """A new version of a pod bound to this node (or one seen at start).

        `wake=False` only refreshes the worker's copy (a status-only change).
        """
        uid = pods.uid(pod)
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            self._idle.clear()
            worker.task = asyncio.create_task(worker.run(), name=f"pod worker {uid}")
        elif not wake:
            worker.pod = pod
            return
        worker.update(pod)

    def remove(self, uid: str, pod: dict | None = None) -> None:
        """The pod left the API: terminate it (if needed) and clean up after it."""
        worker = self.workers.get(uid)
        if worker is None:
            return
        if pod is not None:
            worker.pod = pod
        worker.removed = True
        worker.wake()

    def kill(self, uid: str, grace: int) -> None:
        """Terminate the pod within `grace` seconds though the API keeps it (eviction)."""
        worker = self.workers.get(uid)
        if worker is None:
            return
        worker.kill_grace = grace if worker.kill_grace is None else min(grace,
                                                                           worker.kill_grace)
        worker.wake()

    def wake(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.wake()

    def state(self, uid: str) -> State | None:
        worker = self.workers.get(uid)
        return worker.state if worker else None

    def known(self, uid: str) -> bool:
        return uid in self.workers

    def _idle_changed(self) -> None:
        if all(not w.busy and not w.wake_event.is_set() for w in self.workers.values()):
            self._idle.set()
        else:
            self._idle.clear()

    def _finished(self, worker: PodWorker) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]
        self._idle_changed()

    async def wait_idle(self) -> None:
        """Return once no worker is syncing or has a wake-up pending."""
        while True:
            await asyncio.sleep(0)  # let woken workers take their event
            self._idle_changed()
            if self._idle.is_set():
                return
            await self._idle.wait()

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for w in self.workers.values():
            if w.timer is not None:
                w.timer.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers.clear()
