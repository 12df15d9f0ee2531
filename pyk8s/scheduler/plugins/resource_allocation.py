"""Resource-allocation scoring shared by NodeResourcesFit and BalancedAllocation.

Role: upstream ``noderesources/{resource_allocation,least_allocated,most_allocated,
requested_to_capacity_ratio}.go`` and ``helper.BuildBrokenLinearFunction``.

Invariants:
- Each strategy maps (requested, allocatable) per configured resource to [0, 100],
  combined by resource weights with Go's integer arithmetic.
- CPU/memory use non-zero requests (a container asking nothing counts as
  100m/200Mi) unless ``use_requested``; an extended resource the pod does not
  request, or the node does not have, is left out of the score.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from pyk8s.scheduler.framework import MAX_NODE_SCORE
from pyk8s.scheduler.nodeinfo import NON_ZERO_DEFAULTS, is_scalar_resource_name, pod_requests

DEFAULT_RESOURCES = [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]
MAX_UTILIZATION = 100
MAX_CUSTOM_PRIORITY_SCORE = 10

Scorer = Callable[[list[int], list[int]], int]


def resource_specs(raw: list[dict] | None) -> list[tuple[str, int]]:
    """Configured resources with upstream's defaults (cpu, memory; weight 0 -> 1)."""
    specs = raw or DEFAULT_RESOURCES
    return [(str(r.get("name")), int(r.get("weight") or 1)) for r in specs]


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    # Pods without requests count the non-zero minimum: clamp to the capacity.
    requested = min(requested, capacity)
    return requested * MAX_NODE_SCORE // capacity


def weighted_scorer(resources: list[tuple[str, int]], per_resource: Callable[[int, int], int]) -> Scorer:
    def score(requested: list[int], allocatable: list[int]) -> int:
        total = weight_sum = 0
        for i, (_, weight) in enumerate(resources):
            if allocatable[i] == 0:
                continue
            total += per_resource(requested[i], allocatable[i]) * weight
            weight_sum += weight
        return total // weight_sum if weight_sum else 0
    return score


def broken_linear(shape: list[tuple[int, int]]) -> Callable[[int], int]:
    """Upstream ``BuildBrokenLinearFunction`` over (utilization, score) points."""
    def f(p: int) -> int:
        for i, (util, score) in enumerate(shape):
            if p <= util:
                if i == 0:
                    return shape[0][1]
                pu, ps = shape[i - 1]
                delta = (score - ps) * (p - pu)
                span = util - pu
                return ps + (abs(delta) // span) * (1 if delta >= 0 else -1)
        return shape[-1][1]
    return f


def requested_to_capacity_ratio_scorer(resources: list[tuple[str, int]], shape: list[dict]) -> Scorer:
    points = [(int(p.get("utilization") or 0),
               int(p.get("score") or 0) * (MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE)) for p in shape]
    raw = broken_linear(points)

    def per_resource(requested: int, capacity: int) -> int:
        if capacity == 0 or requested > capacity:
            return raw(MAX_UTILIZATION)
        return raw(requested * MAX_UTILIZATION // capacity)

    def score(requested: list[int], allocatable: list[int]) -> int:
        total = weight_sum = 0
        for i, (_, weight) in enumerate(resources):
            if allocatable[i] == 0:
                continue
            s = per_resource(requested[i], allocatable[i])
            if s > 0:
                total += s * weight
                weight_sum += weight
        return int(math.floor(total / weight_sum + 0.5)) if weight_sum else 0
    return score


class ResourceAllocationScorer:
    """Computes the (requested, allocatable) vectors and applies a strategy."""

    def __init__(self, name: str, scorer: Scorer, resources: list[tuple[str, int]], use_requested: bool,
                 per_resource: Callable[[int, int], int] | None = None):
        self.name = name
        self.scorer = scorer
        self.resources = resources
        self.use_requested = use_requested
        # Set for weighted per-resource strategies: lets score_nodes skip the
        # generic vectors for the usual cpu+memory configuration.
        self.per_resource = per_resource
        self._cpu_mem = [n for n, _ in resources] == ["cpu", "memory"]

    def pod_request_list(self, pod: dict) -> list[int]:
        reqs = pod_requests(pod, None if self.use_requested else NON_ZERO_DEFAULTS)
        return [reqs.get(name, 0) for name, _ in self.resources]

    def _alloc_request(self, node_info: Any, resource: str, pod_request: int) -> tuple[int, int]:
        """(allocatable, requested + pod) for a resource other than cpu and memory."""
        if pod_request == 0 and is_scalar_resource_name(resource):
            return 0, 0
        if resource == "ephemeral-storage":
            return node_info.allocatable.ephemeral_storage, node_info.requested.ephemeral_storage + pod_request
        if resource in node_info.allocatable.scalar:
            return node_info.allocatable.scalar[resource], node_info.requested.scalar.get(resource, 0) + pod_request
        return 0, 0

    def score(self, node_info: Any, pod_requests_list: list[int]) -> int:
        requested: list[int] = []
        allocatable: list[int] = []
        used = node_info.requested if self.use_requested else node_info.non_zero_requested
        alloc_r = node_info.allocatable
        for (name, _), pod_request in zip(self.resources, pod_requests_list):
            # cpu and memory, the common case, without the generic lookup.
            if name == "cpu":
                alloc, req = alloc_r.milli_cpu, used.milli_cpu + pod_request
            elif name == "memory":
                alloc, req = alloc_r.memory, used.memory + pod_request
            else:
                alloc, req = self._alloc_request(node_info, name, pod_request)
            if alloc == 0:
                alloc = req = 0
            allocatable.append(alloc)
            requested.append(req)
        return self.scorer(requested, allocatable)

    def score_nodes(self, nodes: list, pod_requests_list: list[int]) -> list[int]:
        """``score`` for every node; an inlined loop for cpu+memory weighted strategies."""
        if not (self._cpu_mem and self.per_resource is not None):
            return [self.score(ni, pod_requests_list) for ni in nodes]
        f = self.per_resource
        (_, wc), (_, wm) = self.resources
        pc, pm = pod_requests_list
        out = []
        if f is least_requested_score:
            # LeastAllocated (the default) inlined: the same integer arithmetic.
            for ni in nodes:
                used = ni.requested if self.use_requested else ni.non_zero_requested
                alloc = ni.allocatable
                ac, am = alloc.milli_cpu, alloc.memory
                total = weights = 0
                if ac:
                    rc = used.milli_cpu + pc
                    if rc <= ac:
                        total = (ac - rc) * MAX_NODE_SCORE // ac * wc
                    weights = wc
                if am:
                    rm = used.memory + pm
                    if rm <= am:
                        total += (am - rm) * MAX_NODE_SCORE // am * wm
                    weights += wm
                out.append(total // weights if weights else 0)
            return out
        for ni in nodes:
            used = ni.requested if self.use_requested else ni.non_zero_requested
            alloc = ni.allocatable
            total = weights = 0
            if alloc.milli_cpu:
                total += f(used.milli_cpu + pc, alloc.milli_cpu) * wc
                weights += wc
            if alloc.memory:
                total += f(used.memory + pm, alloc.memory) * wm
                weights += wm
            out.append(total // weights if weights else 0)
        return out
