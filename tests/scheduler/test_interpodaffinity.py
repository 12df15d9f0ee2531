"""InterPodAffinity: required and preferred (anti-)affinity across topology keys."""
from __future__ import annotations

from .builders import Harness, node, pod
from .test_plugins import run_filter, run_scores


def zones():
    return (node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}), node("b1", labels={"zone": "b"}))


def term(labels: dict, key: str = "zone") -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def test_required_affinity_follows_matching_pods_zone():
    h = Harness(*zones())
    h.add_bound(pod("db", labels={"app": "db"}), "a1")
    p = pod("web", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "db"})]}})
    assert run_filter(h, "InterPodAffinity", p, "a2") is None
    st = run_filter(h, "InterPodAffinity", p, "b1")
    assert st.reasons == ["node(s) didn't match pod affinity rules"]
    assert st.code.name == "UNSCHEDULABLE_AND_UNRESOLVABLE"


def test_first_pod_of_a_self_affine_group_may_go_anywhere():
    h = Harness(*zones())
    p = pod("first", labels={"app": "x"},
            affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "x"})]}})
    assert run_filter(h, "InterPodAffinity", p, "b1") is None
    other = pod("other", labels={"app": "y"},
                affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "x"})]}})
    assert run_filter(h, "InterPodAffinity", other, "b1") is not None


def test_required_anti_affinity_both_ways():
    h = Harness(*zones())
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        term({"app": "web"}, "kubernetes.io/hostname")]}}
    h.add_bound(pod("web-1", labels={"app": "web"}, affinity=anti), "a1")
    incoming = pod("web-2", labels={"app": "web"}, affinity=anti)
    st = run_filter(h, "InterPodAffinity", incoming, "a1")
    assert st.reasons == ["node(s) didn't match pod anti-affinity rules"] and st.code.name == "UNSCHEDULABLE"
    assert run_filter(h, "InterPodAffinity", incoming, "a2") is None
    # A pod without terms is still kept away by the existing pod's anti-affinity.
    plain = pod("web-3", labels={"app": "web"})
    assert run_filter(h, "InterPodAffinity", plain, "a1").reasons == \
        ["node(s) didn't satisfy existing pods anti-affinity rules"]
    # ...and a pod nobody's terms select skips the plugin entirely.
    assert run_filter(h, "InterPodAffinity", pod("other"), "a1") is None


def test_namespace_selector_selects_namespaces_by_label():
    h = Harness(*zones())
    h.listers.add({"kind": "Namespace", "metadata": {"name": "team-a", "labels": {"team": "a"}}})
    h.add_bound(pod("db", namespace="team-a", labels={"app": "db"}), "b1")
    t = dict(term({"app": "db"}), namespaceSelector={"matchLabels": {"team": "a"}})
    p = pod("web", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}})
    assert run_filter(h, "InterPodAffinity", p, "b1") is None
    assert run_filter(h, "InterPodAffinity", p, "a1") is not None
    same_ns_only = pod("web2", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        term({"app": "db"})]}})
    assert run_filter(h, "InterPodAffinity", same_ns_only, "b1") is not None


def test_preferred_affinity_and_anti_affinity_scores():
    h = Harness(*zones())
    h.add_bound(pod("cache", labels={"app": "cache"}), "a1")
    h.add_bound(pod("noisy", labels={"app": "noisy"}), "b1")
    prefs = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": term({"app": "cache"})}]},
             "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "podAffinityTerm": term({"app": "noisy"})}]}}
    assert run_scores(h, "InterPodAffinity", pod("p", affinity=prefs)) == {"a1": 100, "a2": 100, "b1": 0}


def test_existing_pods_required_affinity_attracts_at_hard_weight():
    h = Harness(*zones())
    h.add_bound(pod("web", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        term({"app": "db"})]}}), "b1")
    assert run_scores(h, "InterPodAffinity", pod("db", labels={"app": "db"})) == {"a1": 0, "a2": 0, "b1": 100}


async def test_anti_affinity_spreads_replicas_end_to_end():
    h = Harness(*zones())
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        term({"app": "web"}, "zone")]}}
    placed = [await h.schedule(pod(f"web-{i}", labels={"app": "web"}, affinity=anti)) for i in range(3)]
    assert placed[2] is None and {h.sched.snapshot.get(n).labels["zone"] for n in placed[:2]} == {"a", "b"}
    assert h.failed_message().startswith(
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: ")
