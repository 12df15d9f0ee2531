"""Sidecar containers (init containers with restartPolicy Always) on the fake node."""
import asyncio

import pytest

from pyk8s.client import resources
from pyk8s.cri.runtime import SandboxState

from .fakenode import make_node
from .helpers import container, pod


@pytest.fixture
async def node(tmp_path):
    n = await make_node(tmp_path)
    yield n
    await n.kubelet.stop()


def sidecar(name: str = "side") -> dict:
    return container(name, restartPolicy="Always")


def statuses(p: dict, key: str = "initContainerStatuses") -> dict[str, dict]:
    return {s["name"]: s for s in p["status"].get(key, [])}


def started_names(node) -> list[str]:
    return [node.runtime.containers[c[1]].config.metadata.name
            for c in node.calls("start_container")]


async def test_a_sidecar_starts_before_the_next_init_container_and_keeps_running(node):
    await node.create(pod(init=[sidecar("side"), container("setup")],
                          containers=[container("app")]))
    await node.settle()
    # the sidecar runs and started: the next init container starts, not the app
    assert started_names(node) == ["side", "setup"]
    p = await node.get("web")
    assert p["status"]["phase"] == "Pending"
    side = statuses(p)["side"]
    assert "running" in side["state"] and side["started"] is True and side["ready"] is True
    node.runtime.exit_container(node.containers("setup")[0].id, 0)
    await node.settle()
    assert started_names(node) == ["side", "setup", "app"]
    p = await node.get("web")
    assert p["status"]["phase"] == "Running"
    init = statuses(p)
    assert "running" in init["side"]["state"] and init["side"]["started"] is True
    assert init["setup"]["state"]["terminated"]["reason"] == "Completed"
    kinds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
    assert kinds["Initialized"] == kinds["Ready"] == kinds["ContainersReady"] == "True"


async def test_a_crashing_sidecar_restarts_under_restart_policy_never(node):
    await node.create(pod(init=[sidecar("side")], containers=[container("app")],
                          restart="Never"))
    await node.settle()
    assert started_names(node) == ["side", "app"]
    node.runtime.exit_container(node.containers("side")[0].id, 1)
    await node.settle()
    assert len(node.containers("side")) == 2  # restarted at once
    p = await node.get("web")
    assert p["status"]["phase"] == "Running"
    assert statuses(p)["side"]["restartCount"] == 1
    node.runtime.exit_container(node.containers("side")[-1].id, 1)
    await node.settle()
    side = statuses(await node.get("web"))["side"]
    assert side["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    await node.advance(10)
    side = statuses(await node.get("web"))["side"]
    assert "running" in side["state"] and side["restartCount"] == 2
    assert len(node.containers("app")) == 1  # the app ran on undisturbed


async def test_a_job_style_pod_completes_when_its_main_container_exits(node):
    await node.create(pod(init=[sidecar("side")], containers=[container("app")],
                          restart="Never"))
    await node.settle()
    [side] = node.containers("side")
    node.runtime.exit_container(node.containers("app")[0].id, 0)
    await node.settle()
    p = await node.get("web")
    assert p["status"]["phase"] == "Succeeded"
    assert ("stop_container", side.id) in node.runtime.calls
    assert len(node.containers("side")) == 1  # stopped, not restarted
    assert "terminated" in statuses(p)["side"]["state"]
    assert statuses(p, "containerStatuses")["app"]["state"]["terminated"]["exitCode"] == 0
    [sandbox] = node.runtime.sandboxes.values()
    assert sandbox.state == SandboxState.NOTREADY


async def test_a_failing_main_container_fails_the_pod_despite_its_sidecar(node):
    await node.create(pod(init=[sidecar("side")], containers=[container("app")],
                          restart="Never"))
    await node.settle()
    node.runtime.exit_container(node.containers("app")[0].id, 2)
    await node.settle()
    assert (await node.get("web"))["status"]["phase"] == "Failed"


async def test_termination_stops_regular_containers_then_sidecars_in_reverse(node,
                                                                          monkeypatch):
    await node.create(pod(init=[sidecar("first"), sidecar("second")],
                          containers=[container("app"), container("other")]))
    await node.settle()
    assert (await node.get("web"))["status"]["phase"] == "Running"
    names = {c.id: c.config.metadata.name for c in node.runtime.containers.values()}
    steps = []
    original = node.runtime.stop_container

    async def stop(cid, *, timeout):  # a stop that takes a few turns of the loop
        steps.append(f"stop {names.get(cid)}")
        for _ in range(5):
            await asyncio.sleep(0)
        await original(cid, timeout=timeout)
        steps.append(f"stopped {names.get(cid)}")

    monkeypatch.setattr(node.runtime, "stop_container", stop)
    await node.client.delete(resources.PODS, "web", namespace="default")
    await node.settle()
    assert await node.get("web") is None
    assert sorted(steps[:2]) == ["stop app", "stop other"]
    assert sorted(steps[2:4]) == ["stopped app", "stopped other"]
    assert steps[4:] == ["stop second", "stopped second", "stop first", "stopped first"]
