"""NodeResourcesFit: the node must have room for the pod's requests; score by strategy.

Role: upstream ``noderesources/fit.go``. PreFilter computes the pod's requests once;
Filter lists every insufficient resource (``Too many pods``, ``Insufficient cpu``,
``Insufficient memory``, ``Insufficient ephemeral-storage``, ``Insufficient
<extended>``) as separate reasons; Score applies the configured strategy
(LeastAllocated by default, MostAllocated, RequestedToCapacityRatio).

Invariants:
- A resource is insufficient when the pod requests > allocatable - requested
  (requests of 0 never fail); pods count against ``allocatable.pods`` always.
- ``ignoredResources``/``ignoredResourceGroups`` exempt extended resources only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pyk8s.api.quantities import parse_quantity
from pyk8s.scheduler.configuration import ConfigurationError
from pyk8s.scheduler.framework import (NODE, POD, ActionType, ClusterEvent, ClusterEventWithHint, QueueingHint,
                                       Status, unschedulable)
from pyk8s.scheduler.nodeinfo import NodeInfo, Resource, is_extended_resource_name, pod_requests
from pyk8s.scheduler.plugins.resource_allocation import (ResourceAllocationScorer, least_requested_score,
                                                         most_requested_score, requested_to_capacity_ratio_scorer,
                                                         resource_specs, weighted_scorer)

NAME = "NodeResourcesFit"
_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME
LEAST_ALLOCATED, MOST_ALLOCATED, REQUESTED_TO_CAPACITY_RATIO = \
    "LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"


@dataclass
class InsufficientResource:
    resource_name: str
    reason: str
    requested: int
    used: int
    capacity: int


def compute_pod_resource_request(pod: dict) -> Resource:
    return Resource.from_values(pod_requests(pod))


def fits_request(req: Resource, node_info: NodeInfo, ignored: frozenset[str] = frozenset(),
                 ignored_groups: frozenset[str] = frozenset()) -> list[InsufficientResource]:
    out: list[InsufficientResource] = []
    allowed = node_info.allocatable.allowed_pod_number
    if len(node_info.pods) + 1 > allowed:
        out.append(InsufficientResource("pods", "Too many pods", 1, len(node_info.pods), allowed))
    if not (req.milli_cpu or req.memory or req.ephemeral_storage or req.scalar):
        return out
    alloc, used = node_info.allocatable, node_info.requested
    if req.milli_cpu > 0 and req.milli_cpu > alloc.milli_cpu - used.milli_cpu:
        out.append(InsufficientResource("cpu", "Insufficient cpu", req.milli_cpu, used.milli_cpu, alloc.milli_cpu))
    if req.memory > 0 and req.memory > alloc.memory - used.memory:
        out.append(InsufficientResource("memory", "Insufficient memory", req.memory, used.memory, alloc.memory))
    if req.ephemeral_storage > 0 and req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage:
        out.append(InsufficientResource("ephemeral-storage", "Insufficient ephemeral-storage",
                                        req.ephemeral_storage, used.ephemeral_storage, alloc.ephemeral_storage))
    for name, quantity in req.scalar.items():
        if quantity == 0:
            continue
        if is_extended_resource_name(name) and (name in ignored or name.split("/")[0] in ignored_groups):
            continue
        if quantity > alloc.scalar.get(name, 0) - used.scalar.get(name, 0):
            out.append(InsufficientResource(name, f"Insufficient {name}", quantity, used.scalar.get(name, 0),
                                            alloc.scalar.get(name, 0)))
    return out


def fits(pod: dict, node_info: NodeInfo) -> list[InsufficientResource]:
    return fits_request(compute_pod_resource_request(pod), node_info)


def _scorer(args: dict) -> ResourceAllocationScorer:
    strategy = dict(args.get("scoringStrategy") or {})
    kind = strategy.get("type") or LEAST_ALLOCATED
    resources = resource_specs(strategy.get("resources"))
    if kind == LEAST_ALLOCATED:
        return ResourceAllocationScorer(kind, weighted_scorer(resources, least_requested_score), resources, False,
                                        least_requested_score)
    if kind == MOST_ALLOCATED:
        return ResourceAllocationScorer(kind, weighted_scorer(resources, most_requested_score), resources, False,
                                        most_requested_score)
    if kind == REQUESTED_TO_CAPACITY_RATIO:
        shape = (strategy.get("requestedToCapacityRatio") or {}).get("shape")
        if not shape:
            raise ConfigurationError("scoringStrategy.requestedToCapacityRatio.shape: Required value")
        return ResourceAllocationScorer(kind, requested_to_capacity_ratio_scorer(resources, shape), resources, False)
    raise ConfigurationError(f"scoring strategy {kind} is not supported")


class Fit:
    name = NAME

    def __init__(self, args: dict):
        self.ignored = frozenset(args.get("ignoredResources") or ())
        self.ignored_groups = frozenset(args.get("ignoredResourceGroups") or ())
        self.scorer = _scorer(args)

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        state.write(_PRE_FILTER_KEY, compute_pod_resource_request(pod))
        return None, None

    def pre_filter_extensions(self) -> None:
        return None

    def filter(self, state: Any, pod: dict, node_info: NodeInfo) -> Status | None:
        req = state.get(_PRE_FILTER_KEY)
        if req is None:
            req = compute_pod_resource_request(pod)
        elif not req.scalar and not req.ephemeral_storage:
            # The common case inline (pods, cpu, memory all fit): no lists built.
            alloc, used = node_info.allocatable, node_info.requested
            if len(node_info.pods) < alloc.allowed_pod_number \
                    and req.milli_cpu <= alloc.milli_cpu - used.milli_cpu \
                    and req.memory <= alloc.memory - used.memory:
                return None
        insufficient = fits_request(req, node_info, self.ignored, self.ignored_groups)
        if insufficient:
            return unschedulable(*(r.reason for r in insufficient))
        return None

    def compile_filter(self, state: Any, pod: dict) -> Callable[[NodeInfo], Status | None]:
        req = state.get(_PRE_FILTER_KEY)
        if req is None:
            req = compute_pod_resource_request(pod)
        ignored, ignored_groups = self.ignored, self.ignored_groups

        def slow(node_info: NodeInfo) -> Status | None:
            insufficient = fits_request(req, node_info, ignored, ignored_groups)
            if insufficient:
                return unschedulable(*(r.reason for r in insufficient))
            return None
        if req.scalar or req.ephemeral_storage:
            return slow
        cpu, memory = req.milli_cpu, req.memory

        def fast(node_info: NodeInfo) -> Status | None:
            # The common case inline (pods, cpu, memory all fit): no lists built.
            alloc, used = node_info.allocatable, node_info.requested
            if len(node_info.pods) < alloc.allowed_pod_number and cpu <= alloc.milli_cpu - used.milli_cpu \
                    and memory <= alloc.memory - used.memory:
                return None
            return slow(node_info)
        return fast

    def pre_score(self, state: Any, pod: dict, nodes: list) -> Status | None:
        state.write(_PRE_SCORE_KEY, self.scorer.pod_request_list(pod))
        return None

    def score(self, state: Any, pod: dict, node_info: NodeInfo) -> tuple[int, Status | None]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = self.scorer.pod_request_list(pod)
        return self.scorer.score(node_info, requests), None

    def score_nodes(self, state: Any, pod: dict, nodes: list) -> list[int]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = self.scorer.pod_request_list(pod)
        return self.scorer.score_nodes(nodes, requests)

    def score_extensions(self) -> None:
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(POD, ActionType.DELETE), self._after_pod_event),
                ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.UPDATE_NODE_ALLOCATABLE),
                                     self._after_node_change)]

    @staticmethod
    def _after_pod_event(pod: dict, old: Any, new: Any) -> QueueingHint:
        if new is None and old is not None and not (old.get("spec") or {}).get("nodeName"):
            # An unscheduled pod going away frees nothing.
            return QueueingHint.QUEUE_SKIP
        return QueueingHint.QUEUE

    @staticmethod
    def _after_node_change(pod: dict, old: Any, new: Any) -> QueueingHint:
        if new is None or fits(pod, NodeInfo(new)):
            return QueueingHint.QUEUE_SKIP
        if old is None:
            return QueueingHint.QUEUE
        before = (old.get("status") or {}).get("allocatable") or {}
        after = (new.get("status") or {}).get("allocatable") or {}
        for name, value in after.items():
            if name not in before or parse_quantity(value) > parse_quantity(before[name]):
                return QueueingHint.QUEUE
        return QueueingHint.QUEUE_SKIP


def new(args: dict, handle: Any) -> Fit:
    return Fit(args)
