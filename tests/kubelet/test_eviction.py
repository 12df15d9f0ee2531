"""Node-pressure eviction on fakes: thresholds, ranking, and what the API shows."""
import pytest

from pyk8s.kubelet.eviction import (MEMORY_AVAILABLE, NODEFS_AVAILABLE, Observation, PodUsage,
                                    Threshold, ThresholdError, parse_eviction_hard, rank,
                                    thresholds_met)

from .fakenode import make_node
from .helpers import container, pod

GI, MI = 1 << 30, 1 << 20


def test_eviction_hard_parses_and_refuses_as_upstream():
    assert parse_eviction_hard("memory.available<100Mi, nodefs.available<10%") == (
        ("memory.available", "100Mi"), ("nodefs.available", "10%"))
    with pytest.raises(ThresholdError, match="unsupported eviction signal cpu.available"):
        parse_eviction_hard("cpu.available<1")
    with pytest.raises(ThresholdError, match="invalid eviction threshold syntax"):
        parse_eviction_hard("memory.available>1Gi")
    with pytest.raises(ThresholdError, match="must be positive"):
        parse_eviction_hard("nodefs.available<0%")


def test_thresholds_are_met_below_their_value_memory_first():
    wanted = [Threshold(NODEFS_AVAILABLE, percentage=0.10),
              Threshold(MEMORY_AVAILABLE, quantity=100 * MI)]
    fine = {MEMORY_AVAILABLE: Observation(available=GI, capacity=8 * GI),
            NODEFS_AVAILABLE: Observation(available=20 * GI, capacity=100 * GI)}
    assert thresholds_met(wanted, fine) == []
    low = {MEMORY_AVAILABLE: Observation(available=50 * MI, capacity=8 * GI),
           NODEFS_AVAILABLE: Observation(available=5 * GI, capacity=100 * GI)}
    assert [t.signal for t in thresholds_met(wanted, low)] == [MEMORY_AVAILABLE,
                                                                 NODEFS_AVAILABLE]


def test_pods_over_their_request_go_first_then_lower_priority_then_bigger_users():
    def p(name, request=None, priority=0):
        res = {"requests": {"memory": request}} if request else {}
        body = pod(name, containers=[container(resources=res)])
        body["spec"]["priority"] = priority
        return body

    within = p("within", request="1Gi")          # uses 512Mi of 1Gi
    greedy = p("greedy", request="100Mi")        # uses 600Mi: 500Mi over
    best_effort = p("best-effort")               # uses 200Mi of nothing
    important = p("important", priority=1000)    # uses 2Gi of nothing, high priority
    usage = {within["metadata"]["uid"]: PodUsage(memory=512 * MI),
             greedy["metadata"]["uid"]: PodUsage(memory=600 * MI),
             best_effort["metadata"]["uid"]: PodUsage(memory=200 * MI),
             important["metadata"]["uid"]: PodUsage(memory=2 * GI)}
    order = rank([within, important, best_effort, greedy], "memory", usage)
    assert [x["metadata"]["name"] for x in order] == ["greedy", "best-effort", "important",
                                                       "within"]


class FakeStats:
    def __init__(self):
        self.memory = Observation(available=4 * GI, capacity=8 * GI)
        self.usage: dict[str, PodUsage] = {}

    async def observe(self):
        return {MEMORY_AVAILABLE: self.memory,
                NODEFS_AVAILABLE: Observation(available=50 * GI, capacity=100 * GI)}

    async def pod_usage(self, p):
        return self.usage.get(p["metadata"]["name"], PodUsage())


@pytest.fixture
async def node(tmp_path):
    n = await make_node(tmp_path, eviction_pressure_transition_period=300.0)
    n.kubelet.eviction.stats = stats = FakeStats()
    n.stats = stats
    yield n
    await n.kubelet.stop()


def condition(node_obj, kind):
    return next(c for c in node_obj["status"]["conditions"] if c["type"] == kind)


async def test_memory_pressure_evicts_the_best_effort_pod_and_shows_on_the_node(node):
    guaranteed = {"requests": {"memory": "1Gi", "cpu": "1"},
                  "limits": {"memory": "1Gi", "cpu": "1"}}
    await node.create(pod("steady", containers=[container(resources=guaranteed)]))
    await node.create(pod("hog"))
    await node.settle()
    assert await node.kubelet.eviction.synchronize() is None  # no pressure yet
    await node.kubelet.node_status.update()
    assert condition(node.kubelet.node_status.node, "MemoryPressure")["status"] == "False"

    node.stats.memory = Observation(available=60 * MI, capacity=8 * GI)
    node.stats.usage = {"hog": PodUsage(memory=3 * GI, containers=(("app", 3 * GI),)),
                        "steady": PodUsage(memory=512 * MI)}
    evicted = await node.kubelet.eviction.synchronize()
    assert evicted["metadata"]["name"] == "hog"
    await node.advance(2)  # the 1 s grace period
    hog = await node.get("hog")
    assert hog["status"]["phase"] == "Failed"
    assert hog["status"]["reason"] == "Evicted"
    assert hog["status"]["message"] == (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 60Mi. "
        "Container app was using 3Gi, request is 0, has larger consumption of 3Gi. ")
    target = next(c for c in hog["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert target["status"] == "True" and target["reason"] == "TerminationByKubelet"
    hogs = [c for c in node.runtime.containers.values()
            if c.config.labels.get("io.kubernetes.pod.name") == "hog"]
    assert hogs and all(c.state.name != "RUNNING" for c in hogs)
    assert ("Evicted", hog["status"]["message"]) in await node.events()
    assert (await node.get("steady"))["status"]["phase"] == "Running"

    await node.kubelet.node_status.update()
    pressure = condition(node.kubelet.node_status.node, "MemoryPressure")
    assert pressure["status"] == "True"
    assert pressure["reason"] == "KubeletHasInsufficientMemory"
    assert pressure["message"] == "kubelet has insufficient memory available"

    # the next pass evicts the next pod; the condition outlives the threshold
    node.stats.memory = Observation(available=4 * GI, capacity=8 * GI)
    assert await node.kubelet.eviction.synchronize() is None
    assert "MemoryPressure" in node.kubelet.eviction.pressure
    node.clock.advance(301)
    assert node.kubelet.eviction.pressure == frozenset()
    await node.kubelet.node_status.update()
    assert condition(node.kubelet.node_status.node, "MemoryPressure")["status"] == "False"


async def test_static_pods_are_not_evicted(node):
    d = node.kubelet.settings.manifests_dir
    d.mkdir(parents=True)
    (d / "static.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: static}\n"
        "spec: {containers: [{name: app, image: busybox}]}\n")
    await node.kubelet.sync_static_pods()
    await node.settle()
    node.stats.memory = Observation(available=MI, capacity=8 * GI)
    assert await node.kubelet.eviction.synchronize() is None
    assert "MemoryPressure" in node.kubelet.eviction.pressure


async def test_under_memory_pressure_new_best_effort_pods_are_refused(node):
    node.stats.memory = Observation(available=MI, capacity=8 * GI)
    await node.kubelet.eviction.synchronize()  # nothing to evict, the node is pressed
    burstable = {"requests": {"memory": "64Mi"}}
    await node.create(pod("small", containers=[container(resources=burstable)]))
    await node.create(pod("tolerant", tolerations=[
        {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
         "effect": "NoSchedule"}]))
    await node.create(pod("plain"))
    await node.settle()
    plain = await node.get("plain")
    assert plain["status"]["phase"] == "Failed" and plain["status"]["reason"] == "Evicted"
    assert plain["status"]["message"] == \
        "Pod was rejected: The node had condition: [MemoryPressure]. "
    assert not [c for c in node.runtime.containers.values()
                if c.config.labels.get("io.kubernetes.pod.name") == "plain"]
    assert ("Evicted", "The node had condition: [MemoryPressure]. ") in await node.events()
    for name in ("small", "tolerant"):
        assert (await node.get(name))["status"]["phase"] == "Running"
