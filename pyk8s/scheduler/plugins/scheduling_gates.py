"""SchedulingGates: keep pods with ``spec.schedulingGates`` out of activeQ.

Role: upstream ``plugins/schedulinggates``. A gated pod is rejected at PreEnqueue
(UnschedulableAndUnresolvable) and parked until an update removes its last gate.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import (POD, ActionType, ClusterEvent, ClusterEventWithHint, Code, QueueingHint,
                                       Status)
from pyk8s.scheduler.runtime import go_list

NAME = "SchedulingGates"


def _gates(pod: dict) -> list[str]:
    return [g.get("name") or "" for g in (pod.get("spec") or {}).get("schedulingGates") or ()]


class SchedulingGates:
    name = NAME

    def pre_enqueue(self, pod: dict) -> Status | None:
        gates = _gates(pod)
        if not gates:
            return None
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, f"waiting for scheduling gates: {go_list(gates)}")

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(POD, ActionType.UPDATE_POD_SCHEDULING_GATES_ELIMINATED),
                                     self._gates_eliminated)]

    @staticmethod
    def _gates_eliminated(pod: dict, old: Any, new: Any) -> QueueingHint:
        if new is None or (new.get("metadata") or {}).get("uid") != (pod.get("metadata") or {}).get("uid"):
            return QueueingHint.QUEUE_SKIP
        return QueueingHint.QUEUE if not _gates(new) else QueueingHint.QUEUE_SKIP


def new(args: dict, handle: Any) -> SchedulingGates:
    return SchedulingGates()
