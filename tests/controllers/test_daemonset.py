"""DaemonSet placement, tolerations, node pinning, rolling updates and status."""
import copy

from pyk8s.controllers import daemonset as dsc

from .builders import at, node, template, ts, uid


def ds(**strategy):
    rolling = {"maxUnavailable": strategy.get("max_unavailable", 1)}
    if "max_surge" in strategy:
        rolling["maxSurge"] = strategy["max_surge"]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": uid(), "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(),
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
                     "revisionHistoryLimit": 10}}


def daemon_pod(d, node_name, hash_, *, ready=True, created=0, name=None):
    t = dsc.pod_template(d, hash_)
    dsc.pin_to_node(t["spec"], node_name)
    return {"metadata": {"name": name or f"agent-{node_name}-{hash_}", "namespace": "kube-system",
                         "uid": uid(), "labels": t["metadata"]["labels"],
                         "creationTimestamp": ts(at(created))},
            "spec": {**t["spec"], "nodeName": node_name},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": ts(at(created))}]}}


def test_template_gets_default_tolerations_and_hash_label():
    d = ds()
    d["spec"]["template"]["spec"]["hostNetwork"] = True
    t = dsc.pod_template(d, "abc")
    keys = {(x["key"], x["effect"]) for x in t["spec"]["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in keys
    assert all(x["operator"] == "Exists" for x in t["spec"]["tolerations"])
    assert t["metadata"]["labels"]["controller-revision-hash"] == "abc"
    assert "tolerations" not in d["spec"]["template"]["spec"]      # input untouched


def test_pods_are_pinned_with_match_fields_affinity():
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "x", "operator": "Exists"}]}]}}}}
    dsc.pin_to_node(spec, "n7")
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]
    assert dsc.target_node_name({"spec": spec}) == "n7"


def test_eligible_nodes_follow_selectors_affinity_and_taints():
    d = ds()
    d["spec"]["template"]["spec"]["nodeSelector"] = {"role": "edge"}
    assert dsc.node_should_run(node("a", labels={"role": "edge"}), d) == (True, True)
    assert dsc.node_should_run(node("b"), d) == (False, False)
    tainted = node("c", labels={"role": "edge"}, taints=[{"key": "gpu", "effect": "NoSchedule"}])
    assert dsc.node_should_run(tainted, d) == (False, True)       # existing pods may stay
    evicting = node("d", labels={"role": "edge"}, taints=[{"key": "gpu", "effect": "NoExecute"}])
    assert dsc.node_should_run(evicting, d) == (False, False)
    not_ready = node("e", labels={"role": "edge"},
                     taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    assert dsc.node_should_run(not_ready, d) == (True, True)      # default toleration
    d["spec"]["template"]["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    assert dsc.node_should_run(evicting, d) == (True, True)


def test_manage_creates_on_new_nodes_and_deletes_from_ineligible_ones():
    d = ds()
    d["spec"]["template"]["spec"]["nodeSelector"] = {"role": "edge"}
    nodes = [node("a", labels={"role": "edge"}), node("b")]
    stray = daemon_pod(d, "b", "h")
    by_node = dsc.nodes_to_daemon_pods([stray])
    backoff = dsc.FailedPodsBackoff()
    plan_a = dsc.pods_should_be_on_node(nodes[0], by_node, d, "h", at(0), backoff)
    plan_b = dsc.pods_should_be_on_node(nodes[1], by_node, d, "h", at(0), backoff)
    assert plan_a.create_on == ["a"] and plan_b.delete == [stray]


def test_extra_pods_on_a_node_keep_the_oldest():
    d = ds()
    old, new = daemon_pod(d, "a", "h", created=0, name="old"), daemon_pod(d, "a", "h", created=5, name="new")
    plan = dsc.pods_should_be_on_node(node("a"), dsc.nodes_to_daemon_pods([new, old]), d, "h", at(10),
                                      dsc.FailedPodsBackoff())
    assert [p["metadata"]["name"] for p in plan.delete] == ["new"]


def test_failed_pods_are_replaced_with_back_off():
    d = ds()
    failed = daemon_pod(d, "a", "h")
    failed["status"]["phase"] = "Failed"
    backoff = dsc.FailedPodsBackoff()
    by_node = dsc.nodes_to_daemon_pods([failed])
    first = dsc.pods_should_be_on_node(node("a"), by_node, d, "h", at(0), backoff)
    assert first.delete == [failed] and first.events[0][1] == "FailedDaemonPod"
    again = dsc.pods_should_be_on_node(node("a"), by_node, d, "h", at(0.5), backoff)
    assert again.delete == [] and again.requeue_after == 1.0
    later = dsc.pods_should_be_on_node(node("a"), by_node, d, "h", at(2), backoff)
    assert later.delete == [failed]
    assert backoff.get(next(iter(backoff._entries))) == 2.0


def test_rolling_update_without_surge_respects_max_unavailable():
    d = ds(max_unavailable=2)
    nodes = [node(f"n{i}") for i in range(5)]
    pods = [daemon_pod(d, n["metadata"]["name"], "old") for n in nodes]
    plan = dsc.rolling_update(d, nodes, pods, "new", at(100))
    assert len(plan.delete) == 2 and plan.create_on == []
    # Two nodes run new, one of them not yet available: only one more may go.
    pods = [daemon_pod(d, "n0", "new"), daemon_pod(d, "n1", "new", ready=False)] + pods[2:]
    plan = dsc.rolling_update(d, nodes, pods, "new", at(100))
    assert len(plan.delete) == 1


def test_rolling_update_with_surge_creates_before_deleting():
    d = ds(max_unavailable=0, max_surge="50%")
    nodes = [node(f"n{i}") for i in range(4)]
    pods = [daemon_pod(d, n["metadata"]["name"], "old") for n in nodes]
    plan = dsc.rolling_update(d, nodes, pods, "new", at(100))
    assert len(plan.create_on) == 2 and plan.delete == []
    surged = pods + [daemon_pod(d, "n0", "new", created=50), daemon_pod(d, "n1", "new", ready=False)]
    plan = dsc.rolling_update(d, nodes, surged, "new", at(100))
    assert [p["spec"]["nodeName"] for p in plan.delete] == ["n0"]
    assert len(plan.create_on) == 1


def test_status_counts_and_no_op():
    d = ds()
    nodes = [node("a"), node("b"), node("c", taints=[{"key": "x", "effect": "NoSchedule"}])]
    pods = [daemon_pod(d, "a", "h"), daemon_pod(d, "b", "old", ready=False), daemon_pod(d, "c", "h")]
    counters = dsc.calculate_status(d, nodes, pods, "h", at(100))
    assert counters == {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 1,
                        "numberReady": 1, "updatedNumberScheduled": 1, "numberAvailable": 1,
                        "numberUnavailable": 1}
    status = dsc.status_update(d, counters, True)
    assert status["observedGeneration"] == 1
    d["status"] = status
    assert dsc.status_update(d, counters, True) is None


def test_history_snapshot_and_match():
    d = ds()
    plan = dsc.construct_history(d, [])
    rev = plan.create
    assert rev["revision"] == 1 and rev["metadata"]["name"] == f"agent-{rev['metadata']['labels']['controller-revision-hash']}"
    d2 = copy.deepcopy(d)
    d2["spec"]["template"]["spec"]["containers"][0]["image"] = "x"
    plan2 = dsc.construct_history(d2, [rev])
    assert plan2.create["revision"] == 2 and plan2.old == [rev]
    plan3 = dsc.construct_history(d, [rev, plan2.create])
    assert plan3.current["metadata"]["name"] == rev["metadata"]["name"]
    assert plan3.updates[0]["revision"] == 3          # rolled back: renumbered
