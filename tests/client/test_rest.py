"""The REST client against the in-memory API: verbs, errors, discovery, watch."""
from __future__ import annotations

import asyncio

import pytest

from pyk8s.client import ApiError, is_already_exists, is_conflict, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.errors import status

from .helpers import settle

pytestmark = pytest.mark.timeout(30)


def cm(name: str, ns: str = "default", **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data}


def pod(name: str, ns: str = "default", *, node: str = "", labels: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": spec}


async def test_create_get_update_delete(fake_client):
    created = await fake_client.create(r.CONFIGMAPS, cm("a", x="1"))
    md = created["metadata"]
    assert md["uid"] and md["resourceVersion"] and md["creationTimestamp"]
    got = await fake_client.get(r.CONFIGMAPS, "a", namespace="default")
    assert got == created
    got["data"]["x"] = "2"
    updated = await fake_client.update(r.CONFIGMAPS, got)
    assert int(updated["metadata"]["resourceVersion"]) > int(md["resourceVersion"])
    deleted = await fake_client.delete(r.CONFIGMAPS, "a", namespace="default")
    assert deleted["data"] == {"x": "2"}
    with pytest.raises(ApiError) as err:
        await fake_client.get(r.CONFIGMAPS, "a", namespace="default")
    assert err.value.code == 404 and err.value.reason == "NotFound"
    assert str(err.value) == 'configmaps "a" not found' and is_not_found(err.value)


async def test_stale_update_conflicts(fake_client):
    first = await fake_client.create(r.CONFIGMAPS, cm("a"))
    await fake_client.update(r.CONFIGMAPS, {**first, "data": {"k": "v"}})
    with pytest.raises(ApiError) as err:
        await fake_client.update(r.CONFIGMAPS, {**first, "data": {"k": "w"}})
    assert is_conflict(err.value)
    assert "the object has been modified" in err.value.message


async def test_create_twice_already_exists_and_generate_name(fake_client):
    await fake_client.create(r.CONFIGMAPS, cm("a"))
    with pytest.raises(ApiError) as err:
        await fake_client.create(r.CONFIGMAPS, cm("a"))
    assert is_already_exists(err.value) and err.value.code == 409
    gen = await fake_client.create(r.CONFIGMAPS, {"metadata": {"generateName": "web-",
                                                               "namespace": "default"}})
    assert gen["metadata"]["name"].startswith("web-") and len(gen["metadata"]["name"]) == 9


async def test_status_is_written_only_through_the_subresource(fake_client):
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "rs", "namespace": "default"},
          "spec": {"replicas": 1}, "status": {"replicas": 7}}
    created = await fake_client.create(r.REPLICASETS, rs)
    assert "status" not in created and created["metadata"]["generation"] == 1
    created["status"] = {"replicas": 1}
    after_status = await fake_client.update_status(r.REPLICASETS, created)
    assert after_status["status"] == {"replicas": 1}
    assert after_status["metadata"]["generation"] == 1  # status writes keep generation
    after_status["spec"]["replicas"] = 3
    after_status["status"] = {"replicas": 99}  # ignored on the main resource
    after_spec = await fake_client.update(r.REPLICASETS, after_status)
    assert after_spec["status"] == {"replicas": 1}
    assert after_spec["metadata"]["generation"] == 2


async def test_patch_flavours(fake_client):
    await fake_client.create(r.CONFIGMAPS, cm("a", x="1", y="2"))
    merged = await fake_client.patch(r.CONFIGMAPS, "a", body={"data": {"x": None, "z": "3"}},
                                     namespace="default")
    assert merged["data"] == {"y": "2", "z": "3"}
    jsoned = await fake_client.patch(r.CONFIGMAPS, "a",
                                     body=[{"op": "replace", "path": "/data/y", "value": "9"}],
                                     namespace="default", patch_type="json")
    assert jsoned["data"]["y"] == "9"
    await fake_client.create(r.PODS, pod("p"))
    smp = await fake_client.patch(r.PODS, "p", body={"spec": {"containers": [
        {"name": "c", "image": "nginx"}]}}, namespace="default", patch_type="strategic")
    assert smp["spec"]["containers"] == [{"name": "c", "image": "nginx"}]
    with pytest.raises(ApiError) as err:
        await fake_client.patch(r.CONFIGMAPS, "missing", body={}, namespace="default")
    assert err.value.code == 404


async def test_patch_with_resource_version_is_a_precondition(fake_client):
    old = await fake_client.create(r.CONFIGMAPS, cm("a"))
    await fake_client.patch(r.CONFIGMAPS, "a", body={"data": {"k": "1"}}, namespace="default")
    stale = old["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as err:
        await fake_client.patch(r.CONFIGMAPS, "a", body={"metadata": {"resourceVersion": stale},
                                                    "data": {"k": "v"}}, namespace="default")
    assert is_conflict(err.value)


async def test_finalizers_hold_deletion(fake_client):
    obj = cm("a")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    await fake_client.create(r.CONFIGMAPS, obj)
    deleting = await fake_client.delete(r.CONFIGMAPS, "a", namespace="default")
    assert deleting["metadata"]["deletionTimestamp"]
    still = await fake_client.get(r.CONFIGMAPS, "a", namespace="default")
    still["metadata"]["finalizers"] = []
    await fake_client.update(r.CONFIGMAPS, still)
    with pytest.raises(ApiError):
        await fake_client.get(r.CONFIGMAPS, "a", namespace="default")


async def test_bound_pods_are_deleted_gracefully(fake_client):
    await fake_client.create(r.PODS, pod("bound", node="n1"))
    await fake_client.create(r.PODS, pod("pending"))
    terminating = await fake_client.delete(r.PODS, "bound", namespace="default")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    await fake_client.delete(r.PODS, "pending", namespace="default")  # no node: at once
    assert [p["metadata"]["name"] for p in
            (await fake_client.list(r.PODS, namespace="default"))["items"]] == ["bound"]
    await fake_client.delete(r.PODS, "bound", namespace="default", grace_period_seconds=0)
    assert (await fake_client.list(r.PODS))["items"] == []


async def test_binding_sets_the_node(fake_client):
    await fake_client.create(r.PODS, pod("p"))
    await fake_client.create(r.PODS, {"apiVersion": "v1", "kind": "Binding",
                                      "metadata": {"name": "p", "namespace": "default"},
                                      "target": {"kind": "Node", "name": "n1"}},
                             name="p", subresource="binding")
    assert (await fake_client.get(r.PODS, "p", namespace="default"))["spec"]["nodeName"] == "n1"
    with pytest.raises(ApiError) as err:
        await fake_client.create(r.PODS, {"target": {"name": "n2"},
                                          "metadata": {"namespace": "default"}},
                                 name="p", subresource="binding")
    assert err.value.code == 409


async def test_list_selectors_and_item_kinds(fake_client):
    await fake_client.create(r.PODS, pod("a", labels={"app": "web"}, node="n1"))
    await fake_client.create(r.PODS, pod("b", labels={"app": "db"}))
    await fake_client.create(r.PODS, pod("c", "other", labels={"app": "web"}))
    everywhere = await fake_client.list(r.PODS, label_selector="app=web")
    assert [p["metadata"]["name"] for p in everywhere["items"]] == ["a", "c"]
    assert everywhere["items"][0]["kind"] == "Pod"
    here = await fake_client.list(r.PODS, namespace="default", field_selector="spec.nodeName=")
    assert [p["metadata"]["name"] for p in here["items"]] == ["b"]
    with pytest.raises(ApiError) as err:
        await fake_client.list(r.PODS, label_selector="a in (")
    assert err.value.code == 400


async def test_pagination_is_a_consistent_snapshot(fake_client, api):
    for i in range(7):
        await fake_client.create(r.CONFIGMAPS, cm(f"cm{i}"))
    page = await fake_client.list(r.CONFIGMAPS, limit=3)
    assert len(page["items"]) == 3 and page["metadata"]["continue"]
    await fake_client.create(r.CONFIGMAPS, cm("zz-late"))
    everything = await fake_client.list_all(r.CONFIGMAPS, page_size=3)
    assert len(everything["items"]) == 8 and "continue" not in everything["metadata"]
    api.compact()
    with pytest.raises(ApiError) as err:
        await fake_client.list(r.CONFIGMAPS, limit=3, continue_token=page["metadata"]["continue"])
    assert err.value.code == 410


async def test_discovery_resolves_kinds_and_names(fake_client, api):
    assert await fake_client.resolve(("apps/v1", "Deployment")) == r.DEPLOYMENTS
    assert await fake_client.mapper.find("deployments") == r.DEPLOYMENTS
    assert await fake_client.mapper.find("pod") == r.PODS
    assert await fake_client.mapper.find("events") == r.EVENTS  # core wins
    with pytest.raises(ApiError) as err:
        await fake_client.resolve(("example.com/v1", "Widget"))
    assert err.value.message == 'no matches for kind "Widget" in version "example.com/v1"'
    widgets = r.Resource("example.com", "v1", "widgets", "Widget")
    api.register(widgets)  # a CRD appears: the mapper looks again on a miss
    assert await fake_client.resolve(("example.com/v1", "Widget")) == widgets
    created = await fake_client.create(("example.com/v1", "Widget"),
                                       {"apiVersion": "example.com/v1", "kind": "Widget",
                                        "metadata": {"name": "w", "namespace": "default"}})
    assert created["kind"] == "Widget"


async def test_namespace_is_required_for_namespaced_objects(fake_client):
    with pytest.raises(ValueError):
        await fake_client.get(r.PODS, "p")


async def test_too_many_requests_is_retried_after_the_delay(fake_client, api, clock):
    calls = []

    def throttle(req):
        calls.append(req.verb)
        if len(calls) < 3:
            raise ApiError(status(429, "TooManyRequests", message="slow down"))
        return None

    api.prepend_reactor("get", "configmaps", reactor=throttle)
    await fake_client.create(r.CONFIGMAPS, cm("a"))
    getting = asyncio.create_task(fake_client.get(r.CONFIGMAPS, "a", namespace="default"))
    await settle()
    assert not getting.done()
    clock.advance(1.0)
    await settle()
    clock.advance(1.0)
    await settle()
    assert (await getting)["metadata"]["name"] == "a" and len(calls) == 3


async def test_watch_replays_from_a_resource_version(fake_client, api):
    first = await fake_client.create(r.CONFIGMAPS, cm("a"))
    await fake_client.patch(r.CONFIGMAPS, "a", body={"data": {"k": "v"}}, namespace="default")
    await fake_client.delete(r.CONFIGMAPS, "a", namespace="default")
    seen = []

    async def consume():
        async for ev in fake_client.watch(r.CONFIGMAPS, namespace="default",
                                          resource_version=first["metadata"]["resourceVersion"]):
            seen.append((ev.type, ev.object["metadata"]["name"]))

    task = asyncio.create_task(consume())
    await settle()
    await fake_client.create(r.CONFIGMAPS, cm("b"))
    await settle()
    api.close_watches()
    await asyncio.wait_for(task, 1)
    assert seen == [("MODIFIED", "a"), ("DELETED", "a"), ("ADDED", "b")]


async def test_watch_from_a_compacted_version_is_gone(fake_client, api):
    await fake_client.create(r.CONFIGMAPS, cm("a"))
    await fake_client.create(r.CONFIGMAPS, cm("b"))
    api.compact()  # events after rv 1 are forgotten
    with pytest.raises(ApiError) as err:
        async for _ in fake_client.watch(r.CONFIGMAPS, resource_version="1"):
            pass
    assert err.value.code == 410 and err.value.reason == "Expired"


async def test_watch_error_event_raises(fake_client, api):
    async def consume():
        async for _ in fake_client.watch(r.CONFIGMAPS, resource_version=str(api.rv)):
            pass

    task = asyncio.create_task(consume())
    await settle()
    api.expire_watches()
    with pytest.raises(ApiError) as err:
        await asyncio.wait_for(task, 1)
    assert err.value.code == 410


async def test_watch_selection_changes_are_adds_and_deletes(fake_client, api):
    await fake_client.create(r.PODS, pod("p", labels={"app": "web"}))
    seen = []

    async def consume():
        async for ev in fake_client.watch(r.PODS, label_selector="app=web",
                                          resource_version=str(api.rv)):
            seen.append(ev.type)

    task = asyncio.create_task(consume())
    await settle()
    await fake_client.patch(r.PODS, "p", body={"metadata": {"labels": {"app": "db"}}},
                            namespace="default")
    await fake_client.patch(r.PODS, "p", body={"metadata": {"labels": {"app": "web"}}},
                            namespace="default")
    await settle()
    api.close_watches()
    await asyncio.wait_for(task, 1)
    assert seen == ["DELETED", "ADDED"]
