"""TaintToleration: NoSchedule/NoExecute taints filter; PreferNoSchedule ones score.

Role: upstream ``plugins/tainttoleration``. Filter rejects (Unresolvable) on the
first untolerated NoSchedule/NoExecute taint, naming it ``{key: value}``; Score
counts untolerated PreferNoSchedule taints and normalizes in reverse (fewer is
better).
"""
from __future__ import annotations

from typing import Any, Callable

from pyk8s.scheduler.framework import (MAX_NODE_SCORE, NODE, POD, ActionType, ClusterEvent, ClusterEventWithHint,
                                       QueueingHint, Status, unresolvable)
from pyk8s.scheduler.plugins.helpers import (default_normalize_score, default_normalize_values,
                                             find_matching_untolerated_taint,
                                             tolerations_tolerate_taint)

NAME = "TaintToleration"
_PRE_SCORE_KEY = "PreScore" + NAME


def _tolerations(pod: dict) -> list[dict]:
    return (pod.get("spec") or {}).get("tolerations") or []


class TaintToleration:
    name = NAME

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        if not node_info.taints:
            return None
        taint = find_matching_untolerated_taint(node_info.taints, _tolerations(pod))
        if taint is None:
            return None
        return unresolvable(f"node(s) had untolerated taint {{{taint.get('key') or ''}: {taint.get('value') or ''}}}")

    def compile_filter(self, state: Any, pod: dict) -> Callable[[Any], Status | None]:
        tolerations = list(_tolerations(pod))

        def filter_node(node_info: Any) -> Status | None:
            if not node_info.taints:
                return None
            taint = find_matching_untolerated_taint(node_info.taints, tolerations)
            if taint is None:
                return None
            return unresolvable(f"node(s) had untolerated taint {{{taint.get('key') or ''}: "
                                f"{taint.get('value') or ''}}}")
        return filter_node

    def pre_score(self, state: Any, pod: dict, nodes: list) -> Status | None:
        prefer = [t for t in _tolerations(pod) if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
        state.write(_PRE_SCORE_KEY, prefer)
        return None

    def score(self, state: Any, pod: dict, node_info: Any) -> tuple[int, Status | None]:
        if not node_info.taints:
            return 0, None
        tolerations = state.get(_PRE_SCORE_KEY)
        if tolerations is None:
            tolerations = _tolerations(pod)
        count = sum(1 for taint in node_info.taints if taint.get("effect") == "PreferNoSchedule"
                    and not tolerations_tolerate_taint(tolerations, taint))
        return count, None

    def score_nodes(self, state: Any, pod: dict, nodes: list) -> list[int]:
        """``score`` for every node; nodes without taints (the usual case) score 0."""
        score = self.score
        return [score(state, pod, ni)[0] if ni.taints else 0 for ni in nodes]

    def score_extensions(self) -> "TaintToleration":
        return self

    def normalize_score(self, state: Any, pod: dict, scores: list) -> Status | None:
        default_normalize_score(MAX_NODE_SCORE, True, scores)
        return None

    def normalize_values(self, state: Any, pod: dict, nodes: list, values: list[int]) -> list[int]:
        return default_normalize_values(MAX_NODE_SCORE, True, values)

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.UPDATE_NODE_TAINT),
                                     self._node_tolerated),
                ClusterEventWithHint(ClusterEvent(POD, ActionType.UPDATE_POD_TOLERATION))]

    @staticmethod
    def _node_tolerated(pod: dict, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.QUEUE_SKIP
        taints = (new.get("spec") or {}).get("taints")
        untolerated = find_matching_untolerated_taint(taints, _tolerations(pod))
        return QueueingHint.QUEUE if untolerated is None else QueueingHint.QUEUE_SKIP


def new(args: dict, handle: Any) -> TaintToleration:
    return TaintToleration()
