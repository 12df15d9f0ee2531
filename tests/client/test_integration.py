"""The client machinery against a real pyk8s API server, cross-checked with kubectl."""
from __future__ import annotations

import asyncio
import json

import pytest

from pyk8s.api.meta import parse_time
from pyk8s.client import ApiError, Client, is_expired, load_kubeconfig
from pyk8s.client import resources as r
from pyk8s.client.controller import Controller
from pyk8s.client.events import EventBroadcaster
from pyk8s.client.informers import SharedInformer
from pyk8s.client.leaderelection import LeaderElector, LeaseLock
from pyk8s.client.settings import LeaderElectionSettings, WatchSettings
from pyk8s.client.watching import Listed, Scope, WatchContext, watch_forever

from .helpers import eventually

pytestmark = pytest.mark.timeout(120)


async def test_crud_and_errors_as_kubectl_sees_them(cluster, ns, real_client):
    await real_client.create(r.CONFIGMAPS, {"metadata": {"name": "settings"},
                                            "data": {"mode": "fast"}}, namespace=ns)
    out = await cluster.akubectl("get", "configmap", "settings", "-n", ns,
                                 "-o", "jsonpath={.data.mode}")
    assert out.stdout == "fast"
    await cluster.akubectl("patch", "configmap", "settings", "-n", ns, "--type=merge",
                           "-p", '{"data":{"mode":"slow"}}')
    current = await real_client.get(r.CONFIGMAPS, "settings", namespace=ns)
    assert current["data"] == {"mode": "slow"}
    with pytest.raises(ApiError) as err:
        await real_client.create(r.CONFIGMAPS, {"metadata": {"name": "settings"}}, namespace=ns)
    assert (err.value.code, err.value.reason) == (409, "AlreadyExists")
    stale = {**current, "metadata": {**current["metadata"], "resourceVersion": "1"}}
    with pytest.raises(ApiError) as err:
        await real_client.update(r.CONFIGMAPS, stale)
    assert (err.value.code, err.value.reason) == (409, "Conflict")
    await real_client.delete(r.CONFIGMAPS, "settings", namespace=ns)
    with pytest.raises(ApiError) as err:
        await real_client.get(r.CONFIGMAPS, "settings", namespace=ns)
    missing = await cluster.akubectl("get", "configmap", "settings", "-n", ns, check=False)
    assert err.value.code == 404
    assert err.value.message in missing.stderr  # kubectl prints the same Status message
    assert await real_client.resolve(("apps/v1", "Deployment")) == r.DEPLOYMENTS


async def test_informer_sees_what_kubectl_does(cluster, ns, real_client):
    await cluster.akubectl("create", "configmap", "first", "-n", ns, "--from-literal=a=1")
    informer = SharedInformer(real_client, r.CONFIGMAPS, namespace=ns)
    seen: list[tuple] = []
    informer.add_event_handler(
        on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
        on_update=lambda old, new: seen.append(("update", new["metadata"]["name"],
                                                old["data"], new["data"])),
        on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    informer.start()
    try:
        assert await informer.wait_for_sync(10)
        assert seen == [("add", "first")]
        assert informer.store.get(f"{ns}/first")["kind"] == "ConfigMap"
        await cluster.akubectl("create", "configmap", "second", "-n", ns)
        await cluster.akubectl("patch", "configmap", "first", "-n", ns, "--type=merge",
                               "-p", '{"data":{"a":"2"}}')
        await cluster.akubectl("delete", "configmap", "second", "-n", ns)
        await eventually(lambda: ("delete", "second") in seen, what="the deletion")
        assert seen[1:] == [("add", "second"), ("update", "first", {"a": "1"}, {"a": "2"}),
                            ("delete", "second")]
        assert informer.store.list_keys() == [f"{ns}/first"]
    finally:
        await informer.stop()


async def test_watch_resumes_after_the_server_ends_it(cluster, ns, real_client):
    # Ask the server to end each watch after one second; changes made across the
    # boundary must arrive exactly once, with no relist in between.
    watches: list[dict] = []
    got: list = []
    transport = real_client.transport
    opened = transport.stream

    def counting_stream(request):
        # with the version of the last thing handed to the consumer before it opened
        watches.append(dict(request.params, after=got[-1].resource_version if got else None))
        return opened(request)

    transport.stream = counting_stream
    ctx = WatchContext(real_client, Scope(r.CONFIGMAPS, namespace=ns),
                       settings=WatchSettings(min_timeout=1.0), rand=lambda: 0.0)

    async def consume():
        async for item in watch_forever(ctx):
            got.append(item)

    task = asyncio.create_task(consume())
    try:
        for i in range(3):
            await eventually(lambda: len(watches) > i, what=f"watch #{i + 1}")
            await cluster.akubectl("create", "configmap", f"cm{i}", "-n", ns)
            await eventually(lambda: sum(1 for g in got if not isinstance(g, Listed)
                                         and g.type == "ADDED") > i, what=f"cm{i}")
        events = [(g.type, g.object["metadata"]["name"]) for g in got
                  if not isinstance(g, Listed) and g.type != "BOOKMARK"]
        assert events == [("ADDED", "cm0"), ("ADDED", "cm1"), ("ADDED", "cm2")]
        assert sum(isinstance(g, Listed) for g in got) == 1
        assert len(watches) >= 3 and all(w["timeoutSeconds"] == "1" for w in watches)
        # Each resumed watch starts where the previous one stopped: at the version of
        # the list, event or bookmark the consumer got last (a watch that ended with
        # nothing new, as one may while kubectl starts on a busy machine, resumes at
        # the same version as the one before it).
        assert [w["resourceVersion"] for w in watches] == [w["after"] for w in watches]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_too_old_resource_version_is_410(real_client, ns):
    with pytest.raises(ApiError) as err:
        async for _ in real_client.watch(r.CONFIGMAPS, namespace=ns, resource_version="1"):
            pass
    assert is_expired(err.value) and err.value.reason == "Expired"


async def test_leader_election_between_two_clients(cluster, ns):
    # Short, but with room for an API server slowed by a busy disk: a renewal held up
    # beyond renew_deadline would make the leader step down.
    settings = LeaderElectionSettings(lease_duration=6, renew_deadline=5, retry_period=0.5)
    leading: dict[str, bool] = {}
    clients = [Client(load_kubeconfig(cluster.kubeconfig)) for _ in range(2)]

    def candidate(client: Client, identity: str) -> LeaderElector:
        async def lead():
            leading[identity] = True
            try:
                await asyncio.Event().wait()
            finally:
                leading[identity] = False
        return LeaderElector(LeaseLock(client, namespace=ns, name="ctl", identity=identity),
                             on_started_leading=lead, settings=settings)

    electors = {name: candidate(c, name) for name, c in zip(("one", "two"), clients)}
    tasks = {name: asyncio.create_task(e.run()) for name, e in electors.items()}
    try:
        await eventually(lambda: any(leading.values()), what="a leader")
        leader = next(n for n, v in leading.items() if v)
        other = "two" if leader == "one" else "one"

        async def renewed_for_two_lease_durations() -> bool:
            assert list(leading.values()).count(True) == 1 and leading[leader]
            spec = json.loads((await cluster.akubectl(
                "get", "lease", "ctl", "-n", ns, "-o", "json")).stdout)["spec"]
            assert spec["holderIdentity"] == leader and spec["leaseTransitions"] == 0
            held = parse_time(spec["renewTime"]) - parse_time(spec["acquireTime"])
            return held.total_seconds() >= 2 * settings.lease_duration
        await eventually(renewed_for_two_lease_durations, timeout=40, what="renewals")
        tasks[leader].cancel()  # the leader shuts down and releases the lease
        await asyncio.gather(tasks[leader], return_exceptions=True)
        await eventually(lambda: leading.get(other), timeout=10, what="the hand-over")
        lease = json.loads((await cluster.akubectl("get", "lease", "ctl", "-n", ns,
                                                   "-o", "json")).stdout)
        assert lease["spec"]["holderIdentity"] == other
        assert lease["spec"]["leaseTransitions"] == 1
    finally:
        for t in tasks.values():
            t.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for c in clients:
            await c.close()


async def test_recorded_events_show_in_kubectl(cluster, ns, real_client):
    await cluster.akubectl("create", "configmap", "subject", "-n", ns)
    subject = await real_client.get(r.CONFIGMAPS, "subject", namespace=ns)
    broadcaster = EventBroadcaster(real_client)
    recorder = broadcaster.new_recorder("test-controller", host="host-1")
    recorder.event(subject, "Warning", reason="Unhappy", message="the subject is unhappy")
    assert await broadcaster.flush(10)
    recorder.event(subject, "Warning", reason="Unhappy", message="the subject is unhappy")
    assert await broadcaster.flush(10)
    await broadcaster.shutdown()
    table = (await cluster.akubectl("get", "events", "-n", ns)).stdout
    assert "Unhappy" in table and "configmap/subject" in table.lower()
    [ev] = json.loads((await cluster.akubectl("get", "events", "-n", ns, "-o", "json")
                       ).stdout)["items"]
    assert ev["count"] == 2 and ev["type"] == "Warning"
    assert ev["message"] == "the subject is unhappy"
    assert ev["source"] == {"component": "test-controller", "host": "host-1"}
    assert ev["involvedObject"]["uid"] == subject["metadata"]["uid"]
    assert ev["metadata"]["name"].startswith("subject.")


async def test_a_controller_reconciles_what_kubectl_creates(cluster, ns, real_client):
    informer = SharedInformer(real_client, r.CONFIGMAPS, namespace=ns)

    class Labeller(Controller):
        async def sync(self, key):
            obj = informer.store.get(key)
            if obj and (obj["metadata"].get("labels") or {}).get("seen") != "yes":
                await real_client.patch(r.CONFIGMAPS, obj["metadata"]["name"],
                                        body={"metadata": {"labels": {"seen": "yes"}}},
                                        namespace=ns)

    ctl = Labeller(name="labeller")
    informer.add_event_handler(on_add=ctl.enqueue, on_update=lambda o, n: ctl.enqueue(n))
    run = asyncio.create_task(ctl.run(workers=2, informers=[informer]))
    try:
        await cluster.akubectl("create", "configmap", "x", "-n", ns)

        async def labelled():
            out = await cluster.akubectl("get", "configmap", "x", "-n", ns,
                                         "-o", "jsonpath={.metadata.labels.seen}")
            return out.stdout == "yes"
        await eventually(labelled, what="the label")
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await informer.stop()
