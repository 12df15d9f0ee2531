"""Quota usage, TTL-after-finished, pod GC, bootstrap tokens, service-account objects."""
import base64
import datetime

from pyk8s.controllers import bootstraptoken, podgc, resourcequota as rq, serviceaccount as sa
from pyk8s.controllers import ttlafterfinished as ttl

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


def stamp(seconds=0):
    return (T0 + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name="p", *, cpu="100m", mem=None, phase="Running", created=0, init_cpu=None,
        deadline=None, reason=None):
    res = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}} if cpu else {}
    if mem:
        res.setdefault("requests", {})["memory"] = mem
    spec = {"containers": [{"name": "c", "resources": res}]}
    if init_cpu:
        spec["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": init_cpu}}}]
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    status = {"phase": phase}
    if reason:
        status["reason"] = reason
    return {"metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": stamp(created)}, "spec": spec, "status": status}


def quota(hard, scopes=None):
    spec = {"hard": hard}
    if scopes:
        spec["scopes"] = scopes
    return {"metadata": {"name": "q", "namespace": "default"}, "spec": spec}


def test_quota_usage_of_pods():
    pods = [pod("a", cpu="100m", mem="64Mi"), pod("b", cpu="250m"),
            pod("done", phase="Succeeded"), pod("init", cpu="100m", init_cpu="1")]
    status = rq.quota_status(quota({"pods": "10", "requests.cpu": "4", "limits.cpu": "4",
                                    "requests.memory": "1Gi", "count/pods": "20"}),
                             {("", "pods"): pods}, T0)
    assert status["hard"]["requests.memory"] == "1Gi"
    assert status["used"] == {"pods": "3", "requests.cpu": "1350m", "limits.cpu": "450m",
                              "requests.memory": "64Mi", "count/pods": "4"}


def test_quota_scopes_and_other_objects():
    pods = [pod("a", cpu=None), pod("b"), pod("c", deadline=60)]
    assert rq.quota_status(quota({"pods": "5"}, ["BestEffort"]), {("", "pods"): pods},
                           T0)["used"] == {"pods": "1"}
    assert rq.quota_status(quota({"pods": "5"}, ["Terminating"]), {("", "pods"): pods},
                           T0)["used"] == {"pods": "1"}
    svcs = [{"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [
        {"port": 80, "nodePort": 30001}]}}]
    pvcs = [{"metadata": {"name": "c"}, "spec": {"storageClassName": "fast", "resources": {
        "requests": {"storage": "2Gi"}}}}]
    status = rq.quota_status(quota({"services": "5", "services.nodeports": "5",
                                    "requests.storage": "10Gi",
                                    "fast.storageclass.storage.k8s.io/requests.storage": "5Gi",
                                    "configmaps": "3"}),
                             {("", "services"): svcs, ("", "persistentvolumeclaims"): pvcs}, T0)
    assert status["used"] == {"services": "1", "services.nodeports": "1",
                              "requests.storage": "2Gi",
                              "fast.storageclass.storage.k8s.io/requests.storage": "2Gi",
                              "configmaps": "0"}
    assert rq.resources_for({"count/deployments.apps": "1", "cpu": "1"}) == {
        ("apps", "deployments"), ("", "pods")}


def job(ttl_seconds=None, finished_at=None):
    j = {"metadata": {"name": "j", "namespace": "default"}, "spec": {}, "status": {}}
    if ttl_seconds is not None:
        j["spec"]["ttlSecondsAfterFinished"] = ttl_seconds
    if finished_at is not None:
        j["status"]["conditions"] = [{"type": "Complete", "status": "True",
                                      "lastTransitionTime": stamp(finished_at)}]
    return j


def test_ttl_after_finished():
    assert ttl.time_left(job(), T0) is None
    assert ttl.time_left(job(ttl_seconds=10), T0) is None
    assert ttl.time_left(job(ttl_seconds=10, finished_at=0), T0 + datetime.timedelta(
        seconds=4)) == 6
    assert ttl.time_left(job(ttl_seconds=0, finished_at=0), T0) == 0


def test_pod_gc_terminated_over_threshold_evicted_first():
    pods = [pod("old", phase="Succeeded", created=0), pod("new", phase="Failed", created=10),
            pod("evicted", phase="Failed", created=20, reason="Evicted"),
            pod("running", created=0)]
    assert [p["metadata"]["name"] for p in podgc.terminated_to_delete(pods, 1)] == [
        "evicted", "old"]
    assert podgc.terminated_to_delete(pods, 5) == []


def test_pod_gc_terminating_cases():
    deleting = pod("x")
    deleting["metadata"]["deletionTimestamp"] = stamp()
    assert podgc.unscheduled_terminating([deleting]) == [deleting]
    deleting["spec"]["nodeName"] = "n1"
    nodes = {"n1": {"metadata": {"name": "n1"}, "spec": {"taints": [
        {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]}}}
    assert podgc.terminating_out_of_service([deleting], nodes) == [deleting]


def test_bootstrap_token_expiration():
    def secret(exp):
        return {"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
                "data": {"expiration": base64.b64encode(exp.encode()).decode()}}
    assert bootstraptoken.expiration(secret(stamp(60)), T0) == (60.0, False)
    assert bootstraptoken.expiration(secret(stamp(-1)), T0) == (0.0, True)
    assert bootstraptoken.expiration(secret("garbage"), T0) == (0.0, True)
    assert bootstraptoken.expiration({"metadata": {"name": "x"}}, T0) == (0.0, False)


def test_root_ca_configmap():
    cm = sa.root_ca_configmap("PEM")
    assert cm["metadata"]["name"] == "kube-root-ca.crt"
    assert cm["data"] == {"ca.crt": "PEM"}
    assert cm["metadata"]["annotations"]["kubernetes.io/description"].startswith(
        "Contains a CA bundle that can be used to verify the kube-apiserver")
    assert sa.root_ca_update(cm, "PEM") is None
    assert sa.root_ca_update({**cm, "data": {"ca.crt": "OLD"}}, "PEM")["data"] == {
        "ca.crt": "PEM"}


def test_legacy_token_claims_and_secret():
    account = {"metadata": {"name": "bot", "namespace": "ns", "uid": "sa-uid"}}
    claims = sa.legacy_claims(account, "bot-token")
    assert claims["iss"] == "kubernetes/serviceaccount"
    assert claims["sub"] == "system:serviceaccount:ns:bot"
    assert claims["kubernetes.io/serviceaccount/secret.name"] == "bot-token"
    secret = {"metadata": {"name": "bot-token", "namespace": "ns",
                           "annotations": {sa.SA_NAME_ANNOTATION: "bot"}},
              "type": sa.SA_TOKEN_TYPE}
    filled = sa.token_secret_update(secret, account, ca_pem="CA", token="tok")
    assert base64.b64decode(filled["data"]["token"]) == b"tok"
    assert base64.b64decode(filled["data"]["namespace"]) == b"ns"
    assert filled["metadata"]["annotations"][sa.SA_UID_ANNOTATION] == "sa-uid"
    assert sa.token_secret_update(filled, account, ca_pem="CA", token=None) is None
