"""Self-healing: a node that stops is marked Unknown, tainted and emptied, its pods are
replaced on the nodes that still run, and when it comes back it is Ready again.

A real API server (tests/support/cluster.py) with, in this process on one background
event loop, the controller manager (upstream's controllers, short node-monitor
settings: monitor every 1 s, grace 4 s), the scheduler, and three hollow nodes, each
its own "kubelet" (its own client, Lease renewed every second: upstream's ratio of
renew interval to grace, scaled down), so one of them can be stopped alone. Everything
is observed with kubectl.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import uuid

import pytest

from support.cluster import KUBECTL, Cluster, free_port
from support.waiting import wait_for

from pyk8s.client import Client, load_kubeconfig
from pyk8s.controllers import manager
from pyk8s.controllers.corecontext import CoreSettings, NodeLifecycleSettings
from pyk8s.kubelet import hollow
from pyk8s.scheduler.configuration import load_configuration
from pyk8s.scheduler.server import SchedulerServer

UNREACHABLE = "node.kubernetes.io/unreachable"
NODES = ("nf-a-0", "nf-b-0", "nf-c-0")   # one hollow node per "kubelet", index 0
CONTROLLERS = ["replicaset-controller", "deployment-controller", "node-lifecycle-controller",
               "taint-eviction-controller", "node-ipam-controller", "serviceaccount-controller"]
SETTINGS = CoreSettings(nodes=NodeLifecycleSettings(monitor_period=1.0, grace_period=4.0,
                                                    startup_grace_period=4.0))
EVICT_AFTER = 2   # the template's tolerationSeconds for unreachable/not-ready


class Components:
    """Controllers, scheduler and hollow nodes on one event loop in a background thread."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: dict[str, concurrent.futures.Future] = {}
        self.node_stops: dict[str, asyncio.Event] = {}

    def _submit(self, name: str, coro) -> None:
        self.tasks[name] = asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start(self) -> None:
        self.thread.start()
        self._submit("controller-manager", manager.run(
            self.cluster.kubeconfig, CONTROLLERS, leader_elect=False, settings=SETTINGS))
        self._submit("scheduler", self._scheduler())
        for name in NODES:
            self.start_node(name)

    def start_node(self, name: str) -> None:
        self._submit(name, self._node(NODES.index(name), name))

    async def _scheduler(self) -> None:
        client = Client(load_kubeconfig(self.cluster.kubeconfig))
        config = load_configuration({"leaderElection": {"leaderElect": False}})
        try:
            await SchedulerServer(client, config).run()
        finally:
            await client.close()

    async def _node(self, index: int, name: str) -> None:
        """One hollow node, as its own kubelet would run it."""
        stop = self.node_stops[name] = asyncio.Event()
        settings = hollow.HollowSettings(
            count=1, prefix=name.removesuffix("0"), zones=(f"zone-{index}",),
            node_ips=f"10.250.{index}.0/24", node_lease_duration=4)
        client = Client(load_kubeconfig(self.cluster.kubeconfig))
        nodes = hollow.HollowNodes(client, settings)
        try:
            await nodes.run(stop)
        finally:
            await client.close()

    def stop_node(self, name: str) -> None:
        """The node's kubelet stops: no more Lease renewals, status or pod work."""
        self.loop.call_soon_threadsafe(self.node_stops[name].set)
        self.tasks[name].result(timeout=30)

    def failures(self) -> dict[str, BaseException]:
        return {n: t.exception() for n, t in self.tasks.items()
                if t.done() and not t.cancelled() and t.exception() is not None}

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    async def _shutdown(self) -> None:
        for stop in self.node_stops.values():
            stop.set()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("node-failure")), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def components(cluster):
    c = Components(cluster)
    c.start()
    yield c
    failures = c.failures()
    c.stop()
    assert not failures, failures


@pytest.fixture(autouse=True)
def nodes_running(components):
    """A test that fails while one of its nodes is stopped leaves it running again for
    the next test."""
    yield
    for name in NODES:
        if components.tasks[name].done():
            components.start_node(name)


def get_json(cluster: Cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def ready_condition(node: dict) -> dict:
    return {c["type"]: c for c in node["status"].get("conditions") or []}.get("Ready", {})


def taints(node: dict) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}


def ready_nodes(cluster: Cluster, components: Components) -> dict[str, dict] | None:
    """Every node by name once all hollow nodes are registered, Ready and untainted."""
    assert not components.failures(), components.failures()
    nodes = {n["metadata"]["name"]: n for n in get_json(cluster, "nodes")["items"]}
    ok = all(name in nodes and ready_condition(nodes[name]).get("status") == "True"
             and not taints(nodes[name]) for name in NODES)
    return nodes if ok else None


def deployment_manifest(name: str, replicas: int) -> dict:
    labels = {"app": name}
    tolerations = [{"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": EVICT_AFTER}
                   for key in (UNREACHABLE, "node.kubernetes.io/not-ready")]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}],
                                           "tolerations": tolerations}}}}


def test_a_stopped_nodes_pods_are_replaced_on_the_other_nodes(cluster, components):
    ns = "nf-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "namespace", ns)

    nodes = wait_for(lambda: ready_nodes(cluster, components),
                     "every hollow node Ready and untainted", deadline=60)
    # When a node's Ready condition last changed: a live node keeps this stamp (it never
    # flips, not even between two polls) however long the test runs.
    transitions = {name: ready_condition(nodes[name])["lastTransitionTime"] for name in NODES}

    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    input=json.dumps(deployment_manifest("web", 6)))

    def available():
        dep = get_json(cluster, "deployment", "web", "-n", ns)
        return (dep.get("status") or {}).get("availableReplicas") == 6
    wait_for(available, "6 available replicas", deadline=60)

    pods = get_json(cluster, "pods", "-n", ns, "-l", "app=web")["items"]
    on_node: dict[str, list[str]] = {}
    for pod in pods:
        on_node.setdefault(pod["spec"]["nodeName"], []).append(pod["metadata"]["name"])
    assert set(on_node) <= set(NODES)
    victim = max(on_node, key=lambda n: len(on_node[n]))
    survivors = [n for n in NODES if n != victim]

    def survivors_stay_ready(nodes: dict) -> None:
        for name in survivors:
            ready = ready_condition(nodes[name])
            assert ready["status"] == "True", (name, ready)
            assert ready["lastTransitionTime"] == transitions[name], (name, ready)
            assert not taints(nodes[name]), (name, nodes[name]["spec"])

    components.stop_node(victim)

    def victim_unreachable():
        nodes = {n["metadata"]["name"]: n for n in get_json(cluster, "nodes")["items"]}
        survivors_stay_ready(nodes)
        node = nodes[victim]
        # The NoSchedule taint (on the node's change) and the NoExecute one (the
        # rate-limited eviction queue) are separate writes, in either order.
        if ready_condition(node).get("status") == "Unknown" and \
                {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")} <= taints(node):
            return node
        return None
    node = wait_for(victim_unreachable, f"{victim} Unknown and tainted", deadline=60)
    ready = ready_condition(node)
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    out = cluster.kubectl("get", "node", victim).stdout
    assert "NotReady" in out, out

    def healed():
        nodes = {n["metadata"]["name"]: n for n in get_json(cluster, "nodes")["items"]}
        survivors_stay_ready(nodes)
        pods = {p["metadata"]["name"]: p
                for p in get_json(cluster, "pods", "-n", ns, "-l", "app=web")["items"]}
        evicted = all(pods[name]["metadata"].get("deletionTimestamp")
                      for name in on_node[victim])
        live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
        # the Deployment's status can still show the six from before the eviction: the
        # replacements themselves must be Ready
        all_ready = all({c["type"]: c["status"] for c in p["status"].get("conditions") or []
                         }.get("Ready") == "True" for p in live)
        dep = get_json(cluster, "deployment", "web", "-n", ns)
        if evicted and len(live) == 6 and all_ready and \
                (dep.get("status") or {}).get("availableReplicas") == 6:
            return live
        return None
    live = wait_for(healed, "the deployment healed on the surviving nodes", deadline=90)
    assert {p["spec"]["nodeName"] for p in live} <= set(survivors)
    assert all({c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "True"
               for p in live)
    # The status seen above can be the one from before the eviction; the user sees 6/6
    # once the controller has counted the replacements.
    wait_for(lambda: "6/6" in cluster.kubectl("get", "deployment", "web", "-n", ns).stdout,
             "kubectl get deployment to show 6/6", deadline=30)
    # The evicted pods stay Terminating: no kubelet is left to finish them (upstream
    # the same, until the node object is deleted or tainted out-of-service).
    out = cluster.kubectl("get", "pods", "-n", ns, *on_node[victim]).stdout
    assert out.count("Terminating") == len(on_node[victim]), out
    for name in on_node[victim]:
        pod = get_json(cluster, "pod", name, "-n", ns)
        conds = {c["type"]: c for c in pod["status"]["conditions"]}
        assert conds["DisruptionTarget"]["reason"] == "DeletionByTaintManager"
        assert conds["Ready"]["status"] == "False"

    # The node comes back: Ready again, untainted, and its kubelet finishes the pods
    # that were deleted while it was away.
    components.start_node(victim)

    def back():
        node = get_json(cluster, "node", victim)
        pods = get_json(cluster, "pods", "-n", ns, "-l", "app=web")["items"]
        gone = not {p["metadata"]["name"] for p in pods} & set(on_node[victim])
        return ready_condition(node).get("status") == "True" and not taints(node) and gone
    wait_for(back, f"{victim} Ready again and its old pods gone", deadline=60)


def test_kubectl_drain_moves_pods_and_uncordon_reopens_the_node(cluster, components):
    ns = "nd-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "namespace", ns)
    wait_for(lambda: ready_nodes(cluster, components), "every hollow node Ready and untainted",
             deadline=60)
    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    input=json.dumps(deployment_manifest("api", 4)))

    def placed():
        dep = get_json(cluster, "deployment", "api", "-n", ns)
        if (dep.get("status") or {}).get("availableReplicas") != 4:
            return None
        pods = get_json(cluster, "pods", "-n", ns, "-l", "app=api")["items"]
        return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
    where = wait_for(placed, "4 available replicas", deadline=60)
    node = max(NODES, key=lambda n: sum(1 for v in where.values() if v == n))
    moved = sorted(name for name, n in where.items() if n == node)
    assert moved

    out = cluster.kubectl("drain", node, "--ignore-daemonsets", "--timeout=60s",
                          timeout=90).stdout
    assert f"node/{node} cordoned" in out, out
    assert f"node/{node} drained" in out, out
    for name in moved:
        assert f"pod/{name} evicted" in out, out
    drained = get_json(cluster, "node", node)
    assert drained["spec"]["unschedulable"] is True
    assert "SchedulingDisabled" in cluster.kubectl("get", "node", node).stdout

    def elsewhere():
        dep = get_json(cluster, "deployment", "api", "-n", ns)
        pods = get_json(cluster, "pods", "-n", ns, "-l", "app=api")["items"]
        ok = (dep.get("status") or {}).get("availableReplicas") == 4 and len(pods) == 4
        return ok and all(p["spec"]["nodeName"] != node for p in pods)
    wait_for(elsewhere, "4 replicas on the other nodes", deadline=60)
    wait_for(lambda: ("node.kubernetes.io/unschedulable", "NoSchedule")
             in taints(get_json(cluster, "node", node)), "the unschedulable taint", deadline=30)

    cluster.kubectl("uncordon", node)
    wait_for(lambda: not taints(get_json(cluster, "node", node)), "the taint lifted",
             deadline=30)
    # the reopened node takes new pods again
    cluster.kubectl("scale", "deployment", "api", "-n", ns, "--replicas=12")

    def used_again():
        pods = get_json(cluster, "pods", "-n", ns, "-l", "app=api")["items"]
        return any(p["spec"].get("nodeName") == node for p in pods)
    wait_for(used_again, f"a new pod on {node}", deadline=60)
