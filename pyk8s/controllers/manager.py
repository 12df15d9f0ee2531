"""The controller manager: one process running the selected controllers, only while leader.

Role: ``kube-controller-manager``'s ``Run``: build a client from a kubeconfig, one
shared informer factory and event broadcaster (``core_manager.new_context``), the
selected controllers — the workload controllers of this package plus the core ones
of ``core_manager.CONTROLLERS`` — and run them while holding the Lease
``kube-system/kube-controller-manager`` (``--leader-elect``, on by default).

Invariants:
- Controllers run only on the leader; losing the lease stops them and ``run`` raises
  ``LeaderElectionLost`` (upstream exits the process so a fresh one campaigns).
- Every controller shares the context's informers, so each resource is watched once.
- Names are upstream's (``deployment-controller``); the short aliases upstream
  still accepts (``deployment``) work too. ``None`` or ``["*"]`` selects all.
- If one controller fails, the others are cancelled and the failure is raised.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Callable, Iterable

from pyk8s.client import REAL_CLOCK, Client, Clock, load_config
from pyk8s.client.leaderelection import LeaderElector, LeaseLock
from pyk8s.client.settings import LeaderElectionSettings

from . import core_manager
from .corecontext import ControllerContext, CoreSettings
from .cronjob_controller import CronJobController
from .daemonset_controller import DaemonSetController
from .deployment_controller import DeploymentController
from .job_controller import JobController
from .replicaset_controller import ReplicaSetController
from .statefulset_controller import StatefulSetController

log = logging.getLogger(__name__)

LEASE_NAMESPACE, LEASE_NAME = "kube-system", "kube-controller-manager"

Factory = Callable[[ControllerContext], "core_manager.Runnable | None"]

WORKLOAD_CONTROLLERS: dict[str, Factory] = {
    "replicaset-controller": lambda ctx: ReplicaSetController(ctx),
    "replicationcontroller-controller": lambda ctx: ReplicaSetController(ctx, kind="ReplicationController"),
    "deployment-controller": lambda ctx: DeploymentController(ctx),
    "statefulset-controller": lambda ctx: StatefulSetController(ctx),
    "daemonset-controller": lambda ctx: DaemonSetController(ctx),
    "job-controller": lambda ctx: JobController(ctx),
    "cronjob-controller": lambda ctx: CronJobController(ctx),
}

CONTROLLERS: dict[str, Factory] = {**WORKLOAD_CONTROLLERS, **core_manager.CONTROLLERS}

# Upstream's pre-1.28 names, still accepted by --controllers.
ALIASES = {
    "replicaset": "replicaset-controller",
    "replicationcontroller": "replicationcontroller-controller",
    "deployment": "deployment-controller",
    "statefulset": "statefulset-controller",
    "daemonset": "daemonset-controller",
    "job": "job-controller",
    "cronjob": "cronjob-controller",
    "garbagecollector": "garbage-collector-controller",
    "namespace": "namespace-controller",
    "serviceaccount": "serviceaccount-controller",
    "serviceaccount-token": "serviceaccount-token-controller",
    "root-ca-cert-publisher": "root-ca-certificate-publisher-controller",
    "tokencleaner": "token-cleaner-controller",
    "endpoint": "endpoints-controller",
    "endpointslice": "endpointslice-controller",
    "endpointslicemirroring": "endpointslice-mirroring-controller",
    "nodelifecycle": "node-lifecycle-controller",
    "nodeipam": "node-ipam-controller",
    "persistentvolume-binder": "persistentvolume-binder-controller",
    "pvc-protection": "persistentvolumeclaim-protection-controller",
    "pv-protection": "persistentvolume-protection-controller",
    "disruption": "disruption-controller",
    "resourcequota": "resourcequota-controller",
    "ttl-after-finished": "ttl-after-finished-controller",
    "podgc": "pod-garbage-collector-controller",
    "horizontalpodautoscaling": "horizontal-pod-autoscaler-controller",
}


class LeaderElectionLost(RuntimeError):
    """The lease went to another candidate; the process should exit."""


def select(names: Iterable[str] | None) -> list[str]:
    """Canonical controller names for a ``--controllers`` list (``*`` means all)."""
    if names is None:
        return list(CONTROLLERS)
    out: list[str] = []
    for name in names:
        if name == "*":
            out += [n for n in CONTROLLERS if n not in out]
            continue
        canonical = ALIASES.get(name, name)
        if canonical not in CONTROLLERS:
            raise ValueError(f'"{name}" is not in the list of known controllers')
        if canonical not in out:
            out.append(canonical)
    return out


async def run_controllers(ctx: ControllerContext, names: Iterable[str]) -> None:
    """Build the named controllers and run them until cancelled or one fails."""
    running = {}
    for name in names:
        controller = CONTROLLERS[name](ctx)
        if controller is None:
            log.info("controller %s is disabled by its settings", name)
            continue
        running[name] = controller
    log.info("starting controllers: %s", ", ".join(running))
    tasks = [asyncio.create_task(c.run(), name=f"controller {n}") for n, c in running.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(kubeconfig: str | None, controllers: Iterable[str] | None = None,
              leader_elect: bool = True, *, clock: Clock = REAL_CLOCK,
              settings: CoreSettings | None = None, identity: str | None = None,
              leader_election: LeaderElectionSettings = LeaderElectionSettings()) -> None:
    """Run the controller manager against the cluster ``kubeconfig`` names.

    ``settings`` are the core controllers' (see ``core_manager.core_settings``);
    ``identity`` defaults to upstream's ``<hostname>_<uuid>``.
    """
    names = select(controllers)
    client = Client(load_config(kubeconfig), clock=clock)
    ctx = core_manager.new_context(client, settings=settings, clock=clock)
    try:
        if not leader_elect:
            await run_controllers(ctx, names)
            return
        identity = identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        lock = LeaseLock(client, namespace=LEASE_NAMESPACE, name=LEASE_NAME, identity=identity)
        elector = LeaderElector(lock, on_started_leading=lambda: run_controllers(ctx, names),
                                settings=leader_election, clock=clock,
                                recorder=ctx.recorder("kube-controller-manager"))
        await elector.run()
        raise LeaderElectionLost(f"{identity}: leaderelection lost")
    finally:
        await ctx.informers.stop()
        if ctx.events is not None:
            await ctx.events.shutdown(timeout=2.0)
        await client.close()
