"""Synthetic nodes and pods for scheduler unit tests (no API server)."""
from __future__ import annotations

import itertools
import random

from pyk8s.client.clock import FakeClock
from pyk8s.scheduler.actions import RecordingActions
from pyk8s.scheduler.configuration import load_configuration
from pyk8s.scheduler.listers import StaticListers
from pyk8s.scheduler.scheduling import Scheduler

_uids = itertools.count(1)


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False, images: list | None = None,
         extra: dict | None = None) -> dict:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    spec: dict = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"node-{name}",
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec,
            "status": {"allocatable": allocatable, "capacity": dict(allocatable), "images": images or []}}


def pod(name: str, *, namespace: str = "default", cpu: str | None = None, memory: str | None = None,
        node_name: str | None = None, labels: dict | None = None, priority: int | None = None,
        scheduler_name: str = "default-scheduler", host_port: int | None = None, **spec_extra) -> dict:
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    container: dict = {"name": "c", "image": "busybox", "resources": {"requests": requests} if requests else {}}
    if host_port is not None:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "TCP"}]
    spec = {"containers": [container], "schedulerName": scheduler_name, **spec_extra}
    if node_name:
        spec["nodeName"] = node_name
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}-{next(_uids)}",
                         "labels": labels or {}, "resourceVersion": "1"},
            "spec": spec, "status": {"phase": "Pending"}}


class Harness:
    """A Scheduler over StaticListers/RecordingActions with a fake clock."""

    def __init__(self, *nodes: dict, config: dict | None = None, seed: int = 1, registry: dict | None = None):
        self.listers = StaticListers()
        self.actions = RecordingActions()
        self.clock = FakeClock()
        self.sched = Scheduler(load_configuration(config), listers=self.listers, actions=self.actions,
                               clock=self.clock, rng=random.Random(seed), registry=registry)
        for n in nodes:
            self.add_node(n)

    def add_node(self, n: dict) -> dict:
        self.sched.on_node_add(n)
        return n

    def add_pod(self, p: dict) -> dict:
        self.listers.add(p)
        self.sched.on_pod_add(p)
        return p

    def add_bound(self, p: dict, node_name: str) -> dict:
        p["spec"]["nodeName"] = node_name
        p["status"]["phase"] = "Running"
        return self.add_pod(p)

    async def schedule(self, p: dict) -> str | None:
        """Add ``p``, run one cycle for it, return the node it was bound to."""
        self.add_pod(p)
        return await self.cycle(p)

    async def cycle(self, p: dict) -> str | None:
        qpi = self.sched.queue.pop_nowait()
        assert qpi is not None and qpi.uid == p["metadata"]["uid"], "expected the pod at the head of activeQ"
        before = len(self.actions.binds)
        await self.sched.schedule_one(qpi)
        await self.sched.drain_bindings()
        if len(self.actions.binds) > before:
            key, node_name = self.actions.binds[-1]
            bound = dict(p, spec=dict(p["spec"], nodeName=node_name), status={"phase": "Running"})
            self.listers.add(bound)
            self.sched.on_pod_update(p, bound)
            return node_name
        return None

    def failed_message(self) -> str:
        return self.actions.events_for("FailedScheduling")[-1]
