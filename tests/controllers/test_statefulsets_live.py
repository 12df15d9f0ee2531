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
        assert hist == ("statefulset.apps/web \nREVISION  CHANGE-CAUSE\n"
                        "1         <none>\n2         <none>\n\n")
        k("rollout", "undo", "statefulset/web", "-n", ns)
        k("rollout", "status", "statefulset/web", "-n", ns, "--timeout=60s")
    images = {p["spec"]["containers"][0]["image"] for p in pods.list("app=web")}
    assert images == {"nginx:1.24"}
    revs = cluster.get(ns, "controllerrevisions")["items"]
    assert sorted(r["revision"] for r in revs) == [2, 3]

    k("scale", "statefulset/web", "-n", ns, "--replicas=1")
    eventually(lambda: names(pods.list("app=web")) == ["web-0"], message="scaled down from the top")

    def delete_events():
        return [e["message"] for e in cluster.get(ns, "events")["items"]
                if e["reason"] == "SuccessfulDelete"]
    # Events are written in the background, possibly after the pods are gone.
    eventually(lambda: "delete Pod web-2 in StatefulSet web successful" in delete_events(),
               message="the SuccessfulDelete event of web-2")


DB = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: Parallel
  updateStrategy: %s
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: "nginx:1"}]}
"""

CLAIMS = """
  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Retain}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"""


def images(pods, selector="app=db"):
    return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods.list(selector)}


def history(cluster, ns, name, *revisions):
    return cluster.kubectl("rollout", "history", f"statefulset/{name}", "-n", ns).stdout == (
        f"statefulset.apps/{name} \nREVISION  CHANGE-CAUSE\n"
        + "".join(f"{r:<10}<none>\n" for r in revisions) + "\n")


def test_parallel_start_partition_and_undo_to_revision(cluster, ns, pods):
    k = cluster.kubectl
    k("apply", "-n", ns, "-f", "-",
      input=DB % "{type: RollingUpdate, rollingUpdate: {partition: 2}}")
    # Parallel: all three pods are created although none of them is Running yet.
    eventually(lambda: names(pods.list("app=db")) == ["db-0", "db-1", "db-2"],
               message="all pods at once")
    assert all(p["status"].get("phase") == "Pending" for p in pods.list("app=db"))
    with pods.kubelet():
        eventually(lambda: cluster.get(ns, "sts", "db")["status"].get("readyReplicas") == 3,
                   message="3 ready")
        k("set", "image", "statefulset/db", "-n", ns, "c=nginx:2")
        r = k("rollout", "status", "statefulset/db", "-n", ns, "--timeout=60s")
        assert r.stdout.splitlines()[-1] == "partitioned roll out complete: 1 new pods have been updated..."
        # Only ordinals >= partition get the new revision.
        assert images(pods) == {"db-0": "nginx:1", "db-1": "nginx:1", "db-2": "nginx:2"}
        status = cluster.get(ns, "sts", "db")["status"]
        assert status["currentRevision"] != status["updateRevision"]
        assert (status["updatedReplicas"], status["currentReplicas"]) == (1, 2)
        assert history(cluster, ns, "db", 1, 2)

        k("patch", "statefulset", "db", "-n", ns, "-p",
          '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
        k("rollout", "status", "statefulset/db", "-n", ns, "--timeout=60s")
        eventually(lambda: set(images(pods).values()) == {"nginx:2"}, message="all updated")

        r = k("rollout", "undo", "statefulset/db", "-n", ns, "--to-revision=1")
        assert r.stdout.strip() == "statefulset.apps/db rolled back"
        k("rollout", "status", "statefulset/db", "-n", ns, "--timeout=60s")
        eventually(lambda: set(images(pods).values()) == {"nginx:1"}, message="back to revision 1")
    # Revision 1's template comes back as revision 3.
    assert sorted(r["revision"] for r in cluster.get(ns, "controllerrevisions")["items"]) == [2, 3]
    assert history(cluster, ns, "db", 2, 3)
    r = k("rollout", "undo", "statefulset/db", "-n", ns, "--to-revision=1", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: unable to find specified revision 1 in history"


def test_claims_of_removed_ordinals_deleted_when_scaled(cluster, ns, pods):
    k = cluster.kubectl
    k("apply", "-n", ns, "-f", "-", input=DB % "{type: RollingUpdate}" + CLAIMS)
    with pods.kubelet():
        eventually(lambda: cluster.get(ns, "sts", "db")["status"].get("readyReplicas") == 3,
                   message="3 ready")

    def claims():
        return sorted(c["metadata"]["name"] for c in cluster.get(ns, "pvc")["items"])

    assert claims() == ["data-db-0", "data-db-1", "data-db-2"]
    k("scale", "statefulset/db", "-n", ns, "--replicas=1")
    eventually(lambda: names(pods.list("app=db")) == ["db-0"], message="scaled down to db-0")
    eventually(lambda: claims() == ["data-db-0"], message="claims of db-1 and db-2 deleted")
    # The kept claim is not owned by anything: whenDeleted is Retain.
    assert "ownerReferences" not in cluster.get(ns, "pvc", "data-db-0")["metadata"]


def test_on_delete_replaces_pods_only_when_deleted(cluster, ns, pods):
    k = cluster.kubectl
    k("apply", "-n", ns, "-f", "-", input=DB % "{type: OnDelete}")
    with pods.kubelet():
        eventually(lambda: cluster.get(ns, "sts", "db")["status"].get("readyReplicas") == 3,
                   message="3 ready")
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods.list("app=db")}
        k("set", "image", "statefulset/db", "-n", ns, "c=nginx:2")

        def new_revision_seen():
            sts = cluster.get(ns, "sts", "db")
            st = sts["status"]
            return (st.get("observedGeneration") == sts["metadata"]["generation"]
                    and st["updateRevision"] != st["currentRevision"] and st)

        status = eventually(new_revision_seen, message="the new revision in status")
        assert status.get("updatedReplicas", 0) == 0
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods.list("app=db")} == uids
        assert set(images(pods).values()) == {"nginx:1"}

        k("delete", "pod", "db-1", "-n", ns)
        eventually(lambda: images(pods) == {"db-0": "nginx:1", "db-1": "nginx:2", "db-2": "nginx:1"},
                   message="db-1 recreated at the new revision")
        eventually(lambda: cluster.get(ns, "sts", "db")["status"].get("updatedReplicas") == 1,
                   message="updatedReplicas 1")
    assert cluster.get(ns, "pod", "db-0")["metadata"]["uid"] == uids["db-0"]
