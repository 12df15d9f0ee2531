"""Scheduler test fixtures: unit tests use ``builders.Harness`` (no I/O); the
integration tests (``test_integration.py``) start one real API server per session."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
import pytest_asyncio

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One pyk8s API server process on a temp dir (as tests/apiserver does)."""

    def __init__(self, data_dir: str, port: int):
        self.data_dir, self.port = data_dir, port
        self.kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir", self.data_dir,
             "--https-port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API server exited; see {self.data_dir}/server.log")
            if os.path.exists(self.kubeconfig):
                r = self.kubectl("get", "--raw", "/readyz", check=False)
                if r.returncode == 0 and r.stdout.strip() == "ok":
                    return
            time.sleep(0.1)
        raise RuntimeError("API server did not become ready in 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.data_dir)
        r = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    async def akubectl(self, *args: str, input: str | None = None, check: bool = True):
        """``kubectl`` off the event loop (the scheduler under test runs on it)."""
        return await asyncio.to_thread(self.kubectl, *args, input=input, check=check)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("pyk8s-scheduler")), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture
def ns(cluster) -> str:
    name = "s-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    # The ServiceAccount controller's part (not running here): pod admission needs it.
    cluster.kubectl("create", "serviceaccount", "default", "-n", name, check=False)
    return name


@pytest_asyncio.fixture
async def api(cluster):
    from pyk8s.client import Client, load_kubeconfig
    client = Client(load_kubeconfig(cluster.kubeconfig))
    yield client
    await client.close()
