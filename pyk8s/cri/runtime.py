"""The kubelet's seam to a container runtime: the `Runtime` protocol and its values.

Two implementations keep the same contract: `remote.RemoteRuntime` (CRI `runtime.v1`
over gRPC, e.g. containerd) and `fake.FakeRuntime` (in memory, for simulated nodes and
unit tests). Nothing here does I/O or imports gRPC.

Conventions every implementation keeps:

- Configs go in as plain dicts in the CRI message shape, keyed by the proto field
  names (`PodSandboxConfig`, `ContainerConfig`, `LinuxContainerResources`, ... in
  `api.proto`), e.g. ``{"metadata": {"name": "web", "namespace": "default", "uid":
  "..."}, "log_directory": "/var/log/pods/...", "linux": {...}}``. Unknown keys are
  rejected with `InvalidArgument`, as the wire would reject them.
- Results come back as frozen dataclasses below; timestamps are Unix nanoseconds as in
  CRI (0 means "not set"); labels and annotations are plain dicts.
- Errors are `CRIError` subclasses carrying the gRPC status name in `code`.
  Stop/remove calls are idempotent: an id that is already gone is not an error.
- Image references are normalised as containerd does (`busybox` ->
  `docker.io/library/busybox:latest`), see `normalize_image`.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping, Protocol, Sequence

# Upstream kubelet's --runtime-request-timeout.
DEFAULT_REQUEST_TIMEOUT = 120.0
# The CRI API version string the kubelet sends in Version().
CRI_API_VERSION = "v1"


class CRIError(Exception):
    """A runtime call failed. `code` is the gRPC status name ("UNKNOWN", ...)."""

    code = "UNKNOWN"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(CRIError):
    """The sandbox, container or image named in the call does not exist."""

    code = "NOT_FOUND"


class InvalidArgument(CRIError):
    """The request was malformed (unknown config key, wrong type, empty id...)."""

    code = "INVALID_ARGUMENT"


class Unavailable(CRIError):
    """The runtime does not answer (socket missing, daemon down or starting)."""

    code = "UNAVAILABLE"


class DeadlineExceeded(CRIError):
    """The call did not finish within its timeout."""

    code = "DEADLINE_EXCEEDED"


class Unimplemented(CRIError):
    """The runtime does not implement this call."""

    code = "UNIMPLEMENTED"


class SandboxState(str, enum.Enum):
    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


class ContainerState(str, enum.Enum):
    CREATED = "CONTAINER_CREATED"
    RUNNING = "CONTAINER_RUNNING"
    EXITED = "CONTAINER_EXITED"
    UNKNOWN = "CONTAINER_UNKNOWN"


_frozen = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)


@_frozen
class VersionInfo:
    version: str  # the CRI API version the runtime speaks, e.g. "0.1.0"
    runtime_name: str  # "containerd"
    runtime_version: str  # "1.6.20~ds1"
    runtime_api_version: str  # "v1"


@_frozen
class RuntimeCondition:
    type: str  # "RuntimeReady", "NetworkReady"
    status: bool
    reason: str = ""
    message: str = ""


@_frozen
class RuntimeStatus:
    conditions: tuple[RuntimeCondition, ...]

    def condition(self, type_: str) -> RuntimeCondition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        """Both conditions upstream's kubelet requires for a Ready node hold."""
        return all((c := self.condition(t)) is not None and c.status
                   for t in ("RuntimeReady", "NetworkReady"))


@_frozen
class PodSandboxMetadata:
    name: str
    uid: str
    namespace: str
    attempt: int = 0


@_frozen
class PodSandbox:
    """A sandbox as ListPodSandbox reports it."""

    id: str
    metadata: PodSandboxMetadata
    state: SandboxState
    created_at: int
    labels: dict[str, str]
    annotations: dict[str, str]
    runtime_handler: str = ""


@_frozen
class PodSandboxStatus:
    id: str
    metadata: PodSandboxMetadata
    state: SandboxState
    created_at: int
    ip: str  # "" when the sandbox has no pod network (hostNetwork or stopped)
    additional_ips: tuple[str, ...]
    network_mode: str  # "POD" or "NODE" (hostNetwork)
    labels: dict[str, str]
    annotations: dict[str, str]
    runtime_handler: str = ""

    @property
    def ips(self) -> tuple[str, ...]:
        return ((self.ip,) if self.ip else ()) + self.additional_ips


@_frozen
class ContainerMetadata:
    name: str
    attempt: int = 0


@_frozen
class Container:
    """A container as ListContainers reports it."""

    id: str
    pod_sandbox_id: str
    metadata: ContainerMetadata
    image: str  # the image as given in the config (normalised by the runtime)
    image_ref: str  # the image id the container runs (sha256:...)
    state: ContainerState
    created_at: int
    labels: dict[str, str]
    annotations: dict[str, str]


@_frozen
class ContainerStatus:
    """A container's status.

    containerd 1.6 reports as `image` the image's first tag in sort order (a pod
    naming `busybox` may see `docker.io/library/busybox:1.35`): the kubelet shows the
    image its pod spec names. For a process that exits at once, `finished_at` may
    come out slightly before `started_at`.
    """

    id: str
    metadata: ContainerMetadata
    state: ContainerState
    created_at: int
    started_at: int  # 0 until started
    finished_at: int  # 0 until exited
    exit_code: int  # meaningful only when finished_at != 0
    image: str
    image_ref: str
    reason: str  # "Completed", "Error", "OOMKilled" once exited
    message: str
    labels: dict[str, str]
    annotations: dict[str, str]
    log_path: str  # absolute path of the CRI log file on the host


@_frozen
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


@_frozen
class Image:
    id: str  # "sha256:<config digest>"
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int
    uid: int | None  # the image's numeric user, if its config names one
    username: str  # the image's user name, if not numeric
    pinned: bool = False


@_frozen
class FilesystemUsage:
    timestamp: int
    mountpoint: str
    used_bytes: int | None
    inodes_used: int | None


@_frozen
class ContainerStats:
    id: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    timestamp: int
    cpu_usage_core_nano_seconds: int | None
    cpu_usage_nano_cores: int | None
    memory_working_set_bytes: int | None
    memory_usage_bytes: int | None
    memory_rss_bytes: int | None
    writable_layer_used_bytes: int | None


@_frozen
class PodSandboxStats:
    id: str
    metadata: PodSandboxMetadata
    labels: dict[str, str]
    annotations: dict[str, str]
    timestamp: int
    cpu_usage_core_nano_seconds: int | None
    memory_working_set_bytes: int | None
    network_rx_bytes: int | None
    network_tx_bytes: int | None
    process_count: int | None
    containers: tuple[ContainerStats, ...]


Config = Mapping[str, Any]


def normalize_image(ref: str) -> str:
    """Fully qualify an image reference the way containerd's CRI does.

    ``busybox`` -> ``docker.io/library/busybox:latest``; ``foo/bar:1`` ->
    ``docker.io/foo/bar:1``; ``registry.k8s.io/pause:3.9`` stays; digests keep no
    tag. Image ids (``sha256:...``) are returned unchanged.
    """
    if ref.startswith("sha256:"):
        return ref
    name, at, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        # the first component is not a registry host: the path is on Docker Hub
        first, rest = "docker.io", name
    if first == "docker.io" and "/" not in rest:
        rest = "library/" + rest  # Docker Hub's official images
    name = f"{first}/{rest}"
    last = rest.rsplit("/", 1)[-1]
    if not at and ":" not in last:
        name += ":latest"
    return name + at + digest


class RuntimeService(Protocol):
    """Pod sandboxes and containers (CRI RuntimeService).

    A sandbox is the pod's shared network/IPC namespaces held by the pause process;
    containers run inside one. The kubelet creates one sandbox per pod (a new one,
    with `metadata.attempt` + 1, if the old one died), then creates and starts each
    container in it; it polls statuses (there are no events in containerd 1.6).
    """

    async def version(self) -> VersionInfo:
        """Runtime name and versions. Cheap; used as the liveness check."""
        ...

    async def status(self) -> RuntimeStatus:
        """RuntimeReady/NetworkReady conditions; the node is Ready only if both hold."""
        ...

    async def run_pod_sandbox(self, config: Config, *, runtime_handler: str = "") -> str:
        """Create and start a sandbox from a `PodSandboxConfig`; returns its id.

        On return the sandbox is READY with its network set up (its IP is in
        `pod_sandbox_status`). The same metadata (name, namespace, uid, attempt) may
        not be reused while that sandbox exists.
        """
        ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Kill every container in the sandbox, stop it and release its network (IP).

        Idempotent: stopping a stopped or unknown sandbox succeeds. The sandbox and
        its exited containers stay listed until `remove_pod_sandbox`.
        """
        ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox and all its containers (forcibly). Idempotent."""
        ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        """Status of one sandbox; raises `NotFound` if it does not exist."""
        ...

    async def list_pod_sandboxes(self, *, id: str | None = None,
                                 state: SandboxState | None = None,
                                 labels: Mapping[str, str] | None = None) -> list[PodSandbox]:
        """Sandboxes matching every given filter (labels: all must match exactly)."""
        ...

    async def create_container(self, sandbox_id: str, config: Config,
                               sandbox_config: Config) -> str:
        """Create (not start) a container from a `ContainerConfig`; returns its id.

        `sandbox_config` is the config the sandbox was run with. The image must be
        present (pull first). The container is CREATED; its log file is
        `sandbox_config.log_directory / config.log_path`.
        """
        ...

    async def start_container(self, container_id: str) -> None:
        """Start a CREATED container; it becomes RUNNING (and later EXITED)."""
        ...

    async def stop_container(self, container_id: str, *, timeout: int) -> None:
        """Stop a container: its stop signal, then SIGKILL after `timeout` seconds.

        Returns once the container has EXITED. Idempotent, also for unknown ids.
        """
        ...

    async def remove_container(self, container_id: str) -> None:
        """Remove a container (killing it if running). Idempotent."""
        ...

    async def list_containers(self, *, id: str | None = None, sandbox_id: str | None = None,
                              state: ContainerState | None = None,
                              labels: Mapping[str, str] | None = None) -> list[Container]:
        """Containers matching every given filter."""
        ...

    async def container_status(self, container_id: str) -> ContainerStatus:
        """Status of one container; raises `NotFound` if it does not exist."""
        ...

    async def update_container_resources(self, container_id: str,
                                         linux: Config) -> None:
        """Apply a `LinuxContainerResources` dict to a created or running container."""
        ...

    async def reopen_container_log(self, container_id: str) -> None:
        """Make the runtime reopen the container's log file (after rotation)."""
        ...

    async def exec_sync(self, container_id: str, cmd: Sequence[str], *,
                        timeout: float = 0) -> ExecResult:
        """Run `cmd` in a running container and wait for it (probes, simple exec).

        `timeout` in seconds, 0 for none; a command that outlives it raises
        `DeadlineExceeded`. A non-zero exit is a result, not an error.
        """
        ...

    async def exec(self, container_id: str, cmd: Sequence[str], *, tty: bool = False,
                   stdin: bool = False, stdout: bool = True, stderr: bool = True) -> str:
        """URL of the runtime's streaming server for an interactive exec."""
        ...

    async def attach(self, container_id: str, *, tty: bool = False, stdin: bool = False,
                     stdout: bool = True, stderr: bool = True) -> str:
        """URL of the runtime's streaming server to attach to the container."""
        ...

    async def port_forward(self, sandbox_id: str, ports: Sequence[int] = ()) -> str:
        """URL of the runtime's streaming server to forward ports of the sandbox."""
        ...

    async def container_stats(self, container_id: str) -> ContainerStats:
        """Resource usage of one container; raises `NotFound` if it does not exist."""
        ...

    async def list_container_stats(self, *, id: str | None = None,
                                   sandbox_id: str | None = None,
                                   labels: Mapping[str, str] | None = None
                                   ) -> list[ContainerStats]:
        """Resource usage of the (running) containers matching the filters."""
        ...

    async def pod_sandbox_stats(self, sandbox_id: str) -> PodSandboxStats:
        """Resource usage of a sandbox and its containers."""
        ...


class ImageService(Protocol):
    """Images (CRI ImageService). Names are normalised, see `normalize_image`."""

    async def list_images(self, image: str | None = None) -> list[Image]:
        """Every image, or those matching `image`."""
        ...

    async def image_status(self, image: str) -> Image | None:
        """The image if present (by name, tag, digest or id), else None."""
        ...

    async def pull_image(self, image: str, *, auth: Config | None = None,
                         sandbox_config: Config | None = None) -> str:
        """Fetch the image from its registry; returns the image id (ref).

        Raises `CRIError` when the registry cannot be reached, also for an image
        that is already present: the caller decides whether a present image may
        stand in (pull policy).
        """
        ...

    async def remove_image(self, image: str) -> None:
        """Remove the image. Idempotent."""
        ...

    async def image_fs_info(self) -> list[FilesystemUsage]:
        """Usage of the filesystem(s) holding images."""
        ...


class Runtime(RuntimeService, ImageService, Protocol):
    """A container runtime: both services plus `close()`.

    Calls are made from one event loop; implementations may be used concurrently
    from many tasks.
    """

    async def close(self) -> None:
        """Release the connection. The runtime and its pods keep running."""
        ...
