"""The official kubernetes Python client, unchanged, against pyk8s."""
import threading

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException


def test_typed_crud(client, ns):
    core = k8s.CoreV1Api(client)
    cm = core.create_namespaced_config_map(ns, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="py", labels={"a": "b"}), data={"k": "v"}))
    assert cm.metadata.uid and cm.data == {"k": "v"}
    got = core.read_namespaced_config_map("py", ns)
    assert got.metadata.resource_version == cm.metadata.resource_version
    got.data["k"] = "v2"
    updated = core.replace_namespaced_config_map("py", ns, got)
    assert int(updated.metadata.resource_version) > int(got.metadata.resource_version)
    patched = core.patch_namespaced_config_map("py", ns, {"data": {"x": "y"}})
    assert patched.data == {"k": "v2", "x": "y"}
    items = core.list_namespaced_config_map(ns, label_selector="a=b").items
    assert [i.metadata.name for i in items] == ["py"]
    core.delete_namespaced_config_map("py", ns)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("py", ns)
    assert err.value.status == 404


def test_stale_update_conflicts(client, ns):
    core = k8s.CoreV1Api(client)
    cm = core.create_namespaced_config_map(ns, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="c"), data={"n": "0"}))
    core.patch_namespaced_config_map("c", ns, {"data": {"n": "1"}})
    cm.data["n"] = "2"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", ns, cm)
    assert err.value.status == 409 and "Conflict" in err.value.body


def test_apps_and_paging(client, ns):
    apps = k8s.AppsV1Api(client)
    for i in range(7):
        apps.create_namespaced_deployment(ns, k8s.V1Deployment(
            metadata=k8s.V1ObjectMeta(name=f"d{i}"),
            spec=k8s.V1DeploymentSpec(
                selector=k8s.V1LabelSelector(match_labels={"app": f"d{i}"}),
                template=k8s.V1PodTemplateSpec(
                    metadata=k8s.V1ObjectMeta(labels={"app": f"d{i}"}),
                    spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c",
                                                                   image="busybox")])))))
    names, token = [], None
    while True:
        page = apps.list_namespaced_deployment(ns, limit=3, _continue=token)
        names += [d.metadata.name for d in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"d{i}" for i in range(7)]
    scale = apps.read_namespaced_deployment_scale("d0", ns)
    assert scale.spec.replicas == 1 and scale.status.selector == "app=d0"
    apps.patch_namespaced_deployment_scale("d0", ns, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("d0", ns).spec.replicas == 3


def test_watch_sees_events_in_order(client, ns):
    core = k8s.CoreV1Api(client)
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    seen = []
    w = watch.Watch()

    def consume():
        for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=start,
                           timeout_seconds=20):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 3:
                w.stop()
    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
        name="w")))
    core.patch_namespaced_config_map("w", ns, {"data": {"a": "1"}})
    core.delete_namespaced_config_map("w", ns)
    t.join(30)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_errors_are_status_objects(client, ns):
    core = k8s.CoreV1Api(client)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="Bad_Name")))
    assert err.value.status == 422
    assert '"reason":"Invalid"' in err.value.body.replace(" ", "")
    with pytest.raises(ApiException) as err:
        core.read_namespace("nope")
    assert err.value.status == 404


def test_watch_from_expired_version_gets_410(client, ns):
    core = k8s.CoreV1Api(client)
    w = watch.Watch()
    with pytest.raises(ApiException) as err:
        for _ in w.stream(core.list_namespaced_config_map, ns, resource_version="1",
                          timeout_seconds=5):
            pass
    assert err.value.status == 410
    assert "too old resource version: 1" in str(err.value)


def test_watch_bookmarks_and_timeout(client, ns):
    """allowWatchBookmarks is accepted; timeoutSeconds ends the stream by itself."""
    import time
    core = k8s.CoreV1Api(client)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    t0 = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_config_map, ns,
                                       resource_version=rv, allow_watch_bookmarks=True,
                                       timeout_seconds=2))
    assert events == [] and 1.5 < time.monotonic() - t0 < 15
