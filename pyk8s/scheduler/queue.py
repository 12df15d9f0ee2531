"""The scheduling queue: activeQ, backoffQ, unschedulable pods, nominated pods.

Role: upstream's ``internal/queue/scheduling_queue.go`` (PriorityQueue) and
``nominator``. New pods enter activeQ (after PreEnqueue gates); ``pop`` hands the
first one to the scheduling loop; a pod that failed returns through
``add_unschedulable_if_not_present`` and waits in the unschedulable pool until a
cluster event one of its rejecting plugins registered for may help, then goes to
backoffQ (or straight to activeQ once its back-off expired).

Invariants:
- A pod is in at most one of activeQ, backoffQ, unschedulable pods; a popped pod
  is "in flight" until ``done`` and is in none of them.
- activeQ order is the profile's QueueSort (PrioritySort: priority, then the time
  the pod entered the queue). backoffQ is ordered by back-off expiry.
- Back-off after n attempts is ``initial * 2^(n-1)`` capped at ``max`` (1 s, 10 s),
  counted from the time the pod last came back.
- Events seen while a pod was in flight are replayed against it when it comes back
  unschedulable, so an event racing a scheduling cycle is never lost.
- Queueing hints are simplified by event kind: a plugin's registration matches an
  event by resource and action; an optional hint function may then skip it. A pod
  that failed with no rejecting plugin (an error) always retries after back-off.
- Time comes only from the injected clock (tests use ``FakeClock``).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any, Callable, Iterable

from pyk8s.client.clock import REAL_CLOCK, Clock

from .framework import (ActionType, ClusterEvent, EVENT_FORCE_ACTIVATE, EVENT_UNSCHEDULABLE_TIMEOUT, MODE_OVERRIDE,
                        NominatingInfo, QueueingHint, UNSCHEDULABLE_POD, is_success)
from .nodeinfo import PodInfo

QUEUE_SKIP, QUEUE_AFTER_BACKOFF, QUEUE_IMMEDIATELY = 0, 1, 2
ACTIVE_Q, BACKOFF_Q, UNSCHEDULABLE_PODS = "ActiveQ", "BackoffQ", "Unschedulable"


def _uid(pod: dict) -> str:
    return (pod.get("metadata") or {}).get("uid") or ""


def _nominated_node_name(pod: dict) -> str:
    return (pod.get("status") or {}).get("nominatedNodeName") or ""


class QueuedPodInfo:
    """A pod and its queueing history (upstream ``framework.QueuedPodInfo``)."""

    __slots__ = ("pod_info", "timestamp", "attempts", "initial_attempt_timestamp",
                 "unschedulable_plugins", "pending_plugins", "gated", "_seq")

    def __init__(self, pod: dict, now: float):
        self.pod_info = PodInfo(pod)
        self.timestamp = now
        self.attempts = 0
        self.initial_attempt_timestamp: float | None = None
        self.unschedulable_plugins: set[str] = set()
        self.pending_plugins: set[str] = set()
        self.gated = False
        self._seq = 0

    @property
    def pod(self) -> dict:
        return self.pod_info.pod

    @property
    def uid(self) -> str:
        return self.pod_info.uid

    def update(self, pod: dict) -> None:
        self.pod_info = PodInfo(pod)


class Nominator:
    """Pods nominated to nodes by preemption, counted by Filter as if running there."""

    def __init__(self, pod_lookup: Callable[[str, str], dict | None] | None = None):
        self.nominated_pods: dict[str, list[PodInfo]] = {}
        self.pod_to_node: dict[str, str] = {}
        self._lookup = pod_lookup

    def add(self, pi: PodInfo, nominating: NominatingInfo | None = None) -> None:
        self.delete(pi.pod)
        if nominating is not None and nominating.mode == MODE_OVERRIDE:
            node = nominating.nominated_node_name
        else:
            node = _nominated_node_name(pi.pod)
        if not node:
            return
        if self._lookup is not None:
            meta = pi.pod.get("metadata") or {}
            live = self._lookup(meta.get("namespace") or "", meta.get("name") or "")
            # A pod that is gone or already bound holds no nomination.
            if live is None or (live.get("spec") or {}).get("nodeName"):
                return
        self.pod_to_node[pi.uid] = node
        self.nominated_pods.setdefault(node, []).append(pi)

    def delete(self, pod: dict) -> None:
        uid = _uid(pod)
        node = self.pod_to_node.pop(uid, None)
        if node is None:
            return
        remaining = [p for p in self.nominated_pods.get(node, ()) if p.uid != uid]
        if remaining:
            self.nominated_pods[node] = remaining
        else:
            self.nominated_pods.pop(node, None)

    def update(self, old_pod: dict, new_info: PodInfo) -> None:
        nominating = None
        # An update without a nominatedNodeName right after the nomination was
        # recorded in memory must keep the reservation.
        if not _nominated_node_name(old_pod) and not _nominated_node_name(new_info.pod):
            node = self.pod_to_node.get(_uid(old_pod))
            if node:
                nominating = NominatingInfo(node, MODE_OVERRIDE)
        self.delete(old_pod)
        self.add(new_info, nominating)

    def nominated_pods_for_node(self, node_name: str) -> list[PodInfo]:
        return list(self.nominated_pods.get(node_name, ()))


class _Heap:
    """A heap with removal by key (lazy deletion) and a custom order."""

    def __init__(self, key: Callable[[QueuedPodInfo], Any]):
        self._key = key
        self._heap: list[tuple[Any, int, QueuedPodInfo]] = []
        self._items: dict[str, QueuedPodInfo] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, uid: str) -> bool:
        return uid in self._items

    def get(self, uid: str) -> QueuedPodInfo | None:
        return self._items.get(uid)

    def push(self, qpi: QueuedPodInfo) -> None:
        self._items[qpi.uid] = qpi
        qpi._seq = next(self._seq)
        heapq.heappush(self._heap, (self._key(qpi), qpi._seq, qpi))

    def remove(self, uid: str) -> QueuedPodInfo | None:
        return self._items.pop(uid, None)

    def _clean(self) -> None:
        while self._heap:
            _, seq, qpi = self._heap[0]
            if self._items.get(qpi.uid) is qpi and qpi._seq == seq:
                return
            heapq.heappop(self._heap)

    def peek(self) -> QueuedPodInfo | None:
        self._clean()
        return self._heap[0][2] if self._heap else None

    def pop(self) -> QueuedPodInfo | None:
        self._clean()
        if not self._heap:
            return None
        qpi = heapq.heappop(self._heap)[2]
        del self._items[qpi.uid]
        return qpi

    def values(self) -> list[QueuedPodInfo]:
        return list(self._items.values())


class _SortKey:
    __slots__ = ("qpi", "less")

    def __init__(self, qpi: QueuedPodInfo, less: Callable[[Any, Any], bool]):
        self.qpi, self.less = qpi, less

    def __lt__(self, other: "_SortKey") -> bool:
        return self.less(self.qpi, other.qpi)


def pod_update_actions(old: dict, new: dict) -> ActionType:
    """Which update kinds an unscheduled pod's change is (upstream
    ``PodSchedulingPropertiesChange``, simplified)."""
    actions = ActionType(0)
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    os_, ns = old.get("spec") or {}, new.get("spec") or {}
    if om.get("labels") != nm.get("labels"):
        actions |= ActionType.UPDATE_POD_LABEL
    if os_.get("tolerations") != ns.get("tolerations"):
        actions |= ActionType.UPDATE_POD_TOLERATION
    if os_.get("schedulingGates") and not ns.get("schedulingGates"):
        actions |= ActionType.UPDATE_POD_SCHEDULING_GATES_ELIMINATED
    if os_.get("containers") != ns.get("containers") or os_.get("initContainers") != ns.get("initContainers"):
        actions |= ActionType.UPDATE_POD_SCALE_DOWN
    rest = [k for k in set(os_) | set(ns) if k not in ("tolerations", "schedulingGates", "containers",
                                                          "initContainers") and os_.get(k) != ns.get(k)]
    if rest or om.get("annotations") != nm.get("annotations"):
        actions |= ActionType.UPDATE_POD_OTHER
    return actions


class SchedulingQueue:
    """Upstream's PriorityQueue; see the module docstring for the rules."""

    def __init__(self, frameworks: dict[str, Any], *, clock: Clock = REAL_CLOCK,
                 initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_in_unschedulable: float = 300.0,
                 pod_lookup: Callable[[str, str], dict | None] | None = None):
        self.frameworks = frameworks
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        less = next(iter(frameworks.values())).less
        self.active = _Heap(lambda q: _SortKey(q, less))
        self.backoff = _Heap(lambda q: self.backoff_expiry(q))
        self.unschedulable: dict[str, QueuedPodInfo] = {}
        self.nominator = Nominator(pod_lookup)
        self.scheduling_cycle = 0
        self._in_flight: dict[str, int] = {}
        self._events: list[tuple[int, ClusterEvent, Any, Any]] = []
        self._event_seq = itertools.count()
        self._wakeup = asyncio.Event()
        self.closed = False

    # -- back-off -----------------------------------------------------------------------

    def backoff_duration(self, qpi: QueuedPodInfo) -> float:
        if qpi.attempts == 0:
            return 0.0
        duration = self.initial_backoff
        for _ in range(1, qpi.attempts):
            if duration > self.max_backoff - duration:
                return self.max_backoff
            duration += duration
        return duration

    def backoff_expiry(self, qpi: QueuedPodInfo) -> float:
        return qpi.timestamp + self.backoff_duration(qpi)

    def is_backing_off(self, qpi: QueuedPodInfo) -> bool:
        return self.backoff_expiry(qpi) > self.clock.monotonic()

    # -- adding ---------------------------------------------------------------------------

    def _framework(self, pod: dict) -> Any:
        return self.frameworks.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")

    def _move_to_active(self, qpi: QueuedPodInfo) -> bool:
        """Run PreEnqueue; a gated pod parks in the unschedulable pool instead."""
        fwk = self._framework(qpi.pod)
        status = fwk.run_pre_enqueue_plugins(qpi.pod) if fwk is not None else None
        if not is_success(status):
            qpi.gated = True
            qpi.unschedulable_plugins.add(status.plugin)
            self.unschedulable[qpi.uid] = qpi
            return False
        qpi.gated = False
        if qpi.initial_attempt_timestamp is None:
            qpi.initial_attempt_timestamp = self.clock.monotonic()
        self.unschedulable.pop(qpi.uid, None)
        self.backoff.remove(qpi.uid)
        self.active.push(qpi)
        self._wakeup.set()
        return True

    def add(self, pod: dict) -> None:
        """A new unscheduled pod for one of our profiles."""
        uid = _uid(pod)
        if uid in self.active or uid in self.backoff or uid in self.unschedulable or uid in self._in_flight:
            self.update(None, pod)
            return
        qpi = QueuedPodInfo(pod, self.clock.monotonic())
        if self._move_to_active(qpi):
            self.nominator.add(qpi.pod_info)

    def activate(self, pods: Iterable[dict]) -> None:
        """Move the given pods to activeQ now (upstream ``Activate``)."""
        for pod in pods:
            uid = _uid(pod)
            qpi = self.unschedulable.get(uid) or self.backoff.get(uid)
            if qpi is not None and not qpi.gated:
                self._move_to_active(qpi)
        self._record_event(EVENT_FORCE_ACTIVATE, None, None)

    def update(self, old: dict | None, new: dict) -> None:
        uid = _uid(new)
        if uid in self._in_flight:
            if old is not None:
                self._record_event(ClusterEvent(UNSCHEDULABLE_POD, pod_update_actions(old, new)), old, new)
            return
        for heap in (self.active, self.backoff):
            qpi = heap.get(uid)
            if qpi is not None:
                qpi.update(new)
                if old is not None:
                    self.nominator.update(old, qpi.pod_info)
                if heap is self.backoff:
                    heap.push(qpi)
                return
        qpi = self.unschedulable.get(uid)
        if qpi is not None:
            qpi.update(new)
            if old is not None:
                self.nominator.update(old, qpi.pod_info)
                event = ClusterEvent(UNSCHEDULABLE_POD, pod_update_actions(old, new))
                strategy = self._worth_requeuing(qpi, event, old, new)
                if strategy != QUEUE_SKIP:
                    self.unschedulable.pop(uid, None)
                    self._requeue(qpi, strategy)
            return
        qpi = QueuedPodInfo(new, self.clock.monotonic())
        self._move_to_active(qpi)

    def delete(self, pod: dict) -> None:
        uid = _uid(pod)
        self.nominator.delete(pod)
        self.active.remove(uid)
        self.backoff.remove(uid)
        self.unschedulable.pop(uid, None)

    # -- popping ----------------------------------------------------------------------------

    async def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule; waits while activeQ is empty; None once closed."""
        while not self.closed:
            qpi = self.pop_nowait()
            if qpi is not None:
                return qpi
            self._wakeup.clear()
            await self._wakeup.wait()
        return None

    def pop_nowait(self) -> QueuedPodInfo | None:
        """``pop`` without waiting: None when activeQ is empty."""
        qpi = self.active.pop()
        if qpi is None:
            return None
        qpi.attempts += 1
        self.scheduling_cycle += 1
        self._in_flight[qpi.uid] = next(self._event_seq)
        return qpi

    def done(self, uid: str) -> None:
        """The pod's scheduling attempt is over; forget events kept for it."""
        if self._in_flight.pop(uid, None) is None:
            return
        if not self._in_flight:
            self._events.clear()
        else:
            oldest = min(self._in_flight.values())
            self._events = [e for e in self._events if e[0] >= oldest]

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    # -- coming back ------------------------------------------------------------------------

    def add_unschedulable_if_not_present(self, qpi: QueuedPodInfo) -> str:
        """A pod whose attempt failed comes back; returns the queue it went to."""
        try:
            uid = qpi.uid
            if uid in self.unschedulable or uid in self.active or uid in self.backoff:
                return ""
            qpi.timestamp = self.clock.monotonic()
            strategy = self._hint_for_in_flight(qpi)
            where = self._requeue(qpi, strategy)
            self.nominator.add(qpi.pod_info)
            return where
        finally:
            self.done(qpi.uid)

    def _hint_for_in_flight(self, qpi: QueuedPodInfo) -> int:
        if not (qpi.unschedulable_plugins or qpi.pending_plugins):
            # Failed for an unusual reason (API error...): retry after back-off.
            return QUEUE_AFTER_BACKOFF
        since = self._in_flight.get(qpi.uid)
        strategy = QUEUE_SKIP
        for seq, event, old, new in self._events:
            if since is None or seq < since:
                continue
            hint = self._worth_requeuing(qpi, event, old, new)
            if hint == QUEUE_IMMEDIATELY:
                return hint
            if hint == QUEUE_AFTER_BACKOFF:
                strategy = hint
                if not qpi.pending_plugins:
                    return strategy
        return strategy

    def _requeue(self, qpi: QueuedPodInfo, strategy: int) -> str:
        if strategy == QUEUE_SKIP:
            self.unschedulable[qpi.uid] = qpi
            return UNSCHEDULABLE_PODS
        if strategy == QUEUE_AFTER_BACKOFF and self.is_backing_off(qpi):
            self.backoff.push(qpi)
            return BACKOFF_Q
        return ACTIVE_Q if self._move_to_active(qpi) else UNSCHEDULABLE_PODS

    def _worth_requeuing(self, qpi: QueuedPodInfo, event: ClusterEvent, old: Any, new: Any) -> int:
        rejectors = qpi.unschedulable_plugins | qpi.pending_plugins
        if not rejectors or event.is_wildcard():
            return QUEUE_AFTER_BACKOFF
        fwk = self._framework(qpi.pod)
        if fwk is None:
            return QUEUE_AFTER_BACKOFF
        strategy = QUEUE_SKIP
        for plugin in rejectors:
            for reg in fwk.events.get(plugin, ()):
                if not reg.event.matches(event):
                    continue
                hint = QueueingHint.QUEUE
                if reg.hint is not None:
                    try:
                        hint = reg.hint(qpi.pod, old, new)
                    except Exception:  # a broken hint must not strand the pod
                        hint = QueueingHint.QUEUE
                if hint == QueueingHint.QUEUE_SKIP:
                    continue
                if plugin in qpi.pending_plugins:
                    return QUEUE_IMMEDIATELY
                if not qpi.pending_plugins:
                    return QUEUE_AFTER_BACKOFF
                strategy = QUEUE_AFTER_BACKOFF
        return strategy

    def _record_event(self, event: ClusterEvent, old: Any, new: Any) -> None:
        if self._in_flight:
            self._events.append((next(self._event_seq), event, old, new))

    def move_all_to_active_or_backoff(self, event: ClusterEvent, old: Any = None, new: Any = None,
                                      precheck: Callable[[dict], bool] | None = None) -> int:
        """A cluster event happened: requeue the unschedulable pods it may help."""
        moved = 0
        for qpi in list(self.unschedulable.values()):
            if precheck is not None and not precheck(qpi.pod):
                continue
            strategy = self._worth_requeuing(qpi, event, old, new)
            if strategy == QUEUE_SKIP:
                continue
            del self.unschedulable[qpi.uid]
            if self._requeue(qpi, strategy) != UNSCHEDULABLE_PODS:
                moved += 1
        self._record_event(event, old, new)
        return moved

    # -- periodic flushes ---------------------------------------------------------------------

    def flush_backoff_completed(self) -> int:
        """Move pods whose back-off expired to activeQ (upstream: every second)."""
        now = self.clock.monotonic()
        moved = 0
        while True:
            qpi = self.backoff.peek()
            if qpi is None or self.backoff_expiry(qpi) > now:
                return moved
            self.backoff.pop()
            if self._move_to_active(qpi):
                moved += 1

    def flush_unschedulable_leftover(self) -> int:
        """Retry pods stuck unschedulable longer than the limit (every 30 s)."""
        now = self.clock.monotonic()
        stale = [q for q in self.unschedulable.values() if now - q.timestamp > self.max_in_unschedulable]
        moved = 0
        for qpi in stale:
            del self.unschedulable[qpi.uid]
            if self._requeue(qpi, QUEUE_AFTER_BACKOFF) != UNSCHEDULABLE_PODS:
                moved += 1
        if stale:
            self._record_event(EVENT_UNSCHEDULABLE_TIMEOUT, None, None)
        return moved

    async def run(self) -> None:
        """Run the periodic flushes until closed (on the injected clock)."""
        ticks = 0
        while not self.closed:
            await self.clock.sleep(1.0)
            self.flush_backoff_completed()
            ticks += 1
            if ticks % 30 == 0:
                self.flush_unschedulable_leftover()

    # -- introspection -------------------------------------------------------------------------

    def where(self, pod: dict) -> str:
        uid = _uid(pod)
        if uid in self.active:
            return ACTIVE_Q
        if uid in self.backoff:
            return BACKOFF_Q
        if uid in self.unschedulable:
            return UNSCHEDULABLE_PODS
        return ""

    def pending(self) -> tuple[int, int, int]:
        return len(self.active), len(self.backoff), len(self.unschedulable)
