"""`FakeRuntime`: the `Runtime` contract in memory, for simulated nodes and unit tests.

It keeps sandboxes and containers with CRI's states and rules as containerd applies
them (names reserved per sandbox, IPs from a pool released at stop, idempotent
stop/remove, NOT_FOUND for unknown ids, images resolved by normalised name), and
parses configs with the same proto shapes as the remote runtime. Nothing runs:
containers stay RUNNING until a test (or a simulated workload) ends them with
`exit_container`/`oom_kill`, or the kubelet stops them.

Test hooks, none of them part of `Runtime`: `exit_container`, `oom_kill`,
`emit_log` (appends CRI-format lines to the container's log file), `inject`
(fail the next calls of a method), `calls` (what was called, in order), `streams`
(exec/attach/port-forward requests by URL token), and the `exec_handler`,
`registry`, `clock` constructor arguments.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import inspect
import ipaddress
import itertools
import secrets
import time
from pathlib import Path
from typing import Awaitable, Callable, Iterable, Mapping, Sequence

from pyk8s.cri import api_pb2 as pb
from pyk8s.cri import messages as msg
from pyk8s.cri.runtime import (
    CRI_API_VERSION, Config, Container, ContainerMetadata, ContainerState, ContainerStats,
    ContainerStatus, CRIError, ExecResult, FilesystemUsage, Image, InvalidArgument,
    NotFound, PodSandbox, PodSandboxMetadata, PodSandboxStats, PodSandboxStatus,
    RuntimeCondition, RuntimeStatus, SandboxState, VersionInfo, normalize_image,
)

ExecHandler = Callable[[str, Sequence[str]], "ExecResult | Awaitable[ExecResult]"]
# SIGKILL's exit status, as runc reports a killed process.
KILLED = 137


@dataclasses.dataclass
class FakeSandbox:
    id: str
    config: pb.PodSandboxConfig
    state: SandboxState
    created_at: int
    ip: str
    runtime_handler: str

    @property
    def host_network(self) -> bool:
        return (self.config.linux.security_context.namespace_options.network
                == pb.NamespaceMode.NODE)


@dataclasses.dataclass
class FakeContainer:
    id: str
    sandbox_id: str
    config: pb.ContainerConfig
    image: Image
    state: ContainerState
    created_at: int
    log_path: str
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    resources: pb.LinuxContainerResources = dataclasses.field(
        default_factory=pb.LinuxContainerResources)


def _image_id(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _new_id() -> str:
    return secrets.token_hex(32)


def _accept_any(image: str) -> bool:
    return True


class FakeRuntime:
    """An in-memory container runtime; see the module docstring for its test hooks.

    `pod_cidr` is the pool sandbox IPs come from (.1 is the bridge's, as on a
    real node). `images` are present from the start; `registry(name)` decides
    whether `pull_image` finds a missing image (default: every image).
    `stop_exit_code` is what a container exits with when stopped with a grace
    period (its process honoured the signal); without one it is SIGKILLed (137).
    """

    def __init__(self, *, pod_cidr: str = "10.42.0.0/24", images: Iterable[str] = (),
                 registry: Callable[[str], bool] = _accept_any,
                 exec_handler: ExecHandler | None = None,
                 clock: Callable[[], int] = time.time_ns, stop_exit_code: int = 0,
                 runtime_name: str = "fake", runtime_version: str = "0.1.0",
                 streaming_base: str = "http://fake-runtime.invalid"):
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.containers: dict[str, FakeContainer] = {}
        self.images: dict[str, Image] = {}  # by normalised name
        self.calls: list[tuple[str, ...]] = []
        self.streams: dict[str, tuple] = {}
        self.network_ready = True
        self._net = ipaddress.ip_network(pod_cidr)
        self._free_ips = list(itertools.islice(self._net.hosts(), 1, None))
        self._registry = registry
        self._exec_handler = exec_handler
        self._clock = clock
        self._stop_exit_code = stop_exit_code
        self._version = VersionInfo(version="0.1.0", runtime_name=runtime_name,
                                    runtime_version=runtime_version,
                                    runtime_api_version=CRI_API_VERSION)
        self._streaming_base = streaming_base.rstrip("/")
        self._faults: dict[str, list[CRIError]] = {}
        for name in images:
            self._add_image(name)

    # ---- test hooks -------------------------------------------------------

    def inject(self, method: str, error: CRIError, times: int = 1) -> None:
        """Make the next `times` calls of `method` (e.g. "run_pod_sandbox") raise."""
        self._faults.setdefault(method, []).extend([error] * times)

    def exit_container(self, container_id: str, exit_code: int = 0, *,
                       reason: str | None = None, message: str = "") -> None:
        """The container's process ends with `exit_code` (reason as containerd's)."""
        c = self._container(container_id)
        if c.state != ContainerState.RUNNING:
            raise CRIError(f"container {container_id} is in {c.state.value} state")
        self._exit(c, exit_code, reason=reason, message=message)

    def oom_kill(self, container_id: str) -> None:
        """The kernel's OOM killer ends the container."""
        self.exit_container(container_id, KILLED, reason="OOMKilled")

    def emit_log(self, container_id: str, line: str, *, stream: str = "stdout") -> None:
        """Append one line to the container's CRI log file, as containerd writes it."""
        c = self._container(container_id)
        if not c.log_path:
            raise CRIError(f"container {container_id} has no log path")
        now = datetime.datetime.fromtimestamp(self._clock() / 1e9, datetime.timezone.utc)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path = Path(c.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(f"{stamp} {stream} F {line}\n")

    # ---- internals --------------------------------------------------------

    def _enter(self, method: str, *args: str) -> None:
        self.calls.append((method, *args))
        faults = self._faults.get(method)
        if faults:
            raise faults.pop(0)

    def _sandbox(self, sandbox_id: str) -> FakeSandbox:
        try:
            return self.sandboxes[sandbox_id]
        except KeyError:
            raise NotFound(f"an error occurred when try to find sandbox {sandbox_id!r}: "
                           "not found") from None

    def _container(self, container_id: str) -> FakeContainer:
        try:
            return self.containers[container_id]
        except KeyError:
            raise NotFound(f"an error occurred when try to find container "
                           f"{container_id!r}: not found") from None

    def _add_image(self, name: str) -> Image:
        name = normalize_image(name)
        image = Image(id=_image_id(name), repo_tags=(name,), repo_digests=(), size=1 << 20,
                      uid=None, username="")
        self.images[name] = image
        return image

    def _find_image(self, ref: str) -> Image | None:
        if ref.startswith("sha256:"):
            return next((i for i in self.images.values() if i.id == ref), None)
        return self.images.get(normalize_image(ref))

    def _exit(self, c: FakeContainer, exit_code: int, *, reason: str | None = None,
              message: str = "") -> None:
        c.state = ContainerState.EXITED
        c.finished_at = self._clock()
        c.exit_code = exit_code
        c.reason = reason or ("Completed" if exit_code == 0 else "Error")
        c.message = message

    @staticmethod
    def _meta(s: FakeSandbox) -> PodSandboxMetadata:
        m = s.config.metadata
        return PodSandboxMetadata(name=m.name, uid=m.uid, namespace=m.namespace,
                                  attempt=m.attempt)

    # ---- RuntimeService ---------------------------------------------------

    async def version(self, *, timeout: float | None = None) -> VersionInfo:
        self._enter("version")
        return self._version

    async def status(self) -> RuntimeStatus:
        self._enter("status")
        reason = "" if self.network_ready else "NetworkPluginNotReady"
        return RuntimeStatus(conditions=(
            RuntimeCondition(type="RuntimeReady", status=True),
            RuntimeCondition(type="NetworkReady", status=self.network_ready, reason=reason)))

    async def run_pod_sandbox(self, config: Config, *, runtime_handler: str = "") -> str:
        self._enter("run_pod_sandbox")
        cfg = msg.parse(config, pb.PodSandboxConfig)
        m = cfg.metadata
        if not (m.name and m.namespace and m.uid):
            raise InvalidArgument("sandbox metadata needs name, namespace and uid")
        key = (m.name, m.namespace, m.uid, m.attempt)
        for s in self.sandboxes.values():
            sm = s.config.metadata
            if (sm.name, sm.namespace, sm.uid, sm.attempt) == key:
                raise CRIError(f"failed to reserve sandbox name {key}: reserved for {s.id}")
        sandbox = FakeSandbox(id=_new_id(), config=cfg, state=SandboxState.READY,
                              created_at=self._clock(), ip="",
                              runtime_handler=runtime_handler)
        if not sandbox.host_network:
            if not self._free_ips:
                raise CRIError(f"failed to setup network for sandbox: no IP addresses "
                               f"available in range set {self._net}")
            sandbox.ip = str(self._free_ips.pop(0))
        self.sandboxes[sandbox.id] = sandbox
        return sandbox.id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("stop_pod_sandbox", sandbox_id)
        s = self.sandboxes.get(sandbox_id)
        if s is not None:
            self._stop_sandbox(s)

    def _stop_sandbox(self, s: FakeSandbox) -> None:
        for c in self.containers.values():
            if c.sandbox_id == s.id and c.state == ContainerState.RUNNING:
                self._exit(c, KILLED)
        if s.ip:
            self._free_ips.append(ipaddress.ip_address(s.ip))
            self._free_ips.sort()
            s.ip = ""
        s.state = SandboxState.NOTREADY

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("remove_pod_sandbox", sandbox_id)
        s = self.sandboxes.get(sandbox_id)
        if s is None:
            return
        self._stop_sandbox(s)  # as containerd: a ready sandbox is stopped first
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            del self.containers[cid]
        del self.sandboxes[sandbox_id]

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        self._enter("pod_sandbox_status", sandbox_id)
        s = self._sandbox(sandbox_id)
        return PodSandboxStatus(
            id=s.id, metadata=self._meta(s), state=s.state, created_at=s.created_at,
            ip=s.ip, additional_ips=(), network_mode="NODE" if s.host_network else "POD",
            labels=dict(s.config.labels), annotations=dict(s.config.annotations),
            runtime_handler=s.runtime_handler)

    async def list_pod_sandboxes(self, *, id: str | None = None,
                                 state: SandboxState | None = None,
                                 labels: Mapping[str, str] | None = None) -> list[PodSandbox]:
        self._enter("list_pod_sandboxes")
        return [PodSandbox(id=s.id, metadata=self._meta(s), state=s.state,
                           created_at=s.created_at, labels=dict(s.config.labels),
                           annotations=dict(s.config.annotations),
                           runtime_handler=s.runtime_handler)
                for s in self.sandboxes.values()
                if (not id or s.id == id) and (state is None or s.state == state)
                and msg.labels_match(s.config.labels, labels)]

    async def create_container(self, sandbox_id: str, config: Config,
                               sandbox_config: Config) -> str:
        self._enter("create_container", sandbox_id)
        cfg = msg.parse(config, pb.ContainerConfig)
        sandbox_cfg = msg.parse(sandbox_config, pb.PodSandboxConfig)
        s = self._sandbox(sandbox_id)
        if s.state != SandboxState.READY:
            raise CRIError(f"sandbox {sandbox_id} is not ready")
        if not cfg.metadata.name:
            raise InvalidArgument("container metadata needs a name")
        image = self._find_image(cfg.image.image)
        if image is None:
            raise NotFound(f"failed to resolve image {cfg.image.image!r}: not found")
        key = (cfg.metadata.name, cfg.metadata.attempt)
        for c in self.containers.values():
            if c.sandbox_id == sandbox_id and (c.config.metadata.name,
                                               c.config.metadata.attempt) == key:
                raise CRIError(f"failed to reserve container name {key}: reserved for {c.id}")
        log_dir = sandbox_cfg.log_directory or s.config.log_directory
        log_path = str(Path(log_dir) / cfg.log_path) if log_dir and cfg.log_path else ""
        c = FakeContainer(id=_new_id(), sandbox_id=sandbox_id, config=cfg, image=image,
                          state=ContainerState.CREATED, created_at=self._clock(),
                          log_path=log_path)
        c.resources.CopyFrom(cfg.linux.resources)
        self.containers[c.id] = c
        return c.id

    async def start_container(self, container_id: str) -> None:
        self._enter("start_container", container_id)
        c = self._container(container_id)
        if c.state != ContainerState.CREATED:
            raise CRIError(f"failed to set starting state for container {container_id!r}: "
                           f"container is in {c.state.value} state")
        c.state = ContainerState.RUNNING
        c.started_at = self._clock()

    async def stop_container(self, container_id: str, *, timeout: int) -> None:
        self._enter("stop_container", container_id)
        c = self.containers.get(container_id)
        if c is None or c.state != ContainerState.RUNNING:
            return
        self._exit(c, self._stop_exit_code if timeout > 0 else KILLED)

    async def remove_container(self, container_id: str) -> None:
        self._enter("remove_container", container_id)
        self.containers.pop(container_id, None)

    async def list_containers(self, *, id: str | None = None, sandbox_id: str | None = None,
                              state: ContainerState | None = None,
                              labels: Mapping[str, str] | None = None) -> list[Container]:
        self._enter("list_containers")
        return [Container(id=c.id, pod_sandbox_id=c.sandbox_id,
                          metadata=ContainerMetadata(name=c.config.metadata.name,
                                                     attempt=c.config.metadata.attempt),
                          image=c.config.image.image, image_ref=c.image.id, state=c.state,
                          created_at=c.created_at, labels=dict(c.config.labels),
                          annotations=dict(c.config.annotations))
                for c in self.containers.values()
                if (not id or c.id == id) and (not sandbox_id or c.sandbox_id == sandbox_id)
                and (state is None or c.state == state)
                and msg.labels_match(c.config.labels, labels)]

    async def container_status(self, container_id: str) -> ContainerStatus:
        self._enter("container_status", container_id)
        c = self._container(container_id)
        return ContainerStatus(
            id=c.id, metadata=ContainerMetadata(name=c.config.metadata.name,
                                                attempt=c.config.metadata.attempt),
            state=c.state, created_at=c.created_at, started_at=c.started_at,
            finished_at=c.finished_at, exit_code=c.exit_code, image=c.image.repo_tags[0],
            image_ref=c.image.id, reason=c.reason, message=c.message,
            labels=dict(c.config.labels), annotations=dict(c.config.annotations),
            log_path=c.log_path)

    async def update_container_resources(self, container_id: str, linux: Config) -> None:
        self._enter("update_container_resources", container_id)
        resources = msg.parse(linux, pb.LinuxContainerResources)
        c = self._container(container_id)
        if c.state not in (ContainerState.CREATED, ContainerState.RUNNING):
            raise CRIError(f"container {container_id} is in {c.state.value} state")
        c.resources = resources

    async def reopen_container_log(self, container_id: str) -> None:
        self._enter("reopen_container_log", container_id)
        if self._container(container_id).state != ContainerState.RUNNING:
            raise CRIError(f"container {container_id} is not running")

    async def exec_sync(self, container_id: str, cmd: Sequence[str], *,
                        timeout: float = 0) -> ExecResult:
        self._enter("exec_sync", container_id, *cmd)
        c = self._container(container_id)
        if c.state != ContainerState.RUNNING:
            raise CRIError(f"failed to exec in container: container is in "
                           f"{c.state.value} state")
        if self._exec_handler is None:
            return ExecResult(stdout=b"", stderr=b"", exit_code=0)
        result = self._exec_handler(container_id, list(cmd))
        return await result if inspect.isawaitable(result) else result

    def _stream(self, kind: str, request: tuple) -> str:
        token = secrets.token_urlsafe(6)
        self.streams[token] = (kind, *request)
        return f"{self._streaming_base}/{kind}/{token}"

    async def exec(self, container_id: str, cmd: Sequence[str], *, tty: bool = False,
                   stdin: bool = False, stdout: bool = True, stderr: bool = True) -> str:
        self._enter("exec", container_id)
        if self._container(container_id).state != ContainerState.RUNNING:
            raise CRIError(f"container {container_id} is not running")
        return self._stream("exec", (container_id, tuple(cmd), tty, stdin, stdout, stderr))

    async def attach(self, container_id: str, *, tty: bool = False, stdin: bool = False,
                     stdout: bool = True, stderr: bool = True) -> str:
        self._enter("attach", container_id)
        self._container(container_id)
        return self._stream("attach", (container_id, tty, stdin, stdout, stderr))

    async def port_forward(self, sandbox_id: str, ports: Sequence[int] = ()) -> str:
        self._enter("port_forward", sandbox_id)
        self._sandbox(sandbox_id)
        return self._stream("portforward", (sandbox_id, tuple(ports)))

    def _stats(self, c: FakeContainer) -> ContainerStats:
        running = c.state == ContainerState.RUNNING
        return ContainerStats(
            id=c.id, name=c.config.metadata.name, labels=dict(c.config.labels),
            annotations=dict(c.config.annotations), timestamp=self._clock(),
            cpu_usage_core_nano_seconds=0, cpu_usage_nano_cores=0,
            memory_working_set_bytes=(1 << 20) if running else 0,
            memory_usage_bytes=(1 << 20) if running else 0, memory_rss_bytes=0,
            writable_layer_used_bytes=0)

    async def container_stats(self, container_id: str) -> ContainerStats:
        self._enter("container_stats", container_id)
        return self._stats(self._container(container_id))

    async def list_container_stats(self, *, id: str | None = None,
                                   sandbox_id: str | None = None,
                                   labels: Mapping[str, str] | None = None
                                   ) -> list[ContainerStats]:
        self._enter("list_container_stats")
        return [self._stats(c) for c in self.containers.values()
                if c.state == ContainerState.RUNNING and (not id or c.id == id)
                and (not sandbox_id or c.sandbox_id == sandbox_id)
                and msg.labels_match(c.config.labels, labels)]

    async def pod_sandbox_stats(self, sandbox_id: str) -> PodSandboxStats:
        self._enter("pod_sandbox_stats", sandbox_id)
        s = self._sandbox(sandbox_id)
        containers = tuple(self._stats(c) for c in self.containers.values()
                           if c.sandbox_id == sandbox_id and c.state == ContainerState.RUNNING)
        return PodSandboxStats(
            id=s.id, metadata=self._meta(s), labels=dict(s.config.labels),
            annotations=dict(s.config.annotations), timestamp=self._clock(),
            cpu_usage_core_nano_seconds=0,
            memory_working_set_bytes=sum(c.memory_working_set_bytes or 0 for c in containers),
            network_rx_bytes=0, network_tx_bytes=0,
            process_count=len(containers) + (s.state == SandboxState.READY),
            containers=containers)

    # ---- ImageService -----------------------------------------------------

    async def list_images(self, image: str | None = None) -> list[Image]:
        self._enter("list_images")
        if image:
            found = self._find_image(image)
            return [found] if found else []
        return list(self.images.values())

    async def image_status(self, image: str) -> Image | None:
        self._enter("image_status", image)
        return self._find_image(image)

    async def pull_image(self, image: str, *, auth: Config | None = None,
                         sandbox_config: Config | None = None) -> str:
        self._enter("pull_image", image)
        msg.parse(auth, pb.AuthConfig)
        msg.parse(sandbox_config, pb.PodSandboxConfig)
        name = normalize_image(image)
        if not self._registry(name):
            raise CRIError(f"failed to pull and unpack image {name!r}: failed to resolve "
                           f"reference {name!r}: not found")
        return self._add_image(name).id

    async def remove_image(self, image: str) -> None:
        self._enter("remove_image", image)
        found = self._find_image(image)
        if found is not None:
            for name in found.repo_tags:
                self.images.pop(name, None)

    async def image_fs_info(self) -> list[FilesystemUsage]:
        self._enter("image_fs_info")
        return [FilesystemUsage(timestamp=self._clock(), mountpoint="/fake/images",
                                used_bytes=sum(i.size for i in self.images.values()),
                                inodes_used=len(self.images))]

    async def close(self) -> None:
        self._enter("close")
