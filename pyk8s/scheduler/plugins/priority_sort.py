"""PrioritySort: the QueueSort plugin ordering activeQ by priority, then queue time.

Role: upstream ``plugins/queuesort/priority_sort.go``.
Invariant: ``less`` is a strict weak order (higher ``spec.priority`` first, then the
earlier ``timestamp``), so the heap is stable for equal pods.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.nodeinfo import pod_priority

NAME = "PrioritySort"


class PrioritySort:
    name = NAME

    def less(self, a: Any, b: Any) -> bool:
        p1, p2 = pod_priority(a.pod), pod_priority(b.pod)
        return p1 > p2 or (p1 == p2 and a.timestamp < b.timestamp)


def new(args: dict, handle: Any) -> PrioritySort:
    return PrioritySort()
