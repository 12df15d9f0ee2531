"""Run the scheduler against the API server: informers in, bindings and status out.

Role: upstream ``cmd/kube-scheduler`` + ``scheduler.New``. ``SchedulerServer`` feeds
the ``Scheduler`` from pyk8s.client shared informers (nodes, non-terminal pods,
PVCs, PVs, StorageClasses, namespaces, services, ReplicaSets, StatefulSets,
ReplicationControllers, PDBs, CSINodes), writes through ``ApiActions`` (``pods/binding``,
strategic-merge status patches, deletes, Events as the ``default-scheduler``
component) and, when leader election is on, schedules only while holding the
``kube-system/kube-scheduler`` Lease. ``run`` is the ``pyk8s scheduler`` entry point.

Invariants:
- Informers are synced before the first scheduling cycle, so the cache holds every
  bound pod before a node is chosen (no double-booking after a restart).
- Losing the lease stops scheduling (the loop task is cancelled); a new leader
  rebuilds everything from the API, as upstream.
- ``InformerListers`` reads informer stores only; ``ApiActions`` raises on API errors
  except for events, which the recorder writes in the background.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any

from pyk8s.client import Client, Clock, REAL_CLOCK, load_kubeconfig
from pyk8s.client import resources as r
from pyk8s.client.events import EventBroadcaster
from pyk8s.client.informers import SharedInformerFactory
from pyk8s.client.leaderelection import LeaderElector, LeaseLock
from pyk8s.client.settings import LeaderElectionSettings

from .configuration import SchedulerConfiguration, load_configuration, load_configuration_file
from .framework import CSI_NODE, PERSISTENT_VOLUME, PERSISTENT_VOLUME_CLAIM, STORAGE_CLASS, ActionType
from .scheduling import Scheduler

log = logging.getLogger(__name__)

COMPONENT = "default-scheduler"
NON_TERMINAL_PODS = "status.phase!=Succeeded,status.phase!=Failed"


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


class InformerListers:
    """``Listers`` over shared informer stores."""

    def __init__(self, factory: SharedInformerFactory):
        self.pods = factory.informer(r.PODS, field_selector=NON_TERMINAL_PODS)
        self.namespaces = factory.informer(r.NAMESPACES)
        self.services_inf = factory.informer(r.SERVICES)
        self.replicasets = factory.informer(r.REPLICASETS)
        self.statefulsets = factory.informer(r.STATEFULSETS)
        self.rcs = factory.informer(r.REPLICATIONCONTROLLERS)
        self.pvcs = factory.informer(r.PERSISTENTVOLUMECLAIMS)
        self.pvs_inf = factory.informer(r.PERSISTENTVOLUMES)
        self.storageclasses = factory.informer(r.STORAGECLASSES)
        self.pdbs_inf = factory.informer(r.PODDISRUPTIONBUDGETS)
        self.csinodes = factory.informer(r.CSINODES)

    def pod(self, namespace: str, name: str) -> dict | None:
        return self.pods.store.get_object(namespace, name)

    def namespace_labels(self, name: str) -> dict | None:
        ns = self.namespaces.store.get_object(None, name)
        return None if ns is None else (_meta(ns).get("labels") or {})

    def services(self, namespace: str) -> list[dict]:
        return self.services_inf.store.list_namespace(namespace)

    def replica_set(self, namespace: str, name: str) -> dict | None:
        return self.replicasets.store.get_object(namespace, name)

    def stateful_set(self, namespace: str, name: str) -> dict | None:
        return self.statefulsets.store.get_object(namespace, name)

    def replication_controller(self, namespace: str, name: str) -> dict | None:
        return self.rcs.store.get_object(namespace, name)

    def pvc(self, namespace: str, name: str) -> dict | None:
        return self.pvcs.store.get_object(namespace, name)

    def pv(self, name: str) -> dict | None:
        return self.pvs_inf.store.get_object(None, name)

    def pvs(self) -> list[dict]:
        return self.pvs_inf.store.list()

    def storage_class(self, name: str) -> dict | None:
        return self.storageclasses.store.get_object(None, name)

    def csi_node(self, name: str) -> dict | None:
        return self.csinodes.store.get_object(None, name)

    def pdbs(self) -> list[dict]:
        return self.pdbs_inf.store.list()


class ApiActions:
    """``ClusterActions`` through the REST client; events are reported by the pod's
    profile (its schedulerName), as upstream gives each profile its recorder."""

    def __init__(self, client: Client, broadcaster: EventBroadcaster):
        self.client = client
        self.broadcaster = broadcaster
        self._recorders: dict[str, Any] = {}

    def recorder(self, scheduler_name: str) -> Any:
        rec = self._recorders.get(scheduler_name)
        if rec is None:
            rec = self._recorders[scheduler_name] = self.broadcaster.new_recorder(scheduler_name)
        return rec

    async def bind(self, pod: dict, node_name: str) -> None:
        meta = _meta(pod)
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        await self.client.create(r.PODS, binding, namespace=meta["namespace"], name=meta["name"],
                                 subresource="binding")

    async def patch_pod_status(self, pod: dict, *, condition: dict | None = None,
                               nominated_node_name: str | None = None) -> None:
        status: dict[str, Any] = {}
        if condition is not None:
            status["conditions"] = [condition]
        if nominated_node_name is not None:
            # null deletes the field, as upstream's patch does when clearing it.
            status["nominatedNodeName"] = nominated_node_name or None
        if not status:
            return
        meta = _meta(pod)
        await self.client.patch(r.PODS, meta["name"], namespace=meta["namespace"], body={"status": status},
                                patch_type="strategic", subresource="status")

    async def delete_pod(self, pod: dict) -> None:
        meta = _meta(pod)
        await self.client.delete(r.PODS, meta["name"], namespace=meta["namespace"])

    async def annotate_pvc(self, pvc: dict, annotations: dict[str, str]) -> None:
        meta = _meta(pvc)
        await self.client.patch(r.PERSISTENTVOLUMECLAIMS, meta["name"], namespace=meta["namespace"],
                                body={"metadata": {"annotations": annotations}})

    async def claim_pv(self, pv: dict, pvc: dict) -> None:
        pmeta = _meta(pvc)
        ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": pmeta.get("namespace"),
               "name": pmeta.get("name"), "uid": pmeta.get("uid")}
        await self.client.patch(r.PERSISTENTVOLUMES, _meta(pv)["name"], body={
            "metadata": {"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"claimRef": ref}})

    async def record_event(self, regarding: dict, *, type: str, reason: str, action: str,
                           note: str, related: dict | None = None) -> None:
        obj = regarding if regarding.get("kind") else {"apiVersion": "v1", "kind": "Pod", **regarding}
        name = (obj.get("spec") or {}).get("schedulerName") or COMPONENT
        self.recorder(name).event(obj, type, reason=reason, message=note)


class SchedulerServer:
    """Informers + Scheduler + optional leader election, for one API server."""

    def __init__(self, client: Client, config: SchedulerConfiguration | None = None, *,
                 identity: str | None = None, clock: Clock = REAL_CLOCK):
        self.client = client
        self.config = config or load_configuration()
        self.clock = clock
        self.identity = identity or leader_identity()
        self.broadcaster = EventBroadcaster(client, clock=clock)
        # Leader election events name the first profile's scheduler, as upstream.
        first = self.config.profiles[0].scheduler_name if self.config.profiles else COMPONENT
        self.recorder = self.broadcaster.new_recorder(first)
        self.scheduler: Scheduler | None = None
        self.elector: LeaderElector | None = None
        self.started = asyncio.Event()

    async def run(self) -> None:
        """Schedule until cancelled (while leading, when leader election is on)."""
        le = self.config.leader_election
        try:
            if not le.leader_elect:
                await self.lead()
                return
            lock = LeaseLock(self.client, namespace=le.resource_namespace, name=le.resource_name,
                             identity=self.identity)
            settings = LeaderElectionSettings(lease_duration=le.lease_duration, renew_deadline=le.renew_deadline,
                                              retry_period=le.retry_period)
            self.elector = LeaderElector(lock, on_started_leading=self.lead, settings=settings, clock=self.clock,
                                         recorder=self.recorder)
            await self.elector.run()
        finally:
            await self.broadcaster.shutdown()

    async def lead(self) -> None:
        """Build the scheduler from the API and run its loop until cancelled."""
        factory = SharedInformerFactory(self.client, clock=self.clock)
        listers = InformerListers(factory)
        nodes = factory.informer(r.NODES)
        sched = Scheduler(self.config, listers=listers, actions=ApiActions(self.client, self.broadcaster),
                          clock=self.clock)
        self.scheduler = sched
        nodes.add_event_handler(on_add=sched.on_node_add, on_update=sched.on_node_update,
                                on_delete=sched.on_node_delete)
        listers.pods.add_event_handler(on_add=sched.on_pod_add, on_update=sched.on_pod_update,
                                       on_delete=sched.on_pod_delete)
        for informer, resource in ((listers.pvcs, PERSISTENT_VOLUME_CLAIM), (listers.pvs_inf, PERSISTENT_VOLUME),
                                   (listers.storageclasses, STORAGE_CLASS), (listers.csinodes, CSI_NODE)):
            informer.add_event_handler(
                on_add=lambda o, res=resource: sched.on_cluster_event(res, ActionType.ADD, None, o),
                on_update=lambda a, b, res=resource: sched.on_cluster_event(res, ActionType.UPDATE, a, b),
                on_delete=lambda o, res=resource: sched.on_cluster_event(res, ActionType.DELETE, o, None))
        factory.start()
        try:
            while not await factory.wait_for_sync(timeout=30):
                log.warning("waiting for scheduler informers to sync")
            self.started.set()
            await sched.run()
        finally:
            sched.queue.close()
            await sched.drain_bindings()
            await factory.stop()


def leader_identity(hostname: str | None = None) -> str:
    """Upstream's lease holder identity: ``<hostname>_<uuid>`` (the uniquifier keeps two
    schedulers on one host apart); ``hostname`` is ``--hostname-override`` if given."""
    return f"{hostname or socket.gethostname()}_{uuid.uuid4()}"


async def run(kubeconfig: str, *, config_file: str | None = None, config: SchedulerConfiguration | None = None,
              leader_elect: bool | None = None, identity: str | None = None,
              hostname: str | None = None) -> None:
    """``pyk8s scheduler``: schedule pods for the cluster in ``kubeconfig`` until cancelled.

    ``config_file`` is a KubeSchedulerConfiguration (``--config``); ``leader_elect``,
    when not None, overrides its ``leaderElection.leaderElect`` as an explicit
    ``--leader-elect`` flag does upstream."""
    if config is None:
        config = load_configuration_file(config_file) if config_file else load_configuration()
    if leader_elect is not None:
        config.leader_election.leader_elect = leader_elect
    client = Client(load_kubeconfig(kubeconfig))
    try:
        await SchedulerServer(client, config, identity=identity or leader_identity(hostname)).run()
    finally:
        await client.close()
