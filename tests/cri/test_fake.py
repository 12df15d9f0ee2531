"""FakeRuntime keeps the Runtime contract the way containerd does, in memory."""
from __future__ import annotations

import itertools
import re

import pytest

from pyk8s.cri.fake import FakeRuntime
from pyk8s.cri.runtime import (
    ContainerState, CRIError, ExecResult, InvalidArgument, NotFound, SandboxState,
)


def sandbox_config(name: str, *, uid: str | None = None, host_network: bool = False,
                   log_directory: str = "") -> dict:
    config = {"metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}"},
              "labels": {"app": name}, "log_directory": log_directory}
    if host_network:
        config["linux"] = {"security_context": {"namespace_options": {"network": "NODE"}}}
    return config


def container_config(name: str, image: str = "busybox", attempt: int = 0) -> dict:
    return {"metadata": {"name": name, "attempt": attempt}, "image": {"image": image},
            "log_path": f"{name}/{attempt}.log", "labels": {"c": name}}


@pytest.fixture
def clock():
    ticks = itertools.count(1_000)
    return lambda: next(ticks)


@pytest.fixture
def fake(clock) -> FakeRuntime:
    return FakeRuntime(pod_cidr="10.42.7.0/24", images=["busybox", "registry.k8s.io/pause:3.9"],
                       clock=clock)


async def running(fake: FakeRuntime, name: str = "web", **kw) -> tuple[str, str, dict]:
    config = sandbox_config(name, **kw)
    sid = await fake.run_pod_sandbox(config)
    cid = await fake.create_container(sid, container_config("app"), config)
    await fake.start_container(cid)
    return sid, cid, config


async def test_sandboxes_get_ips_from_the_pool_and_give_them_back(fake: FakeRuntime):
    a = await fake.run_pod_sandbox(sandbox_config("a"))
    b = await fake.run_pod_sandbox(sandbox_config("b"))
    host = await fake.run_pod_sandbox(sandbox_config("h", host_network=True))
    assert [(await fake.pod_sandbox_status(s)).ip for s in (a, b, host)] == [
        "10.42.7.2", "10.42.7.3", ""]
    assert (await fake.pod_sandbox_status(host)).network_mode == "NODE"

    await fake.stop_pod_sandbox(a)
    status = await fake.pod_sandbox_status(a)
    assert (status.state, status.ip) == (SandboxState.NOTREADY, "")
    c = await fake.run_pod_sandbox(sandbox_config("c"))
    assert (await fake.pod_sandbox_status(c)).ip == "10.42.7.2"


async def test_sandbox_names_are_reserved_until_removed(fake: FakeRuntime):
    config = sandbox_config("web")
    sid = await fake.run_pod_sandbox(config)
    with pytest.raises(CRIError, match="reserve sandbox name"):
        await fake.run_pod_sandbox(config)
    retry = await fake.run_pod_sandbox({**config, "metadata": {**config["metadata"],
                                                               "attempt": 1}})
    await fake.remove_pod_sandbox(sid)
    await fake.remove_pod_sandbox(sid)  # idempotent
    await fake.stop_pod_sandbox(sid)
    with pytest.raises(NotFound):
        await fake.pod_sandbox_status(sid)
    assert [s.id for s in await fake.list_pod_sandboxes()] == [retry]
    await fake.run_pod_sandbox(config)


async def test_container_lifecycle_and_exit_codes(fake: FakeRuntime):
    sid, cid, _ = await running(fake)
    status = await fake.container_status(cid)
    assert status.state == ContainerState.RUNNING
    assert status.created_at < status.started_at and status.finished_at == 0
    assert status.image == "docker.io/library/busybox:latest"

    fake.exit_container(cid, 3)
    status = await fake.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 3, "Error")
    assert status.finished_at > status.started_at
    with pytest.raises(CRIError, match="CONTAINER_EXITED"):
        await fake.start_container(cid)

    config = sandbox_config("web")
    second = await fake.create_container(sid, container_config("app", attempt=1), config)
    await fake.start_container(second)
    fake.oom_kill(second)
    status = await fake.container_status(second)
    assert (status.exit_code, status.reason) == (137, "OOMKilled")

    await fake.remove_container(cid)
    await fake.remove_container(cid)
    with pytest.raises(NotFound):
        await fake.container_status(cid)


async def test_stop_is_graceful_with_a_grace_period(fake: FakeRuntime):
    sid, graceful, config = await running(fake)
    killed = await fake.create_container(sid, container_config("side"), config)
    await fake.start_container(killed)
    await fake.stop_container(graceful, timeout=30)
    await fake.stop_container(killed, timeout=0)
    await fake.stop_container(killed, timeout=0)  # idempotent
    await fake.stop_container("no-such-id", timeout=0)
    assert (await fake.container_status(graceful)).exit_code == 0
    assert (await fake.container_status(killed)).exit_code == 137


async def test_stopping_the_sandbox_kills_its_containers(fake: FakeRuntime):
    sid, cid, config = await running(fake)
    await fake.stop_pod_sandbox(sid)
    assert (await fake.container_status(cid)).exit_code == 137
    with pytest.raises(CRIError, match="not ready"):
        await fake.create_container(sid, container_config("late"), config)
    await fake.remove_pod_sandbox(sid)
    assert await fake.list_containers() == []


async def test_container_names_are_reserved_per_sandbox(fake: FakeRuntime):
    sid, _, config = await running(fake)
    with pytest.raises(CRIError, match="reserve container name"):
        await fake.create_container(sid, container_config("app"), config)


async def test_images_resolve_and_pull(clock):
    fake = FakeRuntime(images=["nginx"], registry=lambda name: "private" not in name,
                       clock=clock)
    assert await fake.image_status("docker.io/library/nginx:latest") is not None
    assert await fake.image_status("nginx:1.22") is None
    config = sandbox_config("p")
    sid = await fake.run_pod_sandbox(config)
    with pytest.raises(NotFound, match="failed to resolve image"):
        await fake.create_container(sid, container_config("c", "nginx:1.22"), config)

    ref = await fake.pull_image("nginx:1.22")
    image = await fake.image_status("docker.io/library/nginx:1.22")
    assert image is not None and image.id == ref
    assert await fake.image_status(ref) == image
    with pytest.raises(CRIError, match="failed to pull"):
        await fake.pull_image("example.com/private/app:1")
    await fake.remove_image("nginx:1.22")
    await fake.remove_image("nginx:1.22")
    assert await fake.image_status("nginx:1.22") is None
    assert len(await fake.list_images()) == 1
    (fs,) = await fake.image_fs_info()
    assert fs.inodes_used == 1


async def test_exec_sync_uses_the_handler(clock):
    def handler(container_id, cmd):
        return ExecResult(stdout=" ".join(cmd).encode(), stderr=b"", exit_code=len(cmd))
    fake = FakeRuntime(images=["busybox"], exec_handler=handler, clock=clock)
    _, cid, _ = await running(fake)
    assert await fake.exec_sync(cid, ["echo", "hi"]) == ExecResult(
        stdout=b"echo hi", stderr=b"", exit_code=2)
    fake.exit_container(cid, 0)
    with pytest.raises(CRIError, match="CONTAINER_EXITED"):
        await fake.exec_sync(cid, ["true"])


async def test_default_exec_succeeds_and_streams_are_recorded(fake: FakeRuntime):
    sid, cid, _ = await running(fake)
    assert (await fake.exec_sync(cid, ["cat", "/tmp/healthy"])).exit_code == 0
    url = await fake.exec(cid, ["sh"], tty=True, stdin=True)
    token = url.rsplit("/", 1)[1]
    assert url.startswith("http://fake-runtime.invalid/exec/")
    assert fake.streams[token][:3] == ("exec", cid, ("sh",))
    assert "/portforward/" in await fake.port_forward(sid, [80])


async def test_logs_are_written_in_cri_format(fake: FakeRuntime, tmp_path):
    config = sandbox_config("logs", log_directory=str(tmp_path / "pod"))
    sid = await fake.run_pod_sandbox(config)
    cid = await fake.create_container(sid, container_config("app"), config)
    await fake.start_container(cid)
    fake.emit_log(cid, "hello")
    fake.emit_log(cid, "oops", stream="stderr")
    path = (await fake.container_status(cid)).log_path
    assert path == str(tmp_path / "pod" / "app" / "0.log")
    lines = open(path).read().splitlines()
    assert [re.sub(r"^\S+ ", "", line) for line in lines] == [
        "stdout F hello", "stderr F oops"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", lines[0])


async def test_filters(fake: FakeRuntime):
    sid, cid, config = await running(fake, "a")
    other = await fake.run_pod_sandbox(sandbox_config("b"))
    assert [s.id for s in await fake.list_pod_sandboxes(labels={"app": "a"})] == [sid]
    assert [s.id for s in await fake.list_pod_sandboxes(
        state=SandboxState.READY)] == [sid, other]
    assert [c.id for c in await fake.list_containers(labels={"c": "app"})] == [cid]
    assert await fake.list_containers(sandbox_id=other) == []
    assert await fake.list_containers(state=ContainerState.EXITED) == []
    assert [s.id for s in await fake.list_container_stats(sandbox_id=sid)] == [cid]
    stats = await fake.pod_sandbox_stats(sid)
    assert [c.id for c in stats.containers] == [cid]


async def test_invalid_configs_are_rejected_like_the_wire(fake: FakeRuntime):
    with pytest.raises(InvalidArgument):
        await fake.run_pod_sandbox({"metadata": {"name": "x"}, "hostnmae": "typo"})
    with pytest.raises(InvalidArgument):
        await fake.run_pod_sandbox({"metadata": {"name": "x"}})


async def test_injected_faults_and_call_log(fake: FakeRuntime):
    fake.inject("run_pod_sandbox", CRIError("CNI failed"), times=2)
    for _ in range(2):
        with pytest.raises(CRIError, match="CNI failed"):
            await fake.run_pod_sandbox(sandbox_config("x"))
    sid = await fake.run_pod_sandbox(sandbox_config("x"))
    await fake.stop_pod_sandbox(sid)
    assert fake.calls[-2:] == [("run_pod_sandbox",), ("stop_pod_sandbox", sid)]


async def test_network_readiness_shows_in_status(fake: FakeRuntime):
    assert (await fake.status()).ready
    fake.network_ready = False
    status = await fake.status()
    assert not status.ready
    assert status.condition("NetworkReady").reason == "NetworkPluginNotReady"
    assert (await fake.version()).runtime_name == "fake"
