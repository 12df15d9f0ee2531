"""Static pods on fakes: manifest files run as pods, mirrored into the API."""
import json

import pytest
import yaml

from pyk8s.client import resources
from pyk8s.kubelet.staticpods import read_manifests

from .fakenode import make_node
from .helpers import NODE

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
"""


@pytest.fixture
async def node(tmp_path):
    n = await make_node(tmp_path)
    yield n
    await n.kubelet.stop()


def manifests(node):
    d = node.kubelet.settings.manifests_dir
    d.mkdir(parents=True, exist_ok=True)
    return d


async def resync(node):
    await node.kubelet.sync_static_pods()
    await node.settle()


async def mirror(node, name=f"web-{NODE}"):
    try:
        return await node.client.get(resources.PODS, name, namespace="default")
    except Exception:  # noqa: BLE001
        return None


def running(node, name="app"):
    return [c for c in node.containers(name) if c.state.name == "RUNNING"]


def test_manifests_become_pods_with_upstream_defaults(tmp_path):
    (tmp_path / "web.yaml").write_text(MANIFEST)
    (tmp_path / "broken.json").write_text(json.dumps({"kind": "Pod"}))  # skipped
    docs = [dict(yaml.safe_load(MANIFEST), metadata={"name": "db", "namespace": "kube-system"}),
            dict(yaml.safe_load(MANIFEST), metadata={"name": "cache"})]
    (tmp_path / "multi.yaml").write_text(yaml.safe_dump_all(docs))
    (tmp_path / "same.yaml").write_text(MANIFEST)  # a second web: a duplicate, skipped
    (tmp_path / ".hidden.yaml").write_text(MANIFEST.replace("web", "hidden"))
    found = read_manifests(tmp_path, "Node-A", "2025-01-01T00:00:00Z")
    by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in found.values()}
    assert set(by_name) == {("default", "web-node-a"), ("kube-system", "db-node-a"),
                            ("default", "cache-node-a")}
    web = by_name[("default", "web-node-a")]
    notes = web["metadata"]["annotations"]
    assert notes["kubernetes.io/config.source"] == "file"
    assert notes["kubernetes.io/config.hash"] == web["metadata"]["uid"]
    assert notes["kubernetes.io/config.seen"] == "2025-01-01T00:00:00Z"
    assert len(web["metadata"]["uid"]) == 32
    assert web["spec"]["nodeName"] == "Node-A"
    assert {"operator": "Exists", "effect": "NoExecute"} in web["spec"]["tolerations"]
    # the same content on the same node is the same pod; another node, another UID
    assert set(read_manifests(tmp_path, "Node-A", "later")) == set(found)
    assert not set(read_manifests(tmp_path, "node-b", "x")) & set(found)


async def test_a_static_pod_runs_and_is_mirrored_into_the_api(node):
    (manifests(node) / "web.yaml").write_text(MANIFEST)
    await resync(node)
    [c] = running(node)
    m = await mirror(node)
    assert m is not None
    notes = m["metadata"]["annotations"]
    static_uid = notes["kubernetes.io/config.hash"]
    assert notes["kubernetes.io/config.mirror"] == static_uid != m["metadata"]["uid"]
    assert notes["kubernetes.io/config.source"] == "file"
    [owner] = m["metadata"]["ownerReferences"]
    assert owner["kind"] == "Node" and owner["name"] == NODE and owner["controller"] is True
    assert m["metadata"]["labels"] == {"app": "web"}
    assert m["status"]["phase"] == "Running"
    assert m["status"]["containerStatuses"][0]["containerID"] == f"fake://{c.id}"

    # a deleted mirror pod comes back; the static pod is not restarted
    await node.client.delete(resources.PODS, m["metadata"]["name"], namespace="default")
    await node.settle()
    again = await mirror(node)
    assert again is not None and again["metadata"]["uid"] != m["metadata"]["uid"]
    assert again["status"]["phase"] == "Running"
    assert [x.id for x in running(node)] == [c.id]


async def test_editing_the_manifest_restarts_the_pod_and_removing_it_stops_it(node):
    path = manifests(node) / "web.yaml"
    path.write_text(MANIFEST)
    await resync(node)
    [first] = running(node)
    old = await mirror(node)

    path.write_text(MANIFEST.replace('"3600"', '"7200"'))
    await resync(node)
    await node.advance(31)  # the old pod's grace period
    [second] = running(node)
    assert second.id != first.id and second.config.command == ["sleep", "7200"]
    new = await mirror(node)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["metadata"]["annotations"]["kubernetes.io/config.mirror"] != \
        old["metadata"]["annotations"]["kubernetes.io/config.mirror"]
    assert new["spec"]["containers"][0]["command"] == ["sleep", "7200"]

    path.unlink()
    await resync(node)
    await node.advance(31)
    await node.kubelet.housekeeping()
    await node.settle()
    assert running(node) == []
    assert await mirror(node) is None


async def test_a_mirror_pod_without_its_manifest_is_deleted(node):
    (manifests(node) / "web.yaml").write_text(MANIFEST)
    await resync(node)
    m = await mirror(node)
    # a second kubelet start with the manifest gone: the mirror is an orphan
    (manifests(node) / "web.yaml").unlink()
    await resync(node)
    await node.advance(31)
    await node.kubelet.housekeeping()
    await node.settle()
    assert await mirror(node) is None
    assert m is not None
