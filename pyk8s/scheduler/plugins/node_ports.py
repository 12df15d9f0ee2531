"""NodePorts: a pod's hostPorts must be free on the node.

Role: upstream ``plugins/nodeports``. PreFilter collects the wanted host ports
(Skip when there are none); Filter checks them against the node's used ports with
upstream's 0.0.0.0 wildcard rules.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import (NODE, POD, ActionType, ClusterEvent, ClusterEventWithHint, Code, Status,
                                       unschedulable)
from pyk8s.scheduler.nodeinfo import host_ports

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
_KEY = "PreFilter" + NAME


def fits_ports(wanted: list[dict], node_info: Any) -> bool:
    used = node_info.used_ports
    return not any(used.check_conflict(p.get("hostIP"), p.get("protocol"), int(p.get("hostPort") or 0))
                   for p in wanted)


class NodePorts:
    name = NAME

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        wanted = host_ports(pod)
        if not wanted:
            return None, Status(Code.SKIP)
        state.write(_KEY, wanted)
        return None, None

    def pre_filter_extensions(self) -> None:
        return None

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        wanted = state.get(_KEY)
        if wanted is None:
            wanted = host_ports(pod)
        return None if fits_ports(wanted, node_info) else unschedulable(ERR_REASON)

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(POD, ActionType.DELETE)),
                ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD))]


def new(args: dict, handle: Any) -> NodePorts:
    return NodePorts()
