"""Node health, taints, NoExecute eviction times and pod CIDRs (pure)."""
import datetime

import pytest

from pyk8s.controllers import nodeipam, nodelifecycle as nl

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def stamp(seconds):
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name="n1", *, ready="True", heartbeat=0, taints=None, unschedulable=False, **conds):
    conditions = [{"type": "Ready", "status": ready, "lastHeartbeatTime": stamp(heartbeat),
                   "lastTransitionTime": stamp(0)}] if ready else []
    conditions += [{"type": k, "status": v} for k, v in conds.items()]
    spec = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "creationTimestamp": stamp(0)}, "spec": spec,
            "status": {"conditions": conditions}}


def lease(renew):
    return {"spec": {"renewTime": at(renew).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def test_first_sight_gives_a_full_grace_period():
    health, has_ready = nl.observe_health(node(), None, None, at(100))
    assert has_ready and health.probe == at(100)


def test_lease_renewal_is_a_heartbeat():
    health, _ = nl.observe_health(node(), lease(5), None, at(10))
    health, _ = nl.observe_health(node(), lease(5), health, at(30))
    assert health.probe == at(10)               # same renewTime: no news
    health, _ = nl.observe_health(node(), lease(35), health, at(40))
    assert health.probe == at(40)


def test_status_heartbeat_counts_too():
    health, _ = nl.observe_health(node(heartbeat=0), None, None, at(10))
    health, _ = nl.observe_health(node(heartbeat=20), None, health, at(25))
    assert health.probe == at(25)


def test_node_without_ready_condition_uses_creation_time():
    health, has_ready = nl.observe_health(node(ready=None), None, None, at(100))
    assert not has_ready and health.probe == T0


def test_mark_unknown():
    n = node(MemoryPressure="False")
    new = nl.mark_unknown(n, stamp(50))
    conds = {c["type"]: c for c in new["status"]["conditions"]}
    assert conds["Ready"]["status"] == "Unknown"
    assert conds["Ready"]["reason"] == "NodeStatusUnknown"
    assert conds["Ready"]["message"] == "Kubelet stopped posting node status."
    assert conds["Ready"]["lastTransitionTime"] == stamp(50)
    assert conds["Ready"]["lastHeartbeatTime"] == stamp(0)
    assert conds["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert conds["DiskPressure"]["message"] == "Kubelet never posted node status."
    assert n["status"]["conditions"][0]["status"] == "True"   # input untouched


def test_zone_states():
    assert nl.compute_zone_state(["False"], 0.55) == (1, nl.FULL)
    assert nl.compute_zone_state(["True", "Unknown"], 0.55) == (1, nl.NORMAL)
    assert nl.compute_zone_state(["True", "Unknown", "False", "Unknown"], 0.55) == (
        3, nl.PARTIAL)


def test_noschedule_condition_taints():
    n = node(ready="Unknown", MemoryPressure="True", unschedulable=True,
             taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                     {"key": "custom", "effect": "NoSchedule"}])
    add, remove = nl.noschedule_diff(n)
    assert sorted(t["key"] for t in add) == ["node.kubernetes.io/memory-pressure",
                                             "node.kubernetes.io/unreachable",
                                             "node.kubernetes.io/unschedulable"]
    assert [t["key"] for t in remove] == ["node.kubernetes.io/not-ready"]


def test_swap_taints_stamps_time_added():
    taints = [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}, {"key": "x"}]
    out = nl.swap_taints(taints, [{"key": "node.kubernetes.io/unreachable",
                                   "effect": "NoExecute"}],
                         [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}],
                         stamp(9))
    assert out == [{"key": "x"}, {"key": "node.kubernetes.io/unreachable",
                                  "effect": "NoExecute", "timeAdded": stamp(9)}]


def pod(tolerations=(), created=0):
    return {"metadata": {"name": "p", "creationTimestamp": stamp(created)},
            "spec": {"tolerations": list(tolerations)}}


UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
               "timeAdded": stamp(100)}


def test_untolerated_noexecute_taint_evicts_now():
    assert nl.eviction_time(pod(), node(taints=[UNREACHABLE])) is True


def test_toleration_seconds_delay_eviction():
    tol = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 300}
    assert nl.eviction_time(pod([tol]), node(taints=[UNREACHABLE])) == at(400)
    # A pod created after the taint was added counts from its creation.
    assert nl.eviction_time(pod([tol], created=200), node(taints=[UNREACHABLE])) == at(500)


def test_toleration_forever_and_no_taints():
    forever = {"operator": "Exists"}
    assert nl.eviction_time(pod([forever]), node(taints=[UNREACHABLE])) is None
    assert nl.eviction_time(pod(), node()) is None
    noschedule = {"key": "x", "effect": "NoSchedule"}
    assert nl.eviction_time(pod(), node(taints=[noschedule])) is None


def test_min_toleration_seconds():
    assert nl.min_toleration_seconds([{"tolerationSeconds": 10}, {"tolerationSeconds": 5}]) == 5
    assert nl.min_toleration_seconds([{"tolerationSeconds": -1}]) == 0
    assert nl.min_toleration_seconds([{}]) == -1


# --- IPAM ----------------------------------------------------------------------------------

def test_cidrs_allocate_round_robin_and_reuse():
    s = nodeipam.CidrSet("10.42.0.0/16", 24)
    assert s.allocate_next() == "10.42.0.0/24"
    assert s.occupy("10.42.1.0/24")
    assert s.allocate_next() == "10.42.2.0/24"
    s.release("10.42.0.0/24")
    assert s.allocate_next() == "10.42.3.0/24"   # round robin: not the freed one yet
    assert not s.occupy("192.168.0.0/24")


def test_cidr_range_full():
    s = nodeipam.CidrSet("10.42.0.0/23", 24)
    s.allocate_next()
    s.allocate_next()
    with pytest.raises(nodeipam.CIDRRangeFull):
        s.allocate_next()
