"""ReplicaSets through the API: kubectl scale, adoption, events, status."""
import json

from .conftest import eventually

RS = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
"""


def test_replicaset_creates_scales_and_reports(cluster, ns, pods):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=RS)
    eventually(lambda: len(pods.list("app=web")) == 3, message="3 pods")
    owners = {p["metadata"]["ownerReferences"][0]["name"] for p in pods.list("app=web")}
    assert owners == {"web"}
    assert all(p["metadata"]["generateName"] == "web-" for p in pods.list())
    pods.run("app=web")
    eventually(lambda: cluster.get(ns, "rs", "web")["status"].get("readyReplicas") == 3,
               message="readyReplicas 3")
    status = cluster.get(ns, "rs", "web")["status"]
    assert status["availableReplicas"] == 3 and status["observedGeneration"] == 1
    out = cluster.kubectl("get", "rs", "web", "-n", ns).stdout
    assert out.split("\n")[1].split()[1:4] == ["3", "3", "3"]

    cluster.kubectl("scale", "rs", "web", "-n", ns, "--replicas=1")
    eventually(lambda: len([p for p in pods.list("app=web") if not p["metadata"].get("deletionTimestamp")]) == 1,
               message="scaled down to 1")
    eventually(lambda: cluster.get(ns, "rs", "web")["status"].get("replicas") == 1, message="status 1")

    def events_with_delete():
        items = cluster.get(ns, "events")["items"]
        return any(e["reason"] == "SuccessfulDelete" for e in items) and items

    # Events are written in the background: the delete's may land after the status.
    events = eventually(events_with_delete, message="the SuccessfulDelete event")
    reasons = {(e["reason"], e["source"].get("component")) for e in events}
    assert ("SuccessfulCreate", "replicaset-controller") in reasons
    assert ("SuccessfulDelete", "replicaset-controller") in reasons
    created = [e["message"] for e in events if e["reason"] == "SuccessfulCreate"]
    assert all(m.startswith("Created pod: web-") for m in created)


def test_orphans_are_adopted_and_strays_released(cluster, ns, pods):
    cluster.kubectl("run", "orphan", "-n", ns, "--image=nginx", "--labels=app=web")
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=RS.replace("replicas: 3", "replicas: 2"))
    # Adopted and counted: 2 pods, the orphan owned by web. (Were the ReplicaSet synced
    # before its informer had the orphan, 2 pods would be made, then one deleted.)
    eventually(lambda: len(pods.list("app=web")) == 2
               and (cluster.get(ns, "pod", "orphan")["metadata"].get("ownerReferences")
                    or [{}])[0].get("name") == "web",
               message="the orphan adopted as one of 2 pods")
    cluster.kubectl("label", "pod", "orphan", "-n", ns, "app=other", "--overwrite")
    eventually(lambda: not cluster.get(ns, "pod", "orphan")["metadata"].get("ownerReferences"),
               message="release")
    eventually(lambda: len(pods.list("app=web")) == 2, message="a replacement")
    assert json.loads(cluster.kubectl("get", "rs", "web", "-n", ns, "-o", "json").stdout)["spec"]["replicas"] == 2


RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 2
  selector: {app: legacy}
  template:
    metadata: {labels: {app: legacy}}
    spec: {containers: [{name: c, image: nginx}]}
"""


def test_replication_controller(cluster, ns, pods):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=RC)
    eventually(lambda: len(pods.list("app=legacy")) == 2, message="2 pods")
    pods.run("app=legacy")
    eventually(lambda: cluster.get(ns, "rc", "legacy")["status"].get("readyReplicas") == 2,
               message="2 ready")
    cluster.kubectl("scale", "rc", "legacy", "-n", ns, "--replicas=3")
    eventually(lambda: len(pods.list("app=legacy")) == 3, message="3 pods")
    events = [e for e in cluster.get(ns, "events")["items"] if e["involvedObject"]["kind"] == "ReplicationController"]
    assert {e["source"]["component"] for e in events} == {"replication-controller"}
