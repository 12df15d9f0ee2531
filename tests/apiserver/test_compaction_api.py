"""Periodic compaction seen by API clients: a server started with a short
``--etcd-compaction-interval`` forgets old history, so a ``limit``/``continue`` token
from before a compaction answers 410 Expired with upstream's message and a token for
the (inconsistent) rest of the list, which the server accepts."""
import base64
import json
import os
import time

import pytest

from support.cluster import KUBECTL, Cluster, free_port

DEADLINE = 30.0
INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You "
    "can start a new list without the continue parameter, or use the continue token in "
    "this response to retrieve the remainder of the results. Continuing with the "
    "provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list.")


@pytest.fixture(scope="module")
def compacting_cluster(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("pyk8s-compaction")), free_port())
    c.start(extra=("--etcd-compaction-interval", "1s"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def core(compacting_cluster):
    import kubernetes
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=compacting_cluster.kubeconfig,
                                       client_configuration=cfg)
    api = kubernetes.client.ApiClient(cfg)
    yield kubernetes.client.CoreV1Api(api)
    api.close()


def test_a_continue_token_from_before_a_compaction_is_expired(compacting_cluster, core):
    from kubernetes.client.rest import ApiException
    c = compacting_cluster
    c.kubectl("create", "namespace", "paged")
    for i in range(5):
        c.kubectl("create", "configmap", f"cm-{i}", "-n", "paged")
    first = core.list_namespaced_config_map("paged", limit=2)
    token = first.metadata._continue
    assert token and [cm.metadata.name for cm in first.items] == ["cm-0", "cm-1"]
    # A write after the first page, so the compactor's next ticks pass its revision.
    c.kubectl("create", "configmap", "cm-late", "-n", "paged")

    url = f"/api/v1/namespaces/paged/configmaps?limit=2&continue={token}"
    deadline = time.monotonic() + DEADLINE
    while True:
        r = c.kubectl("get", "--raw", url, check=False)
        if r.returncode != 0:
            break
        assert time.monotonic() < deadline, "the continue token never expired"
        time.sleep(0.2)
    assert r.stderr.strip() == f"Error from server (Expired): {INCONSISTENT_CONTINUE}"

    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("paged", limit=2, _continue=token)
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"], status["code"]) == (410, "Expired", 410)
    assert status["message"] == INCONSISTENT_CONTINUE
    # The Status carries upstream's token for the rest at the latest revision (rv -1).
    rest_token = status["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(rest_token + "=" * (-len(rest_token) % 4)))
    assert decoded["rv"] == -1

    rest = core.list_namespaced_config_map("paged", _continue=rest_token)
    assert [cm.metadata.name for cm in rest.items] == ["cm-2", "cm-3", "cm-4", "cm-late"]
    latest = core.list_namespaced_config_map("paged")
    assert int(rest.metadata.resource_version) >= int(first.metadata.resource_version)
    assert not rest.metadata._continue
    assert {cm.metadata.name for cm in latest.items} >= {"cm-0", "cm-late"}

    # Paging on from the inconsistent token works too.
    page = core.list_namespaced_config_map("paged", limit=1, _continue=rest_token)
    assert [cm.metadata.name for cm in page.items] == ["cm-2"]
    page2 = core.list_namespaced_config_map("paged", limit=5, _continue=page.metadata._continue)
    assert [cm.metadata.name for cm in page2.items] == ["cm-3", "cm-4", "cm-late"]


def test_a_list_at_a_compacted_resource_version_is_expired(compacting_cluster, core):
    from kubernetes.client.rest import ApiException
    c = compacting_cluster
    c.kubectl("create", "namespace", "exact")
    rv = c.kubectl("create", "configmap", "old", "-n", "exact", "-o",
                   "jsonpath={.metadata.resourceVersion}").stdout.strip()
    c.kubectl("create", "configmap", "new", "-n", "exact")
    url = (f"/api/v1/namespaces/exact/configmaps?resourceVersion={rv}"
           "&resourceVersionMatch=Exact")
    deadline = time.monotonic() + DEADLINE
    while c.kubectl("get", "--raw", url, check=False).returncode == 0:
        assert time.monotonic() < deadline, "the resource version was never compacted"
        time.sleep(0.2)
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("exact", resource_version=rv,
                                        resource_version_match="Exact")
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"]) == (410, "Expired")
    assert status["message"] == "The resourceVersion for the provided list is too old."
