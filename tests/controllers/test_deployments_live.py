"""Deployments as kubectl users drive them: rollout status/history/undo/restart/pause/resume."""
import json

from .conftest import eventually


def rs_images(cluster, ns):
    out = {}
    for rs in cluster.get(ns, "rs")["items"]:
        image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
        out[image] = (rs["spec"]["replicas"], rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
    return out


def test_rollout_lifecycle_with_kubectl(cluster, ns, pods):
    k = cluster.kubectl
    with pods.kubelet():
        k("create", "deployment", "web", "-n", ns, "--image=nginx:1.24", "--replicas=3")
        r = k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        assert 'deployment "web" successfully rolled out' in r.stdout
        d = cluster.get(ns, "deployment", "web")
        assert d["status"]["updatedReplicas"] == 3 and d["status"]["availableReplicas"] == 3
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        rs = cluster.get(ns, "rs")["items"][0]
        h = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"web-{h}"
        assert conds["Progressing"]["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
        ready = k("get", "deployment", "web", "-n", ns).stdout.split("\n")[1].split()
        assert ready[1:4] == ["3/3", "3", "3"]

        k("annotate", "deployment", "web", "-n", ns, "kubernetes.io/change-cause=image nginx:1.25")
        k("set", "image", "deployment/web", "-n", ns, "nginx=nginx:1.25")
        r = k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        assert "successfully rolled out" in r.stdout
        assert rs_images(cluster, ns) == {"nginx:1.24": (0, "1"), "nginx:1.25": (3, "2")}
        hist = k("rollout", "history", "deployment/web", "-n", ns).stdout
        assert "REVISION  CHANGE-CAUSE" in hist
        assert "2         image nginx:1.25" in hist
        detail = k("rollout", "history", "deployment/web", "-n", ns, "--revision=1").stdout
        assert "Image:\tnginx:1.24" in detail

        k("rollout", "undo", "deployment/web", "-n", ns)
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        eventually(lambda: rs_images(cluster, ns) == {"nginx:1.24": (3, "3"), "nginx:1.25": (0, "2")},
                   message="undo to revision 1 as revision 3")
        old = [rs for rs in cluster.get(ns, "rs")["items"]
               if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.24"][0]
        assert old["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"

        k("rollout", "restart", "deployment/web", "-n", ns)
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        eventually(lambda: len(cluster.get(ns, "rs")["items"]) == 3, message="a restart ReplicaSet")

        k("rollout", "pause", "deployment/web", "-n", ns)
        eventually(lambda: any(c["reason"] == "DeploymentPaused"
                               for c in cluster.get(ns, "deployment", "web")["status"]["conditions"]),
                   message="paused condition")
        k("set", "image", "deployment/web", "-n", ns, "nginx=nginx:1.26")
        k("scale", "deployment/web", "-n", ns, "--replicas=4")
        eventually(lambda: cluster.get(ns, "deployment", "web")["status"].get("replicas") == 4,
                   message="scaled while paused")
        assert "nginx:1.26" not in rs_images(cluster, ns)
        k("rollout", "resume", "deployment/web", "-n", ns)
        r = k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        assert "successfully rolled out" in r.stdout
        assert rs_images(cluster, ns)["nginx:1.26"][0] == 4
    events = [e for e in cluster.get(ns, "events")["items"]
              if e["involvedObject"]["kind"] == "Deployment"]
    msgs = [e["message"] for e in events if e["reason"] == "ScalingReplicaSet"]
    assert any(m.startswith("Scaled up replica set web-") and m.endswith("from 0 to 3") for m in msgs)
    assert any(m.startswith("Scaled down replica set web-") for m in msgs)


def test_recreate_strategy_replaces_all_pods(cluster, ns, pods):
    k = cluster.kubectl
    manifest = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: "postgres:15"}]}
"""
    with pods.kubelet():
        k("apply", "-n", ns, "-f", "-", input=manifest)
        k("rollout", "status", "deployment/db", "-n", ns, "--timeout=60s")
        k("set", "image", "deployment/db", "-n", ns, "db=postgres:16")
        k("rollout", "status", "deployment/db", "-n", ns, "--timeout=60s")
    images = rs_images(cluster, ns)
    assert images == {"postgres:15": (0, "1"), "postgres:16": (2, "2")}


def images_to_replicas(cluster, ns):
    return {image: replicas for image, (replicas, _) in rs_images(cluster, ns).items()}


def test_history_limit_and_undo_to_revision(cluster, ns, pods):
    k = cluster.kubectl
    with pods.kubelet():
        k("create", "deployment", "web", "-n", ns, "--image=nginx:1", "--replicas=2")
        k("patch", "deployment", "web", "-n", ns, "-p", '{"spec":{"revisionHistoryLimit":1}}')
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        for v in (2, 3, 4):
            k("set", "image", "deployment/web", "-n", ns, f"nginx=nginx:{v}")
            k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        # revisionHistoryLimit 1: the current ReplicaSet plus one old one survive.
        eventually(lambda: rs_images(cluster, ns) == {"nginx:3": (0, "3"), "nginx:4": (2, "4")},
                   message="old ReplicaSets beyond the history limit deleted")
        hist = k("rollout", "history", "deployment/web", "-n", ns).stdout
        assert hist == ("deployment.apps/web \nREVISION  CHANGE-CAUSE\n"
                        "3         <none>\n4         <none>\n\n")

        r = k("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=3")
        assert r.stdout.strip() == "deployment.apps/web rolled back"
        k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
        d = cluster.get(ns, "deployment", "web")
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:3"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "5"
        eventually(lambda: rs_images(cluster, ns) == {"nginx:3": (2, "5"), "nginx:4": (0, "4")},
                   message="revision 3 rolled back to as revision 5")
        assert k("rollout", "history", "deployment/web", "-n", ns).stdout == (
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n4         <none>\n5         <none>\n\n")

        r = k("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=1", check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == "error: unable to find specified revision 1 in history"
    assert cluster.get(ns, "deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"] \
        == "nginx:3"


def test_progress_deadline_exceeded_fails_rollout_status(cluster, ns, pods):
    k = cluster.kubectl
    # No kubelet: the pod never becomes ready, so the rollout cannot progress.
    k("create", "deployment", "stuck", "-n", ns, "--image=nginx:1", "--replicas=1")
    k("patch", "deployment", "stuck", "-n", ns, "-p", '{"spec":{"progressDeadlineSeconds":2}}')
    r = k("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=40s", check=False)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == 'error: deployment "stuck" exceeded its progress deadline'
    d = cluster.get(ns, "deployment", "stuck")
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    rs = cluster.get(ns, "rs")["items"][0]["metadata"]["name"]
    assert conds["Progressing"]["status"] == "False"
    assert conds["Progressing"]["reason"] == "ProgressDeadlineExceeded"
    assert conds["Progressing"]["message"] == f'ReplicaSet "{rs}" has timed out progressing.'
    assert (conds["Available"]["status"], conds["Available"]["reason"]) == \
        ("False", "MinimumReplicasUnavailable")


def test_proportional_scaling_during_a_rollout(cluster, ns, pods):
    k = cluster.kubectl
    with pods.kubelet():
        k("create", "deployment", "p", "-n", ns, "--image=nginx:1", "--replicas=10")
        k("rollout", "status", "deployment/p", "-n", ns, "--timeout=60s")
    k("patch", "deployment", "p", "-n", ns, "-p", json.dumps(
        {"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}))
    # No kubelet from here on: new pods stay Pending and the rollout stalls part way.
    k("set", "image", "deployment/p", "-n", ns, "nginx=nginx:2")
    # maxSurge 25% of 10 rounds up to 3, maxUnavailable rounds down to 2: at most 13 pods,
    # at least 8 available. The old set goes down to 8, the new one up to 13 - 8 = 5.
    eventually(lambda: images_to_replicas(cluster, ns) == {"nginx:1": 8, "nginx:2": 5},
               message="the rollout stalled at old 8 / new 5")
    for rs in cluster.get(ns, "rs")["items"]:
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "13"
    # The ReplicaSets' sizes are set first; the Deployment's status follows once the
    # ReplicaSet controller has created the pods and reported them.
    waiting = 'Waiting for deployment "p" rollout to finish: 5 out of 10 new replicas have been updated...'
    eventually(lambda: k("rollout", "status", "deployment/p", "-n", ns,
                         "--watch=false").stdout.strip() == waiting,
               message="rollout status reports 5 of 10 updated")

    k("scale", "deployment/p", "-n", ns, "--replicas=20")
    # 20 + 25% surge = 25 allowed, 12 to add, shared by size: 8*25/13 = 15.4 -> 15 and
    # 5*25/13 = 9.6 -> 10 (upstream getReplicaSetFraction, rounding to nearest).
    eventually(lambda: images_to_replicas(cluster, ns) == {"nginx:1": 15, "nginx:2": 10},
               message="proportional scale to old 15 / new 10")
    eventually(lambda: all(rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "25"
                           for rs in cluster.get(ns, "rs")["items"]),
               message="max-replicas annotations updated")
    d = eventually(lambda: (lambda d: d["status"].get("replicas") == 25 and d)(
        cluster.get(ns, "deployment", "p")), message="status.replicas 25")
    assert d["status"]["updatedReplicas"] == 10
    assert images_to_replicas(cluster, ns) == {"nginx:1": 15, "nginx:2": 10}
