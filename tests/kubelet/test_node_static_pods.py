"""A real node of its own: static pods from manifest files and from a manifest URL and
their mirror pods, through an API server outage; ConfigMap volumes updated in place
while the pod runs; the node's /var/log through nodes/proxy.

The module starts its own API server (the outage test stops it) and a kubelet that
reads its manifests every second, fetches its manifest URL (a server of the test on
127.0.0.1) every second and resyncs pods every 2 s (`--file-check-frequency`,
`--manifest-url`, `--http-check-frequency`, `--sync-frequency`), on its own pod
subnet. The kubelet uses a node identity (`system:node:<name>`, as `pyk8s server`
gives its kubelet), so the Node authorizer and NodeRestriction admission see its
mirror pods as upstream's would.
"""
from __future__ import annotations

import asyncio
import http.server
import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from pyk8s import pki
from pyk8s.cri.remote import RemoteRuntime
from pyk8s.cri.runtime import ContainerState
from pyk8s.kubelet import node as nodemod
from pyk8s.pki.components import node_credentials

from .conftest import IP_FORWARD, KUBECTL, Cluster, KubeletProcess, _wait, free_port
from .helpers import missing_requirements

pytestmark = pytest.mark.root
SUBNET = "10.42.247.0/24"


EMPTY_LIST = json.dumps({"apiVersion": "v1", "kind": "PodList", "items": []}).encode()


class ManifestServer:
    """The kubelet's manifest URL: an HTTP server on 127.0.0.1 answering what the test
    sets, counting the kubelet's fetches."""

    def __init__(self):
        self.status, self.body, self.hits = 200, EMPTY_LIST, 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server hook
                owner.hits += 1
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args):
                """Quiet: no access log on the test's stderr."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/pods"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def manifest_url():
    server = ManifestServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def own(tmp_path_factory, manifest_url):
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    base = tmp_path_factory.mktemp("static")
    cluster = Cluster(base / "api", free_port())
    cluster.data_dir.mkdir()
    cluster.start()
    forward_before = IP_FORWARD.read_text().strip()
    kubelet = KubeletProcess(base, cluster, subnet=SUBNET,
                             extra_args=("--file-check-frequency", "1s",
                                         "--manifest-url", manifest_url.url,
                                         "--http-check-frequency", "1s",
                                         "--sync-frequency", "2s"))
    kubelet.extra_args += ["--kubeconfig", node_kubeconfig(cluster, kubelet.name)]
    try:
        kubelet.start()
        yield cluster, kubelet
    finally:
        kubelet.stop()
        cluster.stop()
        asyncio.run(nodemod.reset_node(kubelet.data_dir, bridge=kubelet.bridge,
                                       cgroup_root=kubelet.cgroup_root))
        if IP_FORWARD.read_text().strip() != forward_before:
            IP_FORWARD.write_text(forward_before)


def node_kubeconfig(cluster, node: str) -> str:
    """A kubeconfig for `system:node:<node>`, signed by the test API server's CA."""
    tls = str(cluster.data_dir / "server" / "tls")
    ca = pki._load_or_make(tls, "server-ca", pki.make_ca)
    pair = node_credentials(ca, node)
    path = str(cluster.data_dir / f"{node}.kubeconfig")
    pki.write_kubeconfig(path, pki.kubeconfig(f"https://127.0.0.1:{cluster.port}", ca, pair,
                                              user=f"system:node:{node}"))
    return path


def manifests(kubelet) -> Path:
    d = kubelet.data_dir / "agent" / "manifests"
    d.mkdir(parents=True, exist_ok=True)
    return d


def pod_json(cluster, name: str, ns: str = "default") -> dict | None:
    r = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def static_manifest(name: str, command: str, host_dir: Path) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "busybox",
                                 "command": ["sh", "-c", command],
                                 "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
                 "volumes": [{"name": "out", "hostPath": {"path": str(host_dir),
                                                          "type": "DirectoryOrCreate"}}],
                 "terminationGracePeriodSeconds": 1}})


def wait_mirror(cluster, name: str, *, phase: str = "Running", not_uid: str = "",
                timeout: float = 60) -> dict:
    def check():
        p = pod_json(cluster, name)
        if p and p["metadata"]["uid"] != not_uid and p["status"].get("phase") == phase \
                and not p["metadata"].get("deletionTimestamp"):
            return p
        return None
    return _wait(check, timeout=timeout, what=f"mirror pod {name} {phase}", interval=0.2)


def test_a_static_pod_runs_is_mirrored_and_comes_back_when_its_mirror_is_deleted(own,
                                                                                 tmp_path):
    cluster, kubelet = own
    out = tmp_path / "out"
    (manifests(kubelet) / "ticker.json").write_text(
        static_manifest("ticker", "while true; do date +%s%N > /out/tick; echo tick; "
                        "sleep 0.2; done", out))
    name = f"ticker-{kubelet.name}"
    mirror = wait_mirror(cluster, name)
    notes = mirror["metadata"]["annotations"]
    assert notes["kubernetes.io/config.source"] == "file"
    assert notes["kubernetes.io/config.mirror"] == notes["kubernetes.io/config.hash"]
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
    assert mirror["spec"]["nodeName"] == kubelet.name
    started = mirror["status"]["containerStatuses"][0]["containerID"]
    assert _wait(lambda: (out / "tick").exists(), timeout=20, what="the static pod's output")
    # the mirror pod's logs are the static pod's
    assert _wait(lambda: cluster.kubectl("logs", name, "--tail=1", check=False).stdout.strip()
                 == "tick", timeout=20, what="kubectl logs of the mirror pod")

    cluster.kubectl("delete", "pod", name, "--wait=false")
    again = wait_mirror(cluster, name, not_uid=mirror["metadata"]["uid"])
    # the static pod itself kept running: same container, no restart
    [cs] = again["status"]["containerStatuses"]
    assert cs["containerID"] == started and cs["restartCount"] == 0

    # editing the manifest runs the new spec; removing it stops the pod
    (manifests(kubelet) / "ticker.json").write_text(
        static_manifest("ticker", "while true; do echo v2 > /out/version; sleep 0.2; done",
                        out))
    _wait(lambda: (out / "version").exists(), timeout=60, what="the edited static pod")
    edited = wait_mirror(cluster, name, not_uid=again["metadata"]["uid"])
    assert edited["status"]["containerStatuses"][0]["containerID"] != started
    assert "v2" in edited["spec"]["containers"][0]["command"][2]

    (manifests(kubelet) / "ticker.json").unlink()
    _wait(lambda: pod_json(cluster, name) is None, timeout=60,
          what="the mirror pod to be deleted")
    _wait(lambda: not running_containers(kubelet, name), timeout=30,
          what="the static pod's containers to stop")


def running_containers(kubelet, pod_name: str) -> list:
    async def go():
        runtime = RemoteRuntime(kubelet.socket, request_timeout=10)
        try:
            return await runtime.list_containers(state=ContainerState.RUNNING,
                                                 labels={"io.kubernetes.pod.name": pod_name})
        finally:
            await runtime.close()
    return asyncio.run(go())


def test_a_pod_from_the_manifest_url_is_mirrored_and_kept_while_the_url_fails(
        own, manifest_url, tmp_path):
    cluster, kubelet = own
    out = tmp_path / "out"
    pod = json.loads(static_manifest("fetched", "while true; do date +%s%N > /out/tick; "
                                     "sleep 0.2; done", out))
    manifest_url.body = json.dumps({"apiVersion": "v1", "kind": "PodList",
                                    "items": [pod]}).encode()
    name = f"fetched-{kubelet.name}"
    mirror = wait_mirror(cluster, name)
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.source"] == "http"
    listed = cluster.kubectl("get", "pods", "--no-headers", "-o",
                             "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName").stdout
    assert [name, kubelet.name] in [line.split() for line in listed.splitlines()]
    started = mirror["status"]["containerStatuses"][0]["containerID"]
    # the URL fails for a few fetches: the pod keeps running, its mirror stays
    manifest_url.status, manifest_url.body, hits = 500, b"down", manifest_url.hits
    _wait(lambda: manifest_url.hits >= hits + 3, timeout=30, what="three failed fetches")
    still = wait_mirror(cluster, name)
    assert still["metadata"]["uid"] == mirror["metadata"]["uid"]
    assert still["status"]["containerStatuses"][0]["containerID"] == started
    # an answer without the pod stops it
    manifest_url.status, manifest_url.body = 200, EMPTY_LIST
    _wait(lambda: pod_json(cluster, name) is None, timeout=60,
          what="the mirror pod to be deleted")
    _wait(lambda: not running_containers(kubelet, name), timeout=30,
          what="the URL's pod to stop")


def test_the_nodes_var_log_through_nodes_proxy(own):
    cluster, kubelet = own
    base = f"/api/v1/nodes/{kubelet.name}/proxy/logs/"
    listing = cluster.kubectl("get", "--raw", base).stdout
    assert listing.startswith("<!doctype html>\n") and listing.endswith("</pre>\n")
    plain = sorted((e for e in os.scandir("/var/log")
                    if e.name.replace(".", "").replace("-", "").replace("_", "").isalnum()),
                   key=lambda e: e.name)
    for entry in plain:
        shown = entry.name + ("/" if entry.is_dir(follow_symlinks=False) else "")
        assert f'<a href="{shown}">{shown}</a>' in listing
    # a text file nobody wrote to lately reads as it is on disk
    quiet = [e for e in plain if e.is_file(follow_symlinks=False)
             and e.stat().st_size < 65536 and time.time() - e.stat().st_mtime > 600]
    text = next((e for e in quiet if _is_text(e.path)), None)
    if text is not None:
        assert cluster.kubectl("get", "--raw", base + text.name).stdout == \
            Path(text.path).read_text()
    r = cluster.kubectl("get", "--raw", base + "no-such-file-" + uuid.uuid4().hex, check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def _is_text(path: str) -> bool:
    try:
        return "\x00" not in Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return False


def test_static_pods_start_and_run_while_the_api_server_is_down(own, tmp_path):
    cluster, kubelet = own
    out, boot = tmp_path / "out", tmp_path / "boot"
    cluster.stop()
    try:
        # a running kubelet picks up a new manifest
        (manifests(kubelet) / "offline.yaml").write_text(
            static_manifest("offline", "while true; do date +%s%N > /out/tick; sleep 0.2; "
                            "done", out))
        _wait(lambda: (out / "tick").exists(), timeout=60,
              what="the static pod to start without the API server")
        assert running_containers(kubelet, f"offline-{kubelet.name}")
        first = (out / "tick").read_text()
        _wait(lambda: (out / "tick").read_text() != first, timeout=10,
              what="the static pod to keep running")
        # a kubelet that starts while the API server is down runs its static pods too
        kubelet.stop()
        (manifests(kubelet) / "boot.yaml").write_text(
            static_manifest("boot", "while true; do date +%s%N > /out/tick; sleep 0.2; "
                            "done", boot))
        kubelet.start(wait_ready=False)
        _wait(lambda: (boot / "tick").exists(), timeout=60,
              what="a static pod of a kubelet started without the API server")
        assert kubelet.proc.poll() is None
    finally:
        cluster.start()
    _wait(lambda: kubelet.cluster.kubectl(
        "get", "node", kubelet.name, "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout == "True",
        timeout=60, what="the node to be Ready again")
    boot_mirror = wait_mirror(cluster, f"boot-{kubelet.name}", timeout=90)
    assert boot_mirror["status"]["containerStatuses"][0]["ready"] is True
    (manifests(kubelet) / "boot.yaml").unlink()
    mirror = wait_mirror(cluster, f"offline-{kubelet.name}", timeout=90)
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.source"] == "file"
    assert mirror["status"]["containerStatuses"][0]["ready"] is True
    (manifests(kubelet) / "offline.yaml").unlink()
    _wait(lambda: pod_json(cluster, f"offline-{kubelet.name}") is None, timeout=60,
          what="the mirror pod to be deleted")


def test_a_config_map_volume_follows_its_config_map_but_a_sub_path_does_not(own):
    cluster, kubelet = own
    ns = "cfg-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "serviceaccount", "default", "-n", ns, check=False)
    cluster.kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=key=one",
                    "--from-literal=extra=x")
    script = ('while true; do echo "v=$(cat /etc/cfg/key) s=$(cat /etc/sub/key) '
              'keys=$(ls /etc/cfg | tr \'\\n\' ,)"; sleep 0.5; done')
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader", "namespace": ns},
            "spec": {"nodeName": kubelet.name, "automountServiceAccountToken": False,
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "sh", "image": "busybox",
                                     "command": ["sh", "-c", script],
                                     "volumeMounts": [
                                         {"name": "cfg", "mountPath": "/etc/cfg"},
                                         {"name": "cfg", "mountPath": "/etc/sub/key",
                                          "subPath": "key"}]}],
                     "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))

    def last_line():
        r = cluster.kubectl("logs", "reader", "-n", ns, "--tail=1", check=False)
        return r.stdout.strip() if r.returncode == 0 else ""

    assert _wait(lambda: last_line() == "v=one s=one keys=extra,key,", timeout=60,
                 what="the pod to read its config")
    patch = json.dumps({"data": {"key": "two", "extra": None}})
    cluster.kubectl("patch", "configmap", "settings", "-n", ns, "--type=merge", "-p", patch)
    # the mounted volume follows (a removed key disappears); the subPath mount keeps
    # the content it was started with, as upstream
    assert _wait(lambda: last_line() == "v=two s=one keys=key,", timeout=30,
                 what="the new config in the running pod")
    volume = (kubelet.data_dir / "agent" / "kubelet" / "pods" /
              pod_json(cluster, "reader", ns)["metadata"]["uid"] / "volumes" /
              "kubernetes.io~configmap" / "cfg")
    assert os.readlink(volume / "key") == "..data/key"
    assert (volume / "..data").is_symlink() and not (volume / "extra").exists()
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
