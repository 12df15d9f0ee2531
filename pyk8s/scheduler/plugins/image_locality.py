"""ImageLocality: prefer nodes that already have the pod's images.

Role: upstream ``plugins/imagelocality``: each present image counts its size
scaled by the fraction of nodes holding it (so ubiquitous images do not pull pods
together); the sum maps linearly onto [0, 100] between 23 MiB and 1000 MiB per
container.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import MAX_NODE_SCORE, Code, Status
from pyk8s.scheduler.nodeinfo import normalized_image_name

NAME = "ImageLocality"
MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    if num_containers == 0:
        return 0
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    sum_scores = min(max(sum_scores, MIN_THRESHOLD), max_threshold)
    return MAX_NODE_SCORE * (sum_scores - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


class ImageLocality:
    name = NAME

    def __init__(self, handle: Any):
        self.handle = handle

    def pre_score(self, state: Any, pod: dict, nodes: list) -> Status | None:
        """Skip when no node holds any of the pod's images: every score would be 0
        (an optimization; upstream scores the zeros)."""
        spec = pod.get("spec") or {}
        wanted = {normalized_image_name(c.get("image") or "")
                  for c in list(spec.get("initContainers") or ()) + list(spec.get("containers") or ())}
        for ni in nodes:
            states = ni.image_states
            if states and not wanted.isdisjoint(states):
                return None
        return Status(Code.SKIP)

    def score(self, state: Any, pod: dict, node_info: Any) -> tuple[int, Status | None]:
        total_nodes = self.handle.snapshot.num_nodes() or 1
        spec = pod.get("spec") or {}
        containers = list(spec.get("initContainers") or ()) + list(spec.get("containers") or ())
        total = 0
        for c in containers:
            image = node_info.image_states.get(normalized_image_name(c.get("image") or ""))
            if image is not None:
                total += int(image.size * (image.num_nodes / total_nodes))
        return calculate_priority(total, len(containers)), None

    def score_extensions(self) -> None:
        return None


def new(args: dict, handle: Any) -> ImageLocality:
    return ImageLocality(handle)
