"""StatefulSet ordering, identities, PVCs, revisions and rolling updates, step by step."""
import copy

from pyk8s.controllers import history
from pyk8s.controllers import statefulset as ss

from .builders import at, template, ts, uid


def sts(replicas=3, *, policy="OrderedReady", strategy=None, claims=True):
    spec = {"replicas": replicas, "serviceName": "web", "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": "web"}}, "template": template(),
            "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10}
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"},
                                         "spec": {"accessModes": ["ReadWriteOnce"],
                                                  "resources": {"requests": {"storage": "1Gi"}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": uid(), "generation": 1,
                         "creationTimestamp": ts(at(0))},
            "spec": spec, "status": {}}


class World:
    """API + kubelet stand-in: created pods become Running and Ready on ``run_pods``."""

    def __init__(self, s):
        self.s = s
        self.pods: dict[str, dict] = {}
        self.revisions: dict[str, dict] = {}
        self.claims: dict[str, dict] = {}
        self.log: list[str] = []
        self.t = 0

    def sync(self):
        revs = ss.statefulset_revisions(self.s, list(self.revisions.values()))
        for r in (revs.create, revs.renumber):
            if r is not None:
                self.revisions[r["metadata"]["name"]] = copy.deepcopy(r)
        plan = ss.plan_update(self.s, revs, list(self.pods.values()), at(self.t))
        for op in plan.ops:
            name = op.pod["metadata"]["name"]
            if op.verb in (ss.CREATE, ss.CREATE_CLAIMS):
                for c in op.claims:
                    self.claims.setdefault(c["metadata"]["name"], c)
            if op.verb == ss.CREATE:
                p = copy.deepcopy(op.pod)
                p["metadata"]["uid"] = uid()
                p["status"] = {"phase": "Pending"}
                self.pods[name] = p
                self.log.append(f"create {name}")
            elif op.verb == ss.DELETE:
                del self.pods[name]
                self.log.append(f"delete {name}")
            elif op.verb == ss.UPDATE:
                self.pods[name] = copy.deepcopy(op.pod)
        update = ss.status_update(self.s, plan.status)
        if update is not None:
            self.s["status"] = update
        self.t += 1
        return plan

    def run_pods(self):
        for p in self.pods.values():
            p["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ts(at(self.t))}]}

    def converge(self, steps=20):
        for _ in range(steps):
            self.sync()
            self.run_pods()


def test_ordered_ready_creates_one_pod_at_a_time_in_order():
    w = World(sts(3))
    w.sync()
    w.sync()                                  # web-0 is not ready yet: nothing new
    assert w.log == ["create web-0"]
    w.run_pods()
    w.sync()
    assert w.log == ["create web-0", "create web-1"]
    w.converge()
    assert w.log == ["create web-0", "create web-1", "create web-2"]
    p = w.pods["web-1"]
    assert p["spec"]["hostname"] == "web-1" and p["spec"]["subdomain"] == "web"
    assert p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert p["spec"]["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}
    assert sorted(w.claims) == ["data-web-0", "data-web-1", "data-web-2"]
    assert w.claims["data-web-0"]["metadata"]["labels"] == {"app": "web"}
    status = w.s["status"]
    assert status["replicas"] == 3 and status["readyReplicas"] == 3 and status["availableReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"]
    assert status["currentRevision"].startswith("web-")


def test_scale_down_removes_highest_ordinal_first_one_at_a_time():
    w = World(sts(3))
    w.converge()
    w.s["spec"]["replicas"] = 1
    w.log.clear()
    w.sync()
    assert w.log == ["delete web-2"]
    w.sync()
    assert w.log == ["delete web-2", "delete web-1"]


def test_parallel_creates_all_at_once():
    w = World(sts(3, policy="Parallel"))
    plan = w.sync()
    assert plan.parallel
    assert w.log == ["create web-0", "create web-1", "create web-2"]


def test_rolling_update_goes_from_the_top_and_respects_partition():
    w = World(sts(3, strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}))
    w.converge()
    old_rev = w.s["status"]["currentRevision"]
    w.s["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25"
    w.s["metadata"]["generation"] = 2
    w.log.clear()
    w.converge()
    assert w.log == ["delete web-2", "create web-2", "delete web-1", "create web-1"]
    status = w.s["status"]
    assert status["currentRevision"] == old_rev != status["updateRevision"]
    assert w.pods["web-0"]["metadata"]["labels"]["controller-revision-hash"] == old_rev
    assert w.pods["web-2"]["metadata"]["labels"]["controller-revision-hash"] == status["updateRevision"]
    assert status["updatedReplicas"] == 2 and status["currentReplicas"] == 1
    # Lowering the partition finishes the rollout and makes the update revision current.
    w.s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 0
    w.converge()
    assert w.s["status"]["currentRevision"] == w.s["status"]["updateRevision"]
    assert w.s["status"]["currentReplicas"] == 3


def test_max_unavailable_replaces_several_pods_at_once():
    w = World(sts(4, policy="Parallel",
                  strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}))
    w.converge()
    w.s["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25"
    w.log.clear()
    w.sync()
    assert w.log[-2:] == ["delete web-3", "delete web-2"]


def test_on_delete_never_deletes_for_an_update():
    w = World(sts(2, strategy={"type": "OnDelete"}))
    w.converge()
    w.s["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25"
    w.log.clear()
    w.converge()
    assert w.log == []
    del w.pods["web-1"]                       # the user deletes a pod
    w.sync()
    assert w.log == ["create web-1"]
    new_rev = w.s["status"]["updateRevision"]
    assert w.pods["web-1"]["metadata"]["labels"]["controller-revision-hash"] == new_rev


def test_failed_pod_is_deleted_and_recreated():
    w = World(sts(1))
    w.converge()
    w.pods["web-0"]["status"]["phase"] = "Failed"
    w.log.clear()
    w.sync()
    w.sync()
    assert w.log == ["delete web-0", "create web-0"]


def test_revisions_are_reused_on_rollback_and_truncated():
    s = sts(1)
    r1 = ss.statefulset_revisions(s, []).create
    assert r1["revision"] == 1 and r1["metadata"]["name"].startswith("web-")
    assert r1["data"]["spec"]["template"]["$patch"] == "replace"
    assert r1["metadata"]["labels"]["controller-revision-hash"] in r1["metadata"]["name"]
    s2 = copy.deepcopy(s)
    s2["spec"]["template"]["spec"]["containers"][0]["image"] = "b"
    r2 = ss.statefulset_revisions(s2, [r1]).create
    assert r2["revision"] == 2
    back = ss.statefulset_revisions(s, [r1, r2])
    assert back.create is None and back.renumber["metadata"]["name"] == r1["metadata"]["name"]
    assert back.renumber["revision"] == 3
    applied = history.apply_revision(s2, r1)
    assert applied["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.24"
    s["spec"]["revisionHistoryLimit"] = 0
    assert ss.revisions_to_delete(s, [], [r1, r2], r2, r2) == [r1]


def test_pvc_retention_policy_owner_references():
    s = sts(1)
    s["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Delete"}
    pod = ss.new_stateful_pod(s, 0)
    pod["metadata"]["uid"] = "pod-uid"
    claim = {"metadata": {"name": "data-web-0"}}
    refs = ss.claim_owner_refs(s, pod, claim)
    assert [r["kind"] for r in refs] == ["StatefulSet"]
    s["spec"]["replicas"] = 0                # now condemned: the pod owns the claim instead
    refs = ss.claim_owner_refs(s, pod, {"metadata": {"ownerReferences": refs}})
    assert [r["kind"] for r in refs] == ["Pod"]
