"""A DaemonSet following fake Node objects through the API."""
import json

from .conftest import eventually

DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {pool: %s}
      containers: [{name: c, image: "busybox:1"}]
"""


def node(name, pool, taints=None):
    return json.dumps({"apiVersion": "v1", "kind": "Node",
                       "metadata": {"name": name, "labels": {"pool": pool}},
                       "spec": {"taints": taints or []}})


def make_ready(cluster, name):
    """The kubelet reports Ready and the node lifecycle controller lifts the not-ready taint."""
    cluster.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}))
    cluster.kubectl("taint", "node", name, "node.kubernetes.io/not-ready:NoSchedule-", check=False)


def pinned(pod):
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return terms["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]


def test_daemonset_follows_nodes(cluster, ns, pods):
    k = cluster.kubectl
    pool = ns  # a label only this test's nodes carry
    names = [f"{ns}-a", f"{ns}-b"]
    for n in names:
        k("create", "-f", "-", input=node(n, pool))
    try:
        k("apply", "-n", ns, "-f", "-", input=DS % pool)
        # New nodes carry the not-ready NoSchedule taint, which daemon pods do not tolerate.
        eventually(lambda: cluster.get(ns, "ds", "agent").get("status", {}).get("observedGeneration"),
                   message="the DaemonSet is seen")
        assert pods.list("app=agent") == []
        for n in names:
            make_ready(cluster, n)
        eventually(lambda: sorted(pinned(p) for p in pods.list("app=agent")) == names,
                   message="one pod per node")
        pod = pods.list("app=agent")[0]
        tolerations = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert ("node.kubernetes.io/not-ready", "NoExecute") in tolerations
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerations
        assert "nodeName" not in pod["spec"]
        pods.run("app=agent")
        eventually(lambda: cluster.get(ns, "ds", "agent")["status"].get("numberReady") == 2,
                   message="2 ready")
        status = cluster.get(ns, "ds", "agent")["status"]
        assert status["desiredNumberScheduled"] == 2 and status["updatedNumberScheduled"] == 2

        third = f"{ns}-c"
        k("create", "-f", "-", input=node(third, pool))
        make_ready(cluster, third)
        names.append(third)
        eventually(lambda: sorted(pinned(p) for p in pods.list("app=agent")) == sorted(names),
                   message="a pod on the new node")
        k("taint", "node", third, "dedicated=db:NoExecute")
        eventually(lambda: third not in [pinned(p) for p in pods.list("app=agent")],
                   message="evicted from the tainted node")

        with pods.kubelet("app=agent"):
            k("set", "image", "daemonset/agent", "-n", ns, "c=busybox:2")
            r = k("rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
            assert 'daemon set "agent" successfully rolled out' in r.stdout
        images = {p["spec"]["containers"][0]["image"] for p in pods.list("app=agent")}
        assert images == {"busybox:2"}
        revs = cluster.get(ns, "controllerrevisions")["items"]
        assert sorted(r["revision"] for r in revs) == [1, 2]
    finally:
        for n in names:
            k("delete", "node", n, "--ignore-not-found")


SURGE_DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {pool: %s}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]
      containers: [{name: c, image: "busybox:1"}]
"""


def test_surge_rollout_and_node_affinity(cluster, ns, pods):
    k = cluster.kubectl
    a, b = f"{ns}-a", f"{ns}-b"
    names = []
    try:
        for name, zone in ((a, "a"), (b, "b")):
            k("create", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"pool": ns, "zone": zone}}}))
            names.append(name)
            make_ready(cluster, name)
        k("apply", "-n", ns, "-f", "-", input=SURGE_DS % ns)
        # The user's nodeAffinity keeps the pod off zone b.
        eventually(lambda: [pinned(p) for p in pods.list("app=agent")] == [a], message="a pod on a")

        def scheduled():
            st = cluster.get(ns, "ds", "agent").get("status", {})
            return st.get("observedGeneration") and \
                (st.get("desiredNumberScheduled"), st.get("currentNumberScheduled")) == (1, 1)
        # The first status can predate the controller seeing the pod it made (current 0,
        # as upstream): a later one counts it.
        eventually(scheduled, message="DaemonSet status: 1 desired, 1 current")
        assert [pinned(p) for p in pods.list("app=agent")] == [a]
        old = pods.list("app=agent")[0]
        # As upstream (ReplaceDaemonSetPodNodeNameNodeAffinity), the pod's required terms are
        # replaced by the one pinning it to its node; the user's term was applied by the controller.
        terms = old["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms == {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [a]}]}]}
        pods.run("app=agent")
        eventually(lambda: cluster.get(ns, "ds", "agent")["status"].get("numberAvailable") == 1,
                   message="1 available")

        # maxSurge 1, maxUnavailable 0: the new pod starts next to the old one, which stays
        # until the new one is available.
        k("set", "image", "daemonset/agent", "-n", ns, "c=busybox:2")

        def side_by_side():
            ps = [p for p in pods.list("app=agent") if not p["metadata"].get("deletionTimestamp")]
            return sorted((p["spec"]["containers"][0]["image"], pinned(p)) for p in ps)

        eventually(lambda: side_by_side() == [("busybox:1", a), ("busybox:2", a)],
                   message="old and new pod side by side on a")
        assert cluster.get(ns, "pod", old["metadata"]["name"])["metadata"]["uid"] == old["metadata"]["uid"]
        with pods.kubelet("app=agent"):
            r = k("rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s")
            assert r.stdout.splitlines()[-1] == 'daemon set "agent" successfully rolled out'
            eventually(lambda: side_by_side() == [("busybox:2", a)], message="the old pod removed")

            # Labelling b into zone a makes it eligible.
            k("label", "node", b, "zone=a", "--overwrite")
            eventually(lambda: side_by_side() == [("busybox:2", a), ("busybox:2", b)],
                       message="a pod on b once it is in zone a")
    finally:
        for n in names:
            k("delete", "node", n, "--ignore-not-found")
