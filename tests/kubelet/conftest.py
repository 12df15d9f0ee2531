"""A real node for the kubelet's end-to-end tests: an API server and a kubelet process.

One API server (a subprocess, as tests/apiserver runs it) and one kubelet
(`python -m pyk8s.kubelet`, so a test can stop and restart it) per session. The
kubelet runs its own containerd under a temp dir, with a test-only bridge, the
pod subnet 10.42.248.0/24 and a test-only cgroup root; blackhole routes for the
cluster and service CIDRs go in first (DESIGN.md, network safety). Teardown stops
the kubelet, removes every pod, stops containerd by PID, unmounts what is left and
deletes the bridge and the cgroups (`pyk8s.kubelet.node.reset_node`).

Needs root, containerd, runc, the CNI plugins and kubectl; tests marked `root` are
skipped with the reason otherwise. Each test works in its own namespace.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pyk8s.cri.containerd import mounts_under
from pyk8s.kubelet import node as nodemod

from support.cluster import stop_process

from .helpers import missing_requirements

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
SUBNET = "10.42.248.0/24"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Cluster:
    """An API server subprocess and kubectl pointed at it."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port = data_dir, port
        self.kubeconfig = str(data_dir / "kubeconfig.yaml")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir",
             str(self.data_dir), "--https-port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"API server exited; see {self.data_dir}/server.log")
            if not os.path.exists(self.kubeconfig):
                return False
            r = self.kubectl("get", "--raw", "/readyz", check=False)
            return r.returncode == 0 and r.stdout.strip() == "ok"

        _wait(ready, timeout=60, what="the API server")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc, 10)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=str(self.data_dir))
        r = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True,
                           env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)


class KubeletProcess:
    """`python -m pyk8s.kubelet` for one test node."""

    def __init__(self, base: Path, cluster: Cluster, *, subnet: str = SUBNET,
                 extra_args: tuple[str, ...] = ()):
        self.subnet, self.extra_args = subnet, list(extra_args)
        token = secrets.token_hex(3)
        self.name = f"kt-{token}"
        self.data_dir = base / "node"
        self.bridge = f"pyk8sk{token}"
        self.cgroup_root = f"/pyk8s-kt-{token}"
        self.port = free_port()
        self.cluster = cluster
        self.log = base / "kubelet.log"
        self.proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return str(nodemod.containerd_config(self.data_dir).address)

    def start(self, *, wait_ready: bool = True) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.kubelet", "--data-dir", str(self.data_dir),
             "--kubeconfig", self.cluster.kubeconfig, "--hostname-override", self.name,
             "--node-ip", "127.0.0.1", "--pod-cidr", self.subnet, "--bridge", self.bridge,
             "--cgroup-root", self.cgroup_root, "--port", str(self.port),
             *self.extra_args],
            stdout=out, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"kubelet exited; see {self.log}")
            r = self.cluster.kubectl("get", "node", self.name, "-o",
                                     "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                                     check=False)
            return r.returncode == 0 and r.stdout == "True"

        if wait_ready:
            _wait(ready, timeout=60, what=f"node {self.name} to be Ready")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(tmp_path_factory.mktemp("api"), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def kubelet(cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("kubelet")
    forward_before = IP_FORWARD.read_text().strip()
    k = KubeletProcess(base, cluster)
    try:
        k.start()
        yield k
    finally:
        k.stop()
        notes = asyncio.run(nodemod.reset_node(k.data_dir, bridge=k.bridge,
                                               cgroup_root=k.cgroup_root))
        if IP_FORWARD.read_text().strip() != forward_before:
            IP_FORWARD.write_text(forward_before)
        assert not mounts_under(base), f"mounts left under {base}"
        assert not [n for n in notes if "shim" in n], notes


@pytest.fixture
def ns(cluster, kubelet):
    name = "k-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    # the ServiceAccount admission wants the namespace's default account
    if cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode:
        cluster.kubectl("create", "serviceaccount", "default", "-n", name, check=False)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
