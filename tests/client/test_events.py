"""The event recorder: upstream naming, counting, aggregation and spam filtering,
written to the in-memory API on a fake clock."""
from __future__ import annotations

import pytest

from pyk8s.client import Client, TransportError
from pyk8s.client import resources as r
from pyk8s.client.events import EventBroadcaster, FakeRecorder
from pyk8s.client.fake import FakeTransport

from .helpers import settle

pytestmark = pytest.mark.timeout(60)

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "7"}}


@pytest.fixture
def recorder(fake_client, clock):
    broadcaster = EventBroadcaster(fake_client, clock=clock, rand=lambda: 0.5)
    rec = broadcaster.new_recorder("replicaset-controller", host="node-a")
    rec.flush = broadcaster.flush  # tests wait on the writer through the recorder
    return rec


def events(api, ns: str = "shop") -> list[dict]:
    return api.objects(r.EVENTS, ns)


async def test_an_event_as_upstream_writes_it(recorder, api, clock):
    recorder.event(POD, "Normal", reason="Scheduled",
                   message="Successfully assigned shop/web-1 to node-a")
    assert await recorder.flush(5)
    [ev] = events(api)
    # <object name>.<first timestamp in ns, hex>: 2025-01-01T00:00:00Z.
    assert ev["metadata"]["name"] == "web-1.1816687ec0570000"
    assert ev["involvedObject"] == {"kind": "Pod", "namespace": "shop", "name": "web-1",
                                    "uid": "u-1", "apiVersion": "v1", "resourceVersion": "7"}
    assert (ev["type"], ev["reason"], ev["count"]) == ("Normal", "Scheduled", 1)
    assert ev["message"] == "Successfully assigned shop/web-1 to node-a"
    assert ev["source"] == {"component": "replicaset-controller", "host": "node-a"}
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2025-01-01T00:00:00Z"
    assert (ev["reportingComponent"], ev["reportingInstance"]) == ("replicaset-controller",
                                                                   "node-a")


async def test_repeats_are_counted_on_one_event(recorder, api, clock):
    for _ in range(3):
        recorder.event(POD, "Warning", reason="BackOff",
                       message="Back-off restarting failed container")
        assert await recorder.flush(5)
        clock.advance(30)
    [ev] = events(api)
    assert ev["count"] == 3
    assert ev["firstTimestamp"] == "2025-01-01T00:00:00Z"
    assert ev["lastTimestamp"] == "2025-01-01T00:01:00Z"
    patches = [req for req in api.requests if req[0] == "PATCH"]
    assert len(patches) == 2


async def test_a_deleted_event_is_created_again(recorder, api, clock):
    recorder.event(POD, "Normal", reason="Pulled", message="pulled")
    await recorder.flush(5)
    [ev] = events(api)
    api.remove(r.EVENTS, ev["metadata"]["name"], namespace="shop")
    clock.advance(1)
    recorder.event(POD, "Normal", reason="Pulled", message="pulled")
    await recorder.flush(5)
    [again] = events(api)
    assert again["count"] == 2  # the count carries on, as upstream


async def test_similar_events_are_aggregated(recorder, api, clock):
    for i in range(12):
        recorder.event(POD, "Warning", reason="FailedMount", message=f"volume v{i} not found")
        await recorder.flush(5)
        clock.advance(1)  # distinct first timestamps, so distinct Event names
    evs = events(api)
    combined = [e for e in evs if e["message"].startswith("(combined from similar events)")]
    assert len(evs) == 10 and len(combined) == 1
    assert combined[0]["message"] == "(combined from similar events): volume v11 not found"
    assert combined[0]["count"] == 3  # the 10th, 11th and 12th folded into it
    clock.advance(601)  # after ten quiet minutes the group starts over
    recorder.event(POD, "Warning", reason="FailedMount", message="volume v99 not found")
    await recorder.flush(5)
    assert any(e["message"] == "volume v99 not found" for e in events(api))


async def test_spam_from_one_source_about_one_object_is_dropped(recorder, api, clock):
    for i in range(30):
        recorder.event(POD, "Normal", reason=f"Reason{i}", message="same")
        await recorder.flush(5)
        clock.advance(0.01)
    assert sorted(e["reason"] for e in events(api)) == sorted(f"Reason{i}" for i in range(25))
    clock.advance(300)  # one token back per five minutes
    recorder.event(POD, "Normal", reason="Later", message="after the pause")
    await recorder.flush(5)
    assert "Later" in {e["reason"] for e in events(api)}


async def test_cluster_scoped_objects_get_events_in_default(recorder, api):
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "uid": "n"}}
    recorder.event(node, "Normal", reason="NodeReady",
                   message="Node node-a status is now: NodeReady")
    await recorder.flush(5)
    [ev] = api.objects(r.EVENTS, "default")
    assert ev["involvedObject"]["name"] == "node-a" and "namespace" not in ev["involvedObject"]


async def test_bad_events_are_dropped_without_raising(recorder, api):
    recorder.event(POD, "Info", reason="Whatever", message="not a valid type")
    recorder.event({"metadata": {"name": "x"}}, "Normal", reason="NoKind",
                   message="no apiVersion/kind")
    await recorder.flush(5)
    assert events(api) == [] and api.objects(r.EVENTS, "default") == []


class FlakyTransport(FakeTransport):
    def __init__(self, api, failures: int):
        super().__init__(api)
        self.failures = failures

    async def request(self, request):
        if self.failures:
            self.failures -= 1
            raise TransportError("connection refused")
        return await super().request(request)


async def test_connection_failures_are_retried_on_the_clock(api, clock):
    client = Client(transport=FlakyTransport(api, failures=2), clock=clock)
    broadcaster = EventBroadcaster(client, clock=clock, rand=lambda: 0.5)
    recorder = broadcaster.new_recorder("kubelet", host="n")
    recorder.event(POD, "Normal", reason="Started", message="started")
    await settle()
    assert events(api) == []
    clock.advance(5)  # the first retry waits a random part of 10 s (here half)
    await settle()
    assert events(api) == []
    clock.advance(10)
    await settle()
    assert len(events(api)) == 1
    await broadcaster.shutdown()


def test_fake_recorder_keeps_strings():
    fake = FakeRecorder()
    fake.event(POD, "Normal", reason="SuccessfulCreate", message="Created pod: web-1")
    assert fake.events == ["Normal SuccessfulCreate Created pod: web-1"]
