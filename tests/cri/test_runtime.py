"""The Runtime contract itself: image names, config parsing, both implementations."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import pyk8s
from pyk8s.cri import api_pb2 as pb
from pyk8s.cri import messages
from pyk8s.cri.fake import FakeRuntime
from pyk8s.cri.remote import RemoteRuntime, grpc_target
from pyk8s.cri.runtime import InvalidArgument, Runtime, normalize_image


@pytest.mark.parametrize("ref, full", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("nginx:1.22", "docker.io/library/nginx:1.22"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("library/busybox:1.35", "docker.io/library/busybox:1.35"),
    ("bitnami/redis", "docker.io/bitnami/redis:latest"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
    ("sha256:" + "b" * 64, "sha256:" + "b" * 64),
])
def test_normalize_image(ref, full):
    assert normalize_image(ref) == full


def test_configs_parse_by_proto_field_names():
    config = messages.parse({"metadata": {"name": "a", "uid": "u", "namespace": "n"},
                             "port_mappings": [{"protocol": "UDP", "container_port": 53}],
                             "linux": {"sysctls": {"net.ipv4.ip_forward": "1"}}},
                            pb.PodSandboxConfig)
    assert config.port_mappings[0].protocol == pb.UDP
    assert config.linux.sysctls["net.ipv4.ip_forward"] == "1"
    assert messages.to_dict(config)["metadata"] == {"name": "a", "uid": "u", "namespace": "n"}
    with pytest.raises(InvalidArgument, match="PodSandboxConfig"):
        messages.parse({"metadata": {"name": 3}}, pb.PodSandboxConfig)


def test_endpoints():
    assert grpc_target("unix:///run/containerd/containerd.sock") == \
        "unix:/run/containerd/containerd.sock"
    assert grpc_target("/tmp/x.sock") == "unix:/tmp/x.sock"
    with pytest.raises(ValueError):
        grpc_target("tcp://127.0.0.1:1234")


def _protocol_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(Runtime, name)) for name in dir(Runtime)
            if not name.startswith("_") and inspect.iscoroutinefunction(getattr(Runtime, name))}


@pytest.mark.parametrize("impl", [RemoteRuntime, FakeRuntime])
def test_implementations_keep_the_protocol_signatures(impl):
    methods = _protocol_methods()
    assert len(methods) >= 25
    for name, expected in methods.items():
        actual = inspect.signature(getattr(impl, name))
        assert inspect.iscoroutinefunction(getattr(impl, name)), name
        # the implementation takes every parameter of the protocol, the same way
        for param in expected.parameters.values():
            got = actual.parameters.get(param.name)
            assert got is not None, f"{impl.__name__}.{name} lacks {param.name}"
            assert (got.kind, got.default) == (param.kind, param.default), (name, param.name)


def test_the_kubelet_reaches_grpc_only_through_cri():
    # The layering rule is "only pyk8s/cri imports gRPC"; this checks the runtime's
    # side of it (the kubelet and anything else built on the Runtime seam).
    kubelet = Path(pyk8s.__path__[0]) / "kubelet"
    offenders = []
    for path in kubelet.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("grpc", "google") for n in names):
                offenders.append(path.name)
    assert offenders == []
