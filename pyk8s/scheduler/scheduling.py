"""The scheduling loop: one pod per cycle, binding in the background.

Role: upstream ``schedule_one.go`` and ``eventhandlers.go``. ``Scheduler`` owns the
cache, the queue and one ``Framework`` per profile. ``schedule_one`` pops a pod,
snapshots the cache, runs PreFilter, Filter (on a sample of nodes: upstream's
adaptive ``percentageOfNodesToScore`` from a round-robin start), PreScore, Score,
picks the best node (random among ties), assumes the pod there, runs Reserve and
Permit, then binds in a task (WaitOnPermit, PreBind, Bind, PostBind). On failure it
runs PostFilter (preemption), records FailedScheduling with upstream's message,
sets PodScheduled=False and requeues the pod. The ``on_*`` methods are the informer
event handlers.

Invariants:
- Scheduling cycles are serial; binding cycles run concurrently with later cycles,
  which already see the assumed pod, so no node is double-booked. ``run`` yields to
  the event loop after every cycle, so bindings, informer events and the lease
  renewal are not held back by a backlog of pods.
- With no nominated pods anywhere, Filter runs one pass per node over the cycle's
  filter list (``Framework.cycle_filters``); otherwise the two-pass upstream path.
  Both visit nodes in the same rotating order and stop at the same count.
- A binding failure unreserves, forgets the assumed pod, wakes pods waiting on
  freed resources and sends the pod through the failure path.
- Only pods whose schedulerName has a profile are queued; bound pods of every
  scheduler count in the cache.
- Randomness (tie breaks, preemption offset) comes from the injected ``rng``.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from pyk8s.api import meta as m
from pyk8s.client.clock import REAL_CLOCK, Clock

from .cache import Cache, Snapshot
from .configuration import SchedulerConfiguration, load_configuration
from .framework import (ASSIGNED_POD, CLEAR_NOMINATED_NODE, EVENT_ASSIGNED_POD_ADD, EVENT_ASSIGNED_POD_DELETE,
                        EVENT_NODE_ADD, MODE_OVERRIDE, NODE, ActionType, ClusterEvent, Code, CycleState, Diagnosis,
                        FitError, NodePluginScores, NodeToStatus, NominatingInfo, NoNodesAvailable, Status,
                        is_success)
from .nodeinfo import NodeInfo
from .plugins.registry import in_tree_registry
from .queue import QueuedPodInfo, SchedulingQueue, pod_update_actions
from .runtime import Framework

log = logging.getLogger(__name__)

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NOTE_LENGTH_LIMIT = 1024
MAX_CONCURRENT_BINDS = 32


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """Upstream's adaptive sample size: all nodes below 100, else
    ``(50 - n/125)%`` of them (at least 5%), never fewer than 100."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage == 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def select_host(scores: list[NodePluginScores], rng: random.Random) -> str:
    """The highest total score; ties broken uniformly at random, as upstream's
    reservoir sampling."""
    return select_host_by_totals([s.name for s in scores], [s.total_score for s in scores], rng)


def select_host_by_totals(names: list[str], totals: list[int], rng: random.Random) -> str:
    """``select_host`` over parallel lists of node names and total scores."""
    if not totals:
        raise ValueError("empty priorityList")
    best = max(totals)
    if totals.count(best) == 1:
        return names[totals.index(best)]
    return rng.choice([name for name, total in zip(names, totals) if total == best])


def truncate_message(message: str) -> str:
    if len(message) <= NOTE_LENGTH_LIMIT:
        return message
    suffix = " ..."
    return message[:NOTE_LENGTH_LIMIT - len(suffix)] + suffix


@dataclass
class ScheduleResult:
    suggested_host: str = ""
    evaluated_nodes: int = 0
    feasible_nodes: int = 0
    nominating_info: NominatingInfo | None = None


def node_update_actions(old: dict, new: dict) -> ActionType:
    """Upstream ``nodeSchedulingPropertiesChange``."""
    actions = ActionType(0)
    os_, ns = old.get("spec") or {}, new.get("spec") or {}
    if bool(os_.get("unschedulable")) != bool(ns.get("unschedulable")) or os_.get("taints") != ns.get("taints"):
        actions |= ActionType.UPDATE_NODE_TAINT
    if (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable"):
        actions |= ActionType.UPDATE_NODE_ALLOCATABLE
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if om.get("labels") != nm.get("labels"):
        actions |= ActionType.UPDATE_NODE_LABEL
    if om.get("annotations") != nm.get("annotations"):
        actions |= ActionType.UPDATE_NODE_ANNOTATION
    if [(c.get("type"), c.get("status")) for c in (old.get("status") or {}).get("conditions") or ()] != \
            [(c.get("type"), c.get("status")) for c in (new.get("status") or {}).get("conditions") or ()]:
        actions |= ActionType.UPDATE_NODE_CONDITION
    return actions


def _meta(pod: dict) -> dict:
    return pod.get("metadata") or {}


def is_assigned(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Scheduler:
    """kube-scheduler's core: cache, queue, profiles, and the scheduling loop."""

    def __init__(self, config: SchedulerConfiguration | None = None, *, listers: Any, actions: Any,
                 clock: Clock = REAL_CLOCK, registry: dict | None = None, rng: random.Random | None = None):
        self.config = config or load_configuration()
        self.listers = listers
        self.actions = actions
        self.clock = clock
        self.rng = rng or random.Random()
        self.cache = Cache()
        self.snapshot = Snapshot()
        self.next_start_node_index = 0
        registry = registry or in_tree_registry()
        self.profiles: dict[str, Framework] = {}
        for profile in self.config.profiles:
            fwk = Framework(profile, registry, snapshot=self.snapshot, listers=listers, actions=actions,
                            clock=clock)
            fwk.rng = self.rng  # type: ignore[attr-defined]
            self.profiles[profile.scheduler_name] = fwk
        self.queue = SchedulingQueue(
            self.profiles, clock=clock, initial_backoff=self.config.pod_initial_backoff_seconds,
            max_backoff=self.config.pod_max_backoff_seconds,
            max_in_unschedulable=self.config.pod_max_in_unschedulable_pods_duration,
            pod_lookup=listers.pod if listers is not None else None)
        for fwk in self.profiles.values():
            fwk.nominator = self.queue.nominator
        for fwk in self.profiles.values():
            for pl in fwk.plugins.values():
                if getattr(pl, "rng", None) is not None:
                    pl.rng = self.rng
        self._binding_tasks: set[asyncio.Task] = set()
        # Bind requests in flight at once (upstream bounds them by its client's
        # QPS/burst): more only queue inside the API server, open more connections
        # and stretch the latency tail without binding any faster.
        self._bind_slots = asyncio.Semaphore(MAX_CONCURRENT_BINDS)
        self.stats = {"attempts": 0, "scheduled": 0, "unschedulable": 0, "errors": 0}

    def responsible_for(self, pod: dict) -> bool:
        return ((pod.get("spec") or {}).get("schedulerName") or "default-scheduler") in self.profiles

    # -- event handlers (informers) -----------------------------------------------------

    def on_node_add(self, node: dict) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff(EVENT_NODE_ADD, None, node)

    def on_node_update(self, old: dict, new: dict) -> None:
        self.cache.update_node(old, new)
        actions = node_update_actions(old, new)
        if actions:
            self.queue.move_all_to_active_or_backoff(ClusterEvent(NODE, actions), old, new)

    def on_node_delete(self, node: dict) -> None:
        self.cache.remove_node(node)
        self.queue.move_all_to_active_or_backoff(ClusterEvent(NODE, ActionType.DELETE), node, None)

    def on_pod_add(self, pod: dict) -> None:
        if is_assigned(pod):
            if not is_terminal(pod):
                self.cache.add_pod(pod)
                self.queue.move_all_to_active_or_backoff(EVENT_ASSIGNED_POD_ADD, None, pod)
        elif self.responsible_for(pod) and not is_terminal(pod):
            self.queue.add(pod)

    def on_pod_update(self, old: dict, new: dict) -> None:
        was, now = is_assigned(old) and not is_terminal(old), is_assigned(new) and not is_terminal(new)
        if was and now:
            self.cache.update_pod(old, new)
            actions = pod_update_actions(old, new)
            if actions:
                self.queue.move_all_to_active_or_backoff(ClusterEvent(ASSIGNED_POD, actions), old, new)
            return
        if was:
            self.on_pod_delete(old)
            return
        if now:
            # The pod got bound (by us or someone else): it leaves the queue.
            self.queue.delete(old)
            self.on_pod_add(new)
            return
        if not self.responsible_for(new) or is_terminal(new):
            self.queue.delete(new)
            return
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion") and \
                _meta(old).get("resourceVersion"):
            return
        if _meta(new).get("uid") and self.cache.is_assumed_pod(new):
            return
        self.queue.update(old, new)

    def on_pod_delete(self, pod: dict) -> None:
        if is_assigned(pod):
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff(EVENT_ASSIGNED_POD_DELETE, pod, None)
            return
        self.queue.delete(pod)
        fwk = self.profiles.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")
        waiting = fwk.get_waiting_pod(_meta(pod).get("uid") or "") if fwk else None
        if waiting is not None:
            waiting.reject("", "removed")
            self.queue.move_all_to_active_or_backoff(EVENT_ASSIGNED_POD_DELETE, pod, None)

    def on_cluster_event(self, resource: str, action: ActionType, old: Any = None, new: Any = None) -> None:
        """Other objects plugins registered for (PVCs, PVs, StorageClasses, ...)."""
        self.queue.move_all_to_active_or_backoff(ClusterEvent(resource, action), old, new)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until the queue is closed."""
        flusher = asyncio.create_task(self.queue.run())
        try:
            while await self.schedule_one():
                # Let binding cycles, informer events and lease renewal run between
                # cycles (upstream runs them in other goroutines): with a backlog,
                # popping never suspends, and without this yield every binding
                # waited for the whole backlog (and the lease could expire).
                await asyncio.sleep(0)
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

    async def drain_bindings(self) -> None:
        """Wait for every binding cycle started so far (tests, shutdown)."""
        while self._binding_tasks:
            await asyncio.gather(*list(self._binding_tasks), return_exceptions=True)

    async def schedule_one(self, qpi: QueuedPodInfo | None = None) -> bool:
        """One scheduling cycle; False once the queue is closed."""
        if qpi is None:
            qpi = await self.queue.pop()
            if qpi is None:
                return False
        pod = qpi.pod
        fwk = self.profiles.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")
        if fwk is None:
            self.queue.done(qpi.uid)
            return True
        if await self._skip(fwk, pod):
            self.queue.done(qpi.uid)
            return True
        self.stats["attempts"] += 1
        start = self.clock.monotonic()
        state = CycleState()
        result, assumed, status = await self.scheduling_cycle(state, fwk, qpi)
        if not is_success(status):
            await self.handle_failure(fwk, assumed, status, result.nominating_info, start)  # type: ignore[arg-type]
            return True
        task = asyncio.create_task(self._binding(state, fwk, result, assumed, start))
        self._binding_tasks.add(task)
        task.add_done_callback(self._binding_tasks.discard)
        return True

    async def _skip(self, fwk: Framework, pod: dict) -> bool:
        meta = _meta(pod)
        if meta.get("deletionTimestamp"):
            await self.actions.record_event(pod, type="Warning", reason="FailedScheduling", action="Scheduling",
                                            note=f"skip schedule deleting pod: {meta.get('namespace')}/"
                                                 f"{meta.get('name')}")
            return True
        return self.cache.is_assumed_pod(pod)

    async def scheduling_cycle(self, state: CycleState, fwk: Framework, qpi: QueuedPodInfo
                               ) -> tuple[ScheduleResult, QueuedPodInfo, Status | None]:
        pod = qpi.pod
        try:
            result = self.schedule_pod(fwk, state, pod)
        except NoNodesAvailable as e:
            return (ScheduleResult(nominating_info=CLEAR_NOMINATED_NODE), qpi,
                    Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE).with_error(e))
        except FitError as fit_error:
            if not fwk.has_post_filter_plugins():
                return ScheduleResult(), qpi, Status(Code.UNSCHEDULABLE).with_error(fit_error)
            post_result, post_status = await fwk.run_post_filter_plugins(
                state, pod, fit_error.diagnosis.node_to_status)
            fit_error.diagnosis.post_filter_msg = post_status.message()
            if post_status.code == Code.ERROR:
                log.error("PostFilter for pod %s/%s failed: %s", _meta(pod).get("namespace"),
                          _meta(pod).get("name"), post_status.message())
            nominating = post_result.nominating_info if post_result is not None else None
            return (ScheduleResult(nominating_info=nominating), qpi,
                    Status(Code.UNSCHEDULABLE).with_error(fit_error))
        except Exception as e:  # noqa: BLE001 - plugin errors go through the failure path
            log.exception("error selecting node for pod %s/%s", _meta(pod).get("namespace"), _meta(pod).get("name"))
            return ScheduleResult(nominating_info=CLEAR_NOMINATED_NODE), qpi, Status.as_status(e)
        host = result.suggested_host
        assumed_qpi = QueuedPodInfo(dict(pod, spec=dict(pod.get("spec") or {}, nodeName=host)), qpi.timestamp)
        assumed_qpi.attempts = qpi.attempts
        assumed_qpi.initial_attempt_timestamp = qpi.initial_attempt_timestamp
        assumed = assumed_qpi.pod
        try:
            self.cache.assume_pod(assumed)
        except Exception as e:  # noqa: BLE001 - a retry-logic bug upstream reports the same way
            return ScheduleResult(nominating_info=CLEAR_NOMINATED_NODE), assumed_qpi, Status.as_status(e)
        self.queue.nominator.delete(assumed)
        for point, run in (("reserve", fwk.run_reserve_plugins_reserve), ("permit", fwk.run_permit_plugins)):
            status = run(state, assumed, host)
            if is_success(status) or (point == "permit" and status.is_wait()):  # type: ignore[union-attr]
                continue
            fwk.run_reserve_plugins_unreserve(state, assumed, host)
            self.cache.forget_pod(assumed)
            if status.is_rejected():  # type: ignore[union-attr]
                status = self._single_node_fit_error(pod, host, status)  # type: ignore[arg-type]
            return ScheduleResult(nominating_info=CLEAR_NOMINATED_NODE), assumed_qpi, status
        return result, assumed_qpi, None

    @staticmethod
    def _single_node_fit_error(pod: dict, host: str, status: Status) -> Status:
        diag = Diagnosis(node_to_status=NodeToStatus())
        diag.node_to_status.set(host, status)
        diag.add_plugin_status(status)
        return Status(status.code).with_error(FitError(pod, 1, diag))

    def schedule_pod(self, fwk: Framework, state: CycleState, pod: dict) -> ScheduleResult:
        self.cache.update_snapshot(self.snapshot)
        if self.snapshot.num_nodes() == 0:
            raise NoNodesAvailable()
        feasible, diagnosis = self.find_nodes_that_fit_pod(fwk, state, pod)
        if not feasible:
            raise FitError(pod, self.snapshot.num_nodes(), diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, 1 + len(diagnosis.node_to_status), 1)
        totals = self.prioritize_nodes_totals(fwk, state, pod, feasible)
        return ScheduleResult(select_host_by_totals([ni.name for ni in feasible], totals, self.rng),
                              len(feasible) + len(diagnosis.node_to_status), len(feasible))

    def find_nodes_that_fit_pod(self, fwk: Framework, state: CycleState, pod: dict
                                ) -> tuple[list[NodeInfo], Diagnosis]:
        diagnosis = Diagnosis()
        all_nodes = self.snapshot.list()
        pre_result, status, plugins_with_nodes = fwk.run_pre_filter_plugins(state, pod)
        diagnosis.unschedulable_plugins = set(plugins_with_nodes)
        if not is_success(status):
            if not status.is_rejected():  # type: ignore[union-attr]
                raise RuntimeError(status.message())  # type: ignore[union-attr]
            # Every node gets the PreFilter status, so preemption sees it.
            diagnosis.node_to_status.absent_nodes_status = status  # type: ignore[assignment]
            diagnosis.pre_filter_msg = status.message()  # type: ignore[union-attr]
            diagnosis.add_plugin_status(status)  # type: ignore[arg-type]
            return [], diagnosis
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        if nominated:
            # Likely the only node preemption made room on: try it first.
            ni = self.snapshot.get(nominated)
            if ni is not None:
                feasible = self.find_nodes_that_pass_filters(fwk, state, pod, diagnosis, [ni])
                if feasible:
                    return feasible, diagnosis
        nodes = all_nodes
        if pre_result is not None and not pre_result.all_nodes():
            nodes = [self.snapshot.get(n) for n in sorted(pre_result.node_names or ()) if self.snapshot.get(n)]
            diagnosis.node_to_status.absent_nodes_status = Status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(plugins_with_nodes))}]")
        feasible = self.find_nodes_that_pass_filters(fwk, state, pod, diagnosis, nodes)
        processed = len(feasible) + len(diagnosis.node_to_status)
        if all_nodes:
            self.next_start_node_index = (self.next_start_node_index + processed) % len(all_nodes)
        return feasible, diagnosis

    def find_nodes_that_pass_filters(self, fwk: Framework, state: CycleState, pod: dict, diagnosis: Diagnosis,
                                     nodes: list[NodeInfo]) -> list[NodeInfo]:
        n = len(nodes)
        if n == 0:
            return []
        percentage = fwk.percentage_of_nodes_to_score
        if percentage is None:
            percentage = self.config.percentage_of_nodes_to_score
        to_find = num_feasible_nodes_to_find(percentage, n)
        if not fwk.has_score_plugins():
            to_find = 1
        start = self.next_start_node_index
        if not fwk.has_filter_plugins():
            return [nodes[(start + i) % n] for i in range(min(to_find, n))]
        feasible: list[NodeInfo] = []
        start %= n
        ordered = nodes[start:] + nodes[:start] if start else nodes
        if fwk.has_nominated_pods():
            for ni in ordered:
                status = fwk.run_filter_plugins_with_nominated_pods(state, pod, ni)
                if status is None or status.code == Code.SUCCESS:
                    feasible.append(ni)
                    if len(feasible) >= to_find:
                        break
                    continue
                if status.code == Code.ERROR:
                    raise RuntimeError(status.message())
                diagnosis.node_to_status.set(ni.name, status)
                diagnosis.add_plugin_status(status)
            return feasible
        # No nominated pods anywhere: the one-pass Filter of every node, with this
        # cycle's filter list built once (same order, same first rejection).
        filters = fwk.cycle_filters(state, pod)
        success, pending = Code.SUCCESS, Code.PENDING
        rejected = (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, pending)
        set_status = diagnosis.node_to_status.set
        unschedulable_plugins = diagnosis.unschedulable_plugins
        append = feasible.append
        for ni in ordered:
            for name, filter_fn in filters:
                status = filter_fn(ni)
                if status is not None and status.code != success:
                    break
            else:
                append(ni)
                if len(feasible) >= to_find:
                    break
                continue
            code = status.code
            if code not in rejected:
                # Filters may only succeed or reject; anything else is an Error.
                raise RuntimeError(f"running {name!r} filter plugin: {status.message()}")
            # As run_filter_plugins + Diagnosis.add_plugin_status, inline.
            status.plugin = name
            set_status(ni.name, status)
            if name:
                unschedulable_plugins.add(name)
                if code == pending:
                    diagnosis.pending_plugins.add(name)
        return feasible

    def prioritize_nodes(self, fwk: Framework, state: CycleState, pod: dict,
                         nodes: list[NodeInfo]) -> list[NodePluginScores]:
        if not fwk.has_score_plugins():
            return [NodePluginScores(ni.name, total_score=1) for ni in nodes]
        status = fwk.run_pre_score_plugins(state, pod, nodes)
        if not is_success(status):
            raise RuntimeError(status.message())  # type: ignore[union-attr]
        scores, status = fwk.run_score_plugins(state, pod, nodes)
        if not is_success(status):
            raise RuntimeError(status.message())  # type: ignore[union-attr]
        return scores

    def prioritize_nodes_totals(self, fwk: Framework, state: CycleState, pod: dict,
                                nodes: list[NodeInfo]) -> list[int]:
        """``prioritize_nodes`` reduced to the total score of each node, in order."""
        if not fwk.has_score_plugins():
            return [1] * len(nodes)
        status = fwk.run_pre_score_plugins(state, pod, nodes)
        if not is_success(status):
            raise RuntimeError(status.message())  # type: ignore[union-attr]
        totals, status = fwk.run_score_plugins_totals(state, pod, nodes)
        if not is_success(status):
            raise RuntimeError(status.message())  # type: ignore[union-attr]
        return totals

    # -- binding ---------------------------------------------------------------------------

    async def _binding(self, state: CycleState, fwk: Framework, result: ScheduleResult,
                       assumed_qpi: QueuedPodInfo, start: float) -> None:
        status = await self.binding_cycle(state, fwk, result, assumed_qpi)
        if not is_success(status):
            await self.handle_binding_cycle_error(state, fwk, assumed_qpi, result, status, start)  # type: ignore[arg-type]

    async def binding_cycle(self, state: CycleState, fwk: Framework, result: ScheduleResult,
                            assumed_qpi: QueuedPodInfo) -> Status | None:
        assumed = assumed_qpi.pod
        host = result.suggested_host
        for step in ("permit", "preBind"):
            status = await (fwk.wait_on_permit(assumed) if step == "permit"
                            else fwk.run_pre_bind_plugins(state, assumed, host))
            if not is_success(status):
                if status.is_rejected():  # type: ignore[union-attr]
                    return self._single_node_fit_error(assumed, host, status)  # type: ignore[arg-type]
                return status
        # Past PreBind the pod can no longer be "unschedulable": free queued events.
        self.queue.done(assumed_qpi.uid)
        async with self._bind_slots:
            status = await fwk.run_bind_plugins(state, assumed, host)
        self.cache.finish_binding(assumed)
        if not is_success(status):
            return status
        meta = _meta(assumed)
        self.stats["scheduled"] += 1
        await self.actions.record_event(assumed, type="Normal", reason="Scheduled", action="Binding",
                                        note=f"Successfully assigned {meta.get('namespace')}/{meta.get('name')} "
                                             f"to {host}")
        fwk.run_post_bind_plugins(state, assumed, host)
        return None

    async def handle_binding_cycle_error(self, state: CycleState, fwk: Framework, qpi: QueuedPodInfo,
                                         result: ScheduleResult, status: Status, start: float) -> None:
        assumed = qpi.pod
        fwk.run_reserve_plugins_unreserve(state, assumed, result.suggested_host)
        try:
            self.cache.forget_pod(assumed)
        except Exception:  # noqa: BLE001 - already confirmed or removed by an informer event
            log.exception("scheduler cache ForgetPod failed")
        else:
            # Forgetting frees resources like a deleted pod would. A rejected pod
            # stays unschedulable: the event is sent after it is requeued, so it is
            # not replayed to it as an in-flight event (upstream defers the same way).
            if not status.is_rejected():
                self.queue.move_all_to_active_or_backoff(EVENT_ASSIGNED_POD_DELETE, assumed, None)
            else:
                uid = qpi.uid
                await self.handle_failure(fwk, qpi, status, CLEAR_NOMINATED_NODE, start)
                self.queue.move_all_to_active_or_backoff(EVENT_ASSIGNED_POD_DELETE, assumed, None,
                                                         lambda p: _meta(p).get("uid") != uid)
                return
        await self.handle_failure(fwk, qpi, status, CLEAR_NOMINATED_NODE, start)

    # -- failures -----------------------------------------------------------------------------

    async def handle_failure(self, fwk: Framework, qpi: QueuedPodInfo, status: Status,
                             nominating: NominatingInfo | None, start: float) -> None:
        reason = "Unschedulable" if status.is_rejected() else "SchedulerError"
        self.stats["unschedulable" if status.is_rejected() else "errors"] += 1
        err = status.error
        if isinstance(err, FitError):
            qpi.unschedulable_plugins = set(err.diagnosis.unschedulable_plugins)
            qpi.pending_plugins = set(err.diagnosis.pending_plugins)
        meta = _meta(qpi.pod)
        cached = self.listers.pod(meta.get("namespace") or "", meta.get("name") or "") if self.listers else qpi.pod
        if cached is None or is_assigned(cached):
            # Gone, or bound meanwhile (e.g. by another scheduler): not requeued.
            self.queue.done(qpi.uid)
        else:
            qpi.update(cached)
            self.queue.add_unschedulable_if_not_present(qpi)
        self.queue.nominator.add(qpi.pod_info, nominating)
        pod = cached or qpi.pod
        msg = status.message()
        await self.actions.record_event(pod, type="Warning", reason="FailedScheduling", action="Scheduling",
                                        note=truncate_message(msg))
        condition = self._pod_scheduled_condition(pod, reason, msg)
        nnn = None
        if nominating is not None and nominating.mode == MODE_OVERRIDE and \
                (pod.get("status") or {}).get("nominatedNodeName", "") != nominating.nominated_node_name:
            nnn = nominating.nominated_node_name
        if condition is None and nnn is None:
            return
        try:
            await self.actions.patch_pod_status(pod, condition=condition, nominated_node_name=nnn)
        except Exception:  # noqa: BLE001 - the next attempt writes it again
            log.exception("error updating pod %s/%s", meta.get("namespace"), meta.get("name"))

    def _pod_scheduled_condition(self, pod: dict, reason: str, message: str) -> dict | None:
        """The PodScheduled=False condition to write, or None when unchanged."""
        existing = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                         if c.get("type") == "PodScheduled"), None)
        if existing is not None and existing.get("status") == "False" and existing.get("reason") == reason \
                and existing.get("message") == message:
            return None
        transition = m.format_time(self.clock.now())
        if existing is not None and existing.get("status") == "False" and existing.get("lastTransitionTime"):
            transition = existing["lastTransitionTime"]
        return {"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                "lastProbeTime": None, "lastTransitionTime": transition}
