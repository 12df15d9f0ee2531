"""Pure security logic without a server: RBAC rule matching and coverage, Pod Security
checks, webhook rule matching and bootstrap-token Secrets."""
import datetime

import pytest

from pyk8s.api.bootstraptokens import new_token, token_secret
from pyk8s.apiserver.admission import podsecurity
from pyk8s.apiserver.admission.webhooks import rule_matches
from pyk8s.apiserver.authz import Attributes
from pyk8s.apiserver.authz.rbac import compact, compact_string, covers, rule_allows


def rule(verbs, groups=("",), resources=(), names=(), urls=()):
    r = {"verbs": list(verbs)}
    if resources:
        r["apiGroups"], r["resources"] = list(groups), list(resources)
    if names:
        r["resourceNames"] = list(names)
    if urls:
        r["nonResourceURLs"] = list(urls)
    return r


@pytest.mark.parametrize("attrs,allowed", [
    (Attributes("get", resource="pods", name="a"), True),
    (Attributes("get", resource="pods", subresource="log", name="a"), False),
    (Attributes("get", resource="deployments", subresource="scale", api_group="apps"), True),
    (Attributes("delete", resource="pods", name="a"), False),
    (Attributes.non_resource("get", "/healthz/etcd"), True),
    (Attributes.non_resource("get", "/metrics"), False),
])
def test_rule_allows(attrs, allowed):
    rules = [rule(["get", "list"], resources=["pods"]),
             rule(["get"], groups=["*"], resources=["*/scale"]),
             rule(["get"], urls=["/healthz/*"])]
    assert any(rule_allows(attrs, r) for r in rules) is allowed


def test_resource_names_narrow_a_rule():
    r = rule(["get"], resources=["configmaps"], names=["one"])
    assert rule_allows(Attributes("get", resource="configmaps", name="one"), r)
    assert not rule_allows(Attributes("get", resource="configmaps", name="two"), r)
    assert not rule_allows(Attributes("list", resource="configmaps"), r)


def test_covers_breaks_rules_down_and_reports_what_is_missing():
    owner = [rule(["get", "list"], resources=["pods", "services"]),
             rule(["*"], groups=["apps"], resources=["*"])]
    ok, missing = covers(owner, [rule(["get"], resources=["pods"]),
                                 rule(["create"], groups=["apps"], resources=["deployments"])])
    assert ok and not missing
    ok, missing = covers(owner, [rule(["get", "delete"], resources=["pods", "secrets"])])
    assert not ok
    assert sorted(compact_string(r) for r in compact(missing)) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}']
    # An owner limited to names does not cover the whole resource.
    ok, _ = covers([rule(["get"], resources=["pods"], names=["a"])],
                   [rule(["get"], resources=["pods"])])
    assert not ok


def _pod(**spec):
    return {}, dict({"containers": [{"name": "c", "image": "x"}]}, **spec)


def test_pod_security_levels_and_order():
    assert podsecurity.evaluate("privileged", *_pod(hostPID=True)) == ""
    assert podsecurity.evaluate("baseline", *_pod()) == ""
    meta, spec = _pod(hostPID=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    assert podsecurity.evaluate("baseline", meta, spec) == (
        'host namespaces (hostPID=true), hostPath volumes (volume "h")')
    restricted = podsecurity.evaluate("restricted", meta, spec)
    assert 'restricted volume types (volume "h" uses restricted volume type "hostPath")' \
        in restricted
    assert "hostPath volumes" not in restricted  # overridden by restrictedVolumes
    hardened = {"securityContext": {"runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "securityContext": {
                    "allowPrivilegeEscalation": False, "capabilities": {
                        "drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}
    assert podsecurity.evaluate("restricted", {}, hardened) == ""
    hardened["containers"][0]["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
    assert podsecurity.evaluate("restricted", {}, hardened) == (
        'unrestricted capabilities (container "c" must not include "SYS_ADMIN" in '
        'securityContext.capabilities.add)')


@pytest.mark.parametrize("resources,resource,sub,match", [
    (["pods"], "pods", "", True), (["pods"], "pods", "status", False),
    (["pods/status"], "pods", "status", True), (["pods/*"], "pods", "log", True),
    (["*"], "configmaps", "", True), (["*"], "pods", "status", False),
    (["*/*"], "pods", "status", True), (["*/status"], "deployments", "status", True),
])
def test_webhook_rule_resources(resources, resource, sub, match):
    from pyk8s.apiserver.admission import Request
    req = Request(None, "CREATE", {}, None, "", "v1", resource, sub, "X", "ns", "n", None)
    r = {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
         "resources": resources}
    assert rule_matches(r, req, True) is match
    assert rule_matches(dict(r, scope="Cluster"), req, True) is False


def test_bootstrap_token_secret():
    token = new_token()
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    secret = token_secret(token, now=now, ttl=datetime.timedelta(hours=2))
    token_id, token_part = token.split(".")
    assert secret["metadata"] == {"name": f"bootstrap-token-{token_id}",
                                  "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    data = secret["stringData"]
    assert (data["token-id"], data["token-secret"]) == (token_id, token_part)
    assert data["expiration"] == "2030-01-01T02:00:00Z"
    assert data["usage-bootstrap-authentication"] == "true"
    with pytest.raises(ValueError):
        token_secret("Not.A.Token")
