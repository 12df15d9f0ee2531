"""Deployments as kubectl users drive them: rollout status/history/undo/restart/pause/resume."""
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
