"""Static pods from a manifest URL (`--manifest-url`), served by the test on 127.0.0.1:
parsing as upstream's http source, the kubelet running and mirroring them on fakes,
the last good set kept when a fetch fails, and both sources together."""
import json

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from pyk8s.client import resources
from pyk8s.kubelet import __main__ as cli
from pyk8s.kubelet.staticpods import HTTP_SOURCE, URLError, url_pods

from .fakenode import make_node
from .helpers import NODE


def pod_doc(name: str, command=("sleep", "3600"), **meta) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "command": list(command)}]}}


class Manifests:
    """A loopback HTTP server whose answer the test sets; it records request headers."""

    def __init__(self):
        self.status, self.body, self.requests = 200, b"", []

    def set(self, doc, status: int = 200) -> None:
        self.status = status
        self.body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.headers)
        return web.Response(status=self.status, body=self.body)


@pytest.fixture
async def served():
    manifests = Manifests()
    app = web.Application()
    app.router.add_get("/pods", manifests.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    manifests.url = str(server.make_url("/pods"))
    yield manifests
    await server.close()


@pytest.fixture
async def node(tmp_path, served):
    n = await make_node(tmp_path, manifest_url=served.url,
                        manifest_url_header=(("X-Token", "abc"), ("X-Many", "1"),
                                             ("X-Many", "2")))
    yield n
    await n.kubelet.stop()


async def mirror(node, name: str):
    try:
        return await node.client.get(resources.PODS, name, namespace="default")
    except Exception:  # noqa: BLE001
        return None


def running(node, name: str = "app"):
    return [c for c in node.containers(name) if c.state.name == "RUNNING"]


async def fetch(node):
    await node.kubelet.sync_url_pods()
    await node.settle()


def test_a_single_pod_or_a_pod_list_in_json_or_yaml():
    url = "http://127.0.0.1:1/pods"
    [single] = url_pods(yaml.safe_dump(pod_doc("web")).encode(), url, "Node-A", "t").values()
    meta = single["metadata"]
    assert (meta["name"], meta["namespace"]) == ("web-node-a", "default")
    assert meta["annotations"] == {"kubernetes.io/config.source": "http",
                                   "kubernetes.io/config.hash": meta["uid"],
                                   "kubernetes.io/config.seen": "t"}
    assert single["spec"]["nodeName"] == "Node-A"
    assert "tolerations" not in single["spec"]  # only file pods get the NoExecute one
    # the UID hashes the pod and the URL, not the node (upstream's "url:" hash)
    assert set(url_pods(json.dumps(pod_doc("web")).encode(), url, "node-b", "t")) == \
        {meta["uid"]}
    assert not set(url_pods(json.dumps(pod_doc("web")).encode(), url + "2", "n", "t")) & \
        {meta["uid"]}
    items = [dict(pod_doc("a"), kind=None, apiVersion=None), pod_doc("b", namespace="ops")]
    for item in items:
        del item["kind"], item["apiVersion"]  # list items carry no kind
    listed = url_pods(yaml.safe_dump({"apiVersion": "v1", "kind": "PodList",
                                      "items": items}).encode(), url, "n", "t")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"])
                  for p in listed.values()) == [("default", "a-n"), ("ops", "b-n")]


@pytest.mark.parametrize("body, message", [
    (b"not: [a pod", "couldn't parse"),
    (json.dumps({"apiVersion": "v1", "kind": "Service"}).encode(), "couldn't parse as single"),
    (json.dumps(dict(pod_doc("x"), spec={"containers": []})).encode(), "spec.containers"),
    (json.dumps({"apiVersion": "v1", "kind": "PodList",
                 "items": [pod_doc("ok"), {"metadata": {"name": "bad"}}]}).encode(),
     "spec.containers"),
    (b"\xff\xfe", "couldn't parse"),
])
def test_a_body_that_is_not_valid_pods_is_refused_whole(body, message):
    with pytest.raises(URLError, match=message):
        url_pods(body, "http://127.0.0.1:1/pods", "n", "t")


async def test_url_pods_run_are_mirrored_and_the_headers_are_sent(node, served):
    served.set(pod_doc("web"))
    await fetch(node)
    [c] = running(node)
    m = await mirror(node, f"web-{NODE}")
    notes = m["metadata"]["annotations"]
    assert notes["kubernetes.io/config.source"] == HTTP_SOURCE
    assert notes["kubernetes.io/config.mirror"] == notes["kubernetes.io/config.hash"]
    assert m["metadata"]["ownerReferences"][0]["kind"] == "Node"
    assert m["status"]["phase"] == "Running"
    headers = served.requests[-1]
    assert headers["X-Token"] == "abc" and headers.getall("X-Many") == ["1", "2"]
    # the same body again changes nothing
    await fetch(node)
    assert [x.id for x in running(node)] == [c.id]


async def test_a_failed_fetch_keeps_the_last_good_pods(node, served):
    served.set(pod_doc("web"))
    await fetch(node)
    [c] = running(node)
    for status, body in ((500, b"boom"), (200, b"{not yaml"), (404, b""),
                         (200, json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode())):
        served.set(body, status)
        await fetch(node)
        assert [x.id for x in running(node)] == [c.id], (status, body)
    # an unreachable URL keeps them too
    node.kubelet.static.url.url = "http://127.0.0.1:1/pods"
    await fetch(node)
    assert [x.id for x in running(node)] == [c.id]
    assert await mirror(node, f"web-{NODE}") is not None


async def test_an_edited_body_replaces_the_pod_and_an_empty_one_removes_it(node, served):
    served.set(pod_doc("web"))
    await fetch(node)
    [first] = running(node)
    served.set(pod_doc("web", command=("sleep", "7200")))
    await fetch(node)
    await node.advance(31)  # the old pod's grace period
    [second] = running(node)
    assert second.id != first.id and second.config.command == ["sleep", "7200"]
    served.set(b"")  # zero-length: upstream sets the http source empty
    await fetch(node)
    await node.advance(31)
    await node.kubelet.housekeeping()
    await node.settle()
    assert running(node) == []
    assert await mirror(node, f"web-{NODE}") is None


async def test_files_and_the_url_together(node, served):
    d = node.kubelet.settings.manifests_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "file.json").write_text(json.dumps(pod_doc("from-file")))
    await node.kubelet.sync_static_pods()
    served.set({"apiVersion": "v1", "kind": "PodList",
                "items": [pod_doc("from-url"), pod_doc("from-file")]})
    await fetch(node)
    assert len(running(node)) == 2
    file_mirror = await mirror(node, f"from-file-{NODE}")
    url_mirror = await mirror(node, f"from-url-{NODE}")
    # a name both sources give is the file's; the URL's copy is skipped
    assert file_mirror["metadata"]["annotations"]["kubernetes.io/config.source"] == "file"
    assert url_mirror["metadata"]["annotations"]["kubernetes.io/config.source"] == "http"
    # removing the file leaves the URL's pods; the URL's copy of the name takes over
    (d / "file.json").unlink()
    await node.kubelet.sync_static_pods()
    await node.advance(31)
    await node.settle()
    taken = await mirror(node, f"from-file-{NODE}")
    assert taken["metadata"]["annotations"]["kubernetes.io/config.source"] == "http"
    assert len(running(node)) == 2


async def test_nothing_is_an_orphan_before_the_url_answered(tmp_path, served):
    n = await make_node(tmp_path, manifest_url="http://127.0.0.1:1/pods")
    try:
        sandbox_id = await n.runtime.run_pod_sandbox({  # perhaps the URL's pod, restarted
            "metadata": {"name": "web-node-a", "namespace": "default", "uid": "u1"},
            "labels": {"io.kubernetes.pod.uid": "u1", "io.kubernetes.pod.name": "web-node-a",
                       "io.kubernetes.pod.namespace": "default"}})
        await n.kubelet.sync_url_pods()  # unreachable
        assert not n.kubelet.static.listed
        assert await n.kubelet.housekeeping() == []
        assert sandbox_id in n.runtime.sandboxes
        served.set(b"")  # answered, with no pods: now the sandbox is a leftover
        n.kubelet.static.url.url = served.url
        await n.kubelet.sync_url_pods()
        assert n.kubelet.static.listed
        assert await n.kubelet.housekeeping() == ["u1"]
    finally:
        await n.kubelet.stop()


def test_the_kubelet_flags():
    args = cli.parser().parse_args([
        "--manifest-url", "http://127.0.0.1:8080/pods", "--manifest-url-header",
        "a:hello,b:again, c : x:y", "--manifest-url-header", "b:beautiful",
        "--http-check-frequency", "5s"])
    settings = cli.settings_from(args)
    assert settings.manifest_url == "http://127.0.0.1:8080/pods"
    assert settings.manifest_url_header == (("a", "hello"), ("b", "again"), ("c", "x:y"),
                                            ("b", "beautiful"))
    assert settings.http_check_frequency == 5.0
    defaults = cli.settings_from(cli.parser().parse_args([]))
    assert (defaults.manifest_url, defaults.http_check_frequency) == ("", 20.0)
    assert defaults.system_log_dir.as_posix() == "/var/log"
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["--manifest-url-header", "no-colon"])
