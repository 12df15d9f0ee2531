"""PodTopologySpread: keep matching pods spread across topology domains.

Role: upstream ``plugins/podtopologyspread`` (common.go, filtering.go, scoring.go).
DoNotSchedule constraints filter: on a node in domain D, ``count(D) + self-match -
global minimum <= maxSkew``, where the minimum is 0 while fewer than ``minDomains``
domains exist. ScheduleAnyway constraints score: fewer matching pods in the node's
domains is better (weighted by log(#domains + 2)). A pod with no constraints gets
the cluster default ones (``defaultingType: System``: hostname maxSkew 3, zone
maxSkew 5, ScheduleAnyway) over the selector of its Services and controller.

Invariants:
- Only nodes with every constraint's topology key count; nodeAffinityPolicy Honor
  (default) counts only nodes matching the pod's node affinity/selector,
  nodeTaintsPolicy Honor only nodes whose taints it tolerates (default Ignore).
- ``matchLabelKeys`` values from the pod's labels are ANDed into the selector.
- Terminating pods and pods of other namespaces never count.
- Filter reasons, as upstream: a node missing a topology key -> Unresolvable
  "... (missing required label)"; a skew violation -> Unschedulable.
"""
from __future__ import annotations

import math
from functools import partial
from dataclasses import dataclass
from typing import Any

from pyk8s.api.selectors import (EQUALS, LabelSelector, Requirement, SelectorError, label_selector_from_dict,
                                 selector_from_set)
from pyk8s.scheduler.configuration import ConfigurationError
from pyk8s.scheduler.framework import (MAX_NODE_SCORE, NODE, POD, ActionType, ClusterEvent, ClusterEventWithHint,
                                       Code, Status, unresolvable, unschedulable)
from pyk8s.scheduler.plugins.helpers import (LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE, RequiredNodeAffinity,
                                             find_matching_untolerated_taint)

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME
SYSTEM_DEFAULT_CONSTRAINTS = [
    {"topologyKey": LABEL_HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway", "maxSkew": 3},
    {"topologyKey": LABEL_TOPOLOGY_ZONE, "whenUnsatisfiable": "ScheduleAnyway", "maxSkew": 5},
]


@dataclass
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int = 1
    node_affinity_policy: str = "Honor"
    node_taints_policy: str = "Ignore"

    def match_node_inclusion(self, pod: dict, node: dict, required: RequiredNodeAffinity) -> bool:
        if self.node_affinity_policy == "Honor" and not required.is_trivial() and not required.matches(node):
            return False
        if self.node_taints_policy == "Honor":
            tolerations = (pod.get("spec") or {}).get("tolerations")
            if find_matching_untolerated_taint((node.get("spec") or {}).get("taints"), tolerations) is not None:
                return False
        return True


def filter_constraints(raw: list[dict], pod_labels: dict, action: str) -> list[Constraint]:
    out = []
    for c in raw:
        if c.get("whenUnsatisfiable", "DoNotSchedule") != action:
            continue
        selector = label_selector_from_dict(c.get("labelSelector"))
        keys = [k for k in c.get("matchLabelKeys") or () if k in pod_labels]
        if keys:
            extra = tuple(Requirement(k, EQUALS, (pod_labels[k],)) for k in keys)
            selector = selector.add(*extra)
        out.append(Constraint(int(c.get("maxSkew") or 1), c.get("topologyKey") or "", selector,
                              int(c.get("minDomains") or 1), c.get("nodeAffinityPolicy") or "Honor",
                              c.get("nodeTaintsPolicy") or "Ignore"))
    return out


def node_has_keys(labels: dict, constraints: list[Constraint]) -> bool:
    return all(c.topology_key in labels for c in constraints)


def count_matching(pod_infos: list, selector: LabelSelector, namespace: str) -> int:
    if selector.empty():
        return 0
    count = 0
    for pi in pod_infos:
        meta = pi.pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or meta.get("namespace") != namespace:
            continue
        if selector.matches(meta.get("labels") or {}):
            count += 1
    return count


class _FilterState:
    """Per-constraint domain counts; ``mins`` and ``self_match`` cached for Filter."""

    __slots__ = ("constraints", "counts", "domains", "mins", "self_match")

    def __init__(self, constraints: list[Constraint], pod_labels: dict):
        self.constraints = constraints
        self.counts: list[dict[str, int]] = [{} for _ in constraints]
        self.domains: list[int] = [0] * len(constraints)
        self.mins: list[int] = [0] * len(constraints)
        self.self_match = [1 if c.selector.matches(pod_labels) else 0 for c in constraints]

    def clone(self) -> "_FilterState":
        out = _FilterState.__new__(_FilterState)
        out.constraints, out.self_match = self.constraints, self.self_match
        out.counts = [dict(c) for c in self.counts]
        out.domains, out.mins = list(self.domains), list(self.mins)
        return out

    def refresh(self, i: int) -> None:
        """Recompute constraint ``i``'s global minimum after its counts changed."""
        if self.domains[i] < self.constraints[i].min_domains:
            # Fewer eligible domains than minDomains: the global minimum is 0.
            self.mins[i] = 0
        else:
            self.mins[i] = min(self.counts[i].values(), default=0)


class PodTopologySpread:
    name = NAME

    def __init__(self, args: dict, handle: Any):
        self.handle = handle
        defaulting = args.get("defaultingType") or "System"
        if defaulting == "System":
            if args.get("defaultConstraints"):
                raise ConfigurationError("defaultConstraints: must be empty when defaultingType is System")
            self.default_constraints = SYSTEM_DEFAULT_CONSTRAINTS
            self.system_defaulted = True
        elif defaulting == "List":
            self.default_constraints = list(args.get("defaultConstraints") or ())
            self.system_defaulted = False
        else:
            raise ConfigurationError(f"defaultingType: Unsupported value: {defaulting!r}")

    # -- constraints ----------------------------------------------------------------

    def _constraints(self, pod: dict, action: str) -> list[Constraint]:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        explicit = (pod.get("spec") or {}).get("topologySpreadConstraints")
        if explicit:
            return filter_constraints(explicit, labels, action)
        constraints = filter_constraints(self.default_constraints, labels, action)
        if not constraints:
            return []
        selector = self._default_selector(pod)
        if selector.empty():
            return []
        for c in constraints:
            c.selector = selector
        return constraints

    def _default_selector(self, pod: dict) -> LabelSelector:
        """Upstream ``helper.DefaultSelector``: Services, then the controller."""
        listers = self.handle.listers
        meta = pod.get("metadata") or {}
        ns, labels = meta.get("namespace") or "", meta.get("labels") or {}
        merged: dict[str, str] = {}
        if listers is None:
            return LabelSelector()
        for svc in listers.services(ns):
            sel = (svc.get("spec") or {}).get("selector")
            if sel and all(labels.get(k) == v for k, v in sel.items()):
                merged.update(sel)
        selector = selector_from_set(merged)
        owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
        if owner is None:
            return selector
        kind, name = owner.get("kind"), owner.get("name") or ""
        if kind == "ReplicationController" and owner.get("apiVersion") == "v1":
            rc = listers.replication_controller(ns, name)
            if rc is not None:
                merged.update((rc.get("spec") or {}).get("selector") or {})
                selector = selector_from_set(merged)
        elif kind in ("ReplicaSet", "StatefulSet") and owner.get("apiVersion") == "apps/v1":
            obj = (listers.replica_set if kind == "ReplicaSet" else listers.stateful_set)(ns, name)
            if obj is not None:
                try:
                    other = label_selector_from_dict((obj.get("spec") or {}).get("selector"))
                except SelectorError:
                    return selector
                if not other.nothing:
                    selector = selector.add(*other.requirements)
        return selector

    # -- filtering -----------------------------------------------------------------------

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        constraints = self._constraints(pod, "DoNotSchedule")
        if not constraints:
            return None, Status(Code.SKIP)
        s = _FilterState(constraints, (pod.get("metadata") or {}).get("labels") or {})
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        required = RequiredNodeAffinity(pod)
        # Per constraint, hoisted out of the loop over every node: its key, its
        # counts, its selector (None when empty: counts nothing) and whether node
        # inclusion needs checking at all (Honor policies with something to honor).
        plan = [(c, c.topology_key, s.counts[i], None if c.selector.empty() else c.selector,
                 not ((c.node_affinity_policy != "Honor" or required.is_trivial())
                      and c.node_taints_policy != "Honor"))
                for i, c in enumerate(constraints)]
        keys = [c.topology_key for c in constraints]
        for ni in self.handle.snapshot.list():
            labels = ni.labels
            for key in keys:
                if key not in labels:
                    break
            else:
                pods = ni.pods
                for c, key, counts, selector, check_inclusion in plan:
                    if check_inclusion and not c.match_node_inclusion(pod, ni.node, required):
                        continue
                    value = labels[key]
                    counts[value] = counts.get(value, 0) + (
                        count_matching(pods, selector, ns) if pods and selector is not None else 0)
        s.domains = [len(c) for c in s.counts]
        for i in range(len(constraints)):
            s.refresh(i)
        state.write(_PRE_FILTER_KEY, s)
        return None, None

    def pre_filter_extensions(self) -> "PodTopologySpread":
        return self

    def _update_with_pod(self, state: Any, pod: dict, other: Any, node_info: Any, delta: int) -> None:
        s: _FilterState | None = state.get(_PRE_FILTER_KEY)
        other_pod = getattr(other, "pod", other)
        ometa = other_pod.get("metadata") or {}
        node = node_info.node
        if s is None or node is None or ometa.get("namespace") != (pod.get("metadata") or {}).get("namespace"):
            return
        labels = node_info.labels
        if not node_has_keys(labels, s.constraints):
            return
        required = RequiredNodeAffinity(pod)
        for i, c in enumerate(s.constraints):
            if not c.selector.matches(ometa.get("labels") or {}):
                continue
            if not c.match_node_inclusion(pod, node, required):
                continue
            value = labels[c.topology_key]
            s.counts[i][value] = s.counts[i].get(value, 0) + delta
            s.refresh(i)

    def add_pod(self, state: Any, pod: dict, pod_info: Any, node_info: Any) -> Status | None:
        self._update_with_pod(state, pod, pod_info, node_info, 1)
        return None

    def remove_pod(self, state: Any, pod: dict, pod_info: Any, node_info: Any) -> Status | None:
        self._update_with_pod(state, pod, pod_info, node_info, -1)
        return None

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        s: _FilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None:
            return Status(Code.ERROR, f"reading \"{_PRE_FILTER_KEY}\" from cycleState: not found")
        labels = node_info.labels
        counts, self_match, mins = s.counts, s.self_match, s.mins
        i = 0
        for c in s.constraints:
            value = labels.get(c.topology_key)
            if value is None:
                return unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
            if counts[i].get(value, 0) + self_match[i] - mins[i] > c.max_skew:
                return unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
            i += 1
        return None

    def compile_filter(self, state: Any, pod: dict) -> Any:
        s: _FilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None or len(s.constraints) != 1:
            return partial(self.filter, state, pod)
        # One constraint (the usual case): its key, counts and bound hoisted.
        c = s.constraints[0]
        key, counts, bound = c.topology_key, s.counts[0], c.max_skew - s.self_match[0] + s.mins[0]

        def filter_node(node_info: Any) -> Status | None:
            value = node_info.labels.get(key)
            if value is None:
                return unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
            if counts.get(value, 0) > bound:
                return unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
            return None
        return filter_node

    # -- scoring --------------------------------------------------------------------------

    def pre_score(self, state: Any, pod: dict, nodes: list) -> Status | None:
        all_nodes = self.handle.snapshot.list()
        if not all_nodes:
            return Status(Code.SKIP)
        constraints = self._constraints(pod, "ScheduleAnyway")
        if not constraints:
            return Status(Code.SKIP)
        # Only explicit or List-defaulted constraints demand every topology key, so
        # nodes without a zone label still get hostname spreading by default.
        require_all = bool((pod.get("spec") or {}).get("topologySpreadConstraints")) or not self.system_defaulted
        ignored: set[str] = set()
        counts: list[dict[str, int]] = [{} for _ in constraints]
        sizes = [0] * len(constraints)
        for ni in nodes:
            if require_all and not node_has_keys(ni.labels, constraints):
                ignored.add(ni.name)
                continue
            for i, c in enumerate(constraints):
                if c.topology_key == LABEL_HOSTNAME:
                    continue
                value = ni.labels.get(c.topology_key, "")
                if value not in counts[i]:
                    counts[i][value] = 0
                    sizes[i] += 1
        weights = []
        for i, c in enumerate(constraints):
            size = len(nodes) - len(ignored) if c.topology_key == LABEL_HOSTNAME else sizes[i]
            weights.append(math.log(size + 2))
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        required = RequiredNodeAffinity(pod)
        for ni in all_nodes:
            labels = ni.labels
            if require_all and not node_has_keys(labels, constraints):
                continue
            for i, c in enumerate(constraints):
                if not c.match_node_inclusion(pod, ni.node, required):
                    continue
                value = labels.get(c.topology_key, "")
                if value in counts[i]:
                    counts[i][value] += count_matching(ni.pods, c.selector, ns)
        state.write(_PRE_SCORE_KEY, (constraints, ignored, counts, weights))
        return None

    def score(self, state: Any, pod: dict, node_info: Any) -> tuple[int, Status | None]:
        constraints, ignored, counts, weights = state.read(_PRE_SCORE_KEY)
        if node_info.name in ignored:
            return 0, None
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        labels = node_info.labels
        score = 0.0
        for i, c in enumerate(constraints):
            value = labels.get(c.topology_key)
            if value is None:
                continue
            if c.topology_key == LABEL_HOSTNAME:
                cnt = count_matching(node_info.pods, c.selector, ns)
            else:
                cnt = counts[i].get(value, 0)
            score += cnt * weights[i] + (c.max_skew - 1)
        return int(math.floor(score + 0.5)), None

    def score_extensions(self) -> "PodTopologySpread":
        return self

    def normalize_score(self, state: Any, pod: dict, scores: list) -> Status | None:
        _, ignored, _, _ = state.read(_PRE_SCORE_KEY)
        valid = [s.score for s in scores if s.name not in ignored]
        lo, hi = min(valid, default=0), max(valid, default=0)
        for s in scores:
            if s.name in ignored:
                s.score = 0
            elif hi == 0:
                s.score = MAX_NODE_SCORE
            else:
                s.score = MAX_NODE_SCORE * (hi + lo - s.score) // hi
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(POD, ActionType.ADD | ActionType.UPDATE_POD_LABEL
                                                  | ActionType.DELETE)),
                ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.DELETE
                                                  | ActionType.UPDATE_NODE_LABEL | ActionType.UPDATE_NODE_TAINT))]


def new(args: dict, handle: Any) -> PodTopologySpread:
    return PodTopologySpread(args, handle)
