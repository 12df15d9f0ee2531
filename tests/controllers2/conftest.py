"""Fixtures for the core-controller tests: a fake clock and in-memory API for the unit
tests, and one real API server per session (as tests/apiserver starts it) driven by
real kubectl and the official client for the integration tests."""
from __future__ import annotations

import os
import uuid

import pytest
import pytest_asyncio

from pyk8s.client import Client, FakeClock, load_kubeconfig
from pyk8s.client.fake import FakeAPI, FakeTransport
from support.cluster import KUBECTL, Cluster, free_port  # noqa: F401



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
