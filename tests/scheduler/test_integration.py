"""The scheduler against a real API server: fake Node objects, pods created through the
API, results read back the way a user reads them (kubectl, the API)."""
from __future__ import annotations

import asyncio
import contextlib
import re
import time

import pytest
import pytest_asyncio

from pyk8s.aio import wait_for
from pyk8s.client import resources as r
from pyk8s.client.errors import ApiError
from pyk8s.scheduler.configuration import load_configuration
from pyk8s.scheduler.server import SchedulerServer

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
ZONE = "topology.kubernetes.io/zone"


async def eventually(check, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``check`` (sync or async) until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class Env:
    """One test's scheduler (its own profile name), nodes and namespace."""

    def __init__(self, api, cluster, ns: str):
        self.api, self.cluster, self.ns = api, cluster, ns
        self.scheduler_name = f"sched-{ns}"
        self.nodes: list[str] = []

    async def node(self, name: str, *, cpu: str = "4", memory: str = "8Gi", labels: dict | None = None,
                   taints: list | None = None) -> str:
        full = f"{self.ns}-{name}"
        status = {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                  "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                  "conditions": [{"type": "Ready", "status": "True"}]}
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": full, "labels": {"kubernetes.io/hostname": full, **(labels or {})}},
                "spec": {"taints": taints or []}, "status": status}
        await self.api.create(r.NODES, body)
        await self.api.patch(r.NODES, full, body={"status": status}, subresource="status")
        # Admission taints new nodes not-ready; the node lifecycle controller (not
        # running here) lifts that once the node is Ready: play its part.
        await self.api.patch(r.NODES, full, body={"spec": {"taints": taints or None}})
        self.nodes.append(full)
        return full

    async def pod(self, name: str, *, cpu: str | None = None, labels: dict | None = None, **spec) -> dict:
        container = {"name": "c", "image": "busybox"}
        if cpu:
            container["resources"] = {"requests": {"cpu": cpu}}
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
                "spec": {"schedulerName": self.scheduler_name, "containers": [container], **spec}}
        return await self.api.create(r.PODS, body, namespace=self.ns)

    async def get(self, name: str) -> dict:
        return await self.api.get(r.PODS, name, namespace=self.ns)

    async def node_of(self, name: str, timeout: float = 20.0) -> str:
        async def bound():
            return (await self.get(name)).get("spec", {}).get("nodeName")
        return await eventually(bound, timeout)

    async def failed_scheduling(self, name: str, timeout: float = 20.0) -> str:
        async def message():
            pod = await self.get(name)
            for c in (pod.get("status") or {}).get("conditions") or ():
                if c.get("type") == "PodScheduled" and c.get("status") == "False":
                    return c.get("message")
            return None
        return await eventually(message, timeout)

    async def describe(self, name: str) -> str:
        out = (await self.cluster.akubectl("describe", "pod", name, "-n", self.ns)).stdout
        return re.sub(r"\s+", " ", out)


@pytest_asyncio.fixture
async def env(api, cluster, ns):
    e = Env(api, cluster, ns)
    config = load_configuration({"leaderElection": {"leaderElect": False},
                                 "profiles": [{"schedulerName": e.scheduler_name}]})
    server = SchedulerServer(api, config)
    task = asyncio.create_task(server.run())
    await wait_for(server.started.wait(), 30)
    e.server = server
    yield e
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for name in e.nodes:
        with contextlib.suppress(ApiError):
            await api.delete(r.NODES, name)


async def test_resource_fit_and_failed_scheduling_as_kubectl_describes_it(env):
    worker = await env.node("worker", cpu="1")
    await env.node("cp1", cpu="8", taints=[CP_TAINT])
    await env.node("cp2", cpu="8", taints=[CP_TAINT])
    await env.pod("small", cpu="500m")
    assert await env.node_of("small") == worker
    await env.pod("big", cpu="2")
    expected = ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
                "{node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: "
                "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")
    assert await env.failed_scheduling("big") == expected

    async def described():
        text = await env.describe("big")
        return text if "FailedScheduling" in text else None
    text = await eventually(described)
    assert "Warning FailedScheduling" in text and expected in text
    assert "PodScheduled False" in text
    small = await eventually(lambda: _describe_has(env, "small", "Normal Scheduled"))
    assert "Normal Scheduled" in small
    assert f"Successfully assigned {env.ns}/small to {worker}" in small
    assert (await env.get("big"))["status"]["phase"] == "Pending"


async def _describe_has(env, name: str, word: str) -> str | None:
    text = await env.describe(name)
    return text if word in text else None


async def test_taints_tolerations_and_node_affinity(env):
    ssd = await env.node("ssd", labels={"disk": "ssd"})
    gpu = await env.node("gpu", labels={"disk": "hdd"}, taints=[{"key": "dedicated", "value": "gpu",
                                                                 "effect": "NoSchedule"}])
    await env.pod("hdd-only", nodeSelector={"disk": "hdd"})
    assert await env.failed_scheduling("hdd-only") == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had "
        "untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are available: 2 Preemption is not "
        "helpful for scheduling.")
    await env.pod("tolerant", nodeSelector={"disk": "hdd"},
                  tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    assert await env.node_of("tolerant") == gpu
    required = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}
    await env.pod("affine", affinity=required, tolerations=[{"operator": "Exists"}])
    assert await env.node_of("affine") == ssd
    # Relabelling a node is a cluster event that requeues the waiting pod.
    await env.api.patch(r.NODES, ssd, body={"metadata": {"labels": {"disk": "hdd"}}})
    assert await env.node_of("hdd-only") == ssd


async def test_pod_anti_affinity_spreads_replicas(env):
    nodes = {await env.node("n1"), await env.node("n2")}
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(3):
        await env.pod(f"web-{i}", labels={"app": "web"}, affinity=anti)
    placed = {await env.node_of("web-0"), await env.node_of("web-1")}
    assert placed == nodes
    assert await env.failed_scheduling("web-2") == (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: "
        "0/2 nodes are available: 2 No preemption victims found for incoming pod.")


async def test_topology_spread_over_zones(env):
    zone_of = {}
    for name, zone in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")):
        zone_of[await env.node(name, labels={ZONE: zone})] = zone
    spread = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    for i in range(4):
        await env.pod(f"s-{i}", labels={"app": "spread"}, topologySpreadConstraints=spread)
    zones = [zone_of[await env.node_of(f"s-{i}")] for i in range(4)]
    assert sorted(zones) == ["a", "a", "b", "b"]


async def priority_class(api, name: str, value: int) -> str:
    await api.create(r.PRIORITYCLASSES, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                         "metadata": {"name": name}, "value": value})
    return name


async def preempted_event(env, victim: str) -> str:
    """The victim's Preempted event message, as kubectl lists it."""
    async def message():
        out = (await env.cluster.akubectl(
            "get", "events", "-n", env.ns, "--field-selector", f"involvedObject.name={victim},reason=Preempted",
            "-o", "jsonpath={.items[*].message}")).stdout
        return out or None
    return await eventually(message)


async def marked_for_preemption(env, name: str) -> bool:
    try:
        pod = await env.get(name)
    except ApiError:
        return True
    conds = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or ()}
    return bool(pod["metadata"].get("deletionTimestamp")) and \
        conds.get("DisruptionTarget", {}).get("reason") == "PreemptionByScheduler"


async def nominated_node(env, name: str) -> str:
    return await eventually(lambda: _nominated(env, name))


async def _nominated(env, name: str) -> str | None:
    return ((await env.get(name)).get("status") or {}).get("nominatedNodeName")


async def test_priority_preemption(env, api):
    node = await env.node("only", cpu="2")
    high = await priority_class(api, f"high-{env.ns}", 1000)
    await env.pod("low", cpu="2")
    assert await env.node_of("low") == node
    # The Priority admission plugin fills spec.priority from the class; stating the
    # same value keeps the test meaningful where admission is not enabled.
    preemptor = await env.pod("high", cpu="1", priorityClassName=high, priority=1000)
    await eventually(lambda: marked_for_preemption(env, "low"))
    # While the victim terminates the preemptor waits, nominated to the node.
    assert await nominated_node(env, "high") == node
    assert not (await env.get("high"))["spec"].get("nodeName")
    assert await preempted_event(env, "low") == f"Preempted by pod {preemptor['metadata']['uid']} on node {node}"
    # Play the kubelet: the victim's containers are gone, remove the pod for good.
    with contextlib.suppress(ApiError):
        await api.delete(r.PODS, "low", namespace=env.ns, grace_period_seconds=0)
    assert await env.node_of("high") == node
    high_pod = await env.get("high")
    assert high_pod["spec"]["priority"] == 1000


async def test_preemption_respects_a_pod_disruption_budget(env, api):
    guarded_node = await env.node("guarded", cpu="2")
    free_node = await env.node("free", cpu="2")
    mid = await priority_class(api, f"mid-{env.ns}", 10)
    high = await priority_class(api, f"high-{env.ns}", 1000)
    # Without the budget, preemption would pick the guarded node: its victim has the
    # lower priority (upstream's second tie-breaker after PDB violations).
    await env.pod("guarded", cpu="2", labels={"app": "guarded"}, nodeName=guarded_node)
    await env.pod("other", cpu="2", nodeName=free_node, priorityClassName=mid, priority=10)
    await api.create(r.PODDISRUPTIONBUDGETS, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep-one"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}, namespace=env.ns)
    # The disruption controller's part (not running here): one healthy pod, none may go.
    await api.patch(r.PODDISRUPTIONBUDGETS, "keep-one", namespace=env.ns, subresource="status", body={
        "status": {"currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1, "disruptionsAllowed": 0,
                   "observedGeneration": 1}})
    pdb = await api.get(r.PODDISRUPTIONBUDGETS, "keep-one", namespace=env.ns)
    assert pdb["status"]["disruptionsAllowed"] == 0
    preemptor = await env.pod("high", cpu="2", priorityClassName=high, priority=1000)
    assert await nominated_node(env, "high") == free_node
    await eventually(lambda: marked_for_preemption(env, "other"))
    assert await preempted_event(env, "other") == (
        f"Preempted by pod {preemptor['metadata']['uid']} on node {free_node}")
    guarded = await env.get("guarded")
    assert not guarded["metadata"].get("deletionTimestamp")
    with contextlib.suppress(ApiError):
        await api.delete(r.PODS, "other", namespace=env.ns, grace_period_seconds=0)
    assert await env.node_of("high") == free_node
    assert not (await env.get("guarded"))["metadata"].get("deletionTimestamp")


async def test_pods_for_other_schedulers_are_left_alone(env, api):
    await env.node("n")
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "foreign"},
            "spec": {"schedulerName": "someone-else", "containers": [{"name": "c", "image": "busybox"}]}}
    await api.create(r.PODS, body, namespace=env.ns)
    await env.pod("mine")
    await env.node_of("mine")
    foreign = await env.get("foreign")
    assert not foreign["spec"].get("nodeName") and not (foreign.get("status") or {}).get("conditions")


async def test_leader_election_one_active_then_failover(api, cluster, ns):
    lease_name = f"sched-{ns}"
    # Short, but with room for an API server slowed by a busy disk: a renewal held up
    # beyond renewDeadline would make first step down.
    config = load_configuration({"leaderElection": {"leaderElect": True, "leaseDuration": "6s",
                                                    "renewDeadline": "5s", "retryPeriod": "0.5s",
                                                    "resourceName": lease_name},
                                 "profiles": [{"schedulerName": f"sched-{ns}"}]})
    first, second = SchedulerServer(api, config, identity="first"), SchedulerServer(api, config, identity="second")

    async def lease() -> dict:
        return await api.get(r.LEASES, lease_name, namespace="kube-system")

    t1 = asyncio.create_task(first.run())
    t2 = None
    try:
        await wait_for(first.started.wait(), 60)
        transitions = (await lease())["spec"].get("leaseTransitions", 0)
        t2 = asyncio.create_task(second.run())
        # Second has tried to acquire: it read the lease and saw first holding it.
        await eventually(lambda: second.elector is not None and second.elector.leader == "first")
        # Several retry periods and more than a lease duration (6 s): first keeps
        # renewing (at least 14 distinct renewTimes, 0.5 s apart), second never leads.
        renewals: set[str] = set()

        async def first_renewed_enough():
            spec = (await lease())["spec"]
            assert spec["holderIdentity"] == "first", spec
            assert not second.started.is_set(), "second became leader while first held the lease"
            renewals.add(spec["renewTime"])
            return len(renewals) >= 14
        await eventually(first_renewed_enough, timeout=30, interval=0.1)
        assert not second.started.is_set() and second.scheduler is None  # it built no scheduler, bound nothing
        assert second.elector.leader == "first" and not second.elector.is_leader()
        assert (await lease())["spec"].get("leaseTransitions", 0) == transitions
        t1.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t1
        await wait_for(second.started.wait(), 60)
        spec = (await lease())["spec"]
        assert spec["holderIdentity"] == "second"
        assert spec["leaseTransitions"] == transitions + 1
        assert second.scheduler is not None
    finally:
        for t in (t1, t2):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


pytestmark = pytest.mark.timeout(120)
