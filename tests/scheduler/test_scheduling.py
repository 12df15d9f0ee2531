"""schedule_one end to end on synthetic clusters: placement, messages, sampling, binding."""
from __future__ import annotations

import random

from pyk8s.scheduler.framework import Code, Diagnosis, FitError, NodePluginScores, NodeToStatus, PreFilterResult, Status
from pyk8s.scheduler.plugins.registry import in_tree_registry
from pyk8s.scheduler.scheduling import num_feasible_nodes_to_find, select_host, truncate_message

from .builders import Harness, node, pod

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def test_fit_error_message_format():
    d = Diagnosis(node_to_status=NodeToStatus())
    d.node_to_status.set("a", Status(Code.UNSCHEDULABLE, "Insufficient cpu"))
    d.node_to_status.set("b", Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                                     "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"))
    d.node_to_status.set("c", Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                                     "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"))
    d.post_filter_msg = ("preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    assert str(FitError({}, 3, d)) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling.")
    pre = Diagnosis(pre_filter_msg='persistentvolumeclaim "x" not found')
    assert str(FitError({}, 2, pre)) == '0/2 nodes are available: persistentvolumeclaim "x" not found.'


async def test_failed_scheduling_message_as_upstream():
    h = Harness(node("w1", cpu="1"), node("cp1", cpu="8", taints=[CP_TAINT]), node("cp2", cpu="8",
                                                                                  taints=[CP_TAINT]))
    assert await h.schedule(pod("big", cpu="2")) is None
    msg = ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
           "{node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: "
           "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")
    assert h.failed_message() == msg
    key, condition, _ = h.actions.status_patches[-1]
    assert key == "default/big"
    assert (condition["type"], condition["status"], condition["reason"], condition["message"]) == \
        ("PodScheduled", "False", "Unschedulable", msg)


async def test_unresolvable_everywhere_says_preemption_is_not_helpful():
    h = Harness(node("a", taints=[CP_TAINT]), node("b", taints=[CP_TAINT]), node("c", taints=[CP_TAINT]))
    assert await h.schedule(pod("p")) is None
    assert h.failed_message() == (
        "0/3 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


async def test_no_nodes_message():
    h = Harness()
    assert await h.schedule(pod("p")) is None
    assert h.failed_message() == "no nodes available to schedule pods"


async def test_prefilter_rejection_message():
    h = Harness(node("a"), node("b"))
    p = pod("p", volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "missing"}}])
    assert await h.schedule(p) is None
    assert h.failed_message() == ('0/2 nodes are available: persistentvolumeclaim "missing" not found. '
                                  'preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.')


async def test_prefilter_node_names_and_absent_nodes():
    h = Harness(node("a"), node("b", taints=[CP_TAINT]), node("c"))
    fields = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}
    assert await h.schedule(pod("p", affinity=fields)) is None
    assert h.failed_message().startswith(
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 node(s) didn't satisfy plugin(s) [NodeAffinity].")
    assert await h.schedule(pod("q", affinity=fields, tolerations=[{"operator": "Exists"}])) == "b"


async def test_scheduled_event_and_resources_accumulate():
    h = Harness(node("a", cpu="2"), node("b", cpu="2"))
    placed = [await h.schedule(pod(f"p{i}", cpu="1")) for i in range(5)]
    assert sorted(placed[:4]) == ["a", "a", "b", "b"] and placed[4] is None
    assert h.actions.events_for("Scheduled")[0] == f"Successfully assigned default/p0 to {placed[0]}"


async def test_pods_for_other_schedulers_are_ignored():
    h = Harness(node("a"))
    h.add_pod(pod("mine"))
    h.add_pod(pod("theirs", scheduler_name="other-scheduler"))
    assert h.sched.queue.pending() == (1, 0, 0)


async def test_profiles_pick_plugins_and_weights():
    cfg = {"profiles": [{"schedulerName": "default-scheduler"},
                        {"schedulerName": "packer", "plugins": {"score": {"disabled": [{"name": "*"}], "enabled": [
                            {"name": "NodeResourcesFit", "weight": 5}]}},
                         "pluginConfig": [{"name": "NodeResourcesFit",
                                           "args": {"scoringStrategy": {"type": "MostAllocated"}}}]}]}
    h = Harness(node("small", cpu="2"), node("large", cpu="16"), config=cfg)
    assert await h.schedule(pod("spread", cpu="1")) == "large"
    assert await h.schedule(pod("packed", cpu="1", scheduler_name="packer")) == "small"
    packer = h.sched.profiles["packer"]
    assert [pl.name for pl in packer.points["score"]] == ["NodeResourcesFit"]
    assert packer.score_weights == {"NodeResourcesFit": 5}
    default = h.sched.profiles["default-scheduler"]
    assert default.score_weights == {"TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1,
                                     "PodTopologySpread": 2, "InterPodAffinity": 2,
                                     "NodeResourcesBalancedAllocation": 1, "ImageLocality": 1}
    assert [pl.name for pl in default.points["filter"]] == [
        "NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts", "NodeResourcesFit",
        "VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding", "VolumeZone", "PodTopologySpread",
        "InterPodAffinity"]


def test_adaptive_percentage_of_nodes_to_score():
    assert num_feasible_nodes_to_find(0, 50) == 50
    assert num_feasible_nodes_to_find(0, 100) == 100   # 49% of 100 -> at least 100
    assert num_feasible_nodes_to_find(0, 1000) == 420  # 50 - 1000/125 = 42%
    assert num_feasible_nodes_to_find(0, 5000) == 500  # 10%
    assert num_feasible_nodes_to_find(0, 10000) == 500  # floor of 5%
    assert num_feasible_nodes_to_find(30, 1000) == 300


async def test_sampling_stops_early_and_rotates_the_start_index():
    h = Harness(*(node(f"n{i:03}") for i in range(200)))
    sched = h.sched
    await h.schedule(pod("p0"))
    # 200 nodes -> 49% -> 98 < 100 -> 100 feasible nodes evaluated, next start 100.
    assert sched.next_start_node_index == 100
    await h.schedule(pod("p1"))
    assert sched.next_start_node_index == 0


def test_select_host_breaks_ties_randomly():
    rng = random.Random(7)
    scores = [NodePluginScores("a", total_score=5), NodePluginScores("b", total_score=9),
              NodePluginScores("c", total_score=9)]
    picks = {select_host(scores, rng) for _ in range(50)}
    assert picks == {"b", "c"}


def test_truncated_event_message():
    assert truncate_message("x" * 2000).endswith(" ...") and len(truncate_message("x" * 2000)) == 1024


async def test_binding_failure_forgets_the_assumed_pod_and_retries():
    h = Harness(node("a", cpu="1"))
    p = pod("p", cpu="1")
    h.actions.fail_binds.add("default/p")
    assert await h.schedule(p) is None
    assert not h.sched.cache.nodes["a"].pods
    assert h.sched.queue.where(p) == "BackoffQ"
    assert h.actions.events_for("FailedScheduling") == [
        "running Bind plugin 'DefaultBinder': binding default/p rejected"]


class WaitForApproval:
    """A Permit plugin holding every pod until ``approve`` (a gang-scheduling shape)."""

    name = "WaitForApproval"

    def __init__(self, handle):
        self.handle = handle

    def permit(self, state, pod, node_name):
        return Status(Code.WAIT), 30.0

    def approve(self, pod):
        self.handle.get_waiting_pod(pod["metadata"]["uid"]).allow(self.name)


async def test_permit_wait_allow_and_timeout():
    registry = dict(in_tree_registry(), WaitForApproval=lambda args, handle: WaitForApproval(handle))
    h = Harness(node("a"), registry=registry,
                config={"profiles": [{"plugins": {"permit": {"enabled": [{"name": "WaitForApproval"}]}}}]})
    sched = h.sched
    p = h.add_pod(pod("p"))
    await sched.schedule_one(sched.queue.pop_nowait())
    assert h.actions.binds == [] and sched.cache.is_assumed_pod(dict(p, spec=dict(p["spec"], nodeName="a")))
    sched.profiles["default-scheduler"].plugins["WaitForApproval"].approve(p)
    await sched.drain_bindings()
    assert h.actions.binds == [("default/p", "a")]
    q = h.add_pod(pod("q"))
    await sched.schedule_one(sched.queue.pop_nowait())
    h.clock.advance(30)
    await sched.drain_bindings()
    assert h.failed_message() == ("0/1 nodes are available: 1 rejected due to timeout after waiting 30s at "
                                  "plugin WaitForApproval.")
    assert sched.queue.where(q) == "Unschedulable"


class OnlyNodes:
    """A PreFilter plugin narrowing the search to fixed nodes."""

    def __init__(self, name, nodes):
        self.name, self.nodes = name, set(nodes)

    def pre_filter(self, state, pod):
        return PreFilterResult(set(self.nodes)), None

    def pre_filter_extensions(self):
        return None


async def test_disjoint_prefilter_results_name_the_plugins_sorted_as_upstream():
    # Upstream formats sets.List(pluginsWithNodes): sorted, whatever the plugin order.
    registry = dict(in_tree_registry(), Zeta=lambda args, handle: OnlyNodes("Zeta", ["a"]),
                    Alpha=lambda args, handle: OnlyNodes("Alpha", ["b"]))
    h = Harness(node("a"), node("b"), registry=registry, config={"profiles": [{"plugins": {
        "preFilter": {"enabled": [{"name": "Zeta"}, {"name": "Alpha"}]}}}]})
    assert [pl.name for pl in h.sched.profiles["default-scheduler"].points["preFilter"]][-2:] == ["Zeta", "Alpha"]
    assert await h.schedule(pod("p")) is None
    assert h.failed_message() == ("0/2 nodes are available: node(s) didn't satisfy plugin(s) [Alpha Zeta] "
                                  "simultaneously. preemption: 0/2 nodes are available: 2 Preemption is not "
                                  "helpful for scheduling.")
