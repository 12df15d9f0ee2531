"""DefaultPreemption: eligibility, victim choice, PDBs, candidate choice, nomination."""
from __future__ import annotations

from .builders import Harness, node, pod


def running(h: Harness, name: str, node_name: str, *, cpu: str, priority: int, labels: dict | None = None,
            start: str | None = None) -> dict:
    p = pod(name, cpu=cpu, priority=priority, labels=labels)
    if start:
        p["status"]["startTime"] = start
    return h.add_bound(p, node_name)


def delete_victims(h: Harness) -> None:
    """Play the API server: victims the scheduler deleted disappear."""
    for key in h.actions.deleted:
        ns, name = key.split("/")
        victim = h.listers.pod(ns, name)
        if victim is not None:
            h.listers.remove(victim)
            h.sched.on_pod_delete(victim)


async def test_preempts_a_lower_priority_pod_and_nominates_the_node():
    h = Harness(node("n1", cpu="2"))
    running(h, "low", "n1", cpu="2", priority=0)
    high = pod("high", cpu="1", priority=1000)
    assert await h.schedule(high) is None
    assert h.actions.deleted == ["default/low"]
    key, condition, _ = next(p for p in h.actions.status_patches if p[0] == "default/low")
    assert (condition["type"], condition["reason"]) == ("DisruptionTarget", "PreemptionByScheduler")
    assert condition["message"] == "default-scheduler: preempting to accommodate a higher priority pod"
    assert h.actions.status_patches[-1][0] == "default/high"
    assert h.actions.status_patches[-1][2] == "n1"
    note = h.actions.events_for("Preempted")[0]
    assert note == f"Preempted by pod {high['metadata']['uid']} on node n1"
    # A successful preemption adds nothing to the message, as upstream.
    assert h.failed_message() == "0/1 nodes are available: 1 Insufficient cpu."
    # The victim goes away; the preemptor schedules onto its nominated node.
    delete_victims(h)
    nominated = dict(high, status={"phase": "Pending", "nominatedNodeName": "n1"})
    h.listers.add(nominated)
    h.clock.advance(2)
    h.sched.queue.flush_backoff_completed()
    assert await h.cycle(high) == "n1"


async def test_only_as_many_victims_as_needed_lowest_priority_first():
    h = Harness(node("n1", cpu="3"))
    running(h, "p1", "n1", cpu="1", priority=1)
    running(h, "p2", "n1", cpu="1", priority=2)
    running(h, "p3", "n1", cpu="1", priority=3)
    assert await h.schedule(pod("high", cpu="2", priority=100)) is None
    assert sorted(h.actions.deleted) == ["default/p1", "default/p2"]


async def test_pods_of_equal_or_higher_priority_are_never_victims():
    h = Harness(node("n1", cpu="1"), node("n2", cpu="1"))
    running(h, "same", "n1", cpu="1", priority=10)
    running(h, "higher", "n2", cpu="1", priority=50)
    assert await h.schedule(pod("p", cpu="1", priority=10)) is None
    assert h.actions.deleted == []
    assert h.failed_message() == ("0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are "
                                  "available: 2 No preemption victims found for incoming pod.")


async def test_pdb_protected_victims_are_avoided():
    h = Harness(node("n1", cpu="1"), node("n2", cpu="1"))
    running(h, "guarded", "n1", cpu="1", priority=0, labels={"app": "db"})
    running(h, "free", "n2", cpu="1", priority=0, labels={"app": "batch"})
    h.listers.add({"kind": "PodDisruptionBudget", "metadata": {"name": "db", "namespace": "default"},
                   "spec": {"selector": {"matchLabels": {"app": "db"}}}, "status": {"disruptionsAllowed": 0}})
    assert await h.schedule(pod("high", cpu="1", priority=100)) is None
    assert h.actions.deleted == ["default/free"]


async def test_candidate_with_the_lowest_priority_victims_wins():
    h = Harness(node("n1", cpu="1"), node("n2", cpu="1"), node("n3", cpu="2"))
    running(h, "mid", "n1", cpu="1", priority=50)
    running(h, "low", "n2", cpu="1", priority=5)
    running(h, "a", "n3", cpu="1", priority=5)
    running(h, "b", "n3", cpu="1", priority=5)
    assert await h.schedule(pod("high", cpu="1", priority=100)) is None
    # n2 and n3 tie on highest victim priority (5); n2's priority sum is smaller.
    assert h.actions.deleted == ["default/low"]


async def test_latest_start_time_breaks_the_last_tie():
    h = Harness(node("n1", cpu="1"), node("n2", cpu="1"))
    running(h, "old", "n1", cpu="1", priority=5, start="2024-01-01T00:00:00Z")
    running(h, "new", "n2", cpu="1", priority=5, start="2024-06-01T00:00:00Z")
    assert await h.schedule(pod("high", cpu="1", priority=100)) is None
    assert h.actions.deleted == ["default/new"]


async def test_preemption_policy_never():
    h = Harness(node("n1", cpu="1"))
    running(h, "low", "n1", cpu="1", priority=0)
    assert await h.schedule(pod("p", cpu="1", priority=100, preemptionPolicy="Never")) is None
    assert h.actions.deleted == []
    assert h.failed_message() == ("0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due "
                                  "to preemptionPolicy=Never.")


async def test_nominated_pod_keeps_its_room_from_lower_priority_pods():
    h = Harness(node("n1", cpu="2"))
    running(h, "victim", "n1", cpu="2", priority=0)
    high = pod("high", cpu="2", priority=100)
    assert await h.schedule(high) is None
    delete_victims(h)
    # A lower-priority pod arriving before the preemptor's retry must not take n1.
    sneaky = pod("sneaky", cpu="1", priority=1)
    assert await h.schedule(sneaky) is None
    assert h.failed_message().startswith("0/1 nodes are available: 1 Insufficient cpu.")
