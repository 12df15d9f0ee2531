"""PodTopologySpread: hard skew limits, minDomains, soft scoring, cluster defaults."""
from __future__ import annotations

from .builders import Harness, node, pod
from .test_plugins import run_filter, run_scores

ZONE = "topology.kubernetes.io/zone"


def nodes():
    return (node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}), node("b1", labels={ZONE: "b"}),
            node("nolabel"))


def spread(max_skew: int = 1, when: str = "DoNotSchedule", **extra) -> list[dict]:
    return [{"maxSkew": max_skew, "topologyKey": ZONE, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


def test_skew_limit_and_missing_label():
    h = Harness(*nodes())
    h.add_bound(pod("w1", labels={"app": "web"}), "a1")
    p = pod("w2", labels={"app": "web"}, topologySpreadConstraints=spread())
    st = run_filter(h, "PodTopologySpread", p, "a2")
    assert st.reasons == ["node(s) didn't match pod topology spread constraints"] and st.code.name == "UNSCHEDULABLE"
    assert run_filter(h, "PodTopologySpread", p, "b1") is None
    st = run_filter(h, "PodTopologySpread", p, "nolabel")
    assert st.reasons == ["node(s) didn't match pod topology spread constraints (missing required label)"]
    assert st.code.name == "UNSCHEDULABLE_AND_UNRESOLVABLE"


def test_min_domains_treats_global_minimum_as_zero():
    h = Harness(*nodes())
    h.add_bound(pod("w1", labels={"app": "web"}), "b1")
    p = pod("w2", labels={"app": "web"}, topologySpreadConstraints=spread(minDomains=3))
    # 2 domains < minDomains 3: the minimum is 0, so b1 (1 + 1 - 0 = 2) exceeds maxSkew 1.
    assert run_filter(h, "PodTopologySpread", p, "b1") is not None
    assert run_filter(h, "PodTopologySpread", p, "a1") is None


def test_node_affinity_policy_honor_ignores_excluded_nodes():
    h = Harness(node("a1", labels={ZONE: "a", "pool": "x"}), node("b1", labels={ZONE: "b", "pool": "y"}))
    h.add_bound(pod("w1", labels={"app": "web"}), "a1")
    p = pod("w2", labels={"app": "web"}, nodeSelector={"pool": "x"}, topologySpreadConstraints=spread())
    # zone b is not eligible (nodeSelector), so the only domain is a: skew 2 - 2 = 0.
    assert run_filter(h, "PodTopologySpread", p, "a1") is None


def test_soft_spreading_prefers_the_emptier_zone():
    h = Harness(*nodes()[:3])
    for i in range(3):
        h.add_bound(pod(f"w{i}", labels={"app": "web"}), "a1")
    scores = run_scores(h, "PodTopologySpread", pod("w", labels={"app": "web"},
                                                     topologySpreadConstraints=spread(when="ScheduleAnyway")))
    assert scores["b1"] == 100 and scores["a1"] == scores["a2"] < scores["b1"]


def test_system_default_constraints_use_the_controller_selector():
    h = Harness(node("n1", labels={ZONE: "a"}), node("n2", labels={ZONE: "b"}))
    h.listers.add({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "rs", "namespace": "default"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}}}})
    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": True}]
    for i in range(4):
        p = pod(f"w{i}", labels={"app": "web"})
        p["metadata"]["ownerReferences"] = owner
        h.add_bound(p, "n1")
    incoming = pod("w9", labels={"app": "web"})
    incoming["metadata"]["ownerReferences"] = owner
    scores = run_scores(h, "PodTopologySpread", incoming)
    assert scores["n2"] > scores["n1"]
    assert run_scores(h, "PodTopologySpread", pod("lonely")) == {}


async def test_spread_over_zones_end_to_end():
    h = Harness(*nodes()[:3])
    placed = [await h.schedule(pod(f"w{i}", labels={"app": "web"}, topologySpreadConstraints=spread()))
              for i in range(4)]
    per_zone = {"a": 0, "b": 0}
    for n in placed:
        per_zone[h.sched.snapshot.get(n).labels[ZONE]] += 1
    assert per_zone == {"a": 2, "b": 2}
