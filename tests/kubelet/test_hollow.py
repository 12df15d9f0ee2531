"""Hollow nodes against a real API server, observed with kubectl.

The API server runs in a subprocess (tests/support/cluster.py); the hollow nodes
run in this process on a thread with their own event loop, as `pyk8s hollow-nodes`
would run them beside the control plane.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import os
import threading
import time
import uuid

import pytest

from support.cluster import KUBECTL, Cluster, free_port

from pyk8s.kubelet import hollow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("hollow")), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture
def ns(cluster):
    name = "h-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("apply", "-n", name, "-f", "-", input='{"apiVersion": "v1", "kind": '
                    '"ServiceAccount", "metadata": {"name": "default"}}')
    return name


class Running:
    """Hollow nodes on a background thread, stopped on exit."""

    def __init__(self, cluster: Cluster, settings: hollow.HollowSettings):
        self.cluster, self.settings = cluster, settings
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(hollow.run_hollow_nodes(
                self.cluster.kubeconfig, count=self.settings.count,
                prefix=self.settings.prefix, stop=self.stop, settings=self.settings))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def __enter__(self) -> "Running":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        assert not self.thread.is_alive(), "hollow nodes did not stop"
        assert self.error is None, self.error


def wait_for(check, *, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def get_json(cluster: Cluster, *args) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json", timeout=120).stdout)


def ready_nodes(cluster: Cluster, prefix: str) -> list[dict]:
    items = get_json(cluster, "nodes", "-l", "pyk8s.io/hollow-node=true")["items"]
    return [n for n in items if n["metadata"]["name"].startswith(prefix)
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"]["conditions"])]


def lease_ages(cluster: Cluster, prefix: str) -> dict[str, float]:
    now = datetime.datetime.now(datetime.timezone.utc)
    items = get_json(cluster, "leases", "-n", "kube-node-lease")["items"]
    return {lease["metadata"]["name"]: (now - datetime.datetime.fromisoformat(
        lease["spec"]["renewTime"].replace("Z", "+00:00"))).total_seconds()
            for lease in items if lease["metadata"]["name"].startswith(prefix)}


def test_hollow_nodes_register_ready_and_hold_their_leases(cluster):
    settings = hollow.HollowSettings(count=20, prefix="hollow-small-",
                                     node_lease_duration=8)  # renewed every 2 s
    with Running(cluster, settings):
        nodes = wait_for(lambda: len(ready_nodes(cluster, "hollow-small-")) == 20
                         and ready_nodes(cluster, "hollow-small-"),
                         timeout=30, what="20 Ready hollow nodes")
        node = next(n for n in nodes if n["metadata"]["name"] == "hollow-small-4")
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == "hollow-small-4"
        assert {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes} == \
            set(settings.zones)
        assert node["status"]["capacity"] == {"cpu": "4", "memory": "16Gi", "pods": "110"}
        assert node["status"]["allocatable"] == node["status"]["capacity"]
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "fake://0.1.0"
        ages = lease_ages(cluster, "hollow-small-")
        assert len(ages) == 20
        lease = get_json(cluster, "lease", "-n", "kube-node-lease", "hollow-small-4")
        assert lease["spec"]["holderIdentity"] == "hollow-small-4"
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first = lease["spec"]["renewTime"]
        time.sleep(5)  # held across two and a half renew periods
        ages = lease_ages(cluster, "hollow-small-")
        # each renewed every 2 s: none older than three periods (a renewal may wait on
        # a busy API server), all well inside the 8 s lease
        assert max(ages.values()) < 6, ages
        again = get_json(cluster, "lease", "-n", "kube-node-lease", "hollow-small-4")
        assert again["spec"]["renewTime"] > first


POD = """{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "%(name)s", "annotations": %(annotations)s},
 "spec": {"nodeName": "%(node)s", "restartPolicy": "%(policy)s",
          "terminationGracePeriodSeconds": 5,
          "initContainers": %(init)s,
          "containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}"""


def pod_manifest(name: str, node: str, *, policy: str = "Always", annotations=None,
                 init: bool = False) -> str:
    inits = [{"name": "setup", "image": "registry.invalid/setup:1"}] if init else []
    return POD % {"name": name, "node": node, "policy": policy,
                  "annotations": json.dumps(annotations or {}), "init": json.dumps(inits)}


@pytest.fixture(scope="module")
def small(cluster):
    settings = hollow.HollowSettings(count=3, prefix="hollow-pods-")
    with Running(cluster, settings):
        wait_for(lambda: len(ready_nodes(cluster, "hollow-pods-")) == 3, timeout=30,
                 what="3 Ready hollow nodes")
        yield settings


def test_a_pod_bound_to_a_hollow_node_runs_and_is_deleted(cluster, ns, small):
    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    input=pod_manifest("web", "hollow-pods-1", init=True))
    cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/web", "--timeout=30s")
    pod = get_json(cluster, "pod", "-n", ns, "web")
    status = pod["status"]
    assert status["phase"] == "Running"
    assert status["podIP"] and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == "10.250.0.2"
    app = status["containerStatuses"][0]
    assert app["ready"] and app["started"] and "running" in app["state"]
    assert app["containerID"].startswith("fake://")
    assert app["image"] == "registry.invalid/app:1"
    setup = status["initContainerStatuses"][0]
    assert setup["state"]["terminated"]["exitCode"] == 0
    kinds = {c["type"]: c["status"] for c in status["conditions"]}
    assert kinds == {"PodReadyToStartContainers": "True", "Initialized": "True",
                     "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    out = cluster.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout
    assert "Running" in out and status["podIP"] in out and "hollow-pods-1" in out

    start = time.monotonic()
    cluster.kubectl("delete", "-n", ns, "pod", "web", "--timeout=30s")
    assert time.monotonic() - start < 10
    r = cluster.kubectl("get", "-n", ns, "pod", "web", check=False)
    assert "NotFound" in r.stderr


def test_restart_policy_applies_to_simulated_exits(cluster, ns, small):
    run = {"hollow.pyk8s.io/run-seconds": "1", "hollow.pyk8s.io/exit-code": "3"}
    for name, policy, code in (("never", "Never", "0"), ("onfailure", "OnFailure", "3")):
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=pod_manifest(
            name, "hollow-pods-2", policy=policy,
            annotations=dict(run, **{"hollow.pyk8s.io/exit-code": code})))
    cluster.kubectl("wait", "-n", ns, "--for=jsonpath={.status.phase}=Succeeded",
                    "pod/never", "--timeout=30s")
    done = get_json(cluster, "pod", "-n", ns, "never")["status"]["containerStatuses"][0]
    assert done["state"]["terminated"]["reason"] == "Completed"
    assert done["restartCount"] == 0

    def restarted():
        s = get_json(cluster, "pod", "-n", ns, "onfailure")["status"]
        return s["phase"] == "Running" and s["containerStatuses"][0]["restartCount"] >= 1 and s
    status = wait_for(restarted, timeout=30, what="a restarted container")
    last = status["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    cluster.kubectl("delete", "-n", ns, "pod", "never", "onfailure", "--timeout=30s")


def test_a_sidecar_on_a_hollow_node_keeps_running_beside_the_app(cluster, ns, small):
    manifest = json.loads(pod_manifest("sided", "hollow-pods-0"))
    manifest["spec"]["initContainers"] = [
        {"name": "setup", "image": "registry.invalid/setup:1"},
        {"name": "side", "image": "registry.invalid/side:1", "restartPolicy": "Always"}]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/sided", "--timeout=30s")
    status = get_json(cluster, "pod", "-n", ns, "sided")["status"]
    setup, side = status["initContainerStatuses"]
    assert setup["state"]["terminated"]["exitCode"] == 0
    assert "running" in side["state"] and side["started"] and side["ready"]
    assert "running" in status["containerStatuses"][0]["state"]
    assert status["phase"] == "Running"
    cluster.kubectl("delete", "-n", ns, "pod", "sided", "--timeout=30s")


def test_a_thousand_hollow_nodes_become_ready_and_keep_their_leases(cluster):
    count, prefix = 1000, "hollow-scale-"
    settings = hollow.HollowSettings(count=count, prefix=prefix)
    start = time.monotonic()
    with Running(cluster, settings):
        wait_for(lambda: len(ready_nodes(cluster, prefix)) == count, timeout=60,
                 what=f"{count} Ready hollow nodes", interval=2)
        ready_after = time.monotonic() - start
        held_from = time.monotonic()
        while time.monotonic() - held_from < 30:
            time.sleep(7)
            ages = lease_ages(cluster, prefix)
            assert len(ages) == count
            stale = {k: v for k, v in ages.items() if v > 20}
            assert not stale, f"{len(stale)} leases not renewed: {sorted(stale.items())[:5]}"
        nodes = ready_nodes(cluster, prefix)
        assert len(nodes) == count
    print(f"\n{count} hollow nodes Ready after {ready_after:.1f}s; leases held 30s")


# ---- the heartbeat loop on fakes: a fake API and a fake clock, no sleeping -----------

async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_lease_renewals_are_spread_over_the_period_and_survive_deletion():
    from pyk8s.client import resources
    from pyk8s.client.clock import FakeClock
    from pyk8s.client.fake import FakeAPI, FakeTransport
    from pyk8s.client.rest import Client

    clock = FakeClock()
    api = FakeAPI(clock=clock)
    client = Client(transport=FakeTransport(api), clock=clock)
    settings = hollow.HollowSettings(count=50, prefix="fake-")
    nodes = hollow.make_nodes(settings)
    beats = hollow.Heartbeats(client, nodes, settings, clock=clock)
    await beats.register_all()
    assert len(api.objects(resources.NODES)) == 50
    assert len(api.objects(resources.LEASES, "kube-node-lease")) == 50
    beats.schedule_all()
    task = asyncio.create_task(beats.run())
    try:
        per_second = []
        for _ in range(30):  # three renew periods, one second at a time
            before = beats.renewals
            for _ in range(20):
                clock.advance(0.05)
                await _settle()
            per_second.append(beats.renewals - before)
        assert sum(per_second) == 150  # every node once per 10 s
        assert max(per_second) <= 6  # ~N/10 a second, never a burst

        api.remove(resources.LEASES, "fake-7", namespace="kube-node-lease")
        api.remove(resources.NODES, "fake-8")  # and its lease, as the garbage collector
        api.remove(resources.LEASES, "fake-8", namespace="kube-node-lease")
        for _ in range(200):
            clock.advance(0.05)
            await _settle()
        lease = api.get_object(resources.LEASES, "fake-7", namespace="kube-node-lease")
        assert lease["spec"]["holderIdentity"] == "fake-7"
        node = api.get_object(resources.NODES, "fake-8")
        assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "hollow-c"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
