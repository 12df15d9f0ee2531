"""ReplicaSet arithmetic: creations capped per sync, victims, status and ReplicaFailure."""
from pyk8s.controllers import replicaset as rsc

from .builders import at, pod, replicaset


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_too_few_pods_creates_the_difference_capped_at_burst():
    rs = replicaset("web", 3)
    assert rsc.manage(rs, [pod("a")], [], at(0)).create == 2
    big = replicaset("big", 2000)
    assert rsc.manage(big, [], [], at(0)).create == rsc.BURST_REPLICAS


def test_too_many_pods_deletes_least_valuable_first():
    rs = replicaset("web", 2)
    pods = [pod("ready", ready_since=5), pod("pending", phase="Pending", ready=False),
            pod("notready", ready=False), pod("ready2", ready_since=5)]
    plan = rsc.manage(rs, pods, pods, at(1000))
    assert names(plan.delete) == ["pending", "notready"]


def test_pods_sharing_a_node_with_siblings_go_first():
    rs = replicaset("web", 2)
    a, b, c = pod("a", node="n1"), pod("b", node="n2"), pod("c", node="n2")
    related = [a, b, c, pod("other-rs-pod", node="n1"), pod("x", node="n2")]
    plan = rsc.manage(rs, [a, b, c], related, at(1000))
    assert names(plan.delete) in (["b"], ["c"])


def test_deleting_everything_skips_sorting():
    rs = replicaset("web", 0)
    pods = [pod("a"), pod("b")]
    assert names(rsc.manage(rs, pods, pods, at(0)).delete) == ["a", "b"]


def test_status_counts_ready_available_and_fully_labeled():
    rs = replicaset("web", 3, labels={"app": "web"}, min_ready=10)
    rs["spec"]["template"]["metadata"]["labels"]["tier"] = "fe"
    pods = [pod("a", ready_since=0, labels={"app": "web", "tier": "fe"}),
            pod("b", ready_since=95), pod("c", ready=False)]
    status = rsc.calculate_status(rs, pods, None, at(100))
    assert status == {"replicas": 3, "fullyLabeledReplicas": 1, "readyReplicas": 2,
                      "availableReplicas": 1}
    update = rsc.status_update(rs, status)
    assert update["observedGeneration"] == 1
    rs["status"] = update
    assert rsc.status_update(rs, status) is None
    assert rsc.min_ready_requeue(rs, {"readyReplicas": 3, "availableReplicas": 1}, None) == 10


def test_replica_failure_condition_comes_and_goes():
    rs = replicaset("web", 2)
    status = rsc.calculate_status(rs, [], "pods is forbidden: exceeded quota", at(5))
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    assert cond["message"] == "pods is forbidden: exceeded quota"
    rs["status"] = status
    assert "conditions" not in rsc.calculate_status(rs, [], None, at(6))


def test_replication_controller_selector_is_a_map():
    rc = {"kind": "ReplicationController", "spec": {"selector": {"app": "web"}}}
    assert rsc.selector_of(rc).matches({"app": "web", "x": "y"})
    assert not rsc.selector_of(rc).matches({"app": "db"})
