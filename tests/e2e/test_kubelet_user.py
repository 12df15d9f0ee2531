"""The kubelet on containerd as a user meets it: `pyk8s server`, kubectl, `pyk8s images`.

Real containerd, CNI and cgroups: root only. Logs options, image pull policy and
errors with their events, pod cleanup on the machine, the node's Lease and
conditions, importing an image archive, one process per data dir, the blackhole
route of `--cluster-cidr`, DNS on the tenth address of `--service-cidr`, and a whole server restart adopting running pods. Traffic goes only to 127.0.0.1 and this
test's pods; what is created is deleted, and the restart test resets its node.

The restart test runs its own `pyk8s server` (the session one cannot be restarted)
and so must run before the session server starts: both would claim the machine's
node (bridge, kubelet port). It is first in this module and skips, saying so, when
the session server is already up.
"""
import datetime
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pyk8s.kubelet import images
from support.cluster import KUBECTL, free_port
from support.waiting import wait_for

pytestmark = pytest.mark.root

PYK8S = [sys.executable, "-m", "pyk8s.cli.main"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def session_data_dirs(tmp_path_factory) -> list[Path]:
    return sorted(p for p in tmp_path_factory.getbasetemp().glob("quickstart*")
                  if not p.is_symlink() and (p / "server").is_dir())


@pytest.fixture
def data_dir(server, tmp_path_factory) -> Path:
    """The session server's data dir (conftest makes it as `quickstart*`)."""
    dirs = session_data_dirs(tmp_path_factory)
    assert len(dirs) == 1, dirs
    return dirs[0]


def apply(kubectl, *objects: dict) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                   "items": list(objects)}))


def pod(name: str, *containers: dict, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": list(containers), "terminationGracePeriodSeconds": 1,
                     **spec}}


def get(kubectl, *args) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def running(kubectl, name: str, deadline: float = 60) -> dict:
    def ready():
        p = get(kubectl, "pod", name)
        statuses = p["status"].get("containerStatuses") or []
        return p["status"].get("phase") == "Running" and statuses and \
            all("running" in s["state"] for s in statuses) and p
    return wait_for(ready, f"pod {name} to run", deadline, 0.3)


def events(kubectl, name: str) -> list[tuple[str, str]]:
    out = kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                  "-o", "json").stdout
    return [(e["reason"], e["message"]) for e in json.loads(out)["items"]]


def delete(kubectl, *names: str) -> None:
    kubectl("delete", "pod", *names, "--ignore-not-found", "--wait=false", check=False)


# -- whole server restart (its own server; first, before the session server) ----------

class OwnServer:
    def __init__(self, data_dir: Path, *extra: str):
        self.data_dir = data_dir
        self.extra = extra
        self.port = free_port()
        self.proc = None
        self.env = dict(os.environ, KUBECONFIG=str(data_dir / "kubeconfig.yaml"),
                        HOME=str(data_dir))

    def kubectl(self, *args, check=True, timeout=60, input=None):
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=self.env,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")

    def start(self) -> None:
        before = self.log().count("pyk8s: cluster ready") if (
            self.data_dir / "server.log").exists() else 0
        out = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(PYK8S + ["server", "--data-dir", str(self.data_dir),
                                              "--https-port", str(self.port),
                                              *self.extra],
                                     stdout=out, stderr=subprocess.STDOUT)

        def ready():
            assert self.proc.poll() is None, "pyk8s server exited:\n" + self.log()[-3000:]
            return self.log().count("pyk8s: cluster ready") > before
        wait_for(ready, "the server to report ready", 120, 0.3)
        wait_for(lambda: " Ready " in self.kubectl("get", "nodes", check=False).stdout,
                 "the node to be Ready", 60, 0.3)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("pyk8s server did not stop within 60 s of SIGTERM")


def blackhole(cidr: str) -> bool:
    out = subprocess.run(["ip", "-4", "route", "show", "exact", cidr], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().startswith("blackhole")


def test_a_restarted_server_adopts_its_pods_one_server_per_data_dir_cidr_routes(
        tmp_path, tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the embedded node needs root")
    if session_data_dirs(tmp_path_factory):
        pytest.skip("the session server already runs the machine's node; run this module "
                    "first (its own server would claim the same bridge and kubelet port)")
    # ranges other than the defaults (inside the default blackholes): the node
    # blackholes the cluster range, and DNS takes the Service range's tenth address
    cluster_cidr, service_cidr = "10.40.0.0/14", "10.43.128.0/17"
    had_route = blackhole(cluster_cidr)
    s = OwnServer(tmp_path, "--cluster-cidr", cluster_cidr, "--service-cidr", service_cidr)
    try:
        s.start()
        assert blackhole(cluster_cidr), "no blackhole route for --cluster-cidr"

        def ip(ns, svc):
            return s.kubectl("get", "svc", "-n", ns, svc, "-o",
                             "jsonpath={.spec.clusterIP}").stdout
        assert (ip("default", "kubernetes"), ip("kube-system", "kube-dns")) == \
            ("10.43.128.1", "10.43.128.10")
        assert "cluster DNS started on 10.43.128.10" in s.log()
        # a second server, and an agent, on the same data dir refuse at once
        t0 = time.monotonic()
        second = subprocess.run(PYK8S + ["server", "--data-dir", str(tmp_path),
                                         "--https-port", str(free_port())],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"another pyk8s server is using {tmp_path}" in second.stderr
        assert time.monotonic() - t0 < 15
        agent = subprocess.run(PYK8S + ["agent", "--server", "https://127.0.0.1:1",
                                        "--token", "x.y", "--ca-file", "/nonexistent",
                                        "--data-dir", str(tmp_path)],
                               capture_output=True, text=True, timeout=60)
        assert agent.returncode == 1, agent.stdout + agent.stderr
        assert f"another pyk8s server is using {tmp_path}" in agent.stderr
        assert s.proc.poll() is None
        assert " Ready " in s.kubectl("get", "nodes").stdout

        name = unique("adopt")
        apply(s.kubectl, pod(name, {"name": "c", "image": "busybox",
                                    "command": ["sh", "-c", "echo up; sleep 3600"]}))
        before = running(s.kubectl, name)["status"]["containerStatuses"][0]
        # the pod's nameserver is that address, and the node's DNS answers there
        resolv = s.kubectl("exec", name, "--", "cat", "/etc/resolv.conf").stdout
        assert "nameserver 10.43.128.10\n" in resolv, resolv
        looked_up = wait_for(
            lambda: (lambda r: r.returncode == 0 and r.stdout)(s.kubectl(
                "exec", name, "--", "nslookup", "kubernetes.default.svc.cluster.local",
                check=False)), "the cluster DNS to answer on 10.43.128.10", 60, 0.5)
        assert re.search(r"^Address:\s+10\.43\.128\.1$", looked_up, re.M), looked_up
        assert s.stop() == 0
        s.start()

        def adopted():
            # the API still holds the old kubelet's status: the new kubelet's first
            # sync of the pod, which it logs, is what says it took the pod over
            if "adopted 1 running container(s)" not in s.log():
                return None
            st = get(s.kubectl, "pod", name)["status"]["containerStatuses"][0]
            return "running" in st["state"] and st
        after = wait_for(adopted, "the restarted server to adopt the running pod", 60, 0.3)
        assert after["containerID"] == before["containerID"]
        assert after["restartCount"] == 0
        assert s.kubectl("logs", name).stdout == "up\n"
        s.kubectl("delete", "pod", name, "--timeout=60s", timeout=70)
    finally:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()
        subprocess.run(PYK8S + ["reset", "--data-dir", str(tmp_path)],
                       capture_output=True, timeout=120)
        if not had_route and blackhole(cluster_cidr):
            subprocess.run(["ip", "route", "del", "blackhole", cluster_cidr], check=True)


# -- logs ---------------------------------------------------------------------------

def test_logs_container_timestamps_limit_bytes_and_since(server):
    kubectl = server
    name = unique("talk")
    apply(kubectl, pod(name,
                       {"name": "a", "image": "busybox", "command": [
                           "sh", "-c", "echo first; sleep 6; echo second; echo 0123456789; "
                                       "sleep 3600"]},
                       {"name": "b", "image": "docker.io/library/busybox:latest",
                        "command": ["sh", "-c", "echo bee; sleep 3600"]}))
    try:
        running(kubectl, name)
        wait_for(lambda: "0123456789" in kubectl("logs", name, "-c", "a").stdout,
                 "container a's second lines", 30, 0.3)
        assert kubectl("logs", name, "-c", "a").stdout == "first\nsecond\n0123456789\n"
        assert kubectl("logs", name, "-c", "b").stdout == "bee\n"
        # no -c on a two-container pod: the default container, as kubectl says
        r = kubectl("logs", name)
        assert r.stdout.startswith("first\n") and 'Defaulted container "a"' in r.stderr
        bad = kubectl("logs", name, "-c", "nope", check=False)
        assert bad.returncode != 0 and f"container nope is not valid for pod {name}" in \
            bad.stderr

        stamped = kubectl("logs", name, "-c", "a", "--timestamps").stdout.splitlines()
        assert [TIMESTAMP.sub("", line) for line in stamped] == [
            "first", "second", "0123456789"]
        assert all(TIMESTAMP.match(line) for line in stamped)

        assert kubectl("logs", name, "-c", "a", "--limit-bytes=8").stdout == "first\nse"

        def when(line: str) -> float:
            stamp = line.split(" ", 1)[0]
            return datetime.datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        t_first, t_second = when(stamped[0]), when(stamped[1])
        assert t_second - t_first >= 5.5
        # a window that holds "second" but not "first": it starts 3 to 4 s before
        # "second" as computed here, so kubectl's round trip to the kubelet (which
        # counts the seconds back from its own now) may take up to 3 s
        now = time.time()
        since = int(now - t_second) + 4
        assert t_first < now - since < t_second - 3
        recent = kubectl("logs", name, "-c", "a", f"--since={since}s").stdout
        assert recent == "second\n0123456789\n", (since, stamped)
        assert kubectl("logs", name, "-c", "a", "--since=1h").stdout.count("\n") == 3
    finally:
        delete(kubectl, name)


# -- images -------------------------------------------------------------------------

def test_pull_policy_always_uses_the_present_image_and_says_so(server):
    kubectl = server
    name = unique("web")
    apply(kubectl, pod(name, {"name": "nginx", "image": "nginx:latest",
                              "imagePullPolicy": "Always"}))
    try:
        running(kubectl, name)

        def pulled():
            return [m for r, m in events(kubectl, name) if r == "Pulled"]
        messages = wait_for(pulled, "a Pulled event", 30, 0.3)
        assert any('Container image "nginx:latest" already present on machine' in m
                   for m in messages), messages
        assert "Running" in kubectl("get", "pod", name).stdout
    finally:
        delete(kubectl, name)


def test_a_missing_image_is_err_image_pull_then_image_pull_back_off(server, data_dir):
    kubectl = server
    name = unique("missing")
    # a registry on a closed loopback port: the pull fails without leaving the machine
    image = "127.0.0.1:1/pyk8s/nope:1"
    env = dict(os.environ, KUBECONFIG=str(data_dir / "kubeconfig.yaml"), HOME=str(data_dir))
    watch = subprocess.Popen([KUBECTL, "get", "pods", "--field-selector",
                              f"metadata.name={name}", "-w", "--no-headers",
                              "--request-timeout=90s"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env)
    seen: list[str] = []

    def read():
        for line in watch.stdout:
            fields = line.split()
            if len(fields) >= 3 and (not seen or seen[-1] != fields[2]):
                seen.append(fields[2])
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        apply(kubectl, pod(name, {"name": "c", "image": image}))

        def alternated():
            s = list(seen)
            return "ErrImagePull" in s and "ImagePullBackOff" in s[s.index("ErrImagePull"):]
        # what `kubectl get -w` shows: ErrImagePull, then ImagePullBackOff while the
        # back-off runs (the kubelet resyncs a failed pod every 10 s, as upstream)
        try:
            wait_for(alternated, "ErrImagePull then ImagePullBackOff", 60, 0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}; kubectl get -w showed {seen}") from None
        reasons = wait_for(lambda: {r for r, _ in events(kubectl, name)} >= {"Failed",
                                                                              "BackOff"}
                           and events(kubectl, name), "Failed and BackOff events", 30, 0.3)
        assert any(r == "Failed" and f'Failed to pull image "{image}"' in m
                   for r, m in reasons), reasons
        assert any(r == "BackOff" and image in m for r, m in reasons), reasons
    finally:
        watch.kill()
        watch.wait()
        delete(kubectl, name)


def test_images_import_of_a_gzipped_archive_then_a_pod_runs_it(server, data_dir, tmp_path):
    kubectl = server
    tag = uuid.uuid4().hex[:8]
    ref = f"example.invalid/pyk8s/imported:{tag}"
    layer = images.Layer()
    images._busybox_into(layer)
    layer.file("hello.txt", f"imported {tag}\n")
    archive, _ = images.oci_archive(
        repository="example.invalid/pyk8s/imported", tags=[tag], layer=layer.tar(),
        config={"Env": [images.PATH_ENV], "Cmd": ["sh", "-c", "cat /hello.txt; sleep 3600"]})
    path = tmp_path / "imported.tar.gz"
    path.write_bytes(gzip.compress(archive))
    r = subprocess.run(PYK8S + ["images", "import", "--data-dir", str(data_dir), str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pyk8s: imported {path}" in r.stdout
    listed = subprocess.run(PYK8S + ["images", "list", "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=60).stdout
    assert ref in listed.split()
    name = unique("imported")
    apply(kubectl, pod(name, {"name": "c", "image": ref, "imagePullPolicy": "Never"}))
    try:
        running(kubectl, name)
        wait_for(lambda: kubectl("logs", name).stdout == f"imported {tag}\n",
                 "the imported image's output", 30, 0.3)
    finally:
        kubectl("delete", "pod", name, "--timeout=60s", check=False, timeout=70)
        ctr = ["ctr", "-a", str(data_dir / "agent" / "containerd" / "containerd.sock"),
               "-n", "k8s.io", "images", "rm", ref]
        subprocess.run(ctr, capture_output=True, timeout=60)


# -- cleanup, node ------------------------------------------------------------------

def pod_cgroups(uid: str) -> list[str]:
    root = Path("/sys/fs/cgroup")
    found = []
    for pattern in (f"*/kubepods/pod{uid}", f"*/kubepods/*/pod{uid}", f"kubepods/pod{uid}",
                    f"kubepods/*/pod{uid}"):
        found += [str(p) for p in root.glob(pattern)]
    return found


def test_deleting_a_pod_removes_its_log_dir_and_cgroup(server, data_dir):
    kubectl = server
    name = unique("gone")
    apply(kubectl, pod(name, {"name": "c", "image": "busybox",
                              "command": ["sh", "-c", "echo bye; sleep 3600"]}))
    try:
        uid = running(kubectl, name)["metadata"]["uid"]
        log_dir = data_dir / "agent" / "pod-logs" / f"default_{name}_{uid}"
        pod_dir = data_dir / "agent" / "kubelet" / "pods" / uid
        assert (log_dir / "c" / "0.log").is_file()
        assert pod_dir.is_dir()
        assert pod_cgroups(uid), "the pod's cgroup is not where the kubelet puts it"
        kubectl("delete", "pod", name, "--timeout=60s", timeout=70)
        wait_for(lambda: not log_dir.exists() and not pod_cgroups(uid)
                 and not pod_dir.exists(), "the pod's log dir, dir and cgroup to go", 30, 0.3)
    finally:
        delete(kubectl, name)


def test_the_node_lease_renews_and_conditions_read_as_upstream(server):
    kubectl = server
    node = get(kubectl, "nodes")["items"][0]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in node["status"]["conditions"]}
    assert conditions == {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID"),
        "Ready": ("True", "KubeletReady"),
    }
    name = node["metadata"]["name"]
    lease = get(kubectl, "lease", "-n", "kube-node-lease", name)
    assert lease["spec"]["holderIdentity"] == name
    assert lease["spec"]["leaseDurationSeconds"] == 40
    first = lease["spec"]["renewTime"]
    renewed = wait_for(lambda: (t := get(kubectl, "lease", "-n", "kube-node-lease", name)
                                ["spec"]["renewTime"]) != first and t,
                       "the node's Lease to be renewed", 25, 0.5)
    assert datetime.datetime.fromisoformat(renewed) > datetime.datetime.fromisoformat(first)
