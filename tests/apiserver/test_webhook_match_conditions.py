"""Webhook matchConditions (CEL), reinvocationPolicy and call-failure messages, through
kubectl against real HTTPS webhooks served here with a certificate from the cluster CA."""
import base64
import json

import pytest
import yaml
from aiohttp import web

from security_helpers import WebhookServer, cluster_ca


class Webhooks(WebhookServer):
    """Webhooks that count their calls per path.

    ``/allow`` allows; ``/label/<key>`` adds the label ``<key>: "yes"`` (a mutation
    when the label is missing, nothing otherwise).
    """

    def __init__(self, ca):
        super().__init__(ca)
        self.calls: dict[str, list[dict]] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/allow", self._allow)
        app.router.add_post("/label/{key}", self._label)

    def names(self, path: str) -> list[str]:
        """Names of the objects the webhook at ``path`` was called for, in order."""
        return [r["request"]["object"]["metadata"].get("name", "")
                for r in self.calls.get(path, [])]

    def _record(self, path: str, review: dict) -> dict:
        self.calls.setdefault(path, []).append(review)
        return review["request"]

    async def _allow(self, request: web.Request) -> web.Response:
        req = self._record("/allow", await request.json())
        return self.answer({"uid": req["uid"], "allowed": True})

    async def _label(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        req = self._record(f"/label/{key}", await request.json())
        labels = (req["object"].get("metadata") or {}).get("labels")
        response = {"uid": req["uid"], "allowed": True}
        if labels is None:
            patch = [{"op": "add", "path": "/metadata/labels", "value": {key: "yes"}}]
        elif key not in labels:
            patch = [{"op": "add", "path": f"/metadata/labels/{key}", "value": "yes"}]
        else:
            patch = []
        if patch:
            response.update(patchType="JSONPatch",
                            patch=base64.b64encode(json.dumps(patch).encode()).decode())
        return self.answer(response)


@pytest.fixture
def hooks(cluster, ns):
    ca = cluster_ca(cluster)
    server = Webhooks(ca).start()
    bundle = base64.b64encode(ca.cert_pem).decode()

    def hook(name: str, path: str, *, port: int = 0, failure: str = "Fail",
             conditions: list | None = None, **extra) -> dict:
        out = {"name": f"{name}.{ns}.example.com", "admissionReviewVersions": ["v1"],
               "sideEffects": "None", "failurePolicy": failure, "timeoutSeconds": 5,
               "clientConfig": {"url": f"https://127.0.0.1:{port or server.port}{path}",
                                "caBundle": bundle},
               "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
               "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                          "apiVersions": ["v1"], "resources": ["configmaps"]}], **extra}
        if conditions is not None:
            out["matchConditions"] = conditions
        return out
    created = []

    def configure(kind: str, webhooks: list[dict], check: bool = True):
        name = f"{kind.lower()}-{ns}"
        created.append((kind, name))
        return cluster.kubectl("apply", "-f", "-", check=check, input=yaml.safe_dump({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "webhooks": webhooks}))
    yield server, hook, configure
    for kind, name in created:
        cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)
    server.stop()


def _configmap(name: str, labels: dict | None = None) -> str:
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})


def test_false_condition_skips_the_webhook(cluster, ns, hooks):
    server, hook, configure = hooks
    configure("ValidatingWebhookConfiguration", [hook("select", "/allow", conditions=[
        {"name": "not-skipped",
         "expression": "!has(object.metadata.labels) || "
                       "!('skip' in object.metadata.labels)"},
        {"name": "core-group", "expression": "request.resource.group == ''"},
        {"name": "not-system",
         "expression": "!request.userInfo.username.startsWith('system:node:')"}])])
    cluster.kubectl("create", "-n", ns, "-f", "-", input=_configmap("skipped", {"skip": "1"}))
    cluster.kubectl("create", "-n", ns, "-f", "-", input=_configmap("plain"))
    cluster.kubectl("create", "-n", ns, "-f", "-", input=_configmap("other", {"a": "b"}))
    assert server.names("/allow") == ["plain", "other"]
    review = server.calls["/allow"][0]["request"]
    assert review["userInfo"]["username"] == "system:admin"


def test_false_condition_does_not_call_an_unreachable_webhook(cluster, ns, hooks):
    _, hook, configure = hooks
    configure("ValidatingWebhookConfiguration", [
        hook("never", "/allow", port=1, conditions=[{"name": "never",
                                                     "expression": "false"}])])
    r = cluster.kubectl("create", "configmap", "unblocked", "-n", ns)
    assert "configmap/unblocked created" in r.stdout


def test_authorizer_in_conditions(cluster, ns, hooks):
    server, hook, configure = hooks
    # system:admin (system:masters) may do anything; a service account may not.
    configure("ValidatingWebhookConfiguration", [hook("authz", "/allow", conditions=[
        {"name": "admin-can-delete-nodes",
         "expression": "authorizer.group('').resource('nodes').check('delete').allowed()"},
        {"name": "sa-cannot",
         "expression": "!authorizer.serviceAccount('" + ns + "', 'nobody').group('')"
                       ".resource('secrets').namespace('" + ns + "').check('list')"
                       ".allowed()"},
        {"name": "request-resource",
         "expression": "authorizer.requestResource.check('create').allowed()"}])])
    cluster.kubectl("create", "configmap", "authorized", "-n", ns)
    assert server.names("/allow") == ["authorized"]


def test_invalid_conditions_are_refused_at_apply(cluster, ns, hooks):
    _, hook, configure = hooks
    r = configure("ValidatingWebhookConfiguration", [hook("bad", "/allow", conditions=[
        {"name": "syntax", "expression": "object.metadata.name == "},
        {"name": "not-bool", "expression": "'text'"},
        {"name": "syntax", "expression": "authorizer.check('get')"}])], check=False)
    assert r.returncode != 0
    err = r.stderr
    assert (f'The ValidatingWebhookConfiguration "validatingwebhookconfiguration-{ns}" is '
            f'invalid:') in err
    assert ('webhooks[0].matchConditions[0].expression: Invalid value: '
            '"object.metadata.name ==": compilation failed: ERROR: <input>:1:24: Syntax '
            'error: mismatched input \'<EOF>\'') in err
    assert ('webhooks[0].matchConditions[1].expression: Invalid value: "\'text\'": must '
            'evaluate to bool but got string') in err
    assert ("webhooks[0].matchConditions[2].expression: Invalid value: "
            "\"authorizer.check('get')\": compilation failed: ERROR: <input>:1:17: found no "
            "matching overload for 'check' applied to "
            "'(kubernetes.authorization.Authorizer, string)'") in err
    assert 'webhooks[0].matchConditions[2].name: Duplicate value: "syntax"' in err
    r = configure("ValidatingWebhookConfiguration", [hook("bad", "/allow", conditions=[
        {"name": f"c{i}", "expression": "true"} for i in range(65)])], check=False)
    assert ("webhooks[0].matchConditions: Too many: 65: must have at most 64 items"
            in r.stderr)
    r = cluster.kubectl("get", "validatingwebhookconfigurations", check=False)
    assert f"validatingwebhookconfiguration-{ns}" not in r.stdout


def test_evaluation_error_honours_failure_policy(cluster, ns, hooks):
    server, hook, configure = hooks
    expr = "object.metadata.labels.team == 'a'"
    configure("ValidatingWebhookConfiguration", [
        hook("strict", "/allow", conditions=[{"name": "team", "expression": expr}])])
    r = cluster.kubectl("create", "configmap", "nolabels", "-n", ns, check=False)
    assert r.returncode != 0
    assert (f'error: failed to create configmap: configmaps "nolabels" is forbidden: expression '
            f"'{expr}' resulted in error: no such key: labels") in r.stderr
    cluster.kubectl("create", "-n", ns, "-f", "-", input=_configmap("team-a", {"team": "a"}))
    assert server.names("/allow") == ["team-a"]
    # With failurePolicy Ignore the error skips the webhook.
    configure("ValidatingWebhookConfiguration", [
        hook("strict", "/allow", failure="Ignore",
             conditions=[{"name": "team", "expression": expr}])])
    cluster.kubectl("create", "configmap", "nolabels", "-n", ns)
    assert server.names("/allow") == ["team-a"]


def test_reinvocation_if_needed(cluster, ns, hooks):
    server, hook, configure = hooks
    # "first" runs before "second" (webhook order); "second" changes the object after
    # "first" ran, so "first" (IfNeeded) is called again; "never" (Never) is not.
    configure("MutatingWebhookConfiguration", [
        hook("first", "/label/first", reinvocationPolicy="IfNeeded"),
        hook("never", "/label/never", reinvocationPolicy="Never"),
        hook("second", "/label/second")])
    cluster.kubectl("create", "configmap", "reinvoked", "-n", ns)
    assert server.names("/label/first") == ["reinvoked", "reinvoked"]
    assert server.names("/label/never") == ["reinvoked"]
    assert server.names("/label/second") == ["reinvoked"]
    second_call = server.calls["/label/first"][1]["request"]["object"]["metadata"]["labels"]
    assert second_call == {"first": "yes", "never": "yes", "second": "yes"}
    labels = json.loads(cluster.kubectl("get", "configmap", "reinvoked", "-n", ns, "-o",
                                        "json").stdout)["metadata"]["labels"]
    assert labels == {"first": "yes", "never": "yes", "second": "yes"}


def test_no_reinvocation_without_a_later_change(cluster, ns, hooks):
    server, hook, configure = hooks
    configure("MutatingWebhookConfiguration", [
        hook("first", "/label/first", reinvocationPolicy="IfNeeded"),
        hook("quiet", "/allow")])
    cluster.kubectl("create", "configmap", "once", "-n", ns)
    assert server.names("/label/first") == ["once"]
    assert server.names("/allow") == ["once"]


def test_call_failure_message_is_gos(cluster, ns, hooks):
    _, hook, configure = hooks
    configure("ValidatingWebhookConfiguration", [hook("down", "/validate", port=1)])
    r = cluster.kubectl("create", "configmap", "blocked", "-n", ns, check=False)
    assert r.returncode != 0
    assert (f'error: failed to create configmap: Internal error occurred: failed calling '
            f'webhook "down.{ns}.example.com": failed to call webhook: Post '
            f'"https://127.0.0.1:1/validate?timeout=5s": dial tcp 127.0.0.1:1: connect: '
            f'connection refused') in r.stderr
    assert "SSLContext" not in r.stderr


def test_wrong_ca_message_is_gos(cluster, ns, hooks):
    server, hook, configure = hooks
    other = hook("untrusted", "/allow")
    other["clientConfig"].pop("caBundle")
    configure("ValidatingWebhookConfiguration", [other])
    r = cluster.kubectl("create", "configmap", "untrusted", "-n", ns, check=False)
    assert (f'failed calling webhook "untrusted.{ns}.example.com": failed to call webhook: '
            f'Post "https://127.0.0.1:{server.port}/allow?timeout=5s": tls: failed to verify '
            f'certificate: x509: certificate signed by unknown authority') in r.stderr
