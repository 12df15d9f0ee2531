"""Indexers and shared informers against the in-memory API, on a fake clock."""
from __future__ import annotations

import pytest

from pyk8s.client import resources as r
from pyk8s.client.informers import (
    NAMESPACE_INDEX, NODE_NAME_INDEX, OWNER_UID_INDEX, STANDARD_INDEXERS, Indexer,
    SharedInformer, SharedInformerFactory,
)
from pyk8s.client.settings import BackoffSettings, WatchSettings
from pyk8s.client.errors import ApiError, status

from .helpers import eventually, run_clock, settle

pytestmark = pytest.mark.timeout(60)


def pod(name: str, ns: str = "default", *, node: str = "", owner: str = "",
        labels: dict | None = None) -> dict:
    md: dict = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                  "uid": owner, "controller": True}]
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


class Recorder:
    """Collects handler calls as (what, name, old rv, new rv)."""

    def __init__(self, informer: SharedInformer, **kwargs):
        self.calls: list[tuple] = []
        informer.add_event_handler(
            on_add=lambda o: self.calls.append(("add", o["metadata"]["name"])),
            on_update=lambda old, new: self.calls.append(
                ("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                 new["metadata"]["resourceVersion"])),
            on_delete=lambda o: self.calls.append(("delete", o["metadata"]["name"])),
            **kwargs)

    def names(self, what: str) -> list[str]:
        return [c[1] for c in self.calls if c[0] == what]


def lists(api) -> int:
    return sum(1 for method, path, q in api.requests
               if method == "GET" and path == "/api/v1/pods" and "watch" not in q)


def watches(api) -> list[dict]:
    return [q for method, path, q in api.requests if "watch" in q]


# --- the indexer ------------------------------------------------------------------------

def test_indexer_keeps_indexes_consistent():
    store = Indexer(STANDARD_INDEXERS)
    store.upsert(pod("a", node="n1", owner="u1"))
    store.upsert(pod("b", node="n1", owner="u2"))
    store.upsert(pod("c", "other", node="n2", owner="u1"))
    assert sorted(o["metadata"]["name"] for o in store.by_index(NODE_NAME_INDEX, "n1")) == \
        ["a", "b"]
    assert store.index_keys(OWNER_UID_INDEX, "u1") == ["default/a", "other/c"]
    store.upsert(pod("a", node="n2", owner="u1"))  # moved: old index entries go
    assert store.index_keys(NODE_NAME_INDEX, "n1") == ["default/b"]
    assert store.index_keys(NODE_NAME_INDEX, "n2") == ["default/a", "other/c"]
    store.delete("other/c")
    assert store.index_keys(OWNER_UID_INDEX, "u1") == ["default/a"]
    assert store.index_values(NAMESPACE_INDEX) == ["default"]
    changed, removed = store.replace([pod("b", node="n3"), pod("d")])
    assert [o["metadata"]["name"] for o in removed] == ["a"]
    assert [(old is None, new["metadata"]["name"]) for old, new in changed] == \
        [(False, "b"), (True, "d")]
    assert store.index_keys(NODE_NAME_INDEX, "n3") == ["default/b"]
    assert store.index_keys(OWNER_UID_INDEX, "u1") == []


def test_custom_indexer_added_later_indexes_existing_objects():
    store = Indexer()
    store.upsert(pod("a", labels={"app": "web"}))
    store.upsert(pod("b", labels={"app": "db"}))
    store.add_indexers({"app": lambda o: [o["metadata"]["labels"].get("app", "")]})
    assert store.index_keys("app", "web") == ["default/a"]
    assert [o["metadata"]["name"] for o in store.list_namespace("default", "app=db")] == ["b"]
    with pytest.raises(ValueError):
        store.add_indexers({"app": lambda o: []})


# --- informers ---------------------------------------------------------------------------

def make_informer(fake_client, clock, **kwargs) -> SharedInformer:
    settings = WatchSettings(backoff=BackoffSettings(jitter=0.0))
    return SharedInformer(fake_client, r.PODS, settings=settings, clock=clock,
                          rand=lambda: 0.0, **kwargs)


async def test_informer_lists_then_follows_changes(fake_client, api, clock):
    api.add(pod("before"))
    inf = make_informer(fake_client, clock)
    rec = Recorder(inf)
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        assert rec.calls == [("add", "before")]
        created = await fake_client.create(r.PODS, pod("new"))
        await fake_client.patch(r.PODS, "new", body={"metadata": {"labels": {"x": "y"}}},
                                namespace="default")
        await fake_client.delete(r.PODS, "before", namespace="default")
        await eventually(lambda: len(rec.calls) == 4, what="three events")
        assert rec.calls[1] == ("add", "new")
        assert rec.calls[2][:3] == ("update", "new", created["metadata"]["resourceVersion"])
        assert rec.calls[3] == ("delete", "before")
        assert inf.store.list_keys() == ["default/new"]
        assert inf.store.get("default/new")["metadata"]["labels"] == {"x": "y"}
        assert inf.last_sync_resource_version == str(api.rv)
    finally:
        await inf.stop()


async def test_relist_after_410_catches_up_on_missed_changes(fake_client, api, clock):
    api.add(pod("stays"))
    api.add(pod("goes"))
    inf = make_informer(fake_client, clock)
    rec = Recorder(inf)
    inf.start()
    try:
        await inf.wait_for_sync(5)
        await eventually(lambda: api.watch_count == 1, what="the informer's watch")
        # The watch drops; while it is down, changes happen and the history is
        # compacted, so resuming from the old resourceVersion answers 410.
        api.close_watches()
        api.remove(r.PODS, "goes", namespace="default")
        api.add(pod("arrives"))
        api.compact()
        # A watch that ends at once without events counts as a failure: back off.
        await settle()
        assert lists(api) == 1
        await run_clock(clock, 0.8)
        await eventually(lambda: "arrives" in rec.names("add"), what="relist")
        assert rec.names("delete") == ["goes"]
        assert sorted(inf.store.list_keys()) == ["default/arrives", "default/stays"]
        assert lists(api) == 2  # the initial list and one relist
    finally:
        await inf.stop()


async def test_watch_error_event_410_relists(fake_client, api, clock):
    inf = make_informer(fake_client, clock)
    rec = Recorder(inf)
    inf.start()
    try:
        await inf.wait_for_sync(5)
        await eventually(lambda: api.watch_count == 1, what="the informer's watch")
        api.expire_watches()
        await eventually(lambda: lists(api) == 2, what="a relist")
        await fake_client.create(r.PODS, pod("later"))
        await eventually(lambda: rec.names("add") == ["later"], what="the new pod")
    finally:
        await inf.stop()


async def test_server_timeout_resumes_the_watch_without_relisting(fake_client, api, clock):
    inf = make_informer(fake_client, clock)
    rec = Recorder(inf)
    inf.start()
    try:
        await inf.wait_for_sync(5)
        await settle()
        assert api.watch_count == 1
        watch_q = watches(api)[0]
        assert watch_q["allowWatchBookmarks"] == "true" and watch_q["timeoutSeconds"] == "300"
        await fake_client.create(r.PODS, pod("a"))
        await eventually(lambda: rec.names("add") == ["a"], what="the pod")
        clock.advance(300)  # the server ends the watch it was asked to end after 300 s
        await eventually(lambda: len(watches(api)) == 2, what="a second watch")
        assert watches(api)[1]["resourceVersion"] == str(api.rv)
        assert lists(api) == 1
    finally:
        await inf.stop()


async def test_bookmarks_advance_the_resource_version(fake_client, api, clock):
    inf = make_informer(fake_client, clock)
    rec = Recorder(inf)
    inf.start()
    try:
        await inf.wait_for_sync(5)
        await fake_client.create(r.CONFIGMAPS, {"metadata": {"name": "elsewhere",
                                                             "namespace": "default"}})
        await settle()
        assert inf.last_sync_resource_version != str(api.rv)
        api.bookmark()
        await eventually(lambda: inf.last_sync_resource_version == str(api.rv),
                         what="the bookmark")
        assert rec.calls == []
    finally:
        await inf.stop()


async def test_failures_back_off_then_recover(fake_client, api, clock):
    failures = []

    def broken(req):
        if len(failures) < 2:
            failures.append(req.verb)
            raise ApiError(status(503, "ServiceUnavailable", message="try later"))
        return None

    api.prepend_reactor("list", "pods", reactor=broken)
    api.add(pod("a"))
    inf = make_informer(fake_client, clock)
    inf.start()
    try:
        await settle()
        assert failures == ["list"] and not inf.has_synced
        await run_clock(clock, 0.75)
        assert failures == ["list"]  # still backing off (0.8 s)
        await run_clock(clock, 0.25)
        assert failures == ["list", "list"]
        await run_clock(clock, 1.0)  # doubled: 1.6 s
        assert not inf.has_synced
        await run_clock(clock, 1.0)
        assert inf.has_synced and inf.store.list_keys() == ["default/a"]
    finally:
        await inf.stop()


async def test_resync_redelivers_the_cache(fake_client, api, clock):
    api.add(pod("a"))
    inf = make_informer(fake_client, clock, resync_period=30.0)
    rec = Recorder(inf)
    quiet = Recorder(inf, resync_period=0)
    inf.start()
    try:
        await inf.wait_for_sync(5)
        await settle()
        await run_clock(clock, 29.5, step=0.5)
        assert rec.names("update") == []
        await run_clock(clock, 1.0, step=0.5)
        assert rec.names("update") == ["a"]
        same = rec.calls[-1]
        assert same[2] == same[3]  # old and new are the same object
        assert quiet.names("update") == []
        await run_clock(clock, 30.0, step=1.0)
        assert rec.names("update") == ["a", "a"]
    finally:
        await inf.stop()


async def test_late_handlers_get_the_cache_and_can_be_removed(fake_client, api, clock):
    api.add(pod("a"))
    inf = make_informer(fake_client, clock)
    inf.start()
    try:
        await inf.wait_for_sync(5)
        seen = []
        reg = inf.add_event_handler(on_add=lambda o: seen.append(o["metadata"]["name"]))
        assert seen == ["a"]
        reg.remove()
        await fake_client.create(r.PODS, pod("b"))
        await eventually(lambda: "default/b" in inf.store, what="pod b")
        assert seen == ["a"]
    finally:
        await inf.stop()


async def test_a_failing_handler_does_not_starve_the_others(fake_client, api, clock):
    inf = make_informer(fake_client, clock)
    inf.add_event_handler(on_add=lambda o: 1 / 0)
    rec = Recorder(inf)
    inf.start()
    try:
        await inf.wait_for_sync(5)
        await fake_client.create(r.PODS, pod("a"))
        await eventually(lambda: rec.names("add") == ["a"], what="the second handler")
    finally:
        await inf.stop()


async def test_selectors_narrow_the_informer(fake_client, api, clock):
    inf = make_informer(fake_client, clock, namespace="default", label_selector="app=web")
    inf.start()
    try:
        await inf.wait_for_sync(5)
        await fake_client.create(r.PODS, pod("web", labels={"app": "web"}))
        await fake_client.create(r.PODS, pod("db", labels={"app": "db"}))
        await fake_client.create(r.PODS, pod("web", "other", labels={"app": "web"}))
        await fake_client.create(r.PODS, pod("last", labels={"app": "web"}))
        await eventually(lambda: "default/last" in inf.store, what="the last pod")
        assert sorted(inf.store.list_keys()) == ["default/last", "default/web"]
        await fake_client.patch(r.PODS, "web", body={"metadata": {"labels": {"app": "db"}}},
                                namespace="default")
        await eventually(lambda: "default/web" not in inf.store, what="the pod to leave")
    finally:
        await inf.stop()


async def test_factory_shares_one_informer_per_scope(fake_client, api, clock):
    factory = SharedInformerFactory(fake_client, clock=clock)
    pods = factory.informer(r.PODS)
    assert factory.informer(r.PODS, indexers={NODE_NAME_INDEX: STANDARD_INDEXERS[
        NODE_NAME_INDEX]}) is pods
    nodes = factory.informer(r.NODES)
    assert factory.informer(r.PODS, namespace="x") is not pods
    api.add(pod("a", node="n1"))
    api.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    factory.start()
    try:
        assert await factory.wait_for_sync(5)
        assert pods.store.index_keys(NODE_NAME_INDEX, "n1") == ["default/a"]
        assert nodes.store.list_keys() == ["n1"]
        assert lists(api) == 1
    finally:
        await factory.stop()
