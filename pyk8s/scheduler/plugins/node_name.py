"""NodeName: a pod naming ``spec.nodeName`` fits only that node.

Role: upstream ``plugins/nodename/node_name.go``.
"""
from __future__ import annotations

from typing import Any, Callable

from pyk8s.scheduler.framework import NODE, ActionType, ClusterEvent, ClusterEventWithHint, Status, unresolvable

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"


def fits(pod: dict, node_info: Any) -> bool:
    wanted = (pod.get("spec") or {}).get("nodeName") or ""
    return not wanted or wanted == node_info.name


class NodeName:
    name = NAME

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        return None if fits(pod, node_info) else unresolvable(ERR_REASON)

    def compile_filter(self, state: Any, pod: dict) -> Callable[[Any], Status | None] | None:
        wanted = (pod.get("spec") or {}).get("nodeName") or ""
        if not wanted:
            return None
        return lambda node_info: None if wanted == node_info.name else unresolvable(ERR_REASON)

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD))]


def new(args: dict, handle: Any) -> NodeName:
    return NodeName()
