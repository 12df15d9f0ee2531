"""PodDisruptionBudget status and the eviction check (pure)."""
import datetime

from pyk8s.controllers import disruption as d

NOW = datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.timezone.utc)
STAMP = "2025-01-01T12:00:00Z"


def pod(name, *, ready=True, phase="Running", owner=None, deleting=False, labels=None):
    md = {"name": name, "namespace": "default", "labels": labels or {"app": "web"},
          "uid": f"u-{name}"}
    if owner:
        md["ownerReferences"] = [owner]
    if deleting:
        md["deletionTimestamp"] = STAMP
    return {"metadata": md, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(*, min_available=None, max_unavailable=None, status=None, generation=1,
        selector=None):
    spec = {"selector": selector if selector is not None else {"matchLabels": {"app": "web"}}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"metadata": {"name": "web-pdb", "namespace": "default", "generation": generation},
            "spec": spec, "status": status or {}}


RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid",
      "controller": True}


def scale_of(ref, ns):
    return {"rs-uid": ("dep-uid", 4)}.get(ref["uid"])


def test_min_available_integer_counts_selected_pods():
    pods = [pod("a"), pod("b"), pod("c", ready=False)]
    assert d.expected_and_desired(pdb(min_available=2), pods, scale_of) == (3, 2, [])


def test_percentages_and_max_unavailable_use_controller_scale():
    pods = [pod("a", owner=RS), pod("b", owner=RS)]
    assert d.expected_and_desired(pdb(min_available="50%"), pods, scale_of) == (4, 2, [])
    assert d.expected_and_desired(pdb(max_unavailable=1), pods, scale_of) == (4, 3, [])
    assert d.expected_and_desired(pdb(max_unavailable="30%"), pods, scale_of) == (4, 2, [])


def test_unmanaged_pods_are_reported():
    assert d.expected_and_desired(pdb(max_unavailable=1), [pod("x")], scale_of) == (0, 0, ["x"])


def test_status_and_condition():
    status = d.pdb_status(pdb(min_available=2), current=3, desired=2, expected=3,
                          disrupted={}, now=STAMP)
    assert status["disruptionsAllowed"] == 1
    assert status["observedGeneration"] == 1
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "True",
                                     "reason": "SufficientPods", "observedGeneration": 1,
                                     "message": "", "lastTransitionTime": STAMP}]
    same = d.pdb_status(pdb(min_available=2, status=status), current=3, desired=2, expected=3,
                        disrupted={}, now=STAMP)
    assert same is None
    none_expected = d.pdb_status(pdb(min_available=0), current=0, desired=0, expected=0,
                                 disrupted={}, now=STAMP)
    assert none_expected["disruptionsAllowed"] == 0
    assert none_expected["conditions"][0]["reason"] == "InsufficientPods"


def test_healthy_excludes_deleting_and_recently_evicted():
    pods = [pod("a"), pod("b", deleting=True), pod("c")]
    assert d.count_healthy(pods, {"c": STAMP}, NOW, 120) == 1
    late = NOW + datetime.timedelta(seconds=121)
    assert d.count_healthy(pods, {"c": STAMP}, late, 120) == 2


def test_disrupted_map_expires():
    p = pdb(status={"disruptedPods": {"a": STAMP}})
    kept, recheck, overdue = d.disrupted_pod_map(p, [pod("a")], NOW, 120)
    assert kept == {"a": STAMP} and recheck == NOW + datetime.timedelta(seconds=120)
    kept, _, overdue = d.disrupted_pod_map(p, [pod("a")], NOW + datetime.timedelta(hours=1), 120)
    assert kept == {} and [o["metadata"]["name"] for o in overdue] == ["a"]


OK_STATUS = {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2,
             "expectedPods": 3, "observedGeneration": 1}


def test_eviction_allowed_decrements_budget():
    decision = d.check_eviction(pod("a"), [pdb(min_available=2, status=OK_STATUS)], now=NOW)
    assert decision.allowed
    assert decision.pdb["status"]["disruptionsAllowed"] == 0
    assert decision.pdb["status"]["disruptedPods"] == {"a": STAMP}
    assert decision.pdb["status"]["conditions"][0]["reason"] == "InsufficientPods"


def test_eviction_refused_with_upstream_429():
    status = {**OK_STATUS, "disruptionsAllowed": 0, "currentHealthy": 2}
    decision = d.check_eviction(pod("a"), [pdb(min_available=2, status=status)], now=NOW)
    assert not decision.allowed
    assert decision.status["code"] == 429 and decision.status["reason"] == "TooManyRequests"
    assert decision.status["message"] == \
        "Cannot evict pod as it would violate the pod's disruption budget."
    assert decision.status["details"]["causes"] == [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]
    assert d.pdb_allows_eviction(pod("a"), [pdb(min_available=2, status=status)], now=NOW) == (
        False, "Cannot evict pod as it would violate the pod's disruption budget.")


def test_eviction_waits_for_unobserved_generation():
    decision = d.check_eviction(pod("a"), [pdb(min_available=2, status=OK_STATUS,
                                                generation=2)], now=NOW)
    assert decision.status["code"] == 429
    assert decision.status["details"]["retryAfterSeconds"] == 10


def test_eviction_of_harmless_pods_skips_budgets():
    refusing = pdb(min_available=5, status={**OK_STATUS, "disruptionsAllowed": 0})
    assert d.check_eviction(pod("a", phase="Pending"), [refusing], now=NOW).allowed
    assert d.check_eviction(pod("a", deleting=True), [refusing], now=NOW).allowed
    assert d.check_eviction(pod("a", labels={"app": "x"}), [refusing], now=NOW).allowed
    # An unready pod may go while the budget is healthy.
    healthy = pdb(min_available=2, status={**OK_STATUS, "disruptionsAllowed": 0,
                                           "currentHealthy": 2})
    decision = d.check_eviction(pod("a", ready=False), [healthy], now=NOW)
    assert decision.allowed and decision.precondition_rv and decision.pdb is None


def test_two_budgets_are_an_error():
    decision = d.check_eviction(pod("a"), [pdb(status=OK_STATUS), pdb(status=OK_STATUS)],
                                now=NOW)
    assert decision.status["code"] == 500


def test_empty_selector_matches_all_nil_matches_none():
    everything = pdb(selector={})
    nothing = {**pdb(), "spec": {}}
    assert d.pods_for_pdb(everything, [pod("a", labels={"x": "y"})])
    assert d.pods_for_pdb(nothing, [pod("a")]) == []
