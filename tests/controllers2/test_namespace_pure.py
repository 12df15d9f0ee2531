"""Namespace deletion: status conditions and estimates (pure)."""
import datetime

from pyk8s.client.resources import Resource
from pyk8s.controllers import namespace as nsc

NOW = "2025-01-01T00:00:00Z"
LATER = "2025-01-01T00:01:00Z"


def by_type(status):
    return {c["type"]: c for c in status["conditions"]}


def test_all_five_ok_conditions_with_upstream_text():
    status = {}
    assert nsc.ConditionUpdater(NOW).update(status)
    conds = by_type(status)
    assert list(conds) == list(nsc.CONDITION_TYPES)
    assert conds["NamespaceDeletionDiscoveryFailure"] == {
        "type": "NamespaceDeletionDiscoveryFailure", "status": "False",
        "lastTransitionTime": NOW, "reason": "ResourcesDiscovered",
        "message": "All resources successfully discovered"}
    assert conds["NamespaceDeletionGroupVersionParsingFailure"]["message"] == \
        "All legacy kube types successfully parsed"
    assert conds["NamespaceContentRemaining"]["reason"] == "ContentRemoved"
    assert conds["NamespaceFinalizersRemaining"]["message"] == \
        "All content-preserving finalizers finished"
    # Writing the same again changes nothing.
    assert not nsc.ConditionUpdater(LATER).update(status)


def test_remaining_content_and_finalizers_messages():
    status = {}
    u = nsc.ConditionUpdater(NOW)
    u.content_totals({("pods", ""): 2, ("widgets", "example.com"): 1},
                     {"example.com/keep": 1, "kubernetes.io/pvc-protection": 3})
    u.update(status)
    conds = by_type(status)
    assert conds["NamespaceContentRemaining"]["status"] == "True"
    assert conds["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
    assert conds["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: pods. has 2 resource instances, "
        "widgets.example.com has 1 resource instances")
    assert conds["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: example.com/keep in 1 "
        "resource instances, kubernetes.io/pvc-protection in 3 resource instances")


def test_discovery_and_content_failures():
    status = {}
    u = nsc.ConditionUpdater(NOW)
    u.discovery_error("unable to retrieve the complete list of server APIs: "
                      "metrics.k8s.io/v1beta1: the server is currently unable to handle the "
                      "request", failed_groups=1)
    u.delete_content_error("b failed")
    u.delete_content_error("a failed")
    u.update(status)
    conds = by_type(status)
    assert conds["NamespaceDeletionDiscoveryFailure"]["reason"] == "DiscoveryFailed"
    assert conds["NamespaceDeletionDiscoveryFailure"]["message"].startswith(
        "Discovery failed for some groups, 1 failing: unable to retrieve")
    assert conds["NamespaceDeletionContentFailure"]["message"] == \
        "Failed to delete all resource types, 2 remaining: a failed, b failed"


def test_transition_time_moves_only_when_status_flips():
    status = {}
    u = nsc.ConditionUpdater(NOW)
    u.content_totals({("pods", ""): 1}, {})
    u.update(status)
    u = nsc.ConditionUpdater(LATER)
    u.content_totals({("pods", ""): 2}, {})
    assert u.update(status)
    assert by_type(status)["NamespaceContentRemaining"]["lastTransitionTime"] == NOW
    nsc.ConditionUpdater(LATER).update(status)
    assert by_type(status)["NamespaceContentRemaining"]["lastTransitionTime"] == LATER


def test_pod_grace_estimate():
    t0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    pods = [{"spec": {"terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}},
            {"spec": {"terminationGracePeriodSeconds": 90}, "status": {"phase": "Succeeded"}}]
    assert nsc.pod_grace_estimate(pods, t0, t0 + datetime.timedelta(seconds=10)) == 30
    assert nsc.pod_grace_estimate(pods, t0, t0 + datetime.timedelta(seconds=30)) == 0


def test_finalize_and_gvr_string():
    assert nsc.finalized_spec(["kubernetes", "z/x", "a/b"]) == ["a/b", "z/x"]
    assert nsc.gvr_string(Resource("apps", "v1", "deployments")) == \
        "apps/v1, Resource=deployments"
    assert nsc.gvr_string(Resource("", "v1", "pods")) == "/v1, Resource=pods"
