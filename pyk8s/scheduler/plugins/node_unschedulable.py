"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take no new pods.

Role: upstream ``plugins/nodeunschedulable``. A pod tolerating the
``node.kubernetes.io/unschedulable:NoSchedule`` taint may still go there.
"""
from __future__ import annotations

from typing import Any, Callable

from pyk8s.scheduler.framework import NODE, ActionType, ClusterEvent, ClusterEventWithHint, QueueingHint, Status, \
    unresolvable
from pyk8s.scheduler.plugins.helpers import TAINT_NODE_UNSCHEDULABLE, tolerations_tolerate_taint

NAME = "NodeUnschedulable"
ERR_REASON_UNKNOWN_CONDITION = "node(s) had unknown conditions"
ERR_REASON_UNSCHEDULABLE = "node(s) were unschedulable"
_TAINT = {"key": TAINT_NODE_UNSCHEDULABLE, "effect": "NoSchedule"}


class NodeUnschedulable:
    name = NAME

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        if not node_info.unschedulable:
            return None
        if tolerations_tolerate_taint((pod.get("spec") or {}).get("tolerations"), _TAINT):
            return None
        return unresolvable(ERR_REASON_UNSCHEDULABLE)

    def compile_filter(self, state: Any, pod: dict) -> Callable[[Any], Status | None] | None:
        if tolerations_tolerate_taint((pod.get("spec") or {}).get("tolerations"), _TAINT):
            return None
        return lambda node_info: unresolvable(ERR_REASON_UNSCHEDULABLE) if node_info.unschedulable else None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.UPDATE_NODE_TAINT),
                                     self._node_schedulable)]

    @staticmethod
    def _node_schedulable(pod: dict, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.QUEUE_SKIP
        return QueueingHint.QUEUE_SKIP if (new.get("spec") or {}).get("unschedulable") else QueueingHint.QUEUE


def new(args: dict, handle: Any) -> NodeUnschedulable:
    return NodeUnschedulable()
