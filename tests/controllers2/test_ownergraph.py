"""The garbage collector's owner graph and its deletion decisions (pure)."""
from pyk8s.controllers import ownergraph as og


def obj(kind, name, uid, *, ns="default", owners=(), finalizers=None, deleting=False,
        api_version=None):
    md = {"name": name, "uid": uid, "namespace": ns}
    if owners:
        md["ownerReferences"] = list(owners)
    if finalizers:
        md["finalizers"] = list(finalizers)
    if deleting:
        md["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"apiVersion": api_version or ("apps/v1" if kind in ("Deployment", "ReplicaSet")
                                          else "v1"),
            "kind": kind, "metadata": md}


def ref(owner, *, block=True, controller=True):
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": controller, "blockOwnerDeletion": block}


def chain():
    dep = obj("Deployment", "web", "d1")
    rs = obj("ReplicaSet", "web-1", "r1", owners=[ref(dep)])
    pod = obj("Pod", "web-1-a", "p1", owners=[ref(rs)])
    return dep, rs, pod


def test_dependents_follow_owner_references():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    assert g.get("d1").dependents == {"r1"}
    assert g.get("r1").dependents == {"p1"}
    assert not g.get("d1").virtual


def test_unknown_owner_becomes_virtual_node_to_verify():
    g = og.OwnerGraph()
    _, rs, pod = chain()
    acts = g.observe(og.ADD, pod)
    owner = g.get("r1")
    assert owner.virtual and not owner.observed
    assert acts.delete == ["r1"]          # the collector asks the API whether it exists
    g.observe(og.ADD, rs)                 # now observed: identity confirmed
    assert g.get("r1").observed and not g.get("r1").virtual


def test_deleting_owner_enqueues_dependents():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    acts = g.observe(og.DELETE, rs)
    assert acts.delete == ["p1"]
    assert g.get("r1") is None
    assert g.absent.has(og.Identity.of(rs))


def test_foreground_deletion_starts_on_finalizer():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    deleting = obj("Deployment", "web", "d1", finalizers=["foregroundDeletion"], deleting=True)
    acts = g.observe(og.UPDATE, deleting, dep)
    assert g.get("d1").deleting_dependents
    assert acts.delete == ["r1", "d1"]
    # The same state seen again (a resync) is not a new transition.
    assert g.observe(og.UPDATE, deleting, deleting).delete == []


def test_orphan_deletion_starts_on_finalizer():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    acts = g.observe(og.UPDATE, obj("ReplicaSet", "web-1", "r1", owners=rs["metadata"][
        "ownerReferences"], finalizers=["orphan"], deleting=True), rs)
    assert acts.orphan == ["r1"] and acts.delete == []


def test_relist_after_restart_repeats_transitions():
    g = og.OwnerGraph()
    waiting = obj("Deployment", "web", "d1", finalizers=["foregroundDeletion"], deleting=True)
    assert g.observe(og.ADD, waiting, None).delete == ["d1"]


def test_blocking_dependents_and_unblocking_owner():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    g.observe(og.UPDATE, obj("ReplicaSet", "web-1", "r1", owners=rs["metadata"][
        "ownerReferences"], finalizers=["foregroundDeletion"], deleting=True), rs)
    assert [d.uid for d in g.blocking_dependents(g.get("r1"))] == ["p1"]
    # The pod stops blocking: its owner is looked at again.
    unblocked = obj("Pod", "web-1-a", "p1", owners=[ref(rs, block=False)])
    acts = g.observe(og.UPDATE, unblocked, pod)
    assert "r1" in acts.delete
    assert g.blocking_dependents(g.get("r1")) == []


def test_removing_dependent_of_deleting_owner_enqueues_owner():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    g.observe(og.UPDATE, obj("ReplicaSet", "web-1", "r1", owners=rs["metadata"][
        "ownerReferences"], finalizers=["foregroundDeletion"], deleting=True), rs)
    acts = g.observe(og.DELETE, pod)
    assert acts.delete == ["r1"]


def test_virtual_delete_removes_virtual_owner_and_enqueues_dependents():
    g = og.OwnerGraph()
    _, rs, pod = chain()
    g.observe(og.ADD, pod)
    acts = g.virtual_delete(g.get("r1").identity)
    assert g.get("r1") is None
    assert acts.delete == ["p1"]


def test_namespace_mismatch_is_reported():
    g = og.OwnerGraph()
    owner = obj("ConfigMap", "cfg", "c1", ns="a")
    g.observe(og.ADD, owner)
    child = obj("Secret", "s", "s1", ns="b", owners=[ref(owner)])
    acts = g.observe(og.ADD, child)
    assert acts.invalid_namespace == [("s1", "c1")]
    assert "s1" in acts.delete


def test_references_diffs():
    a = {"uid": "1", "blockOwnerDeletion": True}
    b = {"uid": "2"}
    added, removed, changed = og.references_diffs([a, b], [{"uid": "1"}, {"uid": "3"}])
    assert [r["uid"] for r in added] == ["3"]
    assert [r["uid"] for r in removed] == ["2"]
    assert changed == [(a, {"uid": "1"})]


def test_decide_policies():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    node = g.get("p1")
    owner_ref = pod["metadata"]["ownerReferences"][0]
    assert og.decide(g, node, pod, [owner_ref], [], []).action == og.NOTHING
    d = og.decide(g, node, pod, [], [owner_ref], [])
    assert (d.action, d.policy) == (og.DELETE_OBJECT, "Background")
    extra = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "gone"}
    d = og.decide(g, node, pod, [owner_ref], [extra], [])
    assert (d.action, d.remove_owner_uids) == (og.PATCH_REFS, ["gone"])
    orphaning = obj("Pod", "web-1-a", "p1", owners=[owner_ref], finalizers=["orphan"])
    assert og.decide(g, node, orphaning, [], [owner_ref], []).policy == "Orphan"


def test_decide_foreground_when_owner_waits_for_us():
    g = og.OwnerGraph()
    dep, rs, pod = chain()
    for o in (dep, rs, pod):
        g.observe(og.ADD, o)
    rs_node = g.get("r1")
    d = og.decide(g, rs_node, rs, [], [], rs["metadata"]["ownerReferences"])
    assert (d.action, d.policy) == (og.DELETE_OBJECT, "Foreground")
    # A dependent already deleting its own dependents: a cycle, unblock first.
    g.get("p1").deleting_dependents = True
    d = og.decide(g, rs_node, rs, [], [], rs["metadata"]["ownerReferences"])
    assert (d.action, d.remove_owner_uids) == (og.UNBLOCK_THEN_DELETE, ["d1"])


def test_unblock_and_remove_refs():
    refs = [{"uid": "a", "blockOwnerDeletion": True}, {"uid": "b", "blockOwnerDeletion": True}]
    assert og.unblock_refs(refs, ["a"])[0]["blockOwnerDeletion"] is False
    assert og.unblock_refs(refs, ["a"])[1]["blockOwnerDeletion"] is True
    assert og.remove_refs(refs, ["a"]) == [refs[1]]


def test_absent_owner_cache_is_bounded():
    cache = og.AbsentOwnerCache(2)
    ids = [og.Identity("v1", "Pod", str(i), str(i)) for i in range(3)]
    for i in ids:
        cache.add(i)
    assert not cache.has(ids[0]) and cache.has(ids[2])
