"""RemoteRuntime against a real containerd: pods, logs, exec, HTTP to nginx, errors."""
from __future__ import annotations

import asyncio
import re

import pytest

from pyk8s.cri.remote import RemoteRuntime
from pyk8s.cri.runtime import (
    ContainerState, CRIError, DeadlineExceeded, InvalidArgument, NotFound, SandboxState,
)
from .helpers import poll

pytestmark = pytest.mark.root

CRI_LOG_LINE = re.compile(r"^(\S+) (stdout|stderr) ([FP]) (.*)$")


def container(name: str, image: str, *args: str, command: list[str] | None = None,
              **extra) -> dict:
    config = {"metadata": {"name": name, "attempt": 0}, "image": {"image": image},
              "log_path": f"{name}/0.log", "labels": {"io.kubernetes.container.name": name},
              "linux": {"security_context": {"namespace_options": {"pid": "CONTAINER"}}}}
    if command is not None:
        config["command"] = command
    if args:
        config["args"] = list(args)
    config.update(extra)
    return config


def read_log(path: str) -> list[tuple[str, str]]:
    """(stream, text) of each complete line of a CRI log file."""
    lines = []
    with open(path) as f:
        for raw in f.read().splitlines():
            m = CRI_LOG_LINE.match(raw)
            assert m, f"not a CRI log line: {raw!r}"
            lines.append((m.group(2), m.group(4)))
    return lines


async def start(runtime: RemoteRuntime, pod, config: dict) -> str:
    cid = await runtime.create_container(pod.id, config, pod.config)
    await runtime.start_container(cid)
    return cid


async def test_version_and_status(runtime: RemoteRuntime):
    v = await runtime.version()
    assert v.runtime_name == "containerd"
    assert v.runtime_api_version == "v1"
    status = await runtime.status()
    assert status.ready, status


async def test_busybox_logs_exec_and_graceful_stop(runtime: RemoteRuntime, pods):
    pod = await pods("shell")
    script = ("trap 'echo bye; exit 0' TERM; echo hello from pyk8s; echo oops >&2; "
              "sleep 3600 & wait")
    cid = await start(runtime, pod, container("shell", "busybox", command=["sh", "-c", script]))

    status = await runtime.container_status(cid)
    assert status.state == ContainerState.RUNNING
    assert status.started_at > 0 and status.finished_at == 0
    assert status.log_path == f"{pod.config['log_directory']}/shell/0.log"
    assert status.labels["io.kubernetes.container.name"] == "shell"

    async def logged():
        try:
            lines = read_log(status.log_path)
        except FileNotFoundError:
            return None
        return lines if ("stdout", "hello from pyk8s") in lines else None
    lines = await poll(logged, what="the container's first log line")
    assert ("stderr", "oops") in lines

    r = await runtime.exec_sync(cid, ["cat", "/etc/hostname"], timeout=10)
    assert (r.exit_code, r.stdout.strip()) == (0, b"shell")
    r = await runtime.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3)
    with pytest.raises(DeadlineExceeded):
        await runtime.exec_sync(cid, ["sleep", "30"], timeout=1)

    await runtime.stop_container(cid, timeout=10)
    status = await runtime.container_status(cid)
    assert status.state == ContainerState.EXITED
    assert (status.exit_code, status.reason) == (0, "Completed")
    assert ("stdout", "bye") in read_log(status.log_path)

    await runtime.remove_container(cid)
    with pytest.raises(NotFound):
        await runtime.container_status(cid)
    await runtime.remove_container(cid)  # idempotent
    await runtime.stop_container(cid, timeout=1)


async def test_exit_code_and_restart_attempt(runtime: RemoteRuntime, pods):
    pod = await pods("crash")
    cid = await start(runtime, pod, container("app", "busybox", command=["sh", "-c", "exit 7"]))

    async def exited():
        s = await runtime.container_status(cid)
        return s if s.state == ContainerState.EXITED else None
    status = await poll(exited, what="the container to exit")
    assert (status.exit_code, status.reason) == (7, "Error")
    # containerd stamps started_at after the task started: for a process that exits
    # at once, finished_at can come out a little *before* started_at.
    assert status.started_at > 0 and status.finished_at > 0

    # the kubelet restarts a container as attempt + 1 in the same sandbox
    retry = container("app", "busybox", command=["true"])
    retry["metadata"]["attempt"] = 1
    second = await start(runtime, pod, retry)
    listed = await runtime.list_containers(sandbox_id=pod.id)
    assert {(c.id, c.metadata.attempt) for c in listed} == {(cid, 0), (second, 1)}
    with pytest.raises(CRIError):  # (name, attempt) is reserved while it exists
        await runtime.create_container(pod.id, container("app", "busybox"), pod.config)


async def test_nginx_serves_welcome_page_at_pod_ip(runtime: RemoteRuntime, pods):
    pod = await pods("web")
    cid = await start(runtime, pod, container("nginx", "nginx"))

    async def get():
        # only to the pod IP this test created (checked inside the subnet by `pods`)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(pod.ip, 80), timeout=1)
        except (OSError, asyncio.TimeoutError):
            return None
        try:
            writer.write(f"GET / HTTP/1.0\r\nHost: {pod.ip}\r\n\r\n".encode())
            return (await asyncio.wait_for(reader.read(), timeout=5)).decode()
        finally:
            writer.close()
    response = await poll(get, timeout=30, what=f"nginx on {pod.ip}:80")
    assert response.startswith("HTTP/1.1 200")
    assert "<h1>Welcome to nginx!</h1>" in response

    status = await runtime.container_status(cid)
    async def access_logged():
        return any('"GET / HTTP/1.0" 200' in text for _, text in read_log(status.log_path))
    await poll(access_logged, what="nginx's access log line in the CRI log")

    # nginx stops on SIGQUIT (the image's StopSignal) and exits 0
    await runtime.stop_container(cid, timeout=10)
    status = await runtime.container_status(cid)
    assert (status.state, status.exit_code) == (ContainerState.EXITED, 0)


async def test_sandbox_lifecycle_filters_and_idempotency(runtime: RemoteRuntime, pods):
    pod = await pods("life")
    other = await pods("host", host_network=True)
    assert other.ip == ""
    assert (await runtime.pod_sandbox_status(other.id)).network_mode == "NODE"

    status = await runtime.pod_sandbox_status(pod.id)
    assert status.state == SandboxState.READY
    assert status.metadata.name == "life" and status.network_mode == "POD"
    assert status.annotations == {"pyk8s.test/annotation": "kept"}
    assert [s.id for s in await runtime.list_pod_sandboxes(
        labels={"io.kubernetes.pod.name": "life"})] == [pod.id]
    assert [s.id for s in await runtime.list_pod_sandboxes(id=pod.id)] == [pod.id]

    cid = await start(runtime, pod, container("sleeper", "busybox",
                                              command=["sleep", "3600"]))
    assert [c.id for c in await runtime.list_containers(
        state=ContainerState.RUNNING, sandbox_id=pod.id)] == [cid]

    await runtime.stop_pod_sandbox(pod.id)
    status = await runtime.pod_sandbox_status(pod.id)
    assert status.state == SandboxState.NOTREADY and status.ip == ""
    assert (await runtime.container_status(cid)).state == ContainerState.EXITED
    assert pod.id in [s.id for s in await runtime.list_pod_sandboxes(
        state=SandboxState.NOTREADY)]
    await runtime.stop_pod_sandbox(pod.id)

    # a ready sandbox is removed directly too: containerd stops it first
    await runtime.remove_pod_sandbox(other.id)
    await runtime.remove_pod_sandbox(pod.id)
    await runtime.remove_pod_sandbox(pod.id)
    with pytest.raises(NotFound):
        await runtime.pod_sandbox_status(pod.id)
    with pytest.raises(NotFound):
        await runtime.container_status(cid)
    await runtime.stop_pod_sandbox("0" * 64)


async def test_errors_are_typed(runtime: RemoteRuntime, pods):
    pod = await pods("errors")
    with pytest.raises(NotFound):
        await runtime.container_status("no-such-container")
    with pytest.raises(NotFound):
        await runtime.create_container(pod.id, container("x", "example.invalid/none:1"),
                                       pod.config)
    with pytest.raises(InvalidArgument):
        await runtime.create_container(pod.id, {"metadata": {"name": "x"}, "imaeg": {}},
                                       pod.config)
    cid = await start(runtime, pod, container("once", "busybox", command=["sleep", "3600"]))
    with pytest.raises(CRIError, match="CONTAINER_RUNNING"):
        await runtime.start_container(cid)


async def test_resources_stats_and_streaming_urls(runtime: RemoteRuntime, pods, node):
    pod = await pods("stats")
    limit = 64 * 1024 * 1024
    cid = await start(runtime, pod, container(
        "app", "busybox", command=["sleep", "3600"],
        linux={"resources": {"memory_limit_in_bytes": limit, "cpu_shares": 256},
               "security_context": {"namespace_options": {"pid": "CONTAINER"}}}))

    stats = await runtime.container_stats(cid)
    assert stats.id == cid and stats.name == "app"
    assert stats.memory_working_set_bytes is not None and stats.timestamp > 0
    sandbox_stats = await runtime.pod_sandbox_stats(pod.id)
    assert [c.id for c in sandbox_stats.containers] == [cid]
    assert cid in [s.id for s in await runtime.list_container_stats(sandbox_id=pod.id)]

    await runtime.update_container_resources(cid, {"memory_limit_in_bytes": 2 * limit,
                                                   "cpu_shares": 512})
    r = await runtime.exec_sync(cid, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
    assert int(r.stdout) == 2 * limit

    for url in (await runtime.exec(cid, ["sh"]), await runtime.attach(cid),
                await runtime.port_forward(pod.id, [80])):
        assert url.startswith("http://127.0.0.1:")
    await runtime.reopen_container_log(cid)
    fs = await runtime.image_fs_info()
    # containerd refreshes usage every stats_collect_period (10 s): it may still be 0
    assert fs[0].used_bytes is not None and fs[0].mountpoint.startswith(str(node.config.root))
