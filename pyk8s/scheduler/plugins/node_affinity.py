"""NodeAffinity: ``nodeSelector`` and required node affinity filter, preferred scores.

Role: upstream ``plugins/nodeaffinity``. PreFilter Skips pods without any node
constraint and narrows the search to the node names a ``metadata.name`` In field
requirement allows (a PreFilterResult); Filter rejects (Unresolvable) nodes that do
not match; Score sums the weights of matching preferred terms, normalized by the
maximum. ``addedAffinity`` in the plugin args is enforced for every pod.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import (MAX_NODE_SCORE, NODE, ActionType, ClusterEvent, ClusterEventWithHint, Code,
                                       PreFilterResult, QueueingHint, Status, unresolvable)
from pyk8s.scheduler.plugins.helpers import (NodeSelector, PreferredSchedulingTerms, RequiredNodeAffinity,
                                             default_normalize_score, default_normalize_values, node_labels_and_name)

NAME = "NodeAffinity"
ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
ERR_REASON_CONFLICT = "pod affinity terms conflict"
_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME
_MISSING = object()


def _required_terms(pod: dict) -> dict | None:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    return affinity.get("requiredDuringSchedulingIgnoredDuringExecution")


def _preferred(pod: dict) -> PreferredSchedulingTerms | None:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    terms = PreferredSchedulingTerms(affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))
    return terms or None


class NodeAffinity:
    name = NAME

    def __init__(self, args: dict):
        added = args.get("addedAffinity") or {}
        required = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.added_node_selector = NodeSelector(required) if required is not None else None
        prefs = PreferredSchedulingTerms(added.get("preferredDuringSchedulingIgnoredDuringExecution"))
        self.added_pref_terms = prefs or None

    def pre_filter(self, state: Any, pod: dict) -> tuple[PreFilterResult | None, Status | None]:
        required = _required_terms(pod)
        if required is None and self.added_node_selector is None and \
                (pod.get("spec") or {}).get("nodeSelector") is None:
            return None, Status(Code.SKIP)
        state.write(_PRE_FILTER_KEY, RequiredNodeAffinity(pod))
        if required is None or not required.get("nodeSelectorTerms"):
            return None, None
        names: set[str] | None = None
        for term in required["nodeSelectorTerms"]:
            term_names: set[str] | None = None
            for req in term.get("matchFields") or ():
                if req.get("key") == "metadata.name" and req.get("operator") == "In":
                    values = set(req.get("values") or ())
                    term_names = values if term_names is None else term_names & values
            if term_names is None:
                # A term without a name requirement allows every node (terms are ORed).
                return None, None
            names = term_names if names is None else names | term_names
        if names is not None and not names:
            return None, unresolvable(ERR_REASON_CONFLICT)
        return (PreFilterResult(names) if names else None), None

    def pre_filter_extensions(self) -> None:
        return None

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        node = node_info.node
        if self.added_node_selector is not None and \
                not self.added_node_selector.matches(*node_labels_and_name(node)):
            return unresolvable(ERR_REASON_ENFORCED)
        required = state.get(_PRE_FILTER_KEY)
        if required is None:
            required = RequiredNodeAffinity(pod)
        return None if required.matches(node) else unresolvable(ERR_REASON_POD)

    def pre_score(self, state: Any, pod: dict, nodes: list) -> Status | None:
        if not nodes:
            return None
        preferred = _preferred(pod)
        if preferred is None and self.added_pref_terms is None:
            return Status(Code.SKIP)
        state.write(_PRE_SCORE_KEY, preferred)
        return None

    def score(self, state: Any, pod: dict, node_info: Any) -> tuple[int, Status | None]:
        count = 0
        if self.added_pref_terms is not None:
            count += self.added_pref_terms.score(node_info.node)
        preferred = state.get(_PRE_SCORE_KEY, _MISSING)
        if preferred is _MISSING:
            preferred = _preferred(pod)
        if preferred is not None:
            count += preferred.score(node_info.node)
        return count, None

    def score_extensions(self) -> "NodeAffinity":
        return self

    def normalize_score(self, state: Any, pod: dict, scores: list) -> Status | None:
        default_normalize_score(MAX_NODE_SCORE, False, scores)
        return None

    def normalize_values(self, state: Any, pod: dict, nodes: list, values: list[int]) -> list[int]:
        return default_normalize_values(MAX_NODE_SCORE, False, values)

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.UPDATE_NODE_LABEL),
                                     self._node_matches)]

    def _node_matches(self, pod: dict, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.QUEUE_SKIP
        if self.added_node_selector is not None and not self.added_node_selector.matches(*node_labels_and_name(new)):
            return QueueingHint.QUEUE_SKIP
        return QueueingHint.QUEUE if RequiredNodeAffinity(pod).matches(new) else QueueingHint.QUEUE_SKIP


def new(args: dict, handle: Any) -> NodeAffinity:
    return NodeAffinity(args)
