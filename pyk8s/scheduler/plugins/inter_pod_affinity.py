"""InterPodAffinity: required/preferred pod affinity and anti-affinity by topology.

Role: upstream ``plugins/interpodaffinity`` (filtering.go, scoring.go). PreFilter
counts, per (topologyKey, value), (1) existing pods whose required anti-affinity
matches the incoming pod, (2) existing pods matching all the incoming pod's
required affinity terms, (3) existing pods matching its anti-affinity terms; Filter
reads the counts for the node's labels. Score sums weighted matches of preferred
terms both ways (and existing pods' required affinity at hardPodAffinityWeight)
per topology value, then min-max normalizes.

Invariants:
- Filter reasons, as upstream: affinity -> Unresolvable "node(s) didn't match pod
  affinity rules"; the pod's anti-affinity -> Unschedulable "node(s) didn't match
  pod anti-affinity rules"; existing pods' anti-affinity -> Unschedulable
  "node(s) didn't satisfy existing pods anti-affinity rules".
- The first pod of a group with affinity to itself may go to any node that has
  the topology labels when no pod matches yet.
- PreFilter Skips when neither the pod nor any existing pod has required terms;
  AddPod/RemovePod keep the counts right for preemption and nominated pods.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import (MAX_NODE_SCORE, NODE, POD, ActionType, ClusterEvent, ClusterEventWithHint,
                                       Code, Status, unresolvable, unschedulable)
from pyk8s.scheduler.nodeinfo import AffinityTerm, PodInfo, pod_info_of

NAME = "InterPodAffinity"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME

Counts = dict[tuple[str, str], int]


def _add(counts: Counts, pair: tuple[str, str], value: int) -> None:
    n = counts.get(pair, 0) + value
    if n:
        counts[pair] = n
    else:
        counts.pop(pair, None)


class _FilterState:
    __slots__ = ("pod_info", "existing_anti", "affinity", "anti", "ns_labels")

    def __init__(self, pod_info: PodInfo, ns_labels: Any):
        self.pod_info = pod_info
        self.existing_anti: Counts = {}
        self.affinity: Counts = {}
        self.anti: Counts = {}
        self.ns_labels = ns_labels

    def clone(self) -> "_FilterState":
        out = _FilterState(self.pod_info, self.ns_labels)
        out.existing_anti, out.affinity, out.anti = dict(self.existing_anti), dict(self.affinity), dict(self.anti)
        return out

    def update_with_pod(self, other: PodInfo, node: dict, sign: int) -> None:
        labels = (node.get("metadata") or {}).get("labels") or {}
        pod = self.pod_info.pod
        for term in other.required_anti_affinity_terms:
            if term.topology_key in labels and term.matches(pod, self.ns_labels):
                _add(self.existing_anti, (term.topology_key, labels[term.topology_key]), sign)
        update_affinity(self.affinity, self.pod_info.required_affinity_terms, other.pod, labels, self.ns_labels, sign)
        update_anti(self.anti, self.pod_info.required_anti_affinity_terms, other.pod, labels, self.ns_labels, sign)


def matches_all(terms: list[AffinityTerm], pod: dict, ns_labels: Any) -> bool:
    return bool(terms) and all(t.matches(pod, ns_labels) for t in terms)


def update_affinity(counts: Counts, terms: list[AffinityTerm], pod: dict, labels: dict, ns_labels: Any,
                    sign: int) -> None:
    if matches_all(terms, pod, ns_labels):
        for t in terms:
            if t.topology_key in labels:
                _add(counts, (t.topology_key, labels[t.topology_key]), sign)


def update_anti(counts: Counts, terms: list[AffinityTerm], pod: dict, labels: dict, ns_labels: Any,
                sign: int) -> None:
    for t in terms:
        if t.topology_key in labels and t.matches(pod, ns_labels):
            _add(counts, (t.topology_key, labels[t.topology_key]), sign)


class _NoTerms:
    """A stand-in incoming PodInfo without preferred terms (already counted)."""

    preferred_affinity_terms: list = []
    preferred_anti_affinity_terms: list = []


_NO_TERMS: Any = _NoTerms()


class InterPodAffinity:
    name = NAME

    def __init__(self, args: dict, handle: Any):
        self.handle = handle
        self.hard_pod_affinity_weight = int(args.get("hardPodAffinityWeight", 1))
        self.ignore_preferred_of_existing = bool(args.get("ignorePreferredTermsOfExistingPods", False))

    def _ns_labels(self) -> Any:
        listers = self.handle.listers
        return listers.namespace_labels if listers is not None else None

    # -- filtering ----------------------------------------------------------------

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        pi = PodInfo(pod)
        if pi.parse_error:
            return None, unresolvable(f"parsing pod: {pi.parse_error}")
        s = _FilterState(pi, self._ns_labels())
        snapshot = self.handle.snapshot
        for ni in snapshot.have_pods_with_required_anti_affinity_list():
            labels = ni.labels
            for existing in ni.pods_with_required_anti_affinity:
                for term in existing.required_anti_affinity_terms:
                    if term.topology_key in labels and term.matches(pod, s.ns_labels):
                        _add(s.existing_anti, (term.topology_key, labels[term.topology_key]), 1)
        if pi.required_affinity_terms or pi.required_anti_affinity_terms:
            for ni in snapshot.list():
                labels = ni.labels
                for existing in ni.pods:
                    update_affinity(s.affinity, pi.required_affinity_terms, existing.pod, labels, s.ns_labels, 1)
                    update_anti(s.anti, pi.required_anti_affinity_terms, existing.pod, labels, s.ns_labels, 1)
        if not s.existing_anti and not pi.required_affinity_terms and not pi.required_anti_affinity_terms:
            return None, Status(Code.SKIP)
        state.write(_PRE_FILTER_KEY, s)
        return None, None

    def pre_filter_extensions(self) -> "InterPodAffinity":
        return self

    def add_pod(self, state: Any, pod: dict, pod_info: Any, node_info: Any) -> Status | None:
        s = state.get(_PRE_FILTER_KEY)
        if s is not None:
            s.update_with_pod(pod_info_of(pod_info), node_info.node, 1)
        return None

    def remove_pod(self, state: Any, pod: dict, pod_info: Any, node_info: Any) -> Status | None:
        s = state.get(_PRE_FILTER_KEY)
        if s is not None:
            s.update_with_pod(pod_info_of(pod_info), node_info.node, -1)
        return None

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        s: _FilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None:
            return Status(Code.ERROR, f"reading \"{_PRE_FILTER_KEY}\" from cycleState: not found")
        labels = node_info.labels
        if not _satisfies_affinity(s, labels):
            return unresolvable(ERR_REASON_AFFINITY)
        for term in s.pod_info.required_anti_affinity_terms:
            value = labels.get(term.topology_key)
            if value is not None and s.anti.get((term.topology_key, value), 0) > 0:
                return unschedulable(ERR_REASON_ANTI_AFFINITY)
        if s.existing_anti:
            for key, value in labels.items():
                if s.existing_anti.get((key, value), 0) > 0:
                    return unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY)
        return None

    # -- scoring ------------------------------------------------------------------

    def pre_score(self, state: Any, pod: dict, nodes: list) -> Status | None:
        if not nodes:
            return Status(Code.SKIP)
        pi = PodInfo(pod)
        has_constraints = bool(pi.preferred_affinity_terms or pi.preferred_anti_affinity_terms)
        if self.ignore_preferred_of_existing and not has_constraints:
            return Status(Code.SKIP)
        snapshot = self.handle.snapshot
        node_infos = snapshot.list() if has_constraints else snapshot.have_pods_with_affinity_list()
        ns_labels = self._ns_labels()
        scores: dict[str, dict[str, int]] = {}
        # The incoming pod's preferred terms as (term, signed weight), once.
        incoming = [(w.term, w.weight) for w in pi.preferred_affinity_terms] + \
            [(w.term, -w.weight) for w in pi.preferred_anti_affinity_terms]
        process = self._process_existing
        for ni in node_infos:
            labels = ni.labels
            if not labels:
                continue
            for existing in (ni.pods if has_constraints else ni.pods_with_affinity):
                if incoming:
                    target = existing.pod
                    for term, weight in incoming:
                        key = term.topology_key
                        if key in labels and term.matches(target, ns_labels):
                            by_value = scores.setdefault(key, {})
                            value = labels[key]
                            by_value[value] = by_value.get(value, 0) + weight
                if existing.preferred_affinity_terms or existing.preferred_anti_affinity_terms or \
                        existing.required_affinity_terms:
                    process(scores, _NO_TERMS, existing, labels, pod, ns_labels)
        if not scores:
            return Status(Code.SKIP)
        state.write(_PRE_SCORE_KEY, scores)
        return None

    def _process_existing(self, scores: dict, pi: PodInfo, existing: PodInfo, labels: dict, pod: dict,
                          ns_labels: Any) -> None:
        # Hot loop (every pod on every node when the pod has preferred terms): no
        # closures, and existing pods without terms cost one attribute check.
        for terms, target, sign in ((pi.preferred_affinity_terms, existing.pod, 1),
                                    (pi.preferred_anti_affinity_terms, existing.pod, -1),
                                    (existing.preferred_affinity_terms, pod, 1),
                                    (existing.preferred_anti_affinity_terms, pod, -1)):
            for w in terms:
                term = w.term
                if term.topology_key in labels and term.matches(target, ns_labels):
                    by_value = scores.setdefault(term.topology_key, {})
                    value = labels[term.topology_key]
                    by_value[value] = by_value.get(value, 0) + w.weight * sign
        if self.hard_pod_affinity_weight > 0:
            for term in existing.required_affinity_terms:
                if term.topology_key in labels and term.matches(pod, ns_labels):
                    by_value = scores.setdefault(term.topology_key, {})
                    value = labels[term.topology_key]
                    by_value[value] = by_value.get(value, 0) + self.hard_pod_affinity_weight

    def score(self, state: Any, pod: dict, node_info: Any) -> tuple[int, Status | None]:
        scores = state.get(_PRE_SCORE_KEY) or {}
        labels = node_info.labels
        total = 0
        for key, by_value in scores.items():
            if key in labels:
                total += by_value.get(labels[key], 0)
        return total, None

    def score_nodes(self, state: Any, pod: dict, nodes: list) -> list[int]:
        """``score`` for every node."""
        scores = state.get(_PRE_SCORE_KEY) or {}
        if not scores:
            return [0] * len(nodes)
        items = list(scores.items())
        out = []
        for ni in nodes:
            labels = ni.labels
            total = 0
            for key, by_value in items:
                if key in labels:
                    total += by_value.get(labels[key], 0)
            out.append(total)
        return out

    def score_extensions(self) -> "InterPodAffinity":
        return self

    def normalize_score(self, state: Any, pod: dict, scores: list) -> Status | None:
        if not state.get(_PRE_SCORE_KEY):
            return None
        values = [s.score for s in scores]
        lo, hi = min(values, default=0), max(values, default=0)
        diff = hi - lo
        for s in scores:
            s.score = int(MAX_NODE_SCORE * ((s.score - lo) / diff)) if diff > 0 else 0
        return None

    def normalize_values(self, state: Any, pod: dict, nodes: list, values: list[int]) -> list[int]:
        """``normalize_score`` on plain values."""
        if not state.get(_PRE_SCORE_KEY):
            return values
        lo, hi = min(values, default=0), max(values, default=0)
        diff = hi - lo
        if diff <= 0:
            return [0] * len(values)
        return [int(MAX_NODE_SCORE * ((v - lo) / diff)) for v in values]

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(POD, ActionType.ADD | ActionType.UPDATE_POD_LABEL
                                                  | ActionType.DELETE)),
                ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.UPDATE_NODE_LABEL))]


def _satisfies_affinity(s: _FilterState, labels: dict) -> bool:
    pods_exist = True
    for term in s.pod_info.required_affinity_terms:
        value = labels.get(term.topology_key)
        if value is None:
            # All topology labels must exist on the node.
            return False
        if s.affinity.get((term.topology_key, value), 0) <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # The first pod of a series with affinity to itself must not stay pending forever.
    return not s.affinity and matches_all(s.pod_info.required_affinity_terms, s.pod_info.pod, s.ns_labels)


def new(args: dict, handle: Any) -> InterPodAffinity:
    return InterPodAffinity(args, handle)
