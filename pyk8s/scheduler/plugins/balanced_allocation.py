"""NodeResourcesBalancedAllocation: prefer nodes whose resource use stays balanced.

Role: upstream ``noderesources/balanced_allocation.go``: score = (1 - std) * 100 of
the requested/allocatable fractions (capped at 1) over the configured resources,
using actual requests. Best-effort pods (no requests at all) Skip scoring.
"""
from __future__ import annotations

import math
from typing import Any

from pyk8s.scheduler.framework import MAX_NODE_SCORE, Code, Status
from pyk8s.scheduler.plugins.resource_allocation import ResourceAllocationScorer, resource_specs

NAME = "NodeResourcesBalancedAllocation"
_PRE_SCORE_KEY = "PreScore" + NAME


def balanced_resource_scorer(requested: list[int], allocatable: list[int]) -> int:
    fractions = []
    for req, alloc in zip(requested, allocatable):
        if alloc == 0:
            continue
        fractions.append(min(req / alloc, 1.0))
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation:
    name = NAME

    def __init__(self, args: dict):
        self.scorer = ResourceAllocationScorer(NAME, balanced_resource_scorer,
                                               resource_specs(args.get("resources")), use_requested=True)

    def pre_score(self, state: Any, pod: dict, nodes: list) -> Status | None:
        requests = self.scorer.pod_request_list(pod)
        if not any(requests):
            # Best-effort pods would all pile onto the most balanced node.
            return Status(Code.SKIP)
        state.write(_PRE_SCORE_KEY, requests)
        return None

    def score(self, state: Any, pod: dict, node_info: Any) -> tuple[int, Status | None]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = self.scorer.pod_request_list(pod)
        return self.scorer.score(node_info, requests), None

    def score_nodes(self, state: Any, pod: dict, nodes: list) -> list[int]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = self.scorer.pod_request_list(pod)
        if [n for n, _ in self.scorer.resources] != ["cpu", "memory"]:
            return [self.scorer.score(ni, requests) for ni in nodes]
        pc, pm = requests
        out = []
        append = out.append
        for ni in nodes:
            used, alloc = ni.requested, ni.allocatable
            ac, am = alloc.milli_cpu, alloc.memory
            if ac and am:
                fc = (used.milli_cpu + pc) / ac
                fm = (used.memory + pm) / am
                if fc > 1.0:
                    fc = 1.0
                if fm > 1.0:
                    fm = 1.0
                append(int((1 - abs((fc - fm) / 2)) * MAX_NODE_SCORE))
            else:
                # At most one fraction: a standard deviation of 0.
                append(int((1 - 0.0) * MAX_NODE_SCORE))
        return out

    def score_extensions(self) -> None:
        return None


def new(args: dict, handle: Any) -> BalancedAllocation:
    return BalancedAllocation(args)
