"""Carrying out a pod's actions on the runtime: upstream's kuberuntime SyncPod and KillPod.

Role: `PodSyncer.sync_pod` computes the pod's actions (`actions.compute_pod_actions`)
and performs them in upstream's order: kill the pod (or single containers), prune
dead containers, create the sandbox, start init containers (the next one, and
sidecars to restart), start regular containers, each start going through the
restart back-off, the image puller, the container config and
CreateContainer/StartContainer, with upstream's events
(SandboxChanged, FailedCreatePodSandBox, Pulled, Created, Started, Failed, BackOff,
Killing), the postStart hook after a start (FailedPostStartHook kills the container)
and the preStop hook before a stop, paid out of the grace period (`hooks`).
`kill_pod` stops every running container with a grace period, sidecars last in
reverse order of declaration (`TerminationOrdering`), then the sandboxes;
`remove_pod` deletes what the runtime still holds of a pod.

Invariants:
- Every start failure is remembered per pod and container (`start_failures`,
  upstream's reasonCache) with the waiting reason the status shows
  (CrashLoopBackOff, ErrImagePull, ImagePullBackOff, CreateContainerConfigError,
  CreateContainerError, RunContainerError, PostStartHookError); a successful start
  clears it.
- A container instance's restart count is its predecessor's plus one; its log file
  is `<pod log dir>/<name>/<restart count>.log`; CRI's attempt number equals it.
- Of a container's dead instances only the newest is kept (for `--previous` logs
  and lastState); older ones and their log files are removed.
- `SyncResult.retry_after` says when a back-off ends, so the worker syncs again
  exactly then; a container that failed to start is retried at least every
  `container_backoff_initial` (upstream's pod-worker backOffPeriod).
- Stopping uses the pod's grace period (deletion's, else the spec's), at least
  `minimum_grace_period`, unless the caller overrides it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
from pathlib import Path
from typing import Awaitable, Callable, Protocol

from pyk8s import aio
from pyk8s.api.quantities import Quantity
from pyk8s.client.clock import Clock
from pyk8s.cri.runtime import CRIError, Image, Runtime
from pyk8s.kubelet import actions as act
from pyk8s.kubelet import containers as ctr
from pyk8s.kubelet import hooks, logs, pods, sandboxes, staticpods
from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.podstatus import StartFailure
from pyk8s.kubelet.probes import NetworkProbes, ProbeNetwork
from pyk8s.kubelet.pulling import ImagePuller, ImagePullError
from pyk8s.kubelet.runtimepods import ContainerRecord, RuntimePodStatus
from pyk8s.kubelet.settings import KubeletSettings

log = logging.getLogger(__name__)

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"
RUN_CONTAINER_ERROR = "RunContainerError"
POST_START_HOOK_ERROR = "PostStartHookError"
MAX_TERMINATION_MESSAGE = 4096  # upstream's MaxContainerTerminationMessageLength


class EventSink(Protocol):
    def __call__(self, pod: dict, event_type: str, reason: str, message: str, *,
                 field_path: str | None = None) -> None: ...


# (pod, container) -> the container's volume mounts as CRI `Mount`s.
MountsFn = Callable[[dict, dict], Awaitable[list[dict]]]


async def _no_volumes(pod: dict, container: dict) -> list[dict]:
    return []


def go_duration(seconds: float) -> str:
    """A duration as Go prints it: 10s, 1m20s, 5m0s."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{rest}s"


def field_path(pod: dict, name: str) -> str:
    kind = "initContainers" if any(c["name"] == name for c in pods.init_containers(pod)) \
        else "containers"
    return f"spec.{kind}{{{name}}}"


def backoff_key(pod: dict, container: dict) -> str:
    """Upstream's GetStableKey: pod identity, container name and spec hash."""
    m = pods.meta(pod)
    return (f"{m.get('name')}_{m.get('namespace')}_{m.get('uid')}_{container['name']}_"
            f"{pods.container_hash(container)}")


@dataclasses.dataclass
class SyncResult:
    changed: bool = False  # something was created, started, killed or removed
    retry_after: float | None = None
    error: str = ""

    def retry(self, seconds: float) -> None:
        self.retry_after = seconds if self.retry_after is None \
            else min(self.retry_after, seconds)


class PodSyncer:
    def __init__(self, runtime: Runtime, settings: KubeletSettings, *, clock: Clock,
                 events: EventSink, runtime_name: str = "containerd",
                 config_source: ctr.ConfigSource | None = None,
                 volume_mounts: MountsFn = _no_volumes,
                 host_ips: Callable[[], list[str]] = list,
                 memory_capacity: int = 1 << 34,
                 allocatable: Callable[[], dict[str, Quantity]] = dict,
                 probe_network: ProbeNetwork | None = None,
                 services: Callable[[], list[dict] | None] = list):
        self.runtime, self.settings, self.clock = runtime, settings, clock
        self.events, self.runtime_name = events, runtime_name
        self.config_source = config_source or ctr.NoConfigSource()
        self.volume_mounts, self.host_ips = volume_mounts, host_ips
        self.memory_capacity, self.allocatable = memory_capacity, allocatable
        self.network = probe_network or NetworkProbes()
        self.services = services
        self.backoff = Backoff(settings.container_backoff_initial,
                               settings.container_backoff_max, clock=clock)
        self.puller = ImagePuller(runtime, Backoff(settings.image_backoff_initial,
                                                   settings.image_backoff_max, clock=clock),
                                  offline=settings.offline_images)
        self.start_failures: dict[str, dict[str, StartFailure]] = {}
        self._resolv_conf: str | None = None

    # ---- helpers -----------------------------------------------------------------------

    def _event(self, pod: dict, kind: str, reason: str, message: str,
               container: str | None = None) -> None:
        self.events(pod, kind, reason, message,
                    field_path=field_path(pod, container) if container else None)

    def _fail(self, pod: dict, name: str, reason: str, message: str) -> None:
        self.start_failures.setdefault(pods.uid(pod), {})[name] = StartFailure(reason, message)

    def _succeeded(self, pod: dict, name: str) -> None:
        self.start_failures.get(pods.uid(pod), {}).pop(name, None)

    def resolv_conf(self) -> str:
        if self._resolv_conf is None:
            try:
                self._resolv_conf = self.settings.resolv_conf.read_text()
            except OSError:
                self._resolv_conf = ""
        return self._resolv_conf

    def forget(self, uid: str) -> None:
        """The pod is gone: drop its back-off and failure records."""
        self.start_failures.pop(uid, None)
        self.backoff.forget_containing(f"_{uid}_")
        self.puller.backoff.forget_containing(f"{uid}_")

    # ---- SyncPod -----------------------------------------------------------------------

    async def sync_pod(self, pod: dict, status: RuntimePodStatus, *,
                       liveness_failed: frozenset[str] = frozenset(),
                       startup_failed: frozenset[str] = frozenset(),
                       startup_succeeded: frozenset[str] | None = None) -> SyncResult:
        result = SyncResult()
        changes = act.compute_pod_actions(pod, status, liveness_failed=liveness_failed,
                                          startup_failed=startup_failed,
                                          startup_succeeded=startup_succeeded)
        if changes.create_sandbox and changes.sandbox_id:
            self._event(pod, "Normal", "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.")
        if changes.kill_pod:
            if status.running_containers or status.ready_sandboxes:
                await self.kill_pod(pod, status)
                result.changed = True
        else:
            for cid, info in changes.containers_to_kill.items():
                await self.kill_container(pod, cid, info.name, message=info.message)
                result.changed = True
        result.changed |= await self.prune(pod, status)

        sandbox_id, ips = changes.sandbox_id, list(status.ips)
        sandbox_config = sandboxes.sandbox_config(pod, changes.attempt, self.settings,
                                                  self.resolv_conf())
        if changes.create_sandbox:
            try:
                sandbox_id, ips = await self._create_sandbox(pod, sandbox_config)
            except CRIError as e:
                self._event(pod, "Warning", "FailedCreatePodSandBox",
                            f"Failed to create pod sandbox: {e.message}")
                result.error = e.message
                result.retry(self.settings.container_backoff_initial)
                return result
            result.changed = True
        if pods.is_host_network(pod):
            ips = self.host_ips()[:1]

        for index in changes.init_containers_to_start:
            container = pods.init_containers(pod)[index]
            started = await self._start(pod, container, pods.INIT, status, sandbox_id,
                                        sandbox_config, ips, result)
            if not started and not act.is_restartable(container):
                return result  # initialisation cannot go on; a sidecar's failure can wait
        for index in changes.containers_to_start:
            await self._start(pod, pods.containers(pod)[index], pods.REGULAR, status,
                              sandbox_id, sandbox_config, ips, result)
        return result

    async def _create_sandbox(self, pod: dict, config: dict) -> tuple[str, list[str]]:
        directory = sandboxes.pod_dir(self.settings, pods.uid(pod))
        await asyncio.to_thread(_make_dirs, directory, Path(config["log_directory"]))
        sandbox_id = await self.runtime.run_pod_sandbox(
            config, runtime_handler=self.settings.runtime_handler)
        status = await self.runtime.pod_sandbox_status(sandbox_id)
        ips = list(status.ips)
        host_hosts = ""
        if pods.is_host_network(pod):
            ips = self.host_ips()[:1]
            host_hosts = await asyncio.to_thread(_read, Path("/etc/hosts"))
        text = sandboxes.hosts_file(pod, ips, cluster_domain=self.settings.cluster_domain,
                                    host_hosts=host_hosts)
        await asyncio.to_thread(_write, directory / "etc-hosts", text)
        return sandbox_id, ips

    async def _start(self, pod: dict, container: dict, container_type: str,
                     status: RuntimePodStatus, sandbox_id: str, sandbox_config: dict,
                     ips: list[str], result: SyncResult) -> bool:
        name = container["name"]
        latest = status.latest(name)
        if latest is not None and latest.exited:
            # a restart: wait out the back-off, measured from the last exit
            key = backoff_key(pod, container)
            finished = _when(latest.finished_at) or self.clock.now()
            wait = self.backoff.remaining(key, finished)
            if wait > 0:
                message = (f"back-off {go_duration(self.backoff.get(key))} restarting failed "
                           f"container={name} pod={pods.full_name(pod)}")
                self._event(pod, "Warning", "BackOff",
                            f"Back-off restarting failed container {name} in pod "
                            f"{pods.full_name(pod)}", name)
                self._fail(pod, name, CRASH_LOOP_BACK_OFF, message)
                result.retry(wait)
                return False
            self.backoff.next(key, finished)
        try:
            await self.start_container(pod, container, container_type, status, sandbox_id,
                                       sandbox_config, ips)
        except _StartError as e:
            self._fail(pod, name, e.reason, e.message)
            result.error = e.message
            # upstream's pod worker requeues a failed sync after backOffPeriod (10 s), even
            # when an image back-off runs longer: the syncs in between report
            # ImagePullBackOff, so ErrImagePull and ImagePullBackOff alternate as upstream
            period = self.settings.container_backoff_initial
            result.retry(min(e.retry_after, period) if e.retry_after else period)
            return False
        finally:
            result.changed = True
        self._succeeded(pod, name)
        return True

    async def start_container(self, pod: dict, container: dict, container_type: str,
                              status: RuntimePodStatus, sandbox_id: str,
                              sandbox_config: dict, ips: list[str]) -> str:
        """Pull, configure, create and start one container (startContainer)."""
        name = container["name"]

        def event(kind: str, reason: str, message: str) -> None:
            self._event(pod, kind, reason, message, name)

        try:
            image, image_info = await self.puller.ensure(pods.uid(pod), container, event)
        except ImagePullError as e:
            retry = self.puller.backoff.remaining_since_update(
                f"{pods.uid(pod)}_{container.get('image')}")
            raise _StartError(e.reason, e.message, retry or None) from None
        latest = status.latest(name)
        restart_count = latest.restart_count + 1 if latest is not None else \
            await asyncio.to_thread(_restart_count_from_logs,
                                    Path(sandbox_config["log_directory"]) / name)
        try:
            config = await self._container_config(pod, container, container_type,
                                                  restart_count, image, image_info, ips)
        except ctr.ContainerConfigError as e:
            event("Warning", "Failed", f"Error: {e}")
            raise _StartError(CREATE_CONTAINER_CONFIG_ERROR, str(e)) from None
        try:
            cid = await self.runtime.create_container(sandbox_id, config, sandbox_config)
        except CRIError as e:
            event("Warning", "Failed", f"Error: {e.message}")
            raise _StartError(CREATE_CONTAINER_ERROR, e.message) from None
        event("Normal", "Created", f"Created container: {name}")
        try:
            await self.runtime.start_container(cid)
        except CRIError as e:
            event("Warning", "Failed", f"Error: {e.message}")
            raise _StartError(RUN_CONTAINER_ERROR, e.message) from None
        event("Normal", "Started", f"Started container {name}")
        post_start = (container.get("lifecycle") or {}).get("postStart")
        if post_start:
            message = await hooks.run_handler(
                post_start, pod=pod, container=container, container_id=cid,
                runtime=self.runtime, network=self.network, pod_ips=ips, clock=self.clock)
            if message is not None:
                # upstream kills the container and reports the hook's failure
                event("Warning", "FailedPostStartHook", message)
                await self.kill_container(pod, cid, name, message="FailedPostStartHook")
                raise _StartError(POST_START_HOOK_ERROR, message)
        return cid

    async def _container_config(self, pod: dict, container: dict, container_type: str,
                                restart_count: int, image: str, image_info: Image | None,
                                ips: list[str]) -> dict:
        if image_info is None:
            image_info = await self.runtime.image_status(image)
        ctr.check_run_as_non_root(pod, container, image_info.uid if image_info else None,
                                  image_info.username if image_info else "")
        services = self.services()
        if services is None and staticpods.is_static(pod):
            # upstream waits for the service list only for pods from the API: a
            # static pod starts with what is known (the API may be down)
            services = []
        env = await ctr.environment(pod, container, source=self.config_source, pod_ips=ips,
                                    host_ips=self.host_ips(), allocatable=self.allocatable(),
                                    services=services,
                                    warn=lambda reason, message: self._event(
                                        pod, "Warning", reason, message))
        mounts = list(await self.volume_mounts(pod, container))
        mounts += await asyncio.to_thread(self._pod_mounts, pod, container, restart_count, ips)
        namespaces = sandboxes.namespace_options(pod)
        sc = ctr.effective_security_context(pod, container)
        seccomp = sandboxes.seccomp_profile(sc.get("seccompProfile"), self.settings) \
            or {"profile_type": "Unconfined"}
        return ctr.container_config(
            pod, container, container_type=container_type, restart_count=restart_count,
            image=image, mounts=mounts, env=env, namespaces=namespaces,
            supplemental_groups=sandboxes.supplemental_groups(pod), seccomp=seccomp,
            memory_capacity=self.memory_capacity)

    def _pod_mounts(self, pod: dict, container: dict, restart_count: int,
                    ips: list[str]) -> list[dict]:
        """The termination-message file and the managed /etc/hosts (makeMounts)."""
        mounts = []
        directory = sandboxes.pod_dir(self.settings, pods.uid(pod))
        path = container.get("terminationMessagePath", "/dev/termination-log")
        if path:
            host = termination_message_file(self.settings, pods.uid(pod), container["name"],
                                            restart_count)
            host.parent.mkdir(parents=True, exist_ok=True)
            host.touch()
            os.chmod(host, 0o666)
            mounts.append({"container_path": path, "host_path": str(host)})
        hosts = directory / "etc-hosts"
        if ips and hosts.exists() and not any(
                m.get("mountPath") == "/etc/hosts" for m in container.get("volumeMounts") or []):
            mounts.append({"container_path": "/etc/hosts", "host_path": str(hosts)})
        return mounts

    # ---- killing and removing ----------------------------------------------------------

    def grace_period(self, pod: dict, override: int | None = None) -> int:
        if override is not None:
            return max(int(override), 0)
        return max(pods.termination_grace_period(pod), self.settings.minimum_grace_period)

    async def kill_container(self, pod: dict, cid: str, name: str, *, message: str = "",
                             grace_override: int | None = None,
                             pod_ips: list[str] | None = None,
                             ordering: "TerminationOrdering | None" = None) -> None:
        """Stop one container: its preStop hook within the grace period, then CRI stop.

        With `ordering`, the stop waits (out of the grace period) for the containers
        that must stop first.
        """
        try:
            await self._kill_container(pod, cid, name, message=message,
                                       grace_override=grace_override, pod_ips=pod_ips,
                                       ordering=ordering)
        finally:
            if ordering is not None:
                ordering.terminated(name)

    async def _kill_container(self, pod: dict, cid: str, name: str, *, message: str,
                              grace_override: int | None, pod_ips: list[str] | None,
                              ordering: "TerminationOrdering | None") -> None:
        self._event(pod, "Normal", "Killing", message or f"Stopping container {name}", name)
        # the preStop hook spends the grace period; the stop gets what is left, but
        # always a minimal shutdown window (upstream's killContainer)
        budget = max(int(grace_override), 0) if grace_override is not None \
            else pods.termination_grace_period(pod)
        floor = self.settings.minimum_grace_period
        if grace_override is not None:
            floor = min(floor, budget)
        container = pods.find_container(pod, name) if pods.spec(pod) else None
        pre_stop = ((container or {}).get("lifecycle") or {}).get("preStop")
        if pre_stop and budget > 0:
            budget -= await self._pre_stop(pod, container, cid, pre_stop, budget,
                                           pod_ips if pod_ips is not None else
                                           _pod_ips(pod, self.host_ips()))
        if ordering is not None and budget > 0:
            budget = max(budget - await ordering.wait_for_turn(name, budget, self.clock), 0)
        grace = max(budget, floor)
        await self.runtime.stop_container(cid, timeout=grace)

    async def _pre_stop(self, pod: dict, container: dict, cid: str, handler: dict,
                        grace: int, ips: list[str]) -> int:
        """Run the preStop hook for at most `grace` seconds; the whole seconds it took."""
        started = self.clock.monotonic()
        run = hooks.run_handler(handler, pod=pod, container=container, container_id=cid,
                                runtime=self.runtime, network=self.network, pod_ips=ips,
                                clock=self.clock)
        try:
            message = await aio.wait_for(run, grace)
        except asyncio.TimeoutError:
            log.info("preStop hook of %s in %s not completed in grace period",
                     container["name"], pods.full_name(pod))
            message = None
        if message is not None:
            self._event(pod, "Warning", "FailedPreStopHook", message, container["name"])
        return int(self.clock.monotonic() - started)

    async def kill_pod(self, pod: dict, status: RuntimePodStatus, *,
                       grace_override: int | None = None) -> None:
        """Stop every running container (concurrently, with grace), then the sandboxes.

        Sidecars stop after the regular containers, in reverse order of declaration
        (upstream's terminationOrdering), within the same grace period.
        """
        running = status.running_containers
        ordering = TerminationOrdering(pod, [c.name for c in running]) \
            if any(act.is_restartable(c) for c in pods.init_containers(pod)) else None
        await asyncio.gather(*(self.kill_container(pod, c.id, c.name,
                                                   grace_override=grace_override,
                                                   ordering=ordering)
                               for c in running))
        for s in status.sandboxes:
            await self.runtime.stop_pod_sandbox(s.id)

    async def prune(self, pod: dict, status: RuntimePodStatus) -> bool:
        """Remove dead instances of each container but the newest (container GC)."""
        removed = False
        kept: set[str] = set()
        for record in status.containers:  # newest first
            if not record.exited:
                continue
            if record.name not in kept:
                kept.add(record.name)
                continue
            await self.remove_container(record)
            removed = True
        return removed

    async def remove_container(self, record: ContainerRecord) -> None:
        await self.runtime.remove_container(record.id)
        if record.log_path:
            await asyncio.to_thread(_unlink, Path(record.log_path))

    async def remove_pod(self, uid: str, status: RuntimePodStatus) -> None:
        """Remove every container and sandbox of pod `uid`, and its log directory."""
        for record in status.containers:
            await self.runtime.remove_container(record.id)
        for s in status.sandboxes:
            await self.runtime.stop_pod_sandbox(s.id)
            await self.runtime.remove_pod_sandbox(s.id)

    # ---- termination messages ----------------------------------------------------------

    def termination_messages(self, pod_uid: str, status: RuntimePodStatus
                             ) -> dict[str, str]:
        """Messages of exited containers: the file they wrote, or their log's tail."""
        messages = {}
        for record in status.containers:
            if not record.exited or not record.termination_message_path:
                continue
            path = termination_message_file(self.settings, pod_uid, record.name,
                                            record.restart_count)
            text = _read(path, MAX_TERMINATION_MESSAGE)
            if not text and record.termination_message_policy == "FallbackToLogsOnError" \
                    and record.exit_code != 0 and record.log_path:
                text = logs.tail_text(record.log_path)
            if text:
                messages[record.id] = text
        return messages


class TerminationOrdering:
    """Which containers must stop before which: upstream's terminationOrdering.

    Every running sidecar waits for all running regular containers and for the
    running sidecars declared after it; regular containers wait for nothing.
    """

    def __init__(self, pod: dict, running: list[str]):
        names = set(running)
        self.done = {name: asyncio.Event() for name in names}
        regular = [c["name"] for c in pods.containers(pod) if c["name"] in names]
        sidecars = [c["name"] for c in pods.init_containers(pod)
                    if act.is_restartable(c) and c["name"] in names]
        self.prerequisites: dict[str, list[str]] = {
            name: regular + sidecars[i + 1:] for i, name in enumerate(sidecars)}

    async def wait_for_turn(self, name: str, timeout: float, clock: Clock) -> int:
        """Wait (at most `timeout` seconds) for `name`'s prerequisites to stop; the
        whole seconds waited."""
        waits = [self.done[p].wait() for p in self.prerequisites.get(name, [])
                 if p in self.done]
        if not waits:
            return 0
        started = clock.monotonic()
        try:
            await aio.wait_for(asyncio.gather(*waits), timeout)
        except asyncio.TimeoutError:
            log.debug("%s: stopping before its prerequisites: the grace period ran out",
                      name)
        return int(clock.monotonic() - started)

    def terminated(self, name: str) -> None:
        if name in self.done:
            self.done[name].set()


def _pod_ips(pod: dict, host_ips: list[str]) -> list[str]:
    if pods.is_host_network(pod):
        return host_ips[:1]
    return [p["ip"] for p in (pod.get("status") or {}).get("podIPs") or [] if p.get("ip")]


class _StartError(Exception):
    def __init__(self, reason: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.reason, self.message, self.retry_after = reason, message, retry_after


def termination_message_file(settings: KubeletSettings, uid: str, name: str,
                             restart_count: int) -> Path:
    return sandboxes.pod_dir(settings, uid) / "containers" / name / str(restart_count)


def _when(ns: int) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc) if ns else None


def _make_dirs(*directories: Path) -> None:
    for d in directories:
        d.mkdir(parents=True, exist_ok=True)


def _read(path: Path, limit: int = -1) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _restart_count_from_logs(directory: Path) -> int:
    """After the runtime lost a pod's containers: continue after the newest log file."""
    try:
        counts = [int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit()]
    except OSError:
        return 0
    return max(counts) + 1 if counts else 0

