"""The scheduling queue on a fake clock: ordering, back-off, event-driven requeueing."""
from __future__ import annotations

import asyncio

from pyk8s.aio import wait_for
from pyk8s.scheduler.framework import POD, ActionType, ClusterEvent, EVENT_NODE_ADD, MODE_OVERRIDE, NominatingInfo
from pyk8s.scheduler.nodeinfo import PodInfo

from .builders import Harness, node, pod


def fail(h: Harness, p: dict, *plugins: str):
    """Pop ``p`` and bring it back as rejected by ``plugins``."""
    q = h.sched.queue
    qpi = q.pop_nowait()
    assert qpi.uid == p["metadata"]["uid"]
    qpi.unschedulable_plugins = set(plugins)
    return q.add_unschedulable_if_not_present(qpi), qpi


def test_active_queue_orders_by_priority_then_arrival():
    h = Harness()
    h.add_pod(pod("low", priority=1))
    h.clock.advance(1)
    h.add_pod(pod("high", priority=100))
    h.clock.advance(1)
    h.add_pod(pod("high2", priority=100))
    order = [h.sched.queue.pop_nowait().pod["metadata"]["name"] for _ in range(3)]
    assert order == ["high", "high2", "low"]


def test_backoff_doubles_from_one_to_ten_seconds():
    h = Harness()
    q = h.sched.queue
    h.add_pod(pod("p"))
    qpi = q.pop_nowait()
    durations = []
    for attempts in range(1, 7):
        qpi.attempts = attempts
        durations.append(q.backoff_duration(qpi))
    assert durations == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pod_waits_for_a_matching_event_then_backs_off():
    h = Harness()
    q = h.sched.queue
    p = h.add_pod(pod("p", nodeSelector={"disk": "ssd"}))
    where, _ = fail(h, p, "NodeAffinity")
    assert where == "Unschedulable"
    # A pod deletion cannot help a node-affinity rejection.
    q.move_all_to_active_or_backoff(ClusterEvent(POD, ActionType.DELETE), pod("gone", node_name="x"), None)
    assert q.where(p) == "Unschedulable"
    # A node that does not match the selector is skipped by the plugin's hint.
    q.move_all_to_active_or_backoff(EVENT_NODE_ADD, None, node("hdd", labels={"disk": "hdd"}))
    assert q.where(p) == "Unschedulable"
    q.move_all_to_active_or_backoff(EVENT_NODE_ADD, None, node("ssd", labels={"disk": "ssd"}))
    assert q.where(p) == "BackoffQ"
    h.clock.advance(0.5)
    assert q.flush_backoff_completed() == 0
    h.clock.advance(0.6)
    assert q.flush_backoff_completed() == 1
    assert q.where(p) == "ActiveQ"


def test_event_after_backoff_expired_goes_straight_to_active():
    h = Harness()
    q = h.sched.queue
    p = h.add_pod(pod("p", cpu="100"))
    fail(h, p, "NodeResourcesFit")
    h.clock.advance(5)
    q.move_all_to_active_or_backoff(EVENT_NODE_ADD, None, node("huge", cpu="200"))
    assert q.where(p) == "ActiveQ"


def test_event_during_the_cycle_is_not_lost():
    h = Harness()
    q = h.sched.queue
    h.add_pod(pod("p", cpu="100"))
    qpi = q.pop_nowait()
    q.move_all_to_active_or_backoff(EVENT_NODE_ADD, None, node("huge", cpu="200"))
    qpi.unschedulable_plugins = {"NodeResourcesFit"}
    assert q.add_unschedulable_if_not_present(qpi) == "BackoffQ"
    # Without such an event it parks unschedulable.
    h.clock.advance(2)
    q.flush_backoff_completed()
    qpi2 = q.pop_nowait()
    qpi2.unschedulable_plugins = {"NodeResourcesFit"}
    assert q.add_unschedulable_if_not_present(qpi2) == "Unschedulable"


def test_failures_without_a_plugin_retry_after_backoff():
    h = Harness()
    p = h.add_pod(pod("p"))
    where, _ = fail(h, p)
    assert where == "BackoffQ"


def test_leftover_unschedulable_pods_are_retried_after_five_minutes():
    h = Harness()
    q = h.sched.queue
    p = h.add_pod(pod("p", nodeSelector={"x": "y"}))
    fail(h, p, "NodeAffinity")
    h.clock.advance(299)
    assert q.flush_unschedulable_leftover() == 0
    h.clock.advance(2)
    assert q.flush_unschedulable_leftover() == 1 and q.where(p) == "ActiveQ"


def test_updating_an_unschedulable_pod_requeues_it_when_it_may_help():
    h = Harness()
    q = h.sched.queue
    p = h.add_pod(pod("p", tolerations=[]))
    fail(h, p, "TaintToleration")
    relabelled = dict(p, metadata=dict(p["metadata"], labels={"a": "b"}, resourceVersion="2"))
    h.sched.on_pod_update(p, relabelled)
    assert q.where(p) == "Unschedulable"
    tolerant = dict(relabelled, spec=dict(p["spec"], tolerations=[{"operator": "Exists"}]),
                    metadata=dict(relabelled["metadata"], resourceVersion="3"))
    h.sched.on_pod_update(relabelled, tolerant)
    assert q.where(p) == "BackoffQ"


async def test_pop_waits_for_a_pod():
    h = Harness()
    task = asyncio.create_task(h.sched.queue.pop())
    await asyncio.sleep(0)
    assert not task.done()
    h.add_pod(pod("p"))
    qpi = await wait_for(task, 5)
    assert qpi.pod["metadata"]["name"] == "p" and qpi.attempts == 1
    h.sched.queue.close()
    assert await h.sched.queue.pop() is None


async def test_periodic_flush_runs_on_the_injected_clock():
    h = Harness()
    q = h.sched.queue
    p = h.add_pod(pod("p"))
    fail(h, p)
    runner = asyncio.create_task(q.run())
    await asyncio.sleep(0)
    h.clock.advance(1.0)
    await asyncio.sleep(0)
    assert q.where(p) == "ActiveQ"
    q.close()
    h.clock.advance(1.0)
    await wait_for(runner, 5)


def test_nominator_tracks_nominations_per_node():
    h = Harness()
    nom = h.sched.queue.nominator
    p = pod("p", priority=10)
    h.listers.add(p)
    nom.add(PodInfo(p), NominatingInfo("n1", MODE_OVERRIDE))
    assert [pi.pod["metadata"]["name"] for pi in nom.nominated_pods_for_node("n1")] == ["p"]
    # An update that does not mention the nomination keeps the in-memory one.
    nom.update(p, PodInfo(dict(p)))
    assert nom.pod_to_node[p["metadata"]["uid"]] == "n1"
    nom.delete(p)
    assert nom.nominated_pods_for_node("n1") == []
    gone = pod("gone")
    nom.add(PodInfo(gone), NominatingInfo("n1", MODE_OVERRIDE))
    assert nom.nominated_pods_for_node("n1") == []


def test_node_update_events_carry_the_specific_action():
    h = Harness(node("n", labels={"a": "1"}))
    q = h.sched.queue
    p = h.add_pod(pod("p", nodeSelector={"a": "2"}))
    fail(h, p, "NodeAffinity")
    old = h.sched.cache.nodes["n"].node
    h.sched.on_node_update(old, dict(old, spec={"taints": [{"key": "x", "effect": "NoSchedule"}]}))
    assert q.where(p) == "Unschedulable"
    relabelled = dict(old, metadata=dict(old["metadata"], labels={"a": "2"}))
    h.sched.on_node_update(old, relabelled)
    assert q.where(p) == "BackoffQ"
