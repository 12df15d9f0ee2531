"""StatefulSets through the API: ordered start, PVCs, rolling update, rollout history/undo."""
from .conftest import eventually

STS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: "nginx:1.24"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"""


def names(pods):
    return sorted(p["metadata"]["name"] for p in pods)


def test_statefulset_comes_up_in_order_with_claims(cluster, ns, pods):
    k = cluster.kubectl
    k("apply", "-n", ns, "-f", "-", input=STS)
    eventually(lambda: names(pods.list("app=web")) == ["web-0"], message="web-0 first")
    # web-1 waits for web-0 to be Running and Ready.
    assert names(pods.list("app=web")) == ["web-0"]
    pods.run("app=web")
    eventually(lambda: names(pods.list("app=web")) == ["web-0", "web-1"], message="then web-1")
    pods.run("app=web")
    eventually(lambda: names(pods.list("app=web")) == ["web-0", "web-1", "web-2"], message="then web-2")
    pods.run("app=web")
    eventually(lambda: cluster.get(ns, "sts", "web")["status"].get("readyReplicas") == 3,
               message="3 ready")
    pod = cluster.get(ns, "pod", "web-1")
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "web"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-web-1"
    claims = sorted(c["metadata"]["name"] for c in cluster.get(ns, "pvc")["items"])
    assert claims == ["data-web-0", "data-web-1", "data-web-2"]
    status = cluster.get(ns, "sts", "web")["status"]
    assert status["currentRevision"] == status["updateRevision"]
    assert status["availableReplicas"] == 3
    events = [e["message"] for e in cluster.get(ns, "events")["items"] if e["reason"] == "SuccessfulCreate"]
    assert "create Pod web-0 in StatefulSet web successful" in events
    assert "create Claim data-web-0 Pod web-0 in StatefulSet web success" in events

    with pods.kubelet():
        k("set", "image", "statefulset/web", "-n", ns, "c=nginx:1.25")
        r = k("rollout", "status", "statefulset/web", "-n", ns, "--timeout=60s")
        assert "partitioned roll out complete" in r.stdout or "rolling update complete" in r.stdout
        hist = k("rollout", "history", "statefulset/web", "-n", ns).stdout
        assert "1" in hist and "2" in hist
        k("rollout", "undo", "statefulset/web", "-n", ns)
        k("rollout", "status", "statefulset/web", "-n", ns, "--timeout=60s")
    images = {p["spec"]["containers"][0]["image"] for p in pods.list("app=web")}
    assert images == {"nginx:1.24"}
    revs = cluster.get(ns, "controllerrevisions")["items"]
    assert sorted(r["revision"] for r in revs) == [2, 3]

    k("scale", "statefulset/web", "-n", ns, "--replicas=1")
    eventually(lambda: names(pods.list("app=web")) == ["web-0"], message="scaled down from the top")
    delete_events = [e["message"] for e in cluster.get(ns, "events")["items"] if e["reason"] == "SuccessfulDelete"]
    assert "delete Pod web-2 in StatefulSet web successful" in delete_events
