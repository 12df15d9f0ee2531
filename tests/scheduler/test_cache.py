"""The node cache: assumed pods, incremental snapshots, zone-interleaved listing."""
from __future__ import annotations

import pytest

from pyk8s.scheduler.cache import Cache, CacheError, Snapshot

from .builders import node, pod

ZONE = "topology.kubernetes.io/zone"


def bound(name: str, node_name: str, **kw) -> dict:
    p = pod(name, **kw)
    p["spec"]["nodeName"] = node_name
    return p


def test_assume_confirm_and_forget():
    c = Cache()
    c.add_node(node("n1", cpu="2"))
    p = bound("p", "n1", cpu="1")
    c.assume_pod(p)
    assert c.is_assumed_pod(p) and c.nodes["n1"].requested.milli_cpu == 1000
    with pytest.raises(CacheError):
        c.assume_pod(p)
    c.add_pod(p)  # the informer confirms the binding
    assert not c.is_assumed_pod(p) and c.nodes["n1"].requested.milli_cpu == 1000
    q = bound("q", "n1", cpu="500m")
    c.assume_pod(q)
    c.forget_pod(q)
    assert c.nodes["n1"].requested.milli_cpu == 1000
    with pytest.raises(CacheError):
        c.forget_pod(p)


def test_confirmation_on_another_node_moves_the_pod():
    c = Cache()
    c.add_node(node("n1"))
    c.add_node(node("n2"))
    p = bound("p", "n1", cpu="1")
    c.assume_pod(p)
    c.add_pod(dict(p, spec=dict(p["spec"], nodeName="n2")))
    assert not c.nodes["n1"].pods and c.nodes["n2"].requested.milli_cpu == 1000


def test_snapshot_copies_only_changed_nodes_and_keeps_list_entries():
    c = Cache()
    for i in range(5):
        c.add_node(node(f"n{i}"))
    snap = Snapshot()
    c.update_snapshot(snap)
    assert [ni.name for ni in snap.list()] == [f"n{i}" for i in range(5)]
    entry = snap.list()[3]
    untouched = snap.get("n1")
    gen = snap.generation
    c.add_pod(bound("p", "n3", cpu="1"))
    c.update_snapshot(snap)
    assert snap.generation > gen
    assert snap.list()[3] is entry and entry.requested.milli_cpu == 1000
    assert snap.get("n1") is untouched
    # The snapshot is a copy: the cache changing later does not leak into it.
    c.add_pod(bound("q", "n3", cpu="1"))
    assert entry.requested.milli_cpu == 1000


def test_snapshot_tracks_affinity_subsets_and_removed_nodes():
    c = Cache()
    c.add_node(node("n1"))
    c.add_node(node("n2"))
    snap = Snapshot()
    c.update_snapshot(snap)
    assert snap.have_pods_with_affinity_list() == []
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"a": "b"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    p = bound("p", "n2", affinity=anti)
    c.add_pod(p)
    c.update_snapshot(snap)
    assert [ni.name for ni in snap.have_pods_with_required_anti_affinity_list()] == ["n2"]
    c.remove_node(node("n1"))
    c.update_snapshot(snap)
    assert [ni.name for ni in snap.list()] == ["n2"]
    # A deleted node with pods left stays out of snapshots until its pods go.
    c.remove_node(node("n2"))
    c.update_snapshot(snap)
    assert snap.list() == [] and "n2" in c.nodes
    c.remove_pod(p)
    assert "n2" not in c.nodes


def test_nodes_are_listed_zone_interleaved():
    c = Cache()
    for name, zone in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c"), ("b2", "b")):
        c.add_node(node(name, labels={ZONE: zone}))
    snap = Snapshot()
    c.update_snapshot(snap)
    assert [ni.name for ni in snap.list()] == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_image_states_count_nodes_cluster_wide():
    c = Cache()
    img = {"names": ["nginx:1.25"], "sizeBytes": 100}
    c.add_node(node("n1", images=[img]))
    c.add_node(node("n2", images=[img]))
    assert c.nodes["n1"].image_states["nginx:1.25"].num_nodes == 2
    c.remove_node(node("n2"))
    assert c.nodes["n1"].image_states["nginx:1.25"].num_nodes == 1


def test_pods_bound_before_their_node_appears_wait_in_a_placeholder():
    c = Cache()
    c.add_pod(bound("early", "late-node", cpu="1"))
    snap = Snapshot()
    c.update_snapshot(snap)
    assert snap.list() == []
    c.add_node(node("late-node"))
    c.update_snapshot(snap)
    assert snap.get("late-node").requested.milli_cpu == 1000
