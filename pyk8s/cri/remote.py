"""`Runtime` over CRI `runtime.v1` gRPC on a unix socket (containerd, CRI-O).

One grpc.aio channel per instance; create and use it from one event loop. gRPC
errors become `CRIError` subclasses by status code. Stop/remove calls swallow
NOT_FOUND to keep the protocol's idempotency whatever the runtime does.
"""
from __future__ import annotations

from types import EllipsisType
from typing import Any, Awaitable, Callable, Mapping, Sequence

import grpc

from pyk8s.cri import api_pb2 as pb
from pyk8s.cri import api_pb2_grpc as pb_grpc
from pyk8s.cri import messages as msg
from pyk8s.cri.runtime import (
    CRI_API_VERSION, DEFAULT_REQUEST_TIMEOUT, Config, Container, ContainerState,
    ContainerStats, ContainerStatus, CRIError, DeadlineExceeded, ExecResult,
    FilesystemUsage, Image, InvalidArgument, NotFound, PodSandbox, PodSandboxStats,
    PodSandboxStatus, RuntimeStatus, SandboxState, Unavailable, Unimplemented, VersionInfo,
)

# As upstream's kubelet: CRI messages (ExecSync output, big lists) up to 16 MiB.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

_ERRORS: dict[grpc.StatusCode, type[CRIError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def grpc_target(endpoint: str) -> str:
    """`unix:///run/x.sock` or a bare path -> the gRPC target for the socket."""
    if endpoint.startswith("unix://"):
        return "unix:" + endpoint[len("unix://"):]
    if endpoint.startswith("/"):
        return "unix:" + endpoint
    raise ValueError(f"unsupported CRI endpoint {endpoint!r}: want unix:///path or /path")


def _error(e: grpc.aio.AioRpcError) -> CRIError:
    kind = _ERRORS.get(e.code(), CRIError)
    return kind(e.details() or str(e.code()), code=e.code().name)


class RemoteRuntime:
    """A CRI runtime reached over `endpoint` (see `grpc_target`)."""

    def __init__(self, endpoint: str, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT):
        self.endpoint = endpoint
        self.request_timeout = request_timeout
        self._channel = grpc.aio.insecure_channel(grpc_target(endpoint), options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
            # A restarted runtime is noticed quickly; gRPC's default waits up to 2 min.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 3000),
        ])
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self._images = pb_grpc.ImageServiceStub(self._channel)

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any, *,
                    timeout: float | None | EllipsisType = ...) -> Any:
        deadline = self.request_timeout if timeout is ... else timeout
        try:
            return await method(request, timeout=deadline)
        except grpc.aio.AioRpcError as e:
            raise _error(e) from None

    async def _idempotent(self, method: Callable[..., Awaitable[Any]], request: Any, *,
                          timeout: float | None | EllipsisType = ...) -> None:
        try:
            await self._call(method, request, timeout=timeout)
        except NotFound:
            pass  # already gone: the protocol promises idempotent stop/remove

    async def close(self) -> None:
        await self._channel.close()

    # ---- RuntimeService ---------------------------------------------------

    async def version(self, *, timeout: float | None = None) -> VersionInfo:
        r = await self._call(self._runtime.Version,
                             pb.VersionRequest(version=CRI_API_VERSION),
                             timeout=timeout or self.request_timeout)
        return msg.version(r)

    async def status(self) -> RuntimeStatus:
        return msg.runtime_status(await self._call(self._runtime.Status, pb.StatusRequest()))

    async def run_pod_sandbox(self, config: Config, *, runtime_handler: str = "") -> str:
        r = await self._call(self._runtime.RunPodSandbox, pb.RunPodSandboxRequest(
            config=msg.parse(config, pb.PodSandboxConfig), runtime_handler=runtime_handler))
        return r.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._idempotent(self._runtime.StopPodSandbox,
                               pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._idempotent(self._runtime.RemovePodSandbox,
                               pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        r = await self._call(self._runtime.PodSandboxStatus,
                             pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id))
        return msg.sandbox_status(r.status)

    async def list_pod_sandboxes(self, *, id: str | None = None,
                                 state: SandboxState | None = None,
                                 labels: Mapping[str, str] | None = None) -> list[PodSandbox]:
        f = pb.PodSandboxFilter(id=id or "", label_selector=dict(labels or {}))
        if state is not None:
            f.state.state = msg.sandbox_state_pb(state)
        r = await self._call(self._runtime.ListPodSandbox, pb.ListPodSandboxRequest(filter=f))
        return [msg.sandbox(s) for s in r.items]

    async def create_container(self, sandbox_id: str, config: Config,
                               sandbox_config: Config) -> str:
        r = await self._call(self._runtime.CreateContainer, pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=msg.parse(config, pb.ContainerConfig),
            sandbox_config=msg.parse(sandbox_config, pb.PodSandboxConfig)))
        return r.container_id

    async def start_container(self, container_id: str) -> None:
        await self._call(self._runtime.StartContainer,
                         pb.StartContainerRequest(container_id=container_id))

    async def stop_container(self, container_id: str, *, timeout: int) -> None:
        # The runtime waits `timeout` before it kills: leave it that long on top.
        await self._idempotent(
            self._runtime.StopContainer,
            pb.StopContainerRequest(container_id=container_id, timeout=timeout),
            timeout=self.request_timeout + max(timeout, 0))

    async def remove_container(self, container_id: str) -> None:
        await self._idempotent(self._runtime.RemoveContainer,
                               pb.RemoveContainerRequest(container_id=container_id))

    async def list_containers(self, *, id: str | None = None, sandbox_id: str | None = None,
                              state: ContainerState | None = None,
                              labels: Mapping[str, str] | None = None) -> list[Container]:
        f = pb.ContainerFilter(id=id or "", pod_sandbox_id=sandbox_id or "",
                               label_selector=dict(labels or {}))
        if state is not None:
            f.state.state = msg.container_state_pb(state)
        r = await self._call(self._runtime.ListContainers, pb.ListContainersRequest(filter=f))
        return [msg.container(c) for c in r.containers]

    async def container_status(self, container_id: str) -> ContainerStatus:
        r = await self._call(self._runtime.ContainerStatus,
                             pb.ContainerStatusRequest(container_id=container_id))
        return msg.container_status(r.status)

    async def update_container_resources(self, container_id: str, linux: Config) -> None:
        await self._call(self._runtime.UpdateContainerResources,
                         pb.UpdateContainerResourcesRequest(
                             container_id=container_id,
                             linux=msg.parse(linux, pb.LinuxContainerResources)))

    async def reopen_container_log(self, container_id: str) -> None:
        await self._call(self._runtime.ReopenContainerLog,
                         pb.ReopenContainerLogRequest(container_id=container_id))

    async def exec_sync(self, container_id: str, cmd: Sequence[str], *,
                        timeout: float = 0) -> ExecResult:
        # CRI takes whole seconds; round up so a 0.5 s probe timeout is not "forever".
        seconds = int(-(-timeout // 1)) if timeout > 0 else 0
        r = await self._call(
            self._runtime.ExecSync,
            pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=seconds),
            # as upstream: no deadline without a timeout, else the runtime's plus ours
            timeout=(self.request_timeout + seconds) if seconds else None)
        return ExecResult(stdout=r.stdout, stderr=r.stderr, exit_code=r.exit_code)

    async def exec(self, container_id: str, cmd: Sequence[str], *, tty: bool = False,
                   stdin: bool = False, stdout: bool = True, stderr: bool = True) -> str:
        r = await self._call(self._runtime.Exec, pb.ExecRequest(
            container_id=container_id, cmd=list(cmd), tty=tty, stdin=stdin, stdout=stdout,
            stderr=stderr and not tty))
        return r.url

    async def attach(self, container_id: str, *, tty: bool = False, stdin: bool = False,
                     stdout: bool = True, stderr: bool = True) -> str:
        r = await self._call(self._runtime.Attach, pb.AttachRequest(
            container_id=container_id, tty=tty, stdin=stdin, stdout=stdout,
            stderr=stderr and not tty))
        return r.url

    async def port_forward(self, sandbox_id: str, ports: Sequence[int] = ()) -> str:
        r = await self._call(self._runtime.PortForward, pb.PortForwardRequest(
            pod_sandbox_id=sandbox_id, port=list(ports)))
        return r.url

    async def container_stats(self, container_id: str) -> ContainerStats:
        r = await self._call(self._runtime.ContainerStats,
                             pb.ContainerStatsRequest(container_id=container_id))
        return msg.container_stats(r.stats)

    async def list_container_stats(self, *, id: str | None = None,
                                   sandbox_id: str | None = None,
                                   labels: Mapping[str, str] | None = None
                                   ) -> list[ContainerStats]:
        f = pb.ContainerStatsFilter(id=id or "", pod_sandbox_id=sandbox_id or "",
                                    label_selector=dict(labels or {}))
        r = await self._call(self._runtime.ListContainerStats,
                             pb.ListContainerStatsRequest(filter=f))
        return [msg.container_stats(s) for s in r.stats]

    async def pod_sandbox_stats(self, sandbox_id: str) -> PodSandboxStats:
        r = await self._call(self._runtime.PodSandboxStats,
                             pb.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id))
        return msg.sandbox_stats(r.stats)

    # ---- ImageService -----------------------------------------------------

    async def list_images(self, image: str | None = None) -> list[Image]:
        f = pb.ImageFilter(image=pb.ImageSpec(image=image or ""))
        r = await self._call(self._images.ListImages, pb.ListImagesRequest(filter=f))
        return [msg.image(i) for i in r.images]

    async def image_status(self, image: str) -> Image | None:
        r = await self._call(self._images.ImageStatus,
                             pb.ImageStatusRequest(image=pb.ImageSpec(image=image)))
        return msg.image(r.image) if r.HasField("image") else None

    async def pull_image(self, image: str, *, auth: Config | None = None,
                         sandbox_config: Config | None = None) -> str:
        request = pb.PullImageRequest(image=pb.ImageSpec(image=image))
        if auth is not None:
            request.auth.CopyFrom(msg.parse(auth, pb.AuthConfig))
        if sandbox_config is not None:
            request.sandbox_config.CopyFrom(msg.parse(sandbox_config, pb.PodSandboxConfig))
        # As upstream, a pull has no deadline: big images take long.
        r = await self._call(self._images.PullImage, request, timeout=None)
        return r.image_ref

    async def remove_image(self, image: str) -> None:
        await self._idempotent(self._images.RemoveImage,
                               pb.RemoveImageRequest(image=pb.ImageSpec(image=image)))

    async def image_fs_info(self) -> list[FilesystemUsage]:
        r = await self._call(self._images.ImageFsInfo, pb.ImageFsInfoRequest())
        return [msg.filesystem_usage(f) for f in r.image_filesystems]
