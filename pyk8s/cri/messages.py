"""Conversions between `runtime.v1` protobuf messages and the values of `runtime.py`.

Shared by the remote and the fake runtime, so both parse configs the same way (proto
field names, unknown keys rejected) and shape results identically. Protobuf only; no
gRPC here.
"""
from __future__ import annotations

from typing import Mapping, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from pyk8s.cri import api_pb2 as pb
from pyk8s.cri.runtime import (
    Config, Container, ContainerMetadata, ContainerState, ContainerStats, ContainerStatus,
    FilesystemUsage, Image, InvalidArgument, PodSandbox, PodSandboxMetadata,
    PodSandboxStats, PodSandboxStatus, RuntimeCondition, RuntimeStatus, SandboxState,
    VersionInfo,
)

M = TypeVar("M", bound=Message)


def parse(config: Config | None, message_type: type[M]) -> M:
    """A dict in the CRI message shape -> the message; bad shapes -> InvalidArgument."""
    message = message_type()
    if config is None:
        return message
    if isinstance(config, Message):
        message.CopyFrom(config)
        return message
    try:
        json_format.ParseDict(dict(config), message)
    except json_format.ParseError as e:
        raise InvalidArgument(f"invalid {message_type.__name__}: {e}") from None
    return message


def to_dict(message: Message) -> dict:
    """The message as a dict with proto field names (the inverse of `parse`)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def sandbox_state_pb(state: SandboxState) -> int:
    return pb.PodSandboxState.Value(state.value)


def container_state_pb(state: ContainerState) -> int:
    return pb.ContainerState.Value(state.value)


def _opt(wrapper: Message, field: str) -> int | None:
    """The value of an optional UInt64Value/Int64Value field, None when unset."""
    return getattr(wrapper, field).value if wrapper.HasField(field) else None


def version(r: pb.VersionResponse) -> VersionInfo:
    return VersionInfo(version=r.version, runtime_name=r.runtime_name,
                       runtime_version=r.runtime_version,
                       runtime_api_version=r.runtime_api_version)


def runtime_status(r: pb.StatusResponse) -> RuntimeStatus:
    return RuntimeStatus(conditions=tuple(
        RuntimeCondition(type=c.type, status=c.status, reason=c.reason, message=c.message)
        for c in r.status.conditions))


def sandbox_metadata(m: pb.PodSandboxMetadata) -> PodSandboxMetadata:
    return PodSandboxMetadata(name=m.name, uid=m.uid, namespace=m.namespace,
                              attempt=m.attempt)


def sandbox(s: pb.PodSandbox) -> PodSandbox:
    return PodSandbox(id=s.id, metadata=sandbox_metadata(s.metadata),
                      state=SandboxState(pb.PodSandboxState.Name(s.state)),
                      created_at=s.created_at, labels=dict(s.labels),
                      annotations=dict(s.annotations), runtime_handler=s.runtime_handler)


def sandbox_status(s: pb.PodSandboxStatus) -> PodSandboxStatus:
    network_mode = pb.NamespaceMode.Name(s.linux.namespaces.options.network)
    return PodSandboxStatus(
        id=s.id, metadata=sandbox_metadata(s.metadata),
        state=SandboxState(pb.PodSandboxState.Name(s.state)), created_at=s.created_at,
        ip=s.network.ip, additional_ips=tuple(a.ip for a in s.network.additional_ips),
        network_mode=network_mode, labels=dict(s.labels),
        annotations=dict(s.annotations), runtime_handler=s.runtime_handler)


def container_metadata(m: pb.ContainerMetadata) -> ContainerMetadata:
    return ContainerMetadata(name=m.name, attempt=m.attempt)


def container(c: pb.Container) -> Container:
    return Container(id=c.id, pod_sandbox_id=c.pod_sandbox_id,
                     metadata=container_metadata(c.metadata), image=c.image.image,
                     image_ref=c.image_ref,
                     state=ContainerState(pb.ContainerState.Name(c.state)),
                     created_at=c.created_at, labels=dict(c.labels),
                     annotations=dict(c.annotations))


def container_status(s: pb.ContainerStatus) -> ContainerStatus:
    return ContainerStatus(
        id=s.id, metadata=container_metadata(s.metadata),
        state=ContainerState(pb.ContainerState.Name(s.state)), created_at=s.created_at,
        started_at=s.started_at, finished_at=s.finished_at, exit_code=s.exit_code,
        image=s.image.image, image_ref=s.image_ref, reason=s.reason, message=s.message,
        labels=dict(s.labels), annotations=dict(s.annotations), log_path=s.log_path)


def image(i: pb.Image) -> Image:
    return Image(id=i.id, repo_tags=tuple(i.repo_tags), repo_digests=tuple(i.repo_digests),
                 size=i.size, uid=_opt(i, "uid"), username=i.username, pinned=i.pinned)


def filesystem_usage(f: pb.FilesystemUsage) -> FilesystemUsage:
    return FilesystemUsage(timestamp=f.timestamp, mountpoint=f.fs_id.mountpoint,
                           used_bytes=_opt(f, "used_bytes"),
                           inodes_used=_opt(f, "inodes_used"))


def container_stats(s: pb.ContainerStats) -> ContainerStats:
    timestamp = max(s.cpu.timestamp, s.memory.timestamp, s.writable_layer.timestamp)
    return ContainerStats(
        id=s.attributes.id, name=s.attributes.metadata.name,
        labels=dict(s.attributes.labels), annotations=dict(s.attributes.annotations),
        timestamp=timestamp,
        cpu_usage_core_nano_seconds=_opt(s.cpu, "usage_core_nano_seconds"),
        cpu_usage_nano_cores=_opt(s.cpu, "usage_nano_cores"),
        memory_working_set_bytes=_opt(s.memory, "working_set_bytes"),
        memory_usage_bytes=_opt(s.memory, "usage_bytes"),
        memory_rss_bytes=_opt(s.memory, "rss_bytes"),
        writable_layer_used_bytes=_opt(s.writable_layer, "used_bytes"))


def sandbox_stats(s: pb.PodSandboxStats) -> PodSandboxStats:
    linux = s.linux
    iface = linux.network.default_interface
    return PodSandboxStats(
        id=s.attributes.id, metadata=sandbox_metadata(s.attributes.metadata),
        labels=dict(s.attributes.labels), annotations=dict(s.attributes.annotations),
        timestamp=max(linux.cpu.timestamp, linux.memory.timestamp),
        cpu_usage_core_nano_seconds=_opt(linux.cpu, "usage_core_nano_seconds"),
        memory_working_set_bytes=_opt(linux.memory, "working_set_bytes"),
        network_rx_bytes=_opt(iface, "rx_bytes"), network_tx_bytes=_opt(iface, "tx_bytes"),
        process_count=_opt(linux.process, "process_count"),
        containers=tuple(container_stats(c) for c in linux.containers))


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str] | None) -> bool:
    return not selector or all(labels.get(k) == v for k, v in selector.items())
