"""Node-pressure eviction on fakes: thresholds (hard and soft), ranking, and what the
API shows."""
import pytest

from pyk8s.kubelet import __main__ as cli
from pyk8s.kubelet.eviction import (MEMORY_AVAILABLE, NODEFS_AVAILABLE, Amount, Observation,
                                    PodUsage, Threshold, ThresholdError, eviction_grace,
                                    parse_eviction_hard, parse_grace_periods,
                                    parse_minimum_reclaims, parse_threshold_config, rank,
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


# ---- soft thresholds, grace periods, minimum reclaim -----------------------------------

def test_soft_threshold_flags_parse_and_refuse_as_upstream():
    assert parse_grace_periods("memory.available=1m30s, nodefs.available=2m") == (
        ("memory.available", 90.0), ("nodefs.available", 120.0))
    assert parse_minimum_reclaims("memory.available=0Mi,nodefs.available=500Mi") == (
        ("memory.available", "0Mi"), ("nodefs.available", "500Mi"))
    soft = parse_threshold_config((("memory.available", "100Mi"),),
                                  (("memory.available", "1.5Gi"),),
                                  (("memory.available", 90.0),),
                                  (("memory.available", "500Mi"),))
    assert soft == [Threshold(MEMORY_AVAILABLE, quantity=100 * MI,
                              min_reclaim=Amount(quantity=500 * MI)),
                    Threshold(MEMORY_AVAILABLE, quantity=3 * GI // 2, grace_period=90.0,
                              min_reclaim=Amount(quantity=500 * MI))]
    assert [t.hard for t in soft] == [True, False]
    # upstream accepts a grace period without a soft threshold and leaves it unused
    assert parse_threshold_config((), (), (("nodefs.available", 60.0),)) == []

    with pytest.raises(ThresholdError, match="^grace period must be specified for the soft "
                                             "eviction threshold memory.available$"):
        parse_threshold_config((), (("memory.available", "1Gi"),),
                               (("nodefs.available", 60.0),))
    with pytest.raises(ThresholdError, match="^invalid eviction grace period specified: -1m, "
                                             "must be a positive value$"):
        parse_grace_periods("memory.available=-1m")
    with pytest.raises(ThresholdError, match="^unsupported eviction signal cpu.available$"):
        parse_grace_periods("cpu.available=1m")
    with pytest.raises(ThresholdError, match='^time: missing unit in duration "90"$'):
        parse_grace_periods("memory.available=90")
    with pytest.raises(ThresholdError, match="^malformed pair, expect string=string$"):
        parse_grace_periods("memory.available")
    with pytest.raises(ThresholdError, match="^negative eviction minimum reclaim specified "
                                             "for memory.available$"):
        parse_minimum_reclaims("memory.available=-1Mi")
    with pytest.raises(ThresholdError, match="^eviction percentage minimum reclaim "
                                             "nodefs.available must be positive: 0%$"):
        parse_minimum_reclaims("nodefs.available=0%")
    with pytest.raises(ThresholdError, match="^unsupported eviction signal pid.availabl$"):
        parse_minimum_reclaims("pid.availabl=1")


def test_the_kubelet_flags_take_soft_thresholds_and_refuse_bad_ones(tmp_path, capsys):
    args = cli.parser().parse_args([
        "--data-dir", str(tmp_path), "--hostname-override", "node-a",
        "--eviction-soft", "memory.available<1.5Gi,nodefs.available<15%",
        "--eviction-soft-grace-period", "memory.available=1m30s,nodefs.available=2m",
        "--eviction-max-pod-grace-period", "30",
        "--eviction-minimum-reclaim", "memory.available=0Mi,nodefs.available=500Mi"])
    settings = cli.settings_from(args)
    assert settings.eviction_soft == (("memory.available", "1.5Gi"),
                                      ("nodefs.available", "15%"))
    assert settings.eviction_soft_grace_period == (("memory.available", 90.0),
                                                   ("nodefs.available", 120.0))
    assert settings.eviction_max_pod_grace_period == 30
    assert settings.eviction_minimum_reclaim == (("memory.available", "0Mi"),
                                                 ("nodefs.available", "500Mi"))

    def refused(*argv: str) -> str:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["--data-dir", str(tmp_path), *argv])
        assert exit_.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert refused("--eviction-soft", "memory.available<1.5Gi") == (
        "pyk8s-kubelet: error: grace period must be specified for the soft eviction "
        "threshold memory.available")
    assert refused("--eviction-soft", "memory.available<1Gi", "--eviction-soft-grace-period",
                   "memory.available=-30s") == (
        "pyk8s-kubelet: error: argument --eviction-soft-grace-period: invalid eviction "
        "grace period specified: -30s, must be a positive value")
    assert refused("--eviction-soft", "cpu.available<1") == (
        "pyk8s-kubelet: error: argument --eviction-soft: unsupported eviction signal "
        "cpu.available")
    assert refused("--eviction-minimum-reclaim", "memory.available=-1Mi") == (
        "pyk8s-kubelet: error: argument --eviction-minimum-reclaim: negative eviction "
        "minimum reclaim specified for memory.available")


def test_soft_evictions_give_the_pod_at_most_the_max_grace_period():
    soft = Threshold(MEMORY_AVAILABLE, quantity=GI, grace_period=90.0)
    hard = Threshold(MEMORY_AVAILABLE, quantity=100 * MI)
    slow, quick, instant = (pod(n, terminationGracePeriodSeconds=g)
                            for n, g in (("slow", 60), ("quick", 5), ("instant", 0)))
    assert eviction_grace(slow, soft, 10) == 10      # capped at the maximum
    assert eviction_grace(quick, soft, 10) == 5      # the pod's own is smaller
    assert eviction_grace(instant, soft, 10) == 1    # the pod workers' 1 s floor
    assert eviction_grace(slow, soft, 0) == 1        # upstream's default maximum
    assert eviction_grace(slow, hard, 10) == 1       # hard: immediate, whatever the maximum


def test_minimum_reclaim_raises_the_bar_only_when_enforced():
    t = Threshold(MEMORY_AVAILABLE, quantity=100 * MI, min_reclaim=Amount(percentage=0.05))
    recovering = {MEMORY_AVAILABLE: Observation(available=400 * MI, capacity=8 * GI)}
    assert thresholds_met([t], recovering) == []
    assert thresholds_met([t], recovering, enforce_min_reclaim=True) == [t]  # 400Mi < 509.6Mi
    recovered = {MEMORY_AVAILABLE: Observation(available=600 * MI, capacity=8 * GI)}
    assert thresholds_met([t], recovered, enforce_min_reclaim=True) == []


async def pressed_node(tmp_path, **settings):
    n = await make_node(tmp_path, **settings)
    n.kubelet.eviction.stats = n.stats = FakeStats()
    return n


def stop_timeouts(node) -> list[tuple[str, int]]:
    """Record the grace period every container stop is given: (pod name, timeout)."""
    seen: list[tuple[str, int]] = []
    real = node.runtime.stop_container

    async def stop(cid, *, timeout):
        c = node.runtime.containers.get(cid)
        if c is not None:
            seen.append((c.config.labels.get("io.kubernetes.pod.name"), timeout))
        await real(cid, timeout=timeout)

    node.runtime.stop_container = stop
    return seen


async def test_a_soft_threshold_raises_pressure_at_once_and_evicts_after_its_grace_period(
        tmp_path):
    node = await pressed_node(
        tmp_path, eviction_soft=(("memory.available", "1Gi"),),
        eviction_soft_grace_period=(("memory.available", 90.0),),
        eviction_max_pod_grace_period=10, eviction_pressure_transition_period=300.0)
    try:
        guaranteed = {"requests": {"memory": "1Gi", "cpu": "1"},
                      "limits": {"memory": "1Gi", "cpu": "1"}}
        await node.create(pod("steady", containers=[container(resources=guaranteed)]))
        await node.create(pod("hog", terminationGracePeriodSeconds=60))
        await node.settle()
        timeouts = stop_timeouts(node)
        node.stats.usage = {"hog": PodUsage(memory=3 * GI, containers=(("app", 3 * GI),)),
                            "steady": PodUsage(memory=512 * MI)}
        eviction = node.kubelet.eviction

        # below the soft threshold (1Gi), above the hard one (100Mi): pressure at once
        node.stats.memory = Observation(available=800 * MI, capacity=8 * GI)
        assert await eviction.synchronize() is None
        await node.kubelet.node_status.update()
        pressure = condition(node.kubelet.node_status.node, "MemoryPressure")
        assert pressure["status"] == "True"
        assert pressure["reason"] == "KubeletHasInsufficientMemory"
        await node.advance(60)
        assert await eviction.synchronize() is None  # 60 s of 90

        # the signal recovers for one pass: the grace period starts again
        node.stats.memory = Observation(available=2 * GI, capacity=8 * GI)
        assert await eviction.synchronize() is None
        await node.advance(10)
        node.stats.memory = Observation(available=800 * MI, capacity=8 * GI)
        assert await eviction.synchronize() is None
        await node.advance(60)
        assert await eviction.synchronize() is None  # 130 s since first, 60 s since again
        assert (await node.get("hog"))["status"]["phase"] == "Running"
        assert not [e for e in await node.events() if e[0] == "Evicted"]
        assert timeouts == []

        await node.advance(30)  # held for its whole grace period
        evicted = await eviction.synchronize()
        assert evicted["metadata"]["name"] == "hog"
        await node.settle()
        hog = await node.get("hog")
        assert hog["status"]["phase"] == "Failed" and hog["status"]["reason"] == "Evicted"
        assert hog["status"]["message"] == (
            "The node was low on resource: memory. Threshold quantity: 1Gi, available: "
            "800Mi. Container app was using 3Gi, request is 0, has larger consumption of "
            "3Gi. ")
        assert ("Evicted", hog["status"]["message"]) in await node.events()
        # min(the pod's 60 s, --eviction-max-pod-grace-period 10)
        assert timeouts == [("hog", 10)]
        assert (await node.get("steady"))["status"]["phase"] == "Running"
    finally:
        await node.kubelet.stop()


async def test_minimum_reclaim_keeps_the_node_pressed_until_usage_drops_past_it(tmp_path):
    node = await pressed_node(tmp_path,
                              eviction_minimum_reclaim=(("memory.available", "500Mi"),),
                              eviction_pressure_transition_period=5.0)
    try:
        for name in ("first", "second", "third"):
            await node.create(pod(name))
        await node.settle()
        eviction = node.kubelet.eviction

        async def memory_pressure() -> str:
            await node.kubelet.node_status.update()
            return condition(node.kubelet.node_status.node, "MemoryPressure")["status"]

        node.stats.memory = Observation(available=50 * MI, capacity=8 * GI)  # < 100Mi
        assert (await eviction.synchronize()) is not None
        assert await memory_pressure() == "True"

        # above the hard threshold but not by 500Mi: still met, the next pod goes
        await node.advance(10)
        node.stats.memory = Observation(available=400 * MI, capacity=8 * GI)
        assert (await eviction.synchronize()) is not None
        assert await memory_pressure() == "True"
        await node.settle()
        evicted = [n for n in ("first", "second", "third")
                   if (await node.get(n))["status"]["phase"] == "Failed"]
        assert len(evicted) == 2

        # 700Mi > 100Mi + 500Mi: resolved; the condition clears after the transition
        await node.advance(10)
        node.stats.memory = Observation(available=700 * MI, capacity=8 * GI)
        assert await eviction.synchronize() is None
        await node.advance(10)
        assert await eviction.synchronize() is None
        assert await memory_pressure() == "False"
        # and a later dip that stays above the threshold itself is no pressure at all
        node.stats.memory = Observation(available=400 * MI, capacity=8 * GI)
        assert await eviction.synchronize() is None
        await node.advance(10)
        assert await eviction.synchronize() is None
        assert await memory_pressure() == "False"
    finally:
        await node.kubelet.stop()
