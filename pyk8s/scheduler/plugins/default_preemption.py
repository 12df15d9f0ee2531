"""DefaultPreemption: evict lower-priority pods so a pending pod fits.

Role: upstream ``plugins/defaultpreemption`` with ``framework/preemption``'s
Evaluator. PostFilter, when no node fits: (1) check the pod may preempt
(preemptionPolicy, no terminating victim on its nominated node); (2) dry-run on
the nodes whose rejection was Unschedulable (not Unresolvable), starting at a
random offset and stopping after enough candidates: remove every lower-priority
pod, check the pod fits, then reprieve victims (PDB-violating ones first, highest
priority first) while it still fits; (3) pick one candidate by upstream's
tie-breakers: fewest PDB violations, lowest highest-victim priority, smallest
priority sum, fewest victims, latest start time of the highest-priority victims,
then the first; (4) mark victims DisruptionTarget, delete them, clear lower
nominations on that node, and nominate the node for the pod.

Invariants:
- Dry runs work on NodeInfo and CycleState clones; the snapshot is never changed.
- With no candidate, the status message is a FitError over the candidates'
  statuses, nodes not tried counting as "Preemption is not helpful for
  scheduling", prefixed "preemption: " as upstream.
"""
from __future__ import annotations

import datetime
import functools
import random
from dataclasses import dataclass
from typing import Any

from pyk8s.api.selectors import SelectorError, label_selector_from_dict
from pyk8s.scheduler.framework import (Code, Diagnosis, FitError, NodeToStatus, PostFilterResult, Status,
                                       is_success, nominate, unresolvable)
from pyk8s.scheduler.nodeinfo import NodeInfo, PodInfo, pod_priority

NAME = "DefaultPreemption"
MSG_NOT_HELPFUL = "Preemption is not helpful for scheduling"
MSG_NO_VICTIMS = "No preemption victims found for incoming pod"
REASON_PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"
_MAX_INT32 = (1 << 31) - 1


@dataclass
class Candidate:
    name: str
    victims: list[dict]
    num_pdb_violations: int


def _start_time(pod: dict, now: datetime.datetime) -> datetime.datetime:
    raw = (pod.get("status") or {}).get("startTime")
    if not raw:
        # Assumed and bound pods that have not started yet count as starting now.
        return now
    return datetime.datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def more_important(a: dict, b: dict, now: datetime.datetime) -> bool:
    """Upstream ``util.MoreImportantPod``: higher priority, then earlier start."""
    pa, pb = pod_priority(a), pod_priority(b)
    if pa != pb:
        return pa > pb
    return _start_time(a, now) < _start_time(b, now)


def filter_pods_with_pdb_violation(pod_infos: list[PodInfo], pdbs: list[dict]) -> tuple[list, list]:
    allowed = [int((pdb.get("status") or {}).get("disruptionsAllowed") or 0) for pdb in pdbs]
    violating, non_violating = [], []
    for pi in pod_infos:
        meta = pi.pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        violated = False
        if labels:
            for i, pdb in enumerate(pdbs):
                if (pdb.get("metadata") or {}).get("namespace") != meta.get("namespace"):
                    continue
                try:
                    selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
                except SelectorError:
                    continue
                # A PDB with a nil or empty selector matches nothing.
                if selector.empty() or selector.nothing or not selector.matches(labels):
                    continue
                if meta.get("name") in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else non_violating).append(pi)
    return violating, non_violating


def _terminating_by_preemption(pod: dict) -> bool:
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "DisruptionTarget":
            return cond.get("status") == "True" and cond.get("reason") == REASON_PREEMPTION_BY_SCHEDULER
    return False


class DefaultPreemption:
    name = NAME

    def __init__(self, args: dict, handle: Any):
        self.handle = handle
        self.min_candidate_nodes_percentage = int(args.get("minCandidateNodesPercentage", 10))
        self.min_candidate_nodes_absolute = int(args.get("minCandidateNodesAbsolute", 100))
        self.rng: random.Random = getattr(handle, "rng", None) or random.Random()

    async def post_filter(self, state: Any, pod: dict, statuses: NodeToStatus
                          ) -> tuple[PostFilterResult | None, Status]:
        result, status = await self.preempt(state, pod, statuses)
        msg = status.message()
        if msg:
            return result, Status(status.code, "preemption: " + msg, error=status.error)
        return result, status

    # -- the evaluator --------------------------------------------------------------

    async def preempt(self, state: Any, pod: dict, statuses: NodeToStatus) -> tuple[PostFilterResult | None, Status]:
        meta = pod.get("metadata") or {}
        listers = self.handle.listers
        if listers is not None:
            latest = listers.pod(meta.get("namespace") or "", meta.get("name") or "")
            if latest is None:
                return None, Status(Code.ERROR, f"pods \"{meta.get('name')}\" not found")
            pod = latest
        nominated = (pod.get("status") or {}).get("nominatedNodeName") or ""
        ok, msg = self.pod_eligible_to_preempt_others(pod, statuses.get(nominated))
        if not ok:
            return None, Status(Code.UNSCHEDULABLE, msg)
        all_nodes = self.handle.snapshot.list()
        if not all_nodes:
            return None, Status(Code.ERROR, "no nodes available")
        candidates, node_statuses = await self.find_candidates(state, all_nodes, pod, statuses)
        if not candidates:
            diag = Diagnosis(node_to_status=node_statuses)
            node_statuses.absent_nodes_status = unresolvable(MSG_NOT_HELPFUL)
            return nominate(""), Status(Code.UNSCHEDULABLE, str(FitError(pod, len(all_nodes), diag)))
        best = self.select_candidate(candidates)
        status = await self.prepare_candidate(best, pod)
        if not is_success(status):
            return None, status  # type: ignore[return-value]
        return nominate(best.name), Status()

    def pod_eligible_to_preempt_others(self, pod: dict, nominated_status: Status) -> tuple[bool, str]:
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return False, "not eligible due to preemptionPolicy=Never."
        nominated = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if nominated:
            # A nominated node that became Unresolvable deserves a new preemption.
            if nominated_status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return True, ""
            ni = self.handle.snapshot.get(nominated)
            if ni is not None:
                priority = pod_priority(pod)
                for pi in ni.pods:
                    if pod_priority(pi.pod) < priority and _terminating_by_preemption(pi.pod):
                        return False, "not eligible due to a terminating pod on the nominated node."
        return True, ""

    def calculate_num_candidates(self, num_nodes: int) -> int:
        n = num_nodes * self.min_candidate_nodes_percentage // 100
        n = max(n, self.min_candidate_nodes_absolute)
        return min(n, num_nodes)

    async def find_candidates(self, state: Any, all_nodes: list[NodeInfo], pod: dict,
                              statuses: NodeToStatus) -> tuple[list[Candidate], NodeToStatus]:
        potential = statuses.nodes_for_status_code(all_nodes, Code.UNSCHEDULABLE)
        if not potential:
            if (pod.get("status") or {}).get("nominatedNodeName"):
                await self._clear_nominated(pod)
            return [], NodeToStatus()
        listers = self.handle.listers
        pdbs = listers.pdbs() if listers is not None else []
        offset = self.rng.randrange(len(potential))
        return self.dry_run_preemption(state, pod, potential, pdbs, offset,
                                       self.calculate_num_candidates(len(potential)))

    def dry_run_preemption(self, state: Any, pod: dict, potential: list[NodeInfo], pdbs: list[dict],
                           offset: int, num_candidates: int) -> tuple[list[Candidate], NodeToStatus]:
        non_violating: list[Candidate] = []
        violating: list[Candidate] = []
        node_statuses = NodeToStatus()
        for i in range(len(potential)):
            ni = potential[(offset + i) % len(potential)].snapshot()
            victims, num_violations, status = self.select_victims_on_node(state.clone(), pod, ni, pdbs)
            if is_success(status) and victims:
                c = Candidate(ni.name, victims, num_violations)
                (violating if num_violations else non_violating).append(c)
                if non_violating and len(non_violating) + len(violating) >= num_candidates:
                    break
                continue
            if is_success(status):
                status = Status(Code.ERROR, f"expected at least one victim pod on node \"{ni.name}\"")
            node_statuses.set(ni.name, status)  # type: ignore[arg-type]
        return non_violating + violating, node_statuses

    def select_victims_on_node(self, state: Any, pod: dict, ni: NodeInfo,
                               pdbs: list[dict]) -> tuple[list[dict], int, Status | None]:
        h = self.handle
        priority = pod_priority(pod)
        potential = [pi for pi in ni.pods if pod_priority(pi.pod) < priority]
        for pi in potential:
            ni.remove_pod(pi.pod)
            st = h.run_pre_filter_extension_remove_pod(state, pod, pi, ni)
            if not is_success(st):
                return [], 0, st
        if not potential:
            return [], 0, unresolvable(MSG_NO_VICTIMS)
        st = h.run_filter_plugins_with_nominated_pods(state, pod, ni)
        if not is_success(st):
            return [], 0, st
        now = h.clock.now()
        order = functools.cmp_to_key(lambda a, b: -1 if more_important(a.pod, b.pod, now)
                                     else (1 if more_important(b.pod, a.pod, now) else 0))
        potential.sort(key=order)
        violating, non_violating = filter_pods_with_pdb_violation(potential, pdbs)
        victims: list[dict] = []

        def reprieve(pi: PodInfo) -> bool:
            ni.add_pod_info(pi)
            h.run_pre_filter_extension_add_pod(state, pod, pi, ni)
            fits = is_success(h.run_filter_plugins_with_nominated_pods(state, pod, ni))
            if not fits:
                ni.remove_pod(pi.pod)
                h.run_pre_filter_extension_remove_pod(state, pod, pi, ni)
                victims.append(pi.pod)
            return fits

        num_violating = sum(1 for pi in violating if not reprieve(pi))
        for pi in non_violating:
            reprieve(pi)
        if violating and non_violating:
            victims.sort(key=functools.cmp_to_key(lambda a, b: -1 if more_important(a, b, now)
                                                  else (1 if more_important(b, a, now) else 0)))
        return victims, num_violating, Status()

    def select_candidate(self, candidates: list[Candidate]) -> Candidate:
        if len(candidates) == 1:
            return candidates[0]
        now = self.handle.clock.now()
        by_name = {c.name: c for c in candidates}

        def earliest_start_of_highest(c: Candidate) -> float:
            top = pod_priority(c.victims[0])
            starts = [_start_time(v, now) for v in c.victims if pod_priority(v) == top]
            return min(starts).timestamp()

        score_funcs = [
            lambda c: -c.num_pdb_violations,
            lambda c: -pod_priority(c.victims[0]),
            lambda c: -sum(pod_priority(v) + _MAX_INT32 + 1 for v in c.victims),
            lambda c: -len(c.victims),
            earliest_start_of_highest,
        ]
        names = list(by_name)
        for f in score_funcs:
            scores = {n: f(by_name[n]) for n in names}
            best = max(scores.values())
            names = [n for n in names if scores[n] == best]
            if len(names) == 1:
                break
        return by_name[names[0]]

    async def prepare_candidate(self, c: Candidate, pod: dict) -> Status | None:
        h = self.handle
        scheduler_name = (pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
        uid = (pod.get("metadata") or {}).get("uid")
        try:
            for victim in c.victims:
                if (victim.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                waiting = h.get_waiting_pod((victim.get("metadata") or {}).get("uid") or "")
                if waiting is not None:
                    waiting.reject(NAME, "preempted")
                else:
                    condition = {"type": "DisruptionTarget", "status": "True",
                                 "reason": REASON_PREEMPTION_BY_SCHEDULER,
                                 "message": f"{scheduler_name}: preempting to accommodate a higher priority pod"}
                    await h.actions.patch_pod_status(victim, condition=condition)
                    await h.actions.delete_pod(victim)
                await h.actions.record_event(victim, type="Normal", reason="Preempted", action="Preempting",
                                             note=f"Preempted by pod {uid} on node {c.name}", related=pod)
        except Exception as e:  # noqa: BLE001 - a failed API call fails this attempt
            return Status.as_status(e)
        priority = pod_priority(pod)
        for pi in h.nominated_pods_for_node(c.name):
            if pod_priority(pi.pod) < priority:
                await self._clear_nominated(pi.pod)
        return None

    async def _clear_nominated(self, pod: dict) -> None:
        try:
            await self.handle.actions.patch_pod_status(pod, nominated_node_name="")
        except Exception:  # noqa: BLE001 - not critical, as upstream
            return


def new(args: dict, handle: Any) -> DefaultPreemption:
    return DefaultPreemption(args, handle)
