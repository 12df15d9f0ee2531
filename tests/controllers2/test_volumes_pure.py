"""PersistentVolume matching and the local-path volume (pure)."""
from pyk8s.controllers import localpath, volumes as v


def pv(name, size, *, modes=("ReadWriteOnce",), cls="", phase="Available", labels=None,
       claim_ref=None, node=None):
    spec = {"capacity": {"storage": size}, "accessModes": list(modes)}
    if cls:
        spec["storageClassName"] = cls
    if claim_ref:
        spec["claimRef"] = claim_ref
    if node:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec,
            "status": {"phase": phase}}


def pvc(size="1Gi", *, modes=("ReadWriteOnce",), cls="", selector=None, name="data"):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls:
        spec["storageClassName"] = cls
    if selector:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": "default", "uid": "c-uid"}, "spec": spec}


def test_smallest_sufficient_volume_wins():
    vols = [pv("big", "10Gi"), pv("small", "500Mi"), pv("fit", "2Gi")]
    assert v.find_best_match(pvc("1Gi"), vols)["metadata"]["name"] == "fit"


def test_access_modes_class_selector_and_phase():
    vols = [pv("rwx", "1Gi", modes=("ReadWriteMany",)), pv("fast", "1Gi", cls="fast"),
            pv("labelled", "1Gi", labels={"tier": "gold"}), pv("bound", "1Gi", phase="Bound")]
    assert v.find_best_match(pvc(modes=("ReadWriteMany",)), vols)["metadata"]["name"] == "rwx"
    assert v.find_best_match(pvc(cls="fast"), vols)["metadata"]["name"] == "fast"
    chosen = v.find_best_match(pvc(selector={"matchLabels": {"tier": "gold"}}), vols)
    assert chosen["metadata"]["name"] == "labelled"
    assert v.find_best_match(pvc(cls="none"), vols) is None


def test_smallest_superset_of_access_modes_first():
    vols = [pv("both", "1Gi", modes=("ReadWriteOnce", "ReadOnlyMany")), pv("rwo", "5Gi")]
    assert v.find_best_match(pvc(), vols)["metadata"]["name"] == "rwo"


def test_prebound_volume_and_delay_binding():
    claim = pvc()
    prebound = pv("mine", "1Gi", claim_ref={"name": "data", "namespace": "default"},
                  phase="Available")
    other = pv("free", "1Gi")
    assert v.find_best_match(claim, [other, prebound])["metadata"]["name"] == "mine"
    # WaitForFirstConsumer without a node: only pre-bound volumes.
    assert v.find_best_match(claim, [other], delay_binding=True) is None
    node = {"metadata": {"name": "n2", "labels": {"kubernetes.io/hostname": "n2"}}}
    assert v.find_best_match(claim, [pv("on-n1", "1Gi", node="n1")], node=node) is None
    assert v.find_best_match(claim, [pv("on-n2", "1Gi", node="n2")], node=node) is not None


def test_satisfies_reasons():
    assert v.satisfies(pv("x", "1Gi"), pvc("2Gi")) == "requested PV is too small"
    assert v.satisfies(pv("x", "1Gi", cls="a"), pvc()) == "storageClassName does not match"
    assert v.satisfies(pv("x", "1Gi"), pvc()) is None


def test_default_class_is_newest_marked():
    classes = [{"metadata": {"name": "a", "creationTimestamp": "2025-01-01T00:00:00Z",
                             "annotations": {v.DEFAULT_CLASS: "true"}}},
               {"metadata": {"name": "b", "creationTimestamp": "2025-02-01T00:00:00Z",
                             "annotations": {v.DEFAULT_CLASS: "true"}}},
               {"metadata": {"name": "c", "creationTimestamp": "2025-03-01T00:00:00Z"}}]
    assert v.default_class(classes)["metadata"]["name"] == "b"


def test_pod_uses_claim_only_when_scheduled():
    claim = pvc()
    p = {"metadata": {"name": "p", "namespace": "default"},
         "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}
    assert not v.pod_uses_claim(p, claim)
    p["spec"]["nodeName"] = "n1"
    assert v.pod_uses_claim(p, claim)


def test_local_path_volume():
    claim = pvc("3Gi", cls="local-path")
    sc = localpath.storage_class("local-path", "rancher.io/local-path")
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    node = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "host-1"}}}
    vol = localpath.provisioned_volume(claim, sc, node, storage_dir="/data/storage",
                                       provisioner="rancher.io/local-path")
    assert vol["metadata"]["name"] == "pvc-c-uid"
    assert vol["spec"]["hostPath"] == {"path": "/data/storage/pvc-c-uid_default_data",
                                       "type": "DirectoryOrCreate"}
    assert vol["spec"]["capacity"] == {"storage": "3Gi"}
    assert vol["spec"]["claimRef"]["uid"] == "c-uid"
    assert vol["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] == ["host-1"]
    assert vol["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert vol["metadata"]["annotations"][v.PROVISIONED_BY] == "rancher.io/local-path"
    helper = localpath.helper_pod(vol, namespace="kube-system", image="busybox")
    assert helper["spec"]["nodeName"] == "n1"
    assert helper["spec"]["containers"][0]["command"] == [
        "rm", "-rf", "/data/storage/pvc-c-uid_default_data"]
