"""Fixtures for the core-controller tests: a fake clock and in-memory API for the unit
tests, and one real API server per session (as tests/apiserver starts it) driven by
real kubectl and the official client for the integration tests."""
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

from pyk8s.client import Client, FakeClock, load_kubeconfig
from pyk8s.client.fake import FakeAPI, FakeTransport

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


# --- unit-test fixtures ---------------------------------------------------------------

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock) -> FakeAPI:
    return FakeAPI(clock=clock)


@pytest.fixture
def fake_client(api, clock) -> Client:
    return Client(transport=FakeTransport(api), clock=clock)


# --- a real API server -------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, data_dir: str, port: int):
        self.data_dir = data_dir
        self.port = port
        self.kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
        self.url = f"https://127.0.0.1:{port}"
        self.proc = None

    def start(self, extra=()):
        log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir",
             self.data_dir, "--https-port", str(self.port), *extra],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("API server exited; see " + self.data_dir + "/server.log")
            if os.path.exists(self.kubeconfig):
                r = self.kubectl("get", "--raw", "/readyz", check=False)
                if r.returncode == 0 and r.stdout.strip() == "ok":
                    return
            time.sleep(0.1)
        raise RuntimeError("API server did not become ready in 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.exists(self.kubeconfig):
            os.remove(self.kubeconfig)

    def kubectl(self, *args, input=None, check=True, timeout=60):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.data_dir)
        r = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True,
                           env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    async def akubectl(self, *args, input=None, check=True, timeout=60):
        """``kubectl`` off the event loop (the controllers under test live on it)."""
        return await asyncio.to_thread(self.kubectl, *args, input=input, check=check,
                                       timeout=timeout)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("pyk8s-core")), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture
def ns(cluster):
    name = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    yield name


@pytest.fixture(scope="session")
def pyclient(cluster):
    import kubernetes
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=cluster.kubeconfig,
                                       client_configuration=cfg)
    api = kubernetes.client.ApiClient(cfg)
    yield api
    api.close()


@pytest_asyncio.fixture
async def real_client(cluster):
    client = Client(load_kubeconfig(cluster.kubeconfig))
    yield client
    await client.close()
