"""NodeVolumeLimits (CSI attach limits) and VolumeZone against synthetic objects, as upstream's tests."""
from __future__ import annotations

from pyk8s.scheduler.framework import Code

from .builders import Harness, node, pod
from .test_plugins import run_filter

DRIVER = "ebs.csi.aws.com"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"


def csi_node(name: str, count: int | None, driver: str = DRIVER) -> dict:
    d: dict = {"name": driver, "nodeID": name, "topologyKeys": None}
    if count is not None:
        d["allocatable"] = {"count": count}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": name},
            "spec": {"drivers": [d]}}


def pv(name: str, *, driver: str = DRIVER, labels: dict | None = None, csi: bool = True) -> dict:
    spec: dict = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}
    if csi:
        spec["csi"] = {"driver": driver, "volumeHandle": f"handle-{name}"}
    else:
        spec["hostPath"] = {"path": f"/tmp/{name}"}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels or {}},
            "spec": spec}


def pvc(name: str, *, volume: str = "", storage_class: str | None = None, namespace: str = "default") -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if volume:
        spec["volumeName"] = volume
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec,
            "status": {"phase": "Bound" if volume else "Pending"}}


def claims(*names: str) -> list[dict]:
    return [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": n}} for i, n in enumerate(names)]


def bound_claims(h: Harness, *names: str, **pv_kw) -> None:
    for n in names:
        h.listers.add(pv(f"pv-{n}", **pv_kw))
        h.listers.add(pvc(n, volume=f"pv-{n}"))


# --- NodeVolumeLimits -------------------------------------------------------------


def limits_harness() -> Harness:
    h = Harness(node("a"), node("b"))
    h.listers.add(csi_node("a", 2))
    h.listers.add(csi_node("b", 4))
    bound_claims(h, "c1", "c2", "c3")
    h.add_bound(pod("existing", volumes=claims("c1", "c2")), "a")
    return h


def test_node_volume_limits_counts_attached_csi_volumes_per_driver():
    h = limits_harness()
    st = run_filter(h, "NodeVolumeLimits", pod("p", volumes=claims("c3")), "a")
    assert st.code == Code.UNSCHEDULABLE and st.reasons == ["node(s) exceed max volume count"]
    assert run_filter(h, "NodeVolumeLimits", pod("p", volumes=claims("c3")), "b") is None


def test_node_volume_limits_counts_a_shared_volume_once():
    h = limits_harness()
    assert run_filter(h, "NodeVolumeLimits", pod("p", volumes=claims("c1")), "a") is None


def test_node_volume_limits_only_limits_the_drivers_csinode_lists():
    h = limits_harness()
    h.listers.add(pv("pv-other", driver="other.csi.example.com"))
    h.listers.add(pvc("other", volume="pv-other"))
    assert run_filter(h, "NodeVolumeLimits", pod("p", volumes=claims("other")), "a") is None
    # a node without a CSINode (or without a count) has no limit
    h.add_node(node("c"))
    bound_claims(h, "c4", "c5", "c6")
    assert run_filter(h, "NodeVolumeLimits", pod("q", volumes=claims("c4", "c5", "c6")), "c") is None
    h.listers.add(csi_node("c", None))
    assert run_filter(h, "NodeVolumeLimits", pod("q", volumes=claims("c4", "c5", "c6")), "c") is None


def test_node_volume_limits_counts_unbound_claims_by_storage_class_provisioner():
    h = limits_harness()
    h.listers.add({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "ebs"},
                   "provisioner": DRIVER, "volumeBindingMode": "WaitForFirstConsumer"})
    h.listers.add(pvc("fresh", storage_class="ebs"))
    st = run_filter(h, "NodeVolumeLimits", pod("p", volumes=claims("fresh")), "a")
    assert st.reasons == ["node(s) exceed max volume count"]
    # non-CSI volumes are not counted
    h.listers.add(pv("pv-host", csi=False))
    h.listers.add(pvc("host", volume="pv-host"))
    assert run_filter(h, "NodeVolumeLimits", pod("q", volumes=claims("host")), "a") is None


def test_node_volume_limits_skips_pods_without_claims_and_rejects_missing_claims():
    h = limits_harness()
    empty_dir = [{"name": "scratch", "emptyDir": {}}]
    pl = h.sched.profiles["default-scheduler"].plugins["NodeVolumeLimits"]
    _, st = pl.pre_filter(None, pod("p", volumes=empty_dir))
    assert st.code == Code.SKIP
    st = run_filter(h, "NodeVolumeLimits", pod("q", volumes=claims("nope")), "a")
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ['looking up PVC default/nope: persistentvolumeclaim "nope" not found']


def test_node_volume_limits_generic_ephemeral_volume_must_belong_to_the_pod():
    h = limits_harness()
    p = pod("eph", volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}])
    claim = pvc("eph-scratch", volume="pv-c3")
    h.listers.add(claim)
    st = run_filter(h, "NodeVolumeLimits", p, "b")
    assert st.code == Code.ERROR
    assert st.reasons == ["PVC default/eph-scratch was not created for pod default/eph (pod is not owner)"]
    claim["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "eph",
                                             "uid": p["metadata"]["uid"], "controller": True}]
    assert run_filter(h, "NodeVolumeLimits", p, "b") is None
    assert run_filter(h, "NodeVolumeLimits", p, "a").reasons == ["node(s) exceed max volume count"]


async def test_node_volume_limits_in_the_failed_scheduling_message():
    h = Harness(node("a"))
    h.listers.add(csi_node("a", 1))
    bound_claims(h, "c1", "c2")
    h.add_bound(pod("existing", volumes=claims("c1")), "a")
    assert await h.schedule(pod("p", volumes=claims("c2"))) is None
    assert h.failed_message().startswith("0/1 nodes are available: 1 node(s) exceed max volume count.")


# --- VolumeZone ---------------------------------------------------------------------


def zone_harness() -> Harness:
    return Harness(node("in-a", labels={ZONE: "a", REGION: "r1"}), node("in-c", labels={ZONE: "c", REGION: "r1"}),
                   node("bare"))


def test_volume_zone_matches_pv_zone_labels():
    h = zone_harness()
    bound_claims(h, "data", labels={ZONE: "a__b", REGION: "r1"})
    p = pod("p", volumes=claims("data"))
    assert run_filter(h, "VolumeZone", p, "in-a") is None
    st = run_filter(h, "VolumeZone", p, "in-c")
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE and st.reasons == ["node(s) had no available volume zone"]
    assert run_filter(h, "VolumeZone", p, "bare") is None  # no topology labels: single-zone cluster


def test_volume_zone_beta_pv_label_matches_ga_node_label_and_region():
    h = zone_harness()
    bound_claims(h, "beta", labels={"failure-domain.beta.kubernetes.io/zone": "c"})
    assert run_filter(h, "VolumeZone", pod("p", volumes=claims("beta")), "in-c") is None
    assert run_filter(h, "VolumeZone", pod("p", volumes=claims("beta")), "in-a").reasons == [
        "node(s) had no available volume zone"]
    bound_claims(h, "r2", labels={REGION: "r2"})
    assert run_filter(h, "VolumeZone", pod("q", volumes=claims("r2")), "in-a").reasons == [
        "node(s) had no available volume zone"]


def test_volume_zone_prefilter_skips_and_rejects_as_upstream():
    h = zone_harness()
    pl = h.sched.profiles["default-scheduler"].plugins["VolumeZone"]
    from pyk8s.scheduler.framework import CycleState
    bound_claims(h, "plain")  # a PV without topology labels
    assert pl.pre_filter(CycleState(), pod("p", volumes=claims("plain")))[1].code == Code.SKIP
    h.listers.add({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "wffc"},
                   "provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"})
    h.listers.add({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "now"},
                   "provisioner": "x", "volumeBindingMode": "Immediate"})
    h.listers.add(pvc("later", storage_class="wffc"))
    h.listers.add(pvc("unbound", storage_class="now"))
    h.listers.add(pvc("classless"))
    assert pl.pre_filter(CycleState(), pod("p", volumes=claims("later")))[1].code == Code.SKIP
    for claim, reason in (("unbound", "PersistentVolume had no name"),
                          ("classless", "PersistentVolumeClaim had no pv name and storageClass name"),
                          ("missing", 'persistentvolumeclaim "missing" not found')):
        st = pl.pre_filter(CycleState(), pod("p", volumes=claims(claim)))[1]
        assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE and st.reasons == [reason]


async def test_volume_zone_in_the_failed_scheduling_message():
    h = Harness(node("in-a", labels={ZONE: "a"}), node("in-c", labels={ZONE: "c"}))
    bound_claims(h, "data", labels={ZONE: "b"})
    assert await h.schedule(pod("p", volumes=claims("data"))) is None
    assert h.failed_message() == ("0/2 nodes are available: 2 node(s) had no available volume zone. preemption: "
                                  "0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    bound_claims(h, "ok", labels={ZONE: "c"})
    assert await h.schedule(pod("q", volumes=claims("ok"))) == "in-c"
