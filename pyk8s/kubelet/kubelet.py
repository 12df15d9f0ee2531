"""The kubelet: pods bound to this node, run through a container runtime, reported back.

Role: `Kubelet` wires the parts together (upstream's kubelet.go): a pod informer
(`fieldSelector=spec.nodeName=<node>`) feeds `PodWorkers`; the worker callbacks
(`sync_pod`, `sync_terminating_pod`, `sync_terminated_pod`, `pod_removed`) read
the runtime (`runtimepods`), generate the API status (`podstatus`) for the
`StatusManager`, and act through the `PodSyncer`; a PLEG relists the runtime every
second and wakes the workers of pods whose containers changed; housekeeping
removes what the runtime holds for pods the API no longer knows; the node's
registration, status and lease run beside them; `read_logs` serves container logs.
Static pods (`staticpods`: manifest files read every `file_check_frequency`, the
manifest URL fetched every `http_check_frequency`) join the API's pods in the same
workers; their mirror pods in the API carry their
status and are never run. The eviction manager (`eviction`) watches the node's
signals, feeds the pressure conditions of the node status, evicts one pod per pass
and refuses new pods under pressure (their status Failed/Evicted).
`run()` (in `node.py`) starts containerd, the pod network and this class.

Invariants:
- The kubelet reaches the cluster only through `pyk8s.client` and the runtime only
  through the `Runtime` protocol; with `FakeRuntime`, a fake API and a fake clock
  the whole class runs in unit tests without sleeping.
- Pods are adopted, never restarted, when the kubelet starts again: a worker's
  first sync compares the pod with what the runtime already runs.
- Runtime leftovers of unknown pods are removed only after the informer has listed
  and every static pod source answered once (so a restart never mistakes a running
  pod for an orphan).
- Static pods run without the API server: a failed mirror-pod write is logged and
  retried at the next sync, never an error of the pod.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import shutil
from typing import AsyncIterator, Callable

from pyk8s.client import resources
from pyk8s.client.clock import REAL_CLOCK, Clock
from pyk8s.client.errors import ApiError, is_not_found
from pyk8s.client.events import EventBroadcaster
from pyk8s.client.informers import SharedInformer
from pyk8s.client.transport import TransportError
from pyk8s.cri.runtime import ContainerState, CRIError, NotFound, Runtime
from pyk8s.kubelet import (eviction, logs, nodestatus, pods, podstatus, runtimepods,
                           sandboxes, staticpods)
from pyk8s.kubelet.auth import AuthConfig, KubeletAuth
from pyk8s.kubelet.eviction import HARD_EVICTION_GRACE, EvictionManager, NodeStats, StatsSource
from pyk8s.kubelet.logs import LogOptions
from pyk8s.kubelet.nodelease import NodeLease
from pyk8s.kubelet.nodestatus import MachineInfo, NodeStatusReporter
from pyk8s.kubelet.probes import NetworkProbes, ProbeNetwork, Prober
from pyk8s.kubelet.probing import LIVENESS, STARTUP, ProbeManager
from pyk8s.kubelet.server import LogError
from pyk8s.kubelet.settings import KubeletSettings
from pyk8s.kubelet.statusmanager import StatusManager
from pyk8s.kubelet.syncing import PodSyncer
from pyk8s.kubelet.volumes import VolumeError, VolumeManager
from pyk8s.kubelet.workers import PodWorkers, State, SyncOutcome

log = logging.getLogger(__name__)
TERMINAL = ("Succeeded", "Failed")


class ApiConfigSource:
    """ConfigMaps and Secrets for the environment, read from the API."""

    def __init__(self, client):
        self.client = client

    async def _get(self, res, namespace: str, name: str) -> dict | None:
        try:
            return await self.client.get(res, name, namespace=namespace)
        except ApiError as e:
            if is_not_found(e):
                return None
            raise

    async def config_map(self, namespace: str, name: str) -> dict | None:
        return await self._get(resources.CONFIGMAPS, namespace, name)

    async def secret(self, namespace: str, name: str) -> dict | None:
        return await self._get(resources.SECRETS, namespace, name)


class Kubelet:
    def __init__(self, settings: KubeletSettings, *, client, runtime: Runtime,
                 machine: MachineInfo, node_ip: str, clock: Clock = REAL_CLOCK,
                 runtime_name: str = "containerd", events: EventBroadcaster | None = None,
                 remove_cgroup: Callable[[str], None] = lambda parent: None,
                 read_machine: Callable[[], MachineInfo] | None = None,
                 probe_network: ProbeNetwork | None = None,
                 eviction_stats: StatsSource | None = None):
        self.settings, self.client, self.runtime = settings, client, runtime
        self.clock, self.runtime_name, self.node_ip = clock, runtime_name, node_ip
        self.machine_info = machine
        self.remove_cgroup = remove_cgroup
        self.read_machine = read_machine or (
            lambda: nodestatus.read_machine_info(settings.data_dir))
        self.broadcaster = events or EventBroadcaster(client, clock=clock)
        self.recorder = self.broadcaster.new_recorder("kubelet", host=settings.node_name)
        self.pods_by_uid: dict[str, dict] = {}
        allocatable = self.allocatable
        network = probe_network or NetworkProbes()
        # the service variables of the environment (upstream's service lister)
        self.service_informer = SharedInformer(client, resources.SERVICES, clock=clock)
        self.volumes = VolumeManager(settings, client, clock=clock, allocatable=allocatable)
        self.syncer = PodSyncer(runtime, settings, clock=clock, events=self._event,
                                runtime_name=runtime_name, config_source=ApiConfigSource(client),
                                volume_mounts=self.volumes.mounts, host_ips=self.host_ips,
                                memory_capacity=machine.memory, allocatable=allocatable,
                                probe_network=network, services=self._services)
        # static pods (from manifest files and the manifest URL) and their mirror pods
        url = staticpods.ManifestURL(settings.manifest_url, settings.manifest_url_header) \
            if settings.manifest_url else None
        self.static = staticpods.StaticPodSource(settings.manifests_dir, settings.node_name,
                                                 clock=clock, url=url)
        self.mirrors = staticpods.MirrorPods(client, settings.node_name)
        self.status_manager = StatusManager(client, clock=clock, get_pod=self._api_pod,
                                            sync_period=settings.status_sync_period)
        self.workers = PodWorkers(self, clock=clock, resync_period=settings.sync_frequency)
        self.probes = ProbeManager(Prober(runtime, network, self._event), clock=clock,
                                   get_status=self.status_manager.get,
                                   get_pod=self.pods_by_uid.get, wake=self.workers.wake)
        self.informer = SharedInformer(client, resources.PODS,
                                       field_selector=f"spec.nodeName={settings.node_name}",
                                       clock=clock)
        self.informer.add_event_handler(on_add=self._on_pod, on_update=self._on_pod_update,
                                        on_delete=self._on_pod_delete)
        # pods the eviction manager killed or refused: uid -> their terminal status
        self._evicted: dict[str, dict] = {}
        self.eviction = EvictionManager(
            settings, clock=clock, active_pods=self._active_pods, evict=self._evict,
            stats=eviction_stats or NodeStats(settings, cgroup_parent=lambda pod: (
                sandboxes.pod_cgroup_parent(settings, pod))),
            node_event=lambda kind, reason, message: self._node_event({}, kind, reason,
                                                                      message))
        self.node_status = NodeStatusReporter(client, settings, clock=clock,
                                              machine=self._machine, node_ip=node_ip,
                                              runtime_state=self._runtime_state,
                                              event=self._node_event,
                                              pressure=self._pressure)
        self.lease = NodeLease(client, settings, clock=clock, node_uid=self._node_uid)
        self._tasks: list[asyncio.Task] = []
        self._synced_once: set[str] = set()

    # ---- plumbing ------------------------------------------------------------------

    def allocatable(self) -> dict:
        return nodestatus.allocatable_quantities(self.settings, self.machine_info)

    def host_ips(self) -> list[str]:
        return [self.node_ip] if self.node_ip else []

    def _services(self) -> list[dict] | None:
        informer = self.service_informer
        return informer.store.list() if informer.has_synced else None

    def _event(self, pod: dict, kind: str, reason: str, message: str, *,
               field_path: str | None = None) -> None:
        self.recorder.event(pod, kind, reason=reason, message=message, field_path=field_path)

    def _node_event(self, node: dict, kind: str, reason: str, message: str) -> None:
        # as upstream, a node's events refer to it with its name as UID
        ref = {"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": self.settings.node_name, "uid": self.settings.node_name}}
        self.recorder.event(ref, kind, reason=reason, message=message)

    def _node_uid(self) -> str | None:
        return ((self.node_status.node or {}).get("metadata") or {}).get("uid")

    async def _machine(self) -> MachineInfo:
        self.machine_info = await asyncio.to_thread(self.read_machine)
        return self.machine_info

    async def _runtime_state(self) -> tuple:
        try:
            version = await self.runtime.version()
            status = await self.runtime.status()
            images = await self.runtime.list_images()
            return version, status, "", images
        except CRIError as e:
            return None, None, e.message, []

    def _on_pod(self, pod: dict) -> None:
        if staticpods.is_mirror(pod):
            self._on_mirror(pod)
            return
        self.pods_by_uid[pods.uid(pod)] = pod
        self.workers.update(pod)

    def _on_pod_update(self, old: dict, new: dict) -> None:
        if staticpods.is_mirror(new):
            self._on_mirror(new)
            return
        if pods.uid(old) != pods.uid(new):
            self._on_pod_delete(old)
        elif not _differ_semantically(old, new):
            # a status write (mostly our own): keep the newest copy, sync nothing,
            # as upstream's pod config does with a RECONCILE
            self.pods_by_uid[pods.uid(new)] = new
            self.workers.update(new, wake=False)
            return
        self._on_pod(new)

    def _on_pod_delete(self, pod: dict) -> None:
        if staticpods.is_mirror(pod):
            self.mirrors.gone(pod)
            self._wake_static(pod)  # upstream recreates a deleted mirror pod
            return
        uid = pods.uid(pod)
        self.pods_by_uid.pop(uid, None)
        self.workers.remove(uid, pod)

    # ---- static and mirror pods ---------------------------------------------------------

    def _on_mirror(self, mirror: dict) -> None:
        """A mirror pod is never run; its static pod's worker keeps it current."""
        self.mirrors.seen(mirror)
        self._wake_static(mirror)

    def _wake_static(self, mirror: dict) -> None:
        static = self.static.by_key(*staticpods.key(mirror))
        if static is not None:
            self.workers.wake(pods.uid(static))

    def _api_pod(self, uid: str) -> dict | None:
        """The pod as the API has it: for a static pod, its live mirror pod."""
        static = self.static.pods.get(uid)
        if static is None:
            return self.pods_by_uid.get(uid)
        return self.mirrors.current(static)

    async def sync_static_pods(self) -> None:
        """Read the manifest directory; start new static pods, stop removed ones."""
        self._static_changed(await self.static.read())

    async def sync_url_pods(self) -> None:
        """Fetch the manifest URL; start new static pods, stop removed ones."""
        self._static_changed(await self.static.fetch())

    def _static_changed(self, changes: staticpods.Changes) -> None:
        for pod in changes.removed:
            log.info("static pod %s: manifest removed", pods.full_name(pod))
            uid = pods.uid(pod)
            self.pods_by_uid.pop(uid, None)
            self.workers.remove(uid, pod)
        for pod in changes.added:
            log.info("static pod %s: manifest added", pods.full_name(pod))
            self.pods_by_uid[pods.uid(pod)] = pod
            self.workers.update(pod)

    async def _static_pods(self) -> None:
        while True:
            await self.clock.sleep(self.settings.file_check_frequency)
            try:
                await self.sync_static_pods()
            except Exception:  # noqa: BLE001 - the next read may work
                log.exception("reading static pod manifests failed")

    async def _url_pods(self) -> None:
        """The manifest URL, fetched at once and then every http_check_frequency."""
        while True:
            try:
                await self.sync_url_pods()
            except Exception:  # noqa: BLE001 - the next fetch may work
                log.exception("reading static pods from the manifest URL failed")
            await self.clock.sleep(self.settings.http_check_frequency)

    async def _sync_mirror(self, pod: dict) -> bool:
        """Create (or replace) the static pod's mirror; False if the API did not take it
        (it may be unreachable: the pod runs regardless)."""
        node_uid = self._node_uid()
        if not node_uid:
            return False  # the node is not registered yet (upstream waits for it too)
        try:
            if await self.mirrors.ensure(pod, node_uid):
                self.status_manager.rewrite(pods.uid(pod))
            return True
        except (ApiError, TransportError, OSError) as e:
            log.info("static pod %s: mirror pod not synced: %s", pods.full_name(pod), e)
            return False

    async def _delete_orphaned_mirrors(self) -> None:
        if not self.static.listed:
            return
        for mirror in self.mirrors.orphans(self.static.pods):
            try:
                await self.mirrors.delete(mirror)
            except (ApiError, TransportError) as e:
                log.info("deleting orphaned mirror pod failed: %s", e)

    # ---- node-pressure eviction ---------------------------------------------------------

    def _pressure(self) -> frozenset[str] | None:
        """Conditions under pressure; None before the eviction manager's first pass."""
        return self.eviction.pressure if self.eviction.observations else None

    def _active_pods(self) -> list[dict]:
        return [p for uid, p in self.pods_by_uid.items()
                if uid not in self._evicted and self.workers.state(uid) == State.SYNCING
                and (self.status_manager.get(uid) or {}).get("phase") not in TERMINAL]

    async def _evict(self, pod: dict, message: str, signal: str,
                     grace: int = HARD_EVICTION_GRACE) -> bool:
        """Kill the pod within `grace` seconds (1 s for a hard threshold); its status
        becomes Failed/Evicted."""
        uid = pods.uid(pod)
        if uid in self._evicted or not self.workers.known(uid):
            return False
        log.warning("eviction manager: evicting pod %s: %s", pods.full_name(pod), message)
        self._evicted[uid] = _evicted_status(message, self.clock.now().strftime(
            "%Y-%m-%dT%H:%M:%SZ"))
        self._event(pod, "Warning", "Evicted", message)
        self.workers.kill(uid, grace)
        return True

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self, *, loops: bool = True) -> None:
        """Register the node, watch pods; with `loops`, run every periodic loop.

        Without `loops` (unit tests) the caller drives `relist`, `housekeeping`,
        `status_manager.sync_batch`, `node_status.update` and `lease.renew` itself.
        """
        version = await self.runtime.version()
        self.runtime_name = version.runtime_name
        self.syncer.runtime_name = version.runtime_name
        try:
            await self.node_status.register()
        except (ApiError, TransportError) as e:
            if not loops:
                raise
            # static pods start without the API server; the node status loop
            # registers the node once the API answers
            log.warning("registering node %s failed (retrying): %s", self.settings.node_name, e)
        self._node_event({}, "Normal", "Starting", "Starting kubelet.")
        await self.sync_static_pods()
        if loops:
            background = {"status manager": self.status_manager.run(), "pleg": self._pleg(),
                          "housekeeping": self._housekeeping(),
                          "node status": self.node_status.run(), "node lease": self.lease.run(),
                          "static pods": self._static_pods(),
                          "eviction manager": self.eviction.run()}
            if self.static.url is not None:
                background["static pods from the URL"] = self._url_pods()
            self._tasks = [asyncio.create_task(c, name=f"kubelet {n}")
                           for n, c in background.items()]
        self.service_informer.start()
        self.informer.start()

    async def stop(self) -> None:
        """Stop the loops; pods keep running (a restarted kubelet adopts them)."""
        await self.informer.stop()
        await self.service_informer.stop()
        await self.workers.stop()
        await self.probes.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.broadcaster.flush(timeout=2.0)

    async def wait_synced(self, timeout: float | None = None) -> bool:
        return await self.informer.wait_for_sync(timeout)

    # ---- the pod workers' callbacks -----------------------------------------------------

    async def _runtime_status(self, pod: dict) -> runtimepods.RuntimePodStatus:
        m = pods.meta(pod)
        return await runtimepods.get_pod_status(self.runtime, pods.uid(pod),
                                                m.get("name", ""), m.get("namespace", ""))

    async def _generate(self, pod: dict, status: runtimepods.RuntimePodStatus, *,
                        terminal: bool) -> dict:
        uid = pods.uid(pod)
        messages = await asyncio.to_thread(self.syncer.termination_messages, uid, status) \
            if any(c.exited for c in status.containers) else {}
        old = self.status_manager.get(uid) or pod.get("status") or {}
        generated = podstatus.generate(
            pod, status, old=old, terminal=terminal, runtime_name=self.runtime_name,
            host_ips=self.host_ips(), start_failures=self.syncer.start_failures.get(uid, {}),
            termination_messages=messages, ready=lambda c: self.probes.ready(uid, c),
            started=lambda c: self.probes.started(uid, c))
        if uid in self._evicted:
            generated = _overlay(generated, self._evicted[uid])
        return generated

    async def _report(self, pod: dict, *, terminal: bool = False
                      ) -> tuple[runtimepods.RuntimePodStatus, dict]:
        status = await self._runtime_status(pod)
        api_status = await self._generate(pod, status, terminal=terminal)
        self.status_manager.set_pod_status(pod, api_status)
        self.probes.status_updated(pods.uid(pod))
        return status, api_status

    async def sync_pod(self, pod: dict) -> SyncOutcome:
        status, api_status = await self._report(pod)
        uid = pods.uid(pod)
        if uid not in self._synced_once and not status.sandboxes \
                and api_status["phase"] == "Pending":
            rejection = eviction.admit(pod, self.eviction.pressure)
            if rejection:
                # upstream's rejectPod: the pod never starts, its phase is Failed
                log.info("pod %s rejected: %s", pods.full_name(pod), rejection)
                self._event(pod, "Warning", eviction.REASON, rejection)
                self._evicted[uid] = {"phase": "Failed", "reason": eviction.REASON,
                                      "message": f"Pod was rejected: {rejection}"}
                await self._report(pod)
                return SyncOutcome(terminal=True)
        if uid not in self._synced_once:
            self._synced_once.add(uid)
            if status.running_containers:
                log.info("pod %s: adopted %d running container(s) from the runtime",
                         pods.full_name(pod), len(status.running_containers))
        if api_status["phase"] in TERMINAL:
            return SyncOutcome(terminal=True)
        mirror_retry = None
        if uid in self.static.pods and not await self._sync_mirror(pod):
            mirror_retry = self.settings.sync_error_retry
        try:
            await self.volumes.setup(pod)
        except VolumeError as e:
            self._event(pod, "Warning", "FailedMount",
                        f"MountVolume.SetUp failed: {e}")
            raise
        self.probes.add_pod(pod)
        result = await self.syncer.sync_pod(pod, status,
                                            liveness_failed=self.probes.failed(LIVENESS),
                                            startup_failed=self.probes.failed(STARTUP),
                                            startup_succeeded=self.probes.succeeded(STARTUP))
        if result.changed:
            await self._report(pod)
        retry = result.retry_after
        if result.error and retry is None:
            retry = self.settings.sync_error_retry
        for soon in (self.volumes.next_token_refresh(pods.uid(pod)), mirror_retry):
            if soon is not None:
                retry = soon if retry is None else min(retry, soon)
        return SyncOutcome(retry_after=retry)

    async def sync_terminating_pod(self, pod: dict, grace_period: int) -> None:
        self.probes.stop_liveness_and_startup(pods.uid(pod))
        status, _ = await self._report(pod)
        await self.syncer.kill_pod(pod, status, grace_override=grace_period)
        status = await self._runtime_status(pod)
        if status.running_containers:
            raise RuntimeError(f"pod {pods.full_name(pod)}: containers still running "
                               "after being killed")
        self.status_manager.set_pod_status(pod, await self._generate(pod, status,
                                                                     terminal=True))

    async def sync_terminated_pod(self, pod: dict) -> None:
        self.probes.remove_pod(pods.uid(pod))
        await self._report(pod, terminal=True)
        await self.volumes.teardown(pods.uid(pod))
        self._remove_cgroup(pod)
        self.status_manager.terminate_pod(pod)

    async def pod_removed(self, uid: str, pod: dict) -> None:
        self.probes.remove_pod(uid)
        status = await runtimepods.get_pod_status(self.runtime, uid)
        if status.running_containers:
            await self.syncer.kill_pod(pod, status, grace_override=1)
        await self.syncer.remove_pod(uid, status)
        await self.volumes.teardown(uid)
        await asyncio.to_thread(_remove_tree, sandboxes.pod_dir(self.settings, uid))
        await asyncio.to_thread(_remove_tree, sandboxes.pod_log_directory(self.settings, pod))
        self._remove_cgroup(pod)
        self.status_manager.forget(uid)
        self.syncer.forget(uid)
        self._synced_once.discard(uid)
        self._evicted.pop(uid, None)

    def _remove_cgroup(self, pod: dict) -> None:
        """Remove the pod's cgroup parent (containerd leaves it behind)."""
        if (pod.get("status") or {}).get("qosClass") or pods.containers(pod):
            parents = [sandboxes.pod_cgroup_parent(self.settings, pod)]
        else:  # a pod known only from the runtime: its QoS class is unknown
            parents = [f"{sandboxes.qos_cgroup(self.settings, qos)}/pod{pods.uid(pod)}"
                       for qos in (pods.GUARANTEED, pods.BURSTABLE, pods.BEST_EFFORT)]
        for parent in parents:
            try:
                self.remove_cgroup(parent)
            except OSError as e:
                log.info("pod cgroup %s not removed yet: %s", parent, e)

    # ---- PLEG and housekeeping ------------------------------------------------------

    async def relist(self, previous: dict[str, tuple] | None) -> dict[str, tuple]:
        """One PLEG relist: wake the workers of pods whose runtime state changed."""
        sandboxes_ = await self.runtime.list_pod_sandboxes()
        containers = await self.runtime.list_containers()
        current = runtimepods.states_fingerprint(sandboxes_, containers)
        if previous is not None:
            for uid in set(current) | set(previous):
                if current.get(uid) != previous.get(uid):
                    self.workers.wake(uid)
        return current

    async def _pleg(self) -> None:
        previous = None
        while True:
            try:
                previous = await self.relist(previous)
            except CRIError as e:
                log.warning("PLEG relist failed: %s", e.message)
            await self.clock.sleep(self.settings.relist_period)

    async def housekeeping(self) -> list[str]:
        """Remove runtime pods the API does not know; returns their UIDs."""
        if not self.informer.has_synced or not self.static.listed:
            return []  # upstream waits for every pod source (sourcesReady)
        await self._delete_orphaned_mirrors()
        removed = []
        for uid, rp in (await runtimepods.list_runtime_pods(self.runtime)).items():
            if uid in self.pods_by_uid or self.workers.known(uid):
                continue
            status = await runtimepods.get_pod_status(self.runtime, uid)
            orphan = {"metadata": {"name": rp.name, "namespace": rp.namespace, "uid": uid},
                      "spec": {}}
            log.info("removing runtime leftovers of pod %s/%s (%s)", rp.namespace, rp.name, uid)
            await self.syncer.kill_pod(orphan, status, grace_override=1)
            await self.syncer.remove_pod(uid, status)
            await asyncio.to_thread(_remove_tree, sandboxes.pod_dir(self.settings, uid))
            await asyncio.to_thread(_remove_tree,
                                    sandboxes.pod_log_directory(self.settings, orphan))
            self._remove_cgroup(orphan)
            removed.append(uid)
        self.syncer.backoff.gc()
        return removed

    async def _housekeeping(self) -> None:
        while True:
            await self.clock.sleep(self.settings.housekeeping_period)
            try:
                await self.housekeeping()
            except CRIError as e:
                log.warning("housekeeping failed: %s", e.message)

    # ---- logs --------------------------------------------------------------------------

    def _find_pod(self, namespace: str, name: str) -> dict:
        pod = self.informer.store.get_object(namespace, name)
        static = self.static.by_key(namespace, name)
        if static is not None and (pod is None or staticpods.is_mirror(pod)):
            return static  # a mirror pod's logs are its static pod's
        if pod is None:
            raise LogError(404, f"pods \"{name}\" not found", reason="NotFound")
        return pod

    def _log_container_id(self, pod: dict, container: str, previous: bool) -> str:
        """Which container instance to read (upstream's validateContainerLogStatus)."""
        name = pods.meta(pod).get("name")
        status = self.status_manager.get(pods.uid(pod)) or pod.get("status") or {}
        found = next((s for s in (status.get("containerStatuses") or [])
                      + (status.get("initContainerStatuses") or [])
                      if s.get("name") == container), None)
        if found is None:
            raise LogError(400, f"container \"{container}\" in pod \"{name}\" is not available")
        state, last = found.get("state") or {}, found.get("lastState") or {}
        last_id = (last.get("terminated") or {}).get("containerID", "")
        if previous:
            if not last_id:
                raise LogError(400, f"previous terminated container \"{container}\" in pod "
                                    f"\"{name}\" not found")
            return last_id
        if "running" in state:
            return found.get("containerID", "")
        if "terminated" in state:
            cid = state["terminated"].get("containerID") or last_id
            if not cid:
                raise LogError(400, f"container \"{container}\" in pod \"{name}\" is "
                                    "terminated")
            return cid
        if last_id:
            return last_id
        reason = (state.get("waiting") or {}).get("reason", "")
        detail = {"ErrImagePull": "image can't be pulled",
                  "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
        if "waiting" in state:
            raise LogError(400, f"container \"{container}\" in pod \"{name}\" is waiting to "
                                f"start: {detail}")
        raise LogError(400, f"container \"{container}\" in pod \"{name}\" is waiting to start "
                            "- no logs yet")

    async def read_logs(self, namespace: str, pod_name: str, container: str | None = None,
                        *, follow: bool = False, previous: bool = False,
                        tail_lines: int | None = None, since_seconds: int | None = None,
                        since_time: datetime.datetime | None = None, timestamps: bool = False,
                        limit_bytes: int | None = None) -> AsyncIterator[bytes]:
        """A container's log stream, as `kubectl logs` asks for it (PodLogOptions).

        `container` may be omitted for a pod with one container. Raises `LogError`
        (before any byte is streamed) when there is nothing to read.
        """
        if since_seconds is not None:
            since_time = self.clock.now() - datetime.timedelta(seconds=since_seconds)
        options = LogOptions(follow=follow, tail_lines=tail_lines, since_time=since_time,
                             timestamps=timestamps, limit_bytes=limit_bytes)
        pod = self._find_pod(namespace, pod_name)
        names = [c["name"] for c in pods.containers(pod)]
        if container is None:
            if len(names) != 1:
                raise LogError(400, f"a container name must be specified for pod {pod_name}, "
                                    f"choose one of: [{' '.join(names)}]")
            container = names[0]
        cid = self._log_container_id(pod, container, previous).split("://", 1)[-1]
        try:
            status = await self.runtime.container_status(cid)
        except NotFound:
            raise LogError(400, f"container \"{container}\" in pod \"{pod_name}\": its "
                                "container has been removed") from None
        if not status.log_path:
            raise LogError(400, f"container \"{container}\" in pod \"{pod_name}\" has no "
                                "log file")

        async def running() -> bool:
            try:
                return (await self.runtime.container_status(cid)).state == \
                    ContainerState.RUNNING
            except CRIError:
                return False

        try:
            open(status.log_path, "rb").close()
        except OSError as e:
            raise LogError(400, f"failed to open log file of container \"{container}\": "
                                f"{e.strerror}") from None
        return logs.read_log(status.log_path, options, still_running=running)


_VOLATILE_META = ("resourceVersion", "managedFields", "generation")


def _differ_semantically(old: dict, new: dict) -> bool:
    """Whether anything but the status (and bookkeeping metadata) changed."""
    if old.get("spec") != new.get("spec"):
        return True

    def strip(m: dict | None) -> dict:
        return {k: v for k, v in (m or {}).items() if k not in _VOLATILE_META}

    return strip(old.get("metadata")) != strip(new.get("metadata"))


def _evicted_status(message: str, now: str) -> dict:
    """What eviction sets in a pod's status (upstream's evictPod status function)."""
    return {"phase": "Failed", "reason": eviction.REASON, "message": message,
            "conditions": [{"type": "DisruptionTarget", "status": "True",
                            "reason": "TerminationByKubelet", "message": message,
                            "lastProbeTime": None, "lastTransitionTime": now}]}


def _overlay(status: dict, terminal: dict) -> dict:
    """`status` with the fields of an eviction or rejection (`terminal`) put over it."""
    out = dict(status, **{k: v for k, v in terminal.items() if k != "conditions"})
    added = terminal.get("conditions") or []
    kinds = {c["type"] for c in added}
    out["conditions"] = [c for c in status.get("conditions") or []
                         if c.get("type") not in kinds] + added
    return out


def _remove_tree(path) -> None:
    shutil.rmtree(path, ignore_errors=True)


async def run(settings: KubeletSettings, *, kubeconfig: str | None = None, client=None,
              container_runtime_endpoint: str = "", bridge: str = "pyk8s0",
              tls_cert: str = "", tls_key: str = "", client_ca: str = "",
              auth: AuthConfig | None = None, stop: asyncio.Event | None = None,
              started: Callable[[Kubelet], None] | None = None,
              rotate_certificates: bool = True) -> None:
    """Run a node until `stop` is set: containerd, the pod network, the kubelet.

    Order: blackhole routes, containerd (started under the data dir and adopted on
    a restart, or `container_runtime_endpoint`), offline images, the Node
    registration, the CNI conflist for the node's pod CIDR (the flag's, else the
    one the control plane assigned), then the pod loops and the HTTPS endpoint.
    On stop the loops end; containerd and the pods keep running. ``auth`` says who
    may call the HTTPS endpoint (``auth.SECURE`` for server and agent nodes).
    With ``rotate_certificates`` and a kubeconfig holding the node's own certificate,
    the certificate manager renews it while the node runs (certrotation.py); the node
    stops if it expires unrenewed.
    """
    from pyk8s.client.config import load_config
    from pyk8s.client.rest import Client
    from pyk8s.cri.containerd import remove_cgroup_parent
    from pyk8s.kubelet import node, portforward, server, stats, streaming, syslogs

    machine = await asyncio.to_thread(nodestatus.read_machine_info, settings.data_dir)
    if not settings.node_ip:
        settings = dataclasses.replace(
            settings, node_ip=await asyncio.to_thread(nodestatus.detect_node_ip))
    containerd = await node.start_runtime(settings.data_dir,
                                          endpoint=container_runtime_endpoint)
    own_client = client is None
    if client is None:
        client = Client(load_config(kubeconfig))
    runtime = containerd.runtime()
    kubelet = Kubelet(settings, client=client, runtime=runtime, machine=machine,
                      node_ip=settings.node_ip, remove_cgroup=remove_cgroup_parent)
    runner = None
    rotation = None
    if own_client and rotate_certificates:
        from pyk8s.kubelet.certrotation import CertificateRotator
        rotator = CertificateRotator.for_kubeconfig(client, kubeconfig, settings.node_name)
        if rotator is not None:
            rotation = asyncio.create_task(rotator.run(), name="kubelet certificate rotation")
    try:
        await kubelet.start()
        pod_cidr = kubelet.node_status.pod_cidr
        while not pod_cidr:
            log.info("waiting for the control plane to assign a pod CIDR to %s",
                     settings.node_name)
            await kubelet.clock.sleep(1.0)
            try:
                kubelet.node_status.node = await client.get(resources.NODES, settings.node_name)
            except (ApiError, TransportError) as e:
                log.info("reading node %s failed: %s", settings.node_name, e)
            pod_cidr = kubelet.node_status.pod_cidr
        if not container_runtime_endpoint:
            # a runtime someone else runs has its own network config
            await asyncio.to_thread(node.write_network, settings.data_dir, pod_cidr=pod_cidr,
                                    bridge=bridge)
        if tls_cert and tls_key:
            cert, key = tls_cert, tls_key
        else:
            cert, key = await asyncio.to_thread(
                server.self_signed, settings.root_dir / "pki", machine.hostname,
                [settings.node_ip, settings.address])
        context = server.ssl_context(cert, key, client_ca or None)
        setups: list[server.AppSetup] = [streaming.routes(kubelet)]
        setups.append(portforward.routes(kubelet))
        setups.append(stats.routes(kubelet))
        setups.append(syslogs.routes(settings.system_log_dir
                                     if settings.enable_system_log_handler else None))
        # authentication and authorization of callers (auth.py; upstream's flag defaults
        # unless ``auth`` says otherwise)
        callers = KubeletAuth(auth or AuthConfig(), client=client,
                              node_name=settings.node_name)
        middlewares: list = [callers.middleware]
        runner = await server.serve(kubelet, address=settings.address, port=settings.port,
                                    context=context, setups=setups, middlewares=middlewares)
        if started is not None:
            started(kubelet)
        stopped = asyncio.ensure_future((stop or asyncio.Event()).wait())
        try:
            await asyncio.wait({stopped} | ({rotation} if rotation else set()),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if rotation is not None and rotation.done():
            rotation.result()  # CertificateExpired: the node has no identity left
    finally:
        if rotation is not None:
            rotation.cancel()
            await asyncio.gather(rotation, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        await kubelet.stop()
        await runtime.close()
        if own_client:
            await client.close()
