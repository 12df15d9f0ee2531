"""Pod predicates, victim ordering, int-or-percent rounding, slow start and expectations."""
import pytest

from pyk8s.client.clock import FakeClock
from pyk8s.controllers import expectations, hashing, ownership, podutil

from .builders import at, pod, replicaset


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_availability_needs_ready_for_min_ready_seconds():
    p = pod("a", ready_since=100)
    assert podutil.is_pod_available(p, 0, at(100))
    assert not podutil.is_pod_available(p, 10, at(110))   # not strictly after
    assert podutil.is_pod_available(p, 10, at(111))
    assert not podutil.is_pod_available(pod("b", ready=False), 0, at(200))


def test_ranked_victims_follow_upstream_order():
    now = at(10_000)
    pods = [
        pod("ready-old", created=0, ready_since=10),
        pod("unscheduled", node="", phase="Pending", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("not-ready", ready=False),
        pod("cheap", created=0, ready_since=10, annotations={podutil.POD_DELETION_COST: "-5"}),
        pod("restarting", created=0, ready_since=10, restarts=4),
    ]
    ranks = [0] * len(pods)
    ordered = names(podutil.sort_active_pods_with_ranks(pods, ranks, now))
    assert ordered[:4] == ["unscheduled", "pending", "not-ready", "cheap"]
    assert ordered[4:] == ["restarting", "ready-old"]


def test_doubled_up_pods_go_first_and_newer_ready_pods_before_older():
    now = at(100_000)
    a, b = pod("a", ready_since=10), pod("b", ready_since=10)
    assert names(podutil.sort_active_pods_with_ranks([a, b], [1, 3], now)) == ["b", "a"]
    # Ready times in different log2 buckets: the most recently ready pod goes first.
    old, new = pod("old", ready_since=10), pod("new", ready_since=99_990)
    assert names(podutil.sort_active_pods_with_ranks([old, new], [0, 0], now)) == ["new", "old"]
    # Same bucket (2^n ns): upstream falls back to comparing uids.
    x, y = pod("x", ready_since=50_000), pod("y", ready_since=50_001)
    first = min([x, y], key=lambda p: p["metadata"]["uid"])
    assert podutil.sort_active_pods_with_ranks([y, x], [0, 0], now)[0] is first


def test_active_pods_ordering_for_jobs():
    pods = [pod("running-old", created=0), pod("running-new", created=50),
            pod("pending", phase="Pending", ready=False)]
    assert names(podutil.sort_active_pods(pods)) == ["pending", "running-new", "running-old"]


@pytest.mark.parametrize("value,total,up,expected", [
    ("25%", 10, True, 3), ("25%", 10, False, 2), (3, 10, True, 3), ("5", 10, False, 5),
    ("0%", 7, True, 0), ("100%", 7, False, 7), ("33%", 4, True, 2), ("33%", 4, False, 1),
])
def test_scaled_value_rounds_as_upstream(value, total, up, expected):
    assert podutil.scaled_value(value, total, up) == expected


def test_scaled_value_rejects_garbage():
    with pytest.raises(podutil.IntOrStringError, match='invalid value "x%"'):
        podutil.scaled_value("x%", 10, True)


def test_slow_start_batches():
    assert podutil.slow_start_batches(10) == [1, 2, 4, 3]
    assert podutil.slow_start_batches(1) == [1]
    assert podutil.slow_start_batches(0) == []
    assert sum(podutil.slow_start_batches(500)) == 500
    assert podutil.slow_start_batches(2000, maximum=500)[-3:] == [500, 500, 489]


def test_expectations_block_until_observed_or_expired():
    clock = FakeClock()
    exp = expectations.UIDTrackingExpectations(expectations.ControllerExpectations(clock))
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")   # the same pod twice counts once
    assert not exp.satisfied("ns/rs")
    clock.advance(expectations.EXPECTATIONS_TIMEOUT + 1)
    assert exp.satisfied("ns/rs")            # a lost event does not wedge the controller


def test_pod_from_template_carries_labels_owner_and_prefix():
    rs = replicaset("web-abc", 1)
    ref = podutil.new_controller_ref(rs, "apps/v1", "ReplicaSet")
    p = podutil.pod_from_template(rs["spec"]["template"], rs, ref)
    assert p["metadata"]["generateName"] == "web-abc-"
    assert p["metadata"]["labels"] == {"app": "web"}
    assert p["metadata"]["ownerReferences"] == [ref]
    assert ref["controller"] and ref["blockOwnerDeletion"]


def test_claim_actions():
    rs = replicaset("web", 1)
    matches = lambda p: p["metadata"]["labels"].get("app") == "web"  # noqa: E731
    orphan = pod("o")
    assert ownership.claim_action(rs, orphan, matches) == ownership.ADOPT
    owned = pod("x", owner=rs)
    assert ownership.claim_action(rs, owned, matches) == ownership.CLAIM
    stray = pod("s", owner=rs, labels={"app": "other"})
    assert ownership.claim_action(rs, stray, matches) == ownership.RELEASE
    other = pod("t", owner=replicaset("other", 1))
    assert ownership.claim_action(rs, other, matches) == ownership.IGNORE
    assert ownership.claim_action(rs, pod("d", deleting=True), matches) == ownership.IGNORE
    patch = ownership.release_patch(rs["metadata"]["uid"], stray)
    assert patch["metadata"]["ownerReferences"] == [{"$patch": "delete", "uid": rs["metadata"]["uid"]}]


def test_hashes_are_stable_safe_and_collision_sensitive():
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    h = hashing.compute_hash(t, None)
    assert h == hashing.compute_hash(dict(reversed(list(t.items()))), None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    assert hashing.compute_hash(t, 1) != h
    assert hashing.fnv32a(b"") == 0x811C9DC5 and hashing.fnv32a(b"a") == 0xE40C292C
    assert hashing.fnv32(b"a") == 0x050C5D7E
    assert hashing.go_json({"b": "<&>", "a": 1}) == b'{"a":1,"b":"\\u003c\\u0026\\u003e"}'
