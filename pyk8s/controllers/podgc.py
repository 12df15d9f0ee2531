"""Pod garbage collection: terminated pods over a threshold, orphans, stuck terminations.

Role: upstream's ``pod-garbage-collector-controller`` (``pkg/controller/podgc/
gc_controller.go``). Every ``period`` (20 s) it:

- deletes the oldest terminated (Succeeded/Failed) pods beyond
  ``terminated_pod_threshold`` (12500), evicted ones first;
- force-deletes terminating pods on not-Ready nodes tainted
  ``node.kubernetes.io/out-of-service``;
- force-deletes pods bound to a node that has been missing for ``quarantine``
  (40 s) and that a GET confirms is gone, marking them Failed with the
  ``DisruptionTarget`` condition (``DeletionByPodGC``) first;
- force-deletes terminating pods that were never scheduled.

Invariants:
- "Force" means grace period 0; a non-terminal pod is first set to phase Failed, so
  its owner sees a failure rather than a vanished pod.
- A node is taken for deleted only after it was absent from the cache for the whole
  quarantine and the API confirms it; a node that reappears is forgotten.
"""
from __future__ import annotations

import functools
import logging

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from . import podutil
from .corecontext import ControllerContext, CoreController, set_condition

log = logging.getLogger(__name__)

OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


def is_terminated(pod: dict) -> bool:
    return podutil.phase(pod) not in ("Pending", "Running", "Unknown")


def is_evicted(pod: dict) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "Evicted"


def _order(a: dict, b: dict) -> int:
    """``byEvictionAndCreationTimestamp``."""
    if is_evicted(a) != is_evicted(b):
        return -1 if is_evicted(a) else 1
    ca, cb = a["metadata"].get("creationTimestamp") or "", b["metadata"].get("creationTimestamp") or ""
    if ca != cb:
        return -1 if m.parse_time(ca or "0001-01-01T00:00:00Z") < m.parse_time(
            cb or "0001-01-01T00:00:00Z") else 1
    return -1 if a["metadata"]["name"] < b["metadata"]["name"] else (
        1 if a["metadata"]["name"] > b["metadata"]["name"] else 0)


def terminated_to_delete(pods: list[dict], threshold: int) -> list[dict]:
    """``gcTerminated``: the terminated pods beyond the threshold, first to go first."""
    if threshold <= 0:
        return []
    terminated = [p for p in pods if is_terminated(p)]
    excess = len(terminated) - threshold
    if excess <= 0:
        return []
    return sorted(terminated, key=functools.cmp_to_key(_order))[:excess]


def node_ready(node: dict) -> bool:
    cond = podutil.get_condition(node.get("status"), "Ready")
    return cond is not None and cond.get("status") == "True"


def terminating_out_of_service(pods: list[dict], nodes: dict[str, dict]) -> list[dict]:
    """``gcTerminating``: terminating pods on not-Ready out-of-service nodes."""
    out = []
    for pod in pods:
        if not podutil.deletion_timestamp(pod):
            continue
        node = nodes.get(podutil.node_name(pod))
        if node is None or node_ready(node):
            continue
        if any(t.get("key") == OUT_OF_SERVICE for t in (node.get("spec") or {}).get("taints") or []):
            out.append(pod)
    return sorted(out, key=functools.cmp_to_key(_order))


def unscheduled_terminating(pods: list[dict]) -> list[dict]:
    return [p for p in pods if podutil.deletion_timestamp(p) and not podutil.node_name(p)]


class PodGCController(CoreController):
    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="pod-garbage-collector-controller", workers=1)
        self.s = ctx.settings.podgc
        self.pods = self.informer(r.PODS)
        self.nodes = self.informer(r.NODES)
        self.missing_since: dict[str, float] = {}
        self.queue.add("gc")

    async def sync(self, key: str) -> None:
        await self.gc()
        raise Requeue(self.s.period)

    async def gc(self) -> None:
        pods = self.pods.store.list()
        nodes = {n["metadata"]["name"]: n for n in self.nodes.store.list()}
        for pod in terminated_to_delete(pods, self.s.terminated_pod_threshold):
            await self._force_delete(pod)
        for pod in terminating_out_of_service(pods, nodes):
            await self._force_delete(pod)
        for pod in await self._orphans(pods, nodes):
            log.info("pod %s is bound to deleted node %s: deleting", m.object_key(pod),
                     podutil.node_name(pod))
            await self._force_delete(pod, condition={
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists"})
        for pod in unscheduled_terminating(pods):
            await self._force_delete(pod)

    async def _orphans(self, pods: list[dict], nodes: dict[str, dict]) -> list[dict]:
        now = self.clock.monotonic()
        wanted = {podutil.node_name(p) for p in pods if podutil.node_name(p)}
        for name in list(self.missing_since):
            if name in nodes or name not in wanted:
                del self.missing_since[name]
        for name in wanted - set(nodes):
            self.missing_since.setdefault(name, now)
        deleted = set()
        for name, since in self.missing_since.items():
            if now - since < self.s.quarantine:
                continue
            try:
                await self.client.get(r.NODES, name)
            except ApiError as err:
                if is_not_found(err):
                    deleted.add(name)
                else:
                    log.warning("pod GC: error getting node %s: %s", name, err)
        return [p for p in pods if podutil.node_name(p) in deleted]

    async def _force_delete(self, pod: dict, condition: dict | None = None) -> None:
        """``markFailedAndDeletePodWithCondition``."""
        md = pod["metadata"]
        try:
            if not podutil.is_pod_terminal(pod):
                status = dict(pod.get("status") or {}, phase="Failed")
                if condition is not None:
                    status["conditions"], _ = set_condition(status.get("conditions") or [],
                                                            condition, self.now_str())
                await self.client.update_status(r.PODS, {**pod, "status": status})
            await self.client.delete(r.PODS, md["name"], namespace=md["namespace"],
                                     grace_period_seconds=0, preconditions={"uid": md["uid"]})
        except ApiError as err:
            if not is_not_found(err):
                log.warning("pod GC: deleting %s failed: %s", m.object_key(pod), err)


def new_podgc_controller(ctx: ControllerContext) -> PodGCController:
    return PodGCController(ctx)
