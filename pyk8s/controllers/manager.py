"""The controller manager: one process running the selected controllers, only while leader.

Role: ``kube-controller-manager``'s ``Run``: build a client from a kubeconfig, one
shared informer factory and event broadcaster (``core_manager.new_context``), the
selected controllers — the workload controllers of this package plus the core ones
of ``core_manager.CONTROLLERS`` — and run them while holding the Lease
``kube-system/kube-controller-manager`` (``--leader-elect``, on by default).

With ``use_service_account_credentials`` (``--use-service-account-credentials``, on in
``pyk8s server`` and ``pyk8s controller-manager`` as kubeadm and k3s set it) the
kubeconfig's identity (``system:kube-controller-manager``) is used only for leader
election, the shared informers, the manager's own events and the
``tokens-controller``; every other controller acts through its own client, as service
account ``kube-system/<SERVICE_ACCOUNTS[name]>`` with a bound token
(``clientbuilder``), so RBAC's ``system:controller:<account>`` role is all it may do
and the audit log names it as the writer of what it creates, events included.

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

from pyk8s.client import REAL_CLOCK, Clock, load_config
from pyk8s.client.informers import SharedInformerFactory
from pyk8s.client.leaderelection import LeaderElector, LeaseLock
from pyk8s.client.settings import LeaderElectionSettings

from . import core_manager
from .clientbuilder import RootClientBuilder, ServiceAccountClientBuilder
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


# The kube-system service account each controller acts as with
# --use-service-account-credentials: upstream's ClientBuilder.ClientOrDie(<name>) of
# each controller's start function, whose system:controller:<name> ClusterRole the
# bootstrap policy binds to it.
SERVICE_ACCOUNTS: dict[str, str] = {
    "replicaset-controller": "replicaset-controller",
    "replicationcontroller-controller": "replication-controller",
    "deployment-controller": "deployment-controller",
    "statefulset-controller": "statefulset-controller",
    "daemonset-controller": "daemon-set-controller",
    "job-controller": "job-controller",
    "cronjob-controller": "cronjob-controller",
    "garbage-collector-controller": "generic-garbage-collector",
    "namespace-controller": "namespace-controller",
    "serviceaccount-controller": "service-account-controller",
    "root-ca-certificate-publisher-controller": "root-ca-cert-publisher",
    "token-cleaner-controller": "token-cleaner",
    "endpoints-controller": "endpoint-controller",
    "endpointslice-controller": "endpointslice-controller",
    "endpointslice-mirroring-controller": "endpointslicemirroring-controller",
    # node lifecycle, taint eviction and node IPAM share node-controller's role
    "node-lifecycle-controller": "node-controller",
    "taint-eviction-controller": "node-controller",
    "node-ipam-controller": "node-controller",
    "persistentvolume-binder-controller": "persistent-volume-binder",
    "persistentvolumeclaim-protection-controller": "pvc-protection-controller",
    "persistentvolume-protection-controller": "pv-protection-controller",
    "disruption-controller": "disruption-controller",
    "resourcequota-controller": "resourcequota-controller",
    "ttl-after-finished-controller": "ttl-after-finished-controller",
    "pod-garbage-collector-controller": "pod-garbage-collector",
    "horizontal-pod-autoscaler-controller": "horizontal-pod-autoscaler",
    # not upstream's: k3s' provisioner account, and the API server's own
    # kubernetes-Service endpoints reconciler (upstream runs it in the API server)
    "local-path-provisioner": "local-path-provisioner-service-account",
    "apiserver-endpoints-controller": "apiserver-endpoints-controller",
}

# Controllers that keep the manager's own identity even with service-account
# credentials (upstream starts them from the root client builder), by client name.
ROOT_CONTROLLERS: dict[str, str] = {
    # it signs the legacy token Secrets the service accounts' tokens come from
    "serviceaccount-token-controller": "tokens-controller",
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


async def controller_contexts(ctx: ControllerContext, names: Iterable[str],
                              clients: ServiceAccountClientBuilder | None = None,
                              root: RootClientBuilder | None = None
                              ) -> dict[str, ControllerContext]:
    """Each named controller's context: ``ctx`` itself without ``clients``, else one on
    its service account's client (or a root client for ``ROOT_CONTROLLERS``)."""
    names = list(names)
    if clients is None:
        return {n: ctx for n in names}
    wanted: dict[str, object] = {}
    for n in names:
        if n in ROOT_CONTROLLERS and root is not None:
            wanted[n] = root.client(ROOT_CONTROLLERS[n])
        elif n in SERVICE_ACCOUNTS:
            wanted[n] = clients.client(SERVICE_ACCOUNTS[n])
    # One token request per account, all at once.
    built = await asyncio.gather(*wanted.values())
    by_name = dict(zip(wanted, built))
    return {n: ctx.with_client(by_name[n]) if n in by_name else ctx for n in names}


async def run_controllers(ctx: ControllerContext, names: Iterable[str],
                          clients: ServiceAccountClientBuilder | None = None,
                          root: RootClientBuilder | None = None) -> None:
    """Build the named controllers and run them until cancelled or one fails."""
    contexts = await controller_contexts(ctx, names, clients, root)
    running = {}
    for name, cctx in contexts.items():
        controller = CONTROLLERS[name](cctx)
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
              leader_election: LeaderElectionSettings = LeaderElectionSettings(),
              use_service_account_credentials: bool = False) -> None:
    """Run the controller manager against the cluster ``kubeconfig`` names.

    ``settings`` are the core controllers' (see ``core_manager.core_settings``);
    ``identity`` defaults to upstream's ``<hostname>_<uuid>``.
    """
    names = select(controllers)
    config = load_config(kubeconfig)
    root = RootClientBuilder(config, clock=clock)
    client = root.client_now("kube-controller-manager")
    informers = SharedInformerFactory(root.client_now("shared-informers"), clock=clock)
    ctx = core_manager.new_context(client, settings=settings, clock=clock, informers=informers)
    clients = (ServiceAccountClientBuilder(client, config, clock=clock)
               if use_service_account_credentials else None)
    try:
        if not leader_elect:
            await run_controllers(ctx, names, clients, root)
            return
        identity = identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        lock = LeaseLock(root.client_now("leader-election"), namespace=LEASE_NAMESPACE,
                         name=LEASE_NAME, identity=identity)
        elector = LeaderElector(lock, on_started_leading=lambda: run_controllers(
                                    ctx, names, clients, root),
                                settings=leader_election, clock=clock,
                                recorder=ctx.recorder("kube-controller-manager"))
        await elector.run()
        raise LeaderElectionLost(f"{identity}: leaderelection lost")
    finally:
        await ctx.informers.stop()
        await ctx.shutdown_events(timeout=2.0)
        if clients is not None:
            await clients.close()
        await root.close()
