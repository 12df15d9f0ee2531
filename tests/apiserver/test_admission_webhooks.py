"""Admission webhooks: the API server calls a real HTTPS webhook (served here, with a
certificate from the cluster CA) and applies its verdict and its JSON patch."""
import base64
import json

import pytest
import yaml
from aiohttp import web

from security_helpers import WebhookServer, cluster_ca


class Webhooks(WebhookServer):
    """``/validate`` refuses configmaps labelled deny=true; ``/mutate`` labels them."""

    def __init__(self, ca):
        super().__init__(ca)
        self.reviews: list[dict] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/validate", self._validate)
        app.router.add_post("/mutate", self._mutate)

    async def _validate(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.reviews.append(review)
        req = review["request"]
        labels = (req.get("object") or {}).get("metadata", {}).get("labels") or {}
        response = {"uid": req["uid"], "allowed": labels.get("deny") != "true"}
        if not response["allowed"]:
            response["status"] = {"code": 403, "reason": "Forbidden",
                                  "message": "configmaps labelled deny=true are refused"}
        return self.answer(response)

    async def _mutate(self, request: web.Request) -> web.Response:
        review = await request.json()
        req = review["request"]
        has_labels = bool((req.get("object") or {}).get("metadata", {}).get("labels"))
        patch = [{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}] \
            if has_labels else \
            [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
        return self.answer({"uid": req["uid"], "allowed": True, "patchType": "JSONPatch",
                            "warnings": ["mutated by the test webhook"],
                            "patch": base64.b64encode(json.dumps(patch).encode()).decode()})


@pytest.fixture
def webhooks(cluster, ns):
    ca = cluster_ca(cluster)
    server = Webhooks(ca).start()
    bundle = base64.b64encode(ca.cert_pem).decode()

    def hook(kind: str, path: str, failure: str = "Fail", port: int = 0) -> dict:
        return {"name": f"{kind}.{ns}.example.com", "admissionReviewVersions": ["v1"],
                "sideEffects": "None", "failurePolicy": failure, "timeoutSeconds": 5,
                "clientConfig": {"url": f"https://127.0.0.1:{port or server.port}{path}",
                                 "caBundle": bundle},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                           "apiVersions": ["v1"], "resources": ["configmaps"]}]}
    names = []

    def configure(kind: str, hooks: list[dict]) -> None:
        name = f"{kind.lower()}-{ns}"
        names.append((kind, name))
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "webhooks": hooks}))
    yield server, hook, configure
    for kind, name in names:
        cluster.kubectl("delete", kind.lower(), name, check=False)
    server.stop()


def test_validating_webhook_denies_with_its_message(cluster, ns, webhooks):
    server, hook, configure = webhooks
    configure("ValidatingWebhookConfiguration", [hook("validate", "/validate")])
    cluster.kubectl("create", "configmap", "fine", "-n", ns)
    cm = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "refused", "labels": {"deny": "true"}}})
    r = cluster.kubectl("create", "-n", ns, "-f", "-", input=cm, check=False)
    assert (f'Error from server (Forbidden): error when creating "STDIN": admission webhook '
            f'"validate.{ns}.example.com" denied the request: configmaps labelled deny=true '
            f'are refused') in r.stderr
    review = server.reviews[-1]["request"]
    assert review["operation"] == "CREATE" and review["namespace"] == ns
    assert review["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert review["userInfo"]["username"] == "system:admin"
    # Other namespaces are outside the webhook's namespaceSelector.
    cluster.kubectl("create", "-n", "default", "-f", "-",
                    input=cm.replace("refused", "refused-" + ns))
    cluster.kubectl("delete", "configmap", "refused-" + ns, "-n", "default")


def test_mutating_webhook_patches_the_object(cluster, ns, webhooks):
    _, hook, configure = webhooks
    configure("MutatingWebhookConfiguration", [hook("mutate", "/mutate")])
    r = cluster.kubectl("create", "configmap", "patched", "-n", ns)
    assert "Warning: mutated by the test webhook" in r.stderr
    labels = json.loads(cluster.kubectl("get", "configmap", "patched", "-n", ns, "-o",
                                        "json").stdout)["metadata"]["labels"]
    assert labels == {"mutated": "yes"}


def test_unreachable_webhook_fails_closed_unless_ignored(cluster, ns, webhooks):
    _, hook, configure = webhooks
    configure("ValidatingWebhookConfiguration",
              [hook("down", "/validate", port=1), hook("optional", "/validate",
                                                       failure="Ignore", port=1)])
    r = cluster.kubectl("create", "configmap", "blocked", "-n", ns, check=False)
    assert (f'Internal error occurred: failed calling webhook "down.{ns}.example.com": '
            f'failed to call webhook: Post "https://127.0.0.1:1/validate?timeout=5s"') in r.stderr
