"""Service-account tokens: ``kubectl create token``, the TokenRequest and TokenReview
APIs, expiry, audiences and binding to a pod."""
import datetime
import json
import os
import time

import kubernetes
import yaml

from pyk8s.apiserver import tokens
from security_helpers import ensure_default_sa, kubectl_as, raw, token_kubeconfig

ISSUER = "https://kubernetes.default.svc.cluster.local"


def _server_key(cluster) -> tokens.SigningKey:
    return tokens.load_or_create_key(cluster.data_dir)


def test_create_token_works_until_bound_to_a_role(cluster, ns):
    cluster.kubectl("create", "serviceaccount", "builder", "-n", ns)
    token = cluster.kubectl("create", "token", "builder", "-n", ns,
                            "--duration=10m").stdout.strip()
    as_sa = token_kubeconfig(cluster, token)
    who = json.loads(kubectl_as(cluster, as_sa, "auth", "whoami", "-o", "json").stdout)
    info = who["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{ns}:builder"
    assert info["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                              "system:authenticated"]
    assert info["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    r = kubectl_as(cluster, as_sa, "get", "configmaps", "-n", ns, check=False)
    assert (f'User "system:serviceaccount:{ns}:builder" cannot list resource "configmaps"'
            in r.stderr)
    cluster.kubectl("create", "rolebinding", "builder-edit", "--clusterrole=edit",
                    f"--serviceaccount={ns}:builder", "-n", ns)
    assert kubectl_as(cluster, as_sa, "create", "configmap", "made-by-sa",
                      "-n", ns).returncode == 0


def test_token_request_expiration_and_minimum(client, cluster, ns):
    cluster.kubectl("create", "serviceaccount", "short", "-n", ns)
    api = kubernetes.client.CoreV1Api(client)
    V1 = kubernetes.client
    out = api.create_namespaced_service_account_token("short", ns, V1.AuthenticationV1TokenRequest(
        spec=V1.V1TokenRequestSpec(audiences=[], expiration_seconds=900)))
    left = out.status.expiration_timestamp - datetime.datetime.now(datetime.timezone.utc)
    assert 850 < left.total_seconds() <= 901
    claims = json.loads(_b64(out.status.token.split(".")[1]))
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == f"system:serviceaccount:{ns}:short"
    assert claims["exp"] - claims["iat"] == 900
    r = cluster.kubectl("create", "token", "short", "-n", ns, "--duration=5m", check=False)
    assert "may not specify a duration less than 10 minutes" in r.stderr


def _b64(part: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _review(client, token: str, audiences=None):
    api = kubernetes.client.AuthenticationV1Api(client)
    V1 = kubernetes.client
    return api.create_token_review(V1.V1TokenReview(spec=V1.V1TokenReviewSpec(
        token=token, audiences=audiences))).status


def test_an_expired_token_is_rejected(client, cluster, ns):
    cluster.kubectl("create", "serviceaccount", "old", "-n", ns)
    sa = json.loads(cluster.kubectl("get", "sa", "old", "-n", ns, "-o", "json").stdout)
    token, _ = tokens.mint(_server_key(cluster), issuer=ISSUER, namespace=ns, sa=sa,
                           audiences=[ISSUER], expiration=600, now=time.time() - 3600)
    status, body = raw(cluster, "GET", "/api", token=token)
    assert (status, body["reason"]) == (401, "Unauthorized")
    review = _review(client, token)
    assert review.authenticated is False
    assert "service account token has expired" in review.error
    fresh, _ = tokens.mint(_server_key(cluster), issuer=ISSUER, namespace=ns, sa=sa,
                           audiences=[ISSUER], expiration=600)
    review = _review(client, fresh)
    assert review.authenticated is True
    assert review.user.username == f"system:serviceaccount:{ns}:old"


def test_token_review_checks_audiences(client, cluster, ns):
    cluster.kubectl("create", "serviceaccount", "vault-client", "-n", ns)
    token = cluster.kubectl("create", "token", "vault-client", "-n", ns,
                            "--audience=vault").stdout.strip()
    assert _review(client, token, ["vault"]).authenticated is True
    review = _review(client, token)
    assert review.authenticated is False
    assert 'token audiences ["vault"] is invalid for the target audiences' in review.error


def test_a_pod_bound_token_dies_with_its_pod(client, cluster, ns):
    ensure_default_sa(cluster, ns)
    cluster.kubectl("create", "-n", ns, "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    token = cluster.kubectl("create", "token", "default", "-n", ns, "--bound-object-kind=Pod",
                            "--bound-object-name=holder").stdout.strip()
    review = _review(client, token)
    assert review.authenticated is True
    assert review.user.extra["authentication.kubernetes.io/pod-name"] == ["holder"]
    cluster.kubectl("delete", "pod", "holder", "-n", ns, "--wait=false")
    review = _review(client, token)
    assert review.authenticated is False
    assert f"pod {ns}/holder has been deleted" in review.error


def test_service_account_key_is_private(cluster):
    path = os.path.join(cluster.data_dir, "server", "tls", "service.key")
    assert os.stat(path).st_mode & 0o777 == 0o600
