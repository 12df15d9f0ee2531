"""Filter and score plugins against synthetic nodes and pods, values as upstream's tests."""
from __future__ import annotations

from pyk8s.scheduler.framework import Code, CycleState, NodeScore
from pyk8s.scheduler.nodeinfo import new_node_info
from pyk8s.scheduler.plugins import helpers

from .builders import Harness, node, pod

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def plugin(h: Harness, name: str):
    return h.sched.profiles["default-scheduler"].plugins[name]


def run_filter(h: Harness, name: str, p: dict, node_name: str):
    """PreFilter then Filter for one plugin, on the current snapshot."""
    h.sched.cache.update_snapshot(h.sched.snapshot)
    pl = plugin(h, name)
    state = CycleState()
    if hasattr(pl, "pre_filter"):
        _, status = pl.pre_filter(state, p)
        if status is not None and status.code == Code.SKIP:
            return None
        if status is not None:
            return status
    return pl.filter(state, p, h.sched.snapshot.get(node_name))


def run_scores(h: Harness, name: str, p: dict) -> dict[str, int]:
    h.sched.cache.update_snapshot(h.sched.snapshot)
    pl = plugin(h, name)
    state = CycleState()
    nodes = h.sched.snapshot.list()
    if hasattr(pl, "pre_score"):
        status = pl.pre_score(state, p, nodes)
        if status is not None and status.code == Code.SKIP:
            return {}
    scores = [NodeScore(ni.name, pl.score(state, p, ni)[0]) for ni in nodes]
    ext = pl.score_extensions()
    if ext is not None:
        ext.normalize_score(state, p, scores)
    return {s.name: s.score for s in scores}


def test_node_name_rejects_other_nodes_unresolvably():
    h = Harness(node("a"), node("b"))
    p = pod("p", nodeName="a")
    assert run_filter(h, "NodeName", p, "a") is None
    st = run_filter(h, "NodeName", p, "b")
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ["node(s) didn't match the requested node name"]


def test_node_unschedulable_honours_the_unschedulable_toleration():
    h = Harness(node("a", unschedulable=True))
    st = run_filter(h, "NodeUnschedulable", pod("p"), "a")
    assert st.reasons == ["node(s) were unschedulable"] and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    tolerant = pod("q", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                      "effect": "NoSchedule"}])
    assert run_filter(h, "NodeUnschedulable", tolerant, "a") is None


def test_taint_toleration_filter_names_the_taint():
    h = Harness(node("cp", taints=[CP_TAINT]), node("gpu", taints=[{"key": "gpu", "value": "true",
                                                                     "effect": "NoExecute"}]))
    st = run_filter(h, "TaintToleration", pod("p"), "cp")
    assert st.reasons == ["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert run_filter(h, "TaintToleration", pod("p"), "gpu").reasons == ["node(s) had untolerated taint {gpu: true}"]
    ok = pod("q", tolerations=[{"key": "gpu", "operator": "Equal", "value": "true"}])
    assert run_filter(h, "TaintToleration", ok, "gpu") is None
    wrong_value = pod("r", tolerations=[{"key": "gpu", "operator": "Equal", "value": "false"}])
    assert run_filter(h, "TaintToleration", wrong_value, "gpu") is not None


def test_taint_toleration_scores_prefer_no_schedule_in_reverse():
    prefer = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
    h = Harness(node("clean"), node("one", taints=[prefer]),
                node("two", taints=[prefer, {"key": "x", "effect": "PreferNoSchedule"}]))
    assert run_scores(h, "TaintToleration", pod("p")) == {"clean": 100, "one": 50, "two": 0}
    tolerant = pod("q", tolerations=[{"key": "k", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert run_scores(h, "TaintToleration", tolerant) == {"clean": 100, "one": 100, "two": 0}


def test_node_affinity_selector_and_required_terms():
    h = Harness(node("a", labels={"disk": "ssd", "zone": "z1"}), node("b", labels={"disk": "hdd"}))
    assert run_filter(h, "NodeAffinity", pod("p"), "b") is None
    sel = pod("p", nodeSelector={"disk": "ssd"})
    assert run_filter(h, "NodeAffinity", sel, "a") is None
    st = run_filter(h, "NodeAffinity", sel, "b")
    assert st.reasons == ["node(s) didn't match Pod's node affinity/selector"]
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd", "hdd"]}]}]}}}
    req = pod("q", affinity=affinity)
    assert run_filter(h, "NodeAffinity", req, "a") is None
    assert run_filter(h, "NodeAffinity", req, "b") is not None


def test_node_affinity_gt_lt_and_match_fields_prefilter_result():
    h = Harness(node("a", labels={"cores": "8"}), node("b", labels={"cores": "2"}))
    gt = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]}}}
    assert run_filter(h, "NodeAffinity", pod("p", affinity=gt), "a") is None
    assert run_filter(h, "NodeAffinity", pod("p", affinity=gt), "b") is not None
    fields = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}
    result, status = plugin(h, "NodeAffinity").pre_filter(CycleState(), pod("p", affinity=fields))
    assert status is None and result.node_names == {"b"}


def test_node_affinity_preferred_scores_normalize_to_max():
    h = Harness(node("a", labels={"disk": "ssd", "zone": "z1"}), node("b", labels={"disk": "ssd"}), node("c"))
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 2, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 8, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}}]}}
    assert run_scores(h, "NodeAffinity", pod("p", affinity=pref)) == {"a": 100, "b": 20, "c": 0}
    assert run_scores(h, "NodeAffinity", pod("q")) == {}


def test_node_ports_conflicts_and_wildcard_ip():
    h = Harness(node("a"))
    h.add_bound(pod("web", host_port=8080), "a")
    st = run_filter(h, "NodePorts", pod("p", host_port=8080), "a")
    assert st.reasons == ["node(s) didn't have free ports for the requested pod ports"]
    assert st.code == Code.UNSCHEDULABLE
    assert run_filter(h, "NodePorts", pod("q", host_port=8081), "a") is None
    # The port map keeps upstream's 0.0.0.0 semantics.
    ni = h.sched.snapshot.get("a")
    assert ni.used_ports.check_conflict("10.0.0.1", "TCP", 8080)
    assert not ni.used_ports.check_conflict("0.0.0.0", "UDP", 8080)


def test_fit_lists_every_insufficient_resource():
    h = Harness(node("a", cpu="1", memory="1Gi", pods="1", extra={"example.com/gpu": "1"}))
    h.add_bound(pod("x", cpu="500m", memory="512Mi"), "a")
    big = pod("p", cpu="600m", memory="600Mi")
    big["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] = "2"
    st = run_filter(h, "NodeResourcesFit", big, "a")
    assert st.code == Code.UNSCHEDULABLE
    assert st.reasons == ["Too many pods", "Insufficient cpu", "Insufficient memory", "Insufficient example.com/gpu"]


def test_fit_counts_init_containers_sidecars_and_overhead():
    h = Harness(node("a", cpu="2"))
    p = pod("p", cpu="1", overhead={"cpu": "250m"},
            initContainers=[{"name": "init", "image": "x", "resources": {"requests": {"cpu": "1500m"}}},
                            {"name": "side", "image": "x", "restartPolicy": "Always",
                             "resources": {"requests": {"cpu": "500m"}}}])
    # containers 1 + sidecar 0.5 = 1.5; init use 1.5 (before the sidecar); + overhead 0.25
    st = run_filter(h, "NodeResourcesFit", p, "a")
    assert st is None
    h.add_bound(pod("x", cpu="300m"), "a")
    assert run_filter(h, "NodeResourcesFit", p, "a").reasons == ["Insufficient cpu"]


def test_fit_ignored_extended_resources():
    h = Harness(node("a"), config={"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"ignoredResources": ["example.com/foo"]}}]}]})
    p = pod("p")
    p["spec"]["containers"][0]["resources"] = {"requests": {"example.com/foo": "3"}}
    assert run_filter(h, "NodeResourcesFit", p, "a") is None


def _sized_nodes():
    return (node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000"))


def test_least_allocated_scores_as_upstream():
    h = Harness(*_sized_nodes())
    assert run_scores(h, "NodeResourcesFit", pod("p", cpu="3", memory="5000")) == {"n1": 37, "n2": 50}


def test_most_allocated_scores_as_upstream():
    h = Harness(*_sized_nodes(), config={"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]}]})
    assert run_scores(h, "NodeResourcesFit", pod("p", cpu="3", memory="5000")) == {"n1": 62, "n2": 50}


def test_requested_to_capacity_ratio_scores():
    shape = [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]
    h = Harness(*_sized_nodes(), config={"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {
            "type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": shape}}}}]}]})
    assert run_scores(h, "NodeResourcesFit", pod("p", cpu="3", memory="5000")) == {"n1": 38, "n2": 50}


def test_balanced_allocation_scores_and_skips_best_effort():
    h = Harness(*_sized_nodes())
    assert run_scores(h, "NodeResourcesBalancedAllocation", pod("p", cpu="3", memory="5000")) == \
        {"n1": 87, "n2": 100}
    assert run_scores(h, "NodeResourcesBalancedAllocation", pod("q")) == {}


def test_image_locality_prefers_nodes_with_big_images():
    image = {"names": ["registry/app:v1"], "sizeBytes": 500 * 1024 * 1024}
    h = Harness(node("with", images=[image]), node("without"))
    p = pod("p")
    p["spec"]["containers"][0]["image"] = "registry/app:v1"
    scores = run_scores(h, "ImageLocality", p)
    # 500 MiB on 1 of 2 nodes -> 250 MiB: (250 - 23) * 100 / (1000 - 23)
    assert scores == {"with": 23, "without": 0}
    assert helpers.zone_key(node("z", labels={"topology.kubernetes.io/zone": "a"})) == ":\x00:a"
    assert new_node_info(node("x")).allocatable.milli_cpu == 4000


def test_scheduling_gates_keep_pods_out_of_active_queue():
    h = Harness(node("a"))
    gated = h.add_pod(pod("g", schedulingGates=[{"name": "example.com/wait"}]))
    assert h.sched.queue.where(gated) == "Unschedulable"
    st = plugin(h, "SchedulingGates").pre_enqueue(gated)
    assert st.message() == "waiting for scheduling gates: [example.com/wait]"
    ungated = dict(gated, spec=dict(gated["spec"], schedulingGates=[]), metadata=dict(gated["metadata"],
                                                                                     resourceVersion="2"))
    h.sched.on_pod_update(gated, ungated)
    assert h.sched.queue.where(ungated) == "ActiveQ"


def test_volume_restrictions_disk_and_read_write_once_pod_conflicts():
    h = Harness(node("a"), node("b"))
    disk = {"name": "d", "gcePersistentDisk": {"pdName": "pd1"}}
    h.add_bound(pod("x", volumes=[disk]), "a")
    st = run_filter(h, "VolumeRestrictions", pod("p", volumes=[disk]), "a")
    assert st.reasons == ["node(s) had no available disk"]
    assert run_filter(h, "VolumeRestrictions", pod("p", volumes=[disk]), "b") is None
    h.listers.add({"kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "default"},
                   "spec": {"accessModes": ["ReadWriteOncePod"]}})
    claim = {"name": "v", "persistentVolumeClaim": {"claimName": "c"}}
    h.add_bound(pod("y", volumes=[claim]), "a")
    st = run_filter(h, "VolumeRestrictions", pod("q", volumes=[claim]), "b")
    assert st.reasons == ["node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod "
                          "access mode"]


def test_volume_binding_claims():
    h = Harness(node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}))
    claim = {"name": "v", "persistentVolumeClaim": {"claimName": "data"}}
    st = run_filter(h, "VolumeBinding", pod("p", volumes=[claim]), "a")
    assert st.reasons == ['persistentvolumeclaim "data" not found']
    h.listers.add({"kind": "StorageClass", "metadata": {"name": "local"}, "provisioner": NO_PROV,
                   "volumeBindingMode": "WaitForFirstConsumer"})
    h.listers.add({"kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
                   "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}}}})
    h.listers.add({"kind": "PersistentVolume", "metadata": {"name": "pv-z1"},
                   "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                            "capacity": {"storage": "2Gi"},
                            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}})
    assert run_filter(h, "VolumeBinding", pod("p", volumes=[claim]), "a") is None
    st = run_filter(h, "VolumeBinding", pod("p", volumes=[claim]), "b")
    assert st.reasons == ["node(s) didn't find available persistent volumes to bind"]
    h.listers.add({"kind": "PersistentVolumeClaim", "metadata": {"name": "now", "namespace": "default"},
                   "spec": {"accessModes": ["ReadWriteOnce"]}})
    st = run_filter(h, "VolumeBinding", pod("q", volumes=[{"name": "n", "persistentVolumeClaim":
                                                           {"claimName": "now"}}]), "a")
    assert st.reasons == ["pod has unbound immediate PersistentVolumeClaims"]


NO_PROV = "kubernetes.io/no-provisioner"


async def test_volume_binding_prebind_claims_the_chosen_pv():
    h = Harness(node("a"))
    h.listers.add({"kind": "StorageClass", "metadata": {"name": "local"}, "provisioner": NO_PROV,
                   "volumeBindingMode": "WaitForFirstConsumer"})
    h.listers.add({"kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
                   "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}}}})
    for name, size in (("big", "10Gi"), ("small", "1Gi")):
        h.listers.add({"kind": "PersistentVolume", "metadata": {"name": name},
                       "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                                "capacity": {"storage": size}}})
    claim = {"name": "v", "persistentVolumeClaim": {"claimName": "data"}}
    assert await h.schedule(pod("p", volumes=[claim])) == "a"
    assert h.actions.claimed_pvs == [("small", "default/data")]
