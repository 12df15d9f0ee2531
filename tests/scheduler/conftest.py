"""Scheduler test fixtures: unit tests use ``builders.Harness`` (no I/O); the
integration tests (``test_integration.py``) start one real API server per session."""
from __future__ import annotations

import os
import uuid

import pytest
import pytest_asyncio
from support.cluster import KUBECTL, Cluster, free_port  # noqa: F401






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
