"""The kubelet on fakes: pods through their lifecycle, as the API shows them."""
import pytest

from pyk8s.client import resources
from pyk8s.cri.fake import FakeRuntime
from pyk8s.cri.runtime import SandboxState
from pyk8s.kubelet.kubelet import Kubelet
from pyk8s.kubelet.server import LogError

from .fakenode import MACHINE, make_node, ns
from .helpers import container, pod


@pytest.fixture
async def node(tmp_path):
    n = await make_node(tmp_path)
    yield n
    await n.kubelet.stop()


def state(p: dict, name: str = "app") -> dict:
    cs = next(s for s in p["status"].get("containerStatuses", []) if s["name"] == name)
    return cs


async def test_a_bound_pod_runs_and_its_status_reaches_the_api(node):
    await node.create(pod())
    await node.settle()
    p = await node.get("web")
    [c] = node.containers()
    assert p["status"]["phase"] == "Running"
    assert p["status"]["podIP"].startswith("10.42.0.")
    cs = state(p)
    assert cs["containerID"] == f"fake://{c.id}" and cs["ready"] is True
    assert "running" in cs["state"]
    kinds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
    assert kinds == {"PodReadyToStartContainers": "True", "Initialized": "True",
                     "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    assert ("Started", "Started container app") in (await node.events())
    assert c.log_path.endswith("/app/0.log")


async def test_status_is_patched_only_when_it_changes(node):
    await node.create(pod())
    await node.settle()
    patches = [r for r in node.api.requests if r[0] == "PATCH" and r[1].endswith("/status")
               and "/pods/" in r[1]]
    assert 1 <= len(patches) <= 3
    await node.advance(61)  # a resync of the worker, a full status sync
    again = [r for r in node.api.requests if r[0] == "PATCH" and r[1].endswith("/status")
             and "/pods/" in r[1]]
    assert len(again) == len(patches)


async def test_a_crashing_container_restarts_with_back_off(node):
    await node.create(pod())
    await node.settle()
    node.runtime.exit_container(node.containers()[-1].id, 1)
    await node.settle()
    assert len(node.containers()) == 2  # the first restart is immediate
    assert state(await node.get("web"))["restartCount"] == 1

    node.runtime.exit_container(node.containers()[-1].id, 1)
    await node.settle()
    cs = state(await node.get("web"))
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["state"]["waiting"]["message"].startswith(
        "back-off 10s restarting failed container=app pod=web_default(")
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    await node.advance(9)
    assert len(node.containers()) == 1  # still backing off; the oldest run was pruned
    await node.advance(1)
    cs = state(await node.get("web"))
    assert "running" in cs["state"] and cs["restartCount"] == 2

    node.runtime.exit_container(node.containers()[-1].id, 1)
    await node.settle()
    assert "back-off 20s" in state(await node.get("web"))["state"]["waiting"]["message"]
    await node.advance(20)
    assert state(await node.get("web"))["restartCount"] == 3
    assert any(r == "BackOff" for r, _ in (await node.events()))


@pytest.mark.parametrize("code, phase", [(0, "Succeeded"), (3, "Failed")])
async def test_never_pods_end_with_their_exit_code(node, code, phase):
    await node.create(pod(restart="Never"))
    await node.settle()
    node.runtime.exit_container(node.containers()[0].id, code)
    await node.settle()
    p = await node.get("web")
    assert p["status"]["phase"] == phase
    assert state(p)["state"]["terminated"]["exitCode"] == code
    assert len(node.containers()) == 1  # never restarted
    [sandbox] = node.runtime.sandboxes.values()
    assert sandbox.state == SandboxState.NOTREADY  # stopped, kept for its logs


async def test_init_containers_run_in_order_before_the_app(node):
    await node.create(pod(init=[container("one"), container("two")]))
    await node.settle()
    assert [c.config.metadata.name for c in node.runtime.containers.values()] == ["one"]
    p = await node.get("web")
    assert p["status"]["phase"] == "Pending"
    assert state(p)["state"]["waiting"]["reason"] == "PodInitializing"
    node.runtime.exit_container(node.containers("one")[0].id, 0)
    await node.settle()
    node.runtime.exit_container(node.containers("two")[0].id, 0)
    await node.settle()
    p = await node.get("web")
    assert p["status"]["phase"] == "Running"
    assert [s["state"]["terminated"]["reason"] for s in p["status"]["initContainerStatuses"]] \
        == ["Completed", "Completed"]


async def test_deletion_stops_containers_with_the_grace_period_then_removes_the_pod(node):
    await node.create(pod(terminationGracePeriodSeconds=7))
    await node.settle()
    [c] = node.containers()
    await node.client.delete(resources.PODS, "web", namespace="default")
    await node.settle()
    assert await node.get("web") is None
    assert ("stop_container", c.id) in node.runtime.calls
    assert not node.runtime.sandboxes and not node.runtime.containers
    assert ("Killing", "Stopping container app") in (await node.events())


async def test_grace_period_of_the_deletion_is_the_stop_timeout(node, monkeypatch):
    timeouts = []
    original = node.runtime.stop_container

    async def stop(cid, *, timeout):
        timeouts.append(timeout)
        await original(cid, timeout=timeout)

    monkeypatch.setattr(node.runtime, "stop_container", stop)
    await node.create(pod())
    await node.settle()
    await node.client.delete(resources.PODS, "web", namespace="default",
                             grace_period_seconds=4)
    await node.settle()
    assert timeouts == [4]


async def test_a_restarted_kubelet_adopts_running_pods(node, tmp_path):
    await node.create(pod())
    await node.settle()
    before = (await node.get("web"))["status"]["containerStatuses"][0]["containerID"]
    await node.kubelet.stop()
    calls = len(node.runtime.calls)
    again = await make_node(tmp_path, runtime=node.runtime, api=node.api, clock=node.clock)
    await again.settle()
    after = (await again.get("web"))["status"]["containerStatuses"][0]["containerID"]
    assert after == before
    new = [c[0] for c in node.runtime.calls[calls:]]
    assert "run_pod_sandbox" not in new and "create_container" not in new
    assert "stop_container" not in new
    await again.kubelet.stop()


async def test_missing_images_wait_in_image_pull_back_off(tmp_path):
    from pyk8s.client.clock import FakeClock
    clock = FakeClock()
    runtime = FakeRuntime(images=["registry.k8s.io/pause:3.9"], registry=lambda name: False,
                          clock=lambda: ns(clock))
    node = await make_node(tmp_path, runtime=runtime, clock=clock)
    await node.create(pod(containers=[container(image="example.com/nope:1")]))
    await node.settle()
    failed = [m for r, m in await node.events() if r == "Failed"]
    assert failed and failed[0].startswith('Failed to pull image "example.com/nope:1": ')
    # the sandbox's start made the PLEG sync the pod again: now it backs off
    waiting = state(await node.get("web"))["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff"
    assert waiting["message"] == 'Back-off pulling image "example.com/nope:1"'
    assert len(node.calls("pull_image")) == 1
    await node.advance(10)
    assert len(node.calls("pull_image")) == 2
    assert state(await node.get("web"))["state"]["waiting"]["reason"] == "ErrImagePull"
    # the back-off is 20 s now; the worker's 10 s requeue in between reports it (as
    # upstream), so the two reasons alternate rather than ErrImagePull standing
    await node.advance(10)
    assert len(node.calls("pull_image")) == 2
    assert state(await node.get("web"))["state"]["waiting"]["reason"] == "ImagePullBackOff"
    await node.advance(10)
    assert len(node.calls("pull_image")) == 3
    await node.kubelet.stop()


async def test_present_images_satisfy_always_on_an_offline_node(node):
    await node.create(pod(containers=[container(image="nginx", imagePullPolicy="Always")]))
    await node.settle()
    assert not node.calls("pull_image")
    assert any(r == "Pulled" and "already present" in m for r, m in (await node.events()))


async def test_housekeeping_removes_pods_the_api_does_not_know(node):
    sandbox_id = await node.runtime.run_pod_sandbox({
        "metadata": {"name": "ghost", "namespace": "default", "uid": "ghost-uid"},
        "labels": {"io.kubernetes.pod.uid": "ghost-uid", "io.kubernetes.pod.name": "ghost",
                   "io.kubernetes.pod.namespace": "default"}})
    assert await node.kubelet.housekeeping() == ["ghost-uid"]
    assert sandbox_id not in node.runtime.sandboxes


async def test_node_marked_unknown_by_the_controller_reports_ready_again(node):
    await node.kubelet.node_status.update(force=True)
    n = await node.client.get(resources.NODES, "node-a")
    for c in n["status"]["conditions"]:  # what the node lifecycle controller writes
        c.update(status="Unknown", reason="NodeStatusUnknown",
                 message="Kubelet stopped posting node status.")
    await node.client.update(resources.NODES, n, subresource="status")
    # well within the report period: the kubelet writes because the API differs
    assert await node.kubelet.node_status.update() is True
    n = await node.client.get(resources.NODES, "node-a")
    ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")


async def test_node_registration_status_and_lease(node):
    await node.kubelet.node_status.update(force=True)
    n = await node.client.get(resources.NODES, "node-a")
    assert n["spec"]["podCIDR"] == "10.42.0.0/24"
    assert n["metadata"]["labels"]["kubernetes.io/hostname"] == "node-a"
    status = n["status"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "fake://0.1.0"
    assert status["addresses"] == [{"type": "InternalIP", "address": "192.0.2.10"},
                                   {"type": "Hostname", "address": "node-a"}]
    assert status["capacity"]["cpu"] == "4" and status["capacity"]["pods"] == "110"
    assert status["allocatable"]["memory"] == f"{(MACHINE.memory - (100 << 20)) // 1024}Ki"
    ready = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert ready == {"MemoryPressure": ("False", "KubeletHasSufficientMemory"),
                     "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
                     "PIDPressure": ("False", "KubeletHasSufficientPID"),
                     "Ready": ("True", "KubeletReady")}
    # unchanged status: no write until the report period
    assert await node.kubelet.node_status.update() is False
    node.runtime.network_ready = False
    assert await node.kubelet.node_status.update() is True
    n = await node.client.get(resources.NODES, "node-a")
    ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "network not ready" in ready["message"]

    lease = await node.kubelet.lease.renew()
    first = lease["spec"]["renewTime"]
    assert lease["spec"]["holderIdentity"] == "node-a"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    node.clock.advance(10)
    assert (await node.kubelet.lease.renew())["spec"]["renewTime"] > first


async def test_logs_current_and_previous(node):
    await node.create(pod())
    await node.settle()
    first = node.containers()[0]
    node.runtime.emit_log(first.id, "hello from the first run")
    node.runtime.exit_container(first.id, 1)
    await node.settle()
    second = node.containers()[-1]
    node.runtime.emit_log(second.id, "second run")

    async def read(**kw):
        stream = await node.kubelet.read_logs("default", "web", **kw)
        return b"".join([chunk async for chunk in stream]).decode()

    assert await read() == "second run\n"
    assert await read(previous=True) == "hello from the first run\n"
    assert await read(previous=True, timestamps=True) == \
        "2025-01-01T00:00:00.000000Z hello from the first run\n"
    node.clock.advance(30)
    assert await read(since_seconds=10) == ""
    with pytest.raises(LogError, match='pods "nope" not found'):
        await node.kubelet.read_logs("default", "nope", None)


async def test_logs_of_a_waiting_container_explain_why(node):
    await node.create(pod(name="two", containers=[container("a"), container("b")]))
    await node.settle()
    with pytest.raises(LogError, match="a container name must be specified for pod two, "
                                       r"choose one of: \[a b\]"):
        await node.kubelet.read_logs("default", "two", None)
    await node.create(pod(name="never", restart="Never"))
    await node.settle()
    with pytest.raises(LogError, match='previous terminated container "app" in pod "never" '
                                       'not found'):
        await node.kubelet.read_logs("default", "never", "app", previous=True)


async def test_kubelet_never_imports_forbidden_layers():
    import ast
    from pathlib import Path
    import pyk8s.kubelet
    root = Path(pyk8s.kubelet.__path__[0])
    for path in root.glob("*.py"):
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom) and n.module:
                assert not n.module.startswith(("pyk8s.apiserver", "pyk8s.registry",
                                                "pyk8s.storage", "grpc")), (path, n.module)
            if isinstance(n, ast.Import):
                for a in n.names:
                    assert not a.name.startswith(("grpc", "pyk8s.apiserver")), path
    assert Kubelet


async def test_termination_messages_come_from_the_file_or_the_log(node):
    from pyk8s.kubelet.syncing import termination_message_file
    await node.create(pod(restart="Never", containers=[
        container("file"), container("logs", terminationMessagePolicy="FallbackToLogsOnError")]))
    await node.settle()
    p = await node.get("web")
    uid = p["metadata"]["uid"]
    termination_message_file(node.kubelet.settings, uid, "file", 0).write_text("all done")
    node.runtime.exit_container(node.containers("file")[0].id, 0)
    logs = node.containers("logs")[0]
    node.runtime.emit_log(logs.id, "panic: something broke")
    node.runtime.exit_container(logs.id, 2)
    await node.settle()
    p = await node.get("web")
    assert state(p, "file")["state"]["terminated"]["message"] == "all done"
    assert state(p, "logs")["state"]["terminated"]["message"] == "panic: something broke\n"
    assert p["status"]["phase"] == "Failed"


async def test_node_events_tell_its_story(node):
    await node.kubelet.node_status.update(force=True)
    node.runtime.network_ready = False
    await node.kubelet.node_status.update()
    events = await node.events()
    assert ("Starting", "Starting kubelet.") in events
    assert ("NodeReady", "Node node-a status is now: NodeReady") in events
    assert ("NodeNotReady", "Node node-a status is now: NodeNotReady") in events
    assert ("NodeHasSufficientMemory", "Node node-a status is now: NodeHasSufficientMemory") \
        in events
