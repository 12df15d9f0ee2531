"""A real pyk8s API server for the API tests, driven by real kubectl and the official
Python client. One server per session; each test works in its own namespace."""
import os
import uuid

import pytest

from support.cluster import KUBECTL, Cluster, free_port  # noqa: F401


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("pyk8s")), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture
def ns(cluster):
    name = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    # Pods need their namespace's default ServiceAccount (the ServiceAccount admission
    # plugin); upstream's service-account controller makes it, this applies it until
    # the controller manager runs beside the test server.
    cluster.kubectl("apply", "-n", name, "-f", "-", input='{"apiVersion": "v1", "kind": '
                    '"ServiceAccount", "metadata": {"name": "default"}}')
    yield name


@pytest.fixture(scope="session")
def client(cluster):
    import kubernetes
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=cluster.kubeconfig,
                                       client_configuration=cfg)
    api = kubernetes.client.ApiClient(cfg)
    yield api
    api.close()
