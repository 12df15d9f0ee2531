"""DELETE with DeleteOptions.preconditions, through the official Python client.

Upstream (k8s.io/apiserver registry Store.Delete) reads the object and checks the
preconditions in rest.BeforeDelete before deleting, answering 409 Conflict:
``Operation cannot be fulfilled on <Kind> "<name>": the ResourceVersion in the
precondition (X) does not match the ResourceVersion in record (Y). The object might have
been modified`` (the UID check: ``... The object might have been deleted and then
recreated``). Only a race after that check reaches the storage layer's own message
(``Precondition failed: ResourceVersion in precondition: X, ResourceVersion in object
meta: Y``)."""
import json

import kubernetes
import pytest
from kubernetes.client.rest import ApiException


@pytest.fixture
def core(client):
    return kubernetes.client.CoreV1Api(client)


def make(core, ns, name):
    return core.create_namespaced_config_map(
        ns, {"metadata": {"name": name}, "data": {"k": "v"}})


def delete_expecting_conflict(core, ns, name, **preconditions):
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map(
            name, ns, body=kubernetes.client.V1DeleteOptions(
                preconditions=kubernetes.client.V1Preconditions(**preconditions)))
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"], status["code"]) == (409, "Conflict", 409)
    return status


def test_stale_resource_version_precondition_is_a_conflict(cluster, ns, core):
    cm = make(core, ns, "pre-rv")
    rv = cm.metadata.resource_version
    cm.data = {"k": "changed"}
    now = core.replace_namespaced_config_map("pre-rv", ns, cm).metadata.resource_version
    delete_expecting_conflict(core, ns, "pre-rv", resource_version=rv)
    # The object is still there, unchanged, for kubectl as well.
    assert core.read_namespaced_config_map("pre-rv", ns).metadata.resource_version == now
    out = cluster.kubectl("get", "configmap", "pre-rv", "-n", ns, "-o",
                          "jsonpath={.data.k}").stdout
    assert out == "changed"
    # With the current resourceVersion the delete goes through.
    core.delete_namespaced_config_map(
        "pre-rv", ns, body=kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(resource_version=now)))
    r = cluster.kubectl("get", "configmap", "pre-rv", "-n", ns, check=False)
    assert r.returncode == 1 and 'configmaps "pre-rv" not found' in r.stderr


def test_resource_version_precondition_message_matches_upstream(cluster, ns, core):
    cm = make(core, ns, "pre-msg")
    rv = cm.metadata.resource_version
    status = delete_expecting_conflict(core, ns, "pre-msg", resource_version="1")
    assert status["message"] == (
        f'Operation cannot be fulfilled on ConfigMap "pre-msg": the ResourceVersion in '
        f"the precondition (1) does not match the ResourceVersion in record ({rv}). The "
        f"object might have been modified")


def test_uid_precondition_message_matches_upstream(cluster, ns, core):
    cm = make(core, ns, "pre-uid")
    status = delete_expecting_conflict(core, ns, "pre-uid", uid="not-the-uid")
    assert status["message"] == (
        f'Operation cannot be fulfilled on ConfigMap "pre-uid": the UID in the '
        f"precondition (not-the-uid) does not match the UID in record ({cm.metadata.uid}). "
        f"The object might have been deleted and then recreated")
    assert core.read_namespaced_config_map("pre-uid", ns).metadata.uid == cm.metadata.uid
