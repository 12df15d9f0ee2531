"""CertificateSigningRequests and bootstrap tokens: onboarding a user with openssl and
``kubectl certificate approve``, the signers' rules, and node TLS bootstrap (a bootstrap
token's kubelet CSR is approved and signed, and its certificate is the node's)."""
import base64
import datetime
import json
import os
import secrets
import string
import subprocess
import uuid

import kubernetes
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from security_helpers import cert_kubeconfig, kubectl_as, raw, token_kubeconfig, wait_for


def openssl_csr(directory: str, subject: str) -> tuple[str, bytes]:
    """(key path, CSR PEM) made with the openssl command line, as a user would."""
    key = os.path.join(directory, f"{uuid.uuid4().hex[:6]}.key")
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True,
                   capture_output=True)
    out = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", subject],
                         check=True, capture_output=True)
    return key, out.stdout


def csr_object(name: str, pem: bytes, signer: str, usages, expiration=None) -> str:
    spec = {"request": base64.b64encode(pem).decode(), "signerName": signer,
            "usages": list(usages)}
    if expiration:
        spec["expirationSeconds"] = expiration
    return yaml.safe_dump({"apiVersion": "certificates.k8s.io/v1",
                           "kind": "CertificateSigningRequest", "metadata": {"name": name},
                           "spec": spec})


def get_csr(cluster, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "csr", name, "-o", "json").stdout)


def test_user_onboarded_by_csr_is_forbidden_until_bound(cluster, ns, tmp_path):
    name = "lena-" + ns
    key, pem = openssl_csr(str(tmp_path), f"/CN=lena/O=auditors-{ns}")
    cluster.kubectl("create", "-f", "-", input=csr_object(
        name, pem, "kubernetes.io/kube-apiserver-client", ["client auth"], 3600))
    row = cluster.kubectl("get", "csr", name).stdout.splitlines()[1]
    assert "kubernetes.io/kube-apiserver-client" in row and "system:admin" in row
    assert row.split()[-1] == "Pending"
    assert get_csr(cluster, name)["spec"]["username"] == "system:admin"
    out = cluster.kubectl("certificate", "approve", name).stdout
    assert out.strip() == f"certificatesigningrequest.certificates.k8s.io/{name} approved"
    issued = wait_for(lambda: get_csr(cluster, name).get("status", {}).get("certificate"))
    assert cluster.kubectl("get", "csr", name).stdout.splitlines()[1].split()[-1] == \
        "Approved,Issued"
    cert = x509.load_pem_x509_certificate(base64.b64decode(issued))
    assert cert.subject.rfc4514_string() == f"O=auditors-{ns},CN=lena"
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    assert 3000 < lifetime.total_seconds() <= 3600
    with open(key, "rb") as f:
        lena = cert_kubeconfig(cluster, "lena", cert_pem=base64.b64decode(issued),
                               key_pem=f.read())
    r = kubectl_as(cluster, lena, "get", "pods", "-n", ns, check=False)
    assert (f'pods is forbidden: User "lena" cannot list resource "pods" in API group "" in '
            f'the namespace "{ns}"') in r.stderr
    cluster.kubectl("create", "rolebinding", "auditors", "--clusterrole=view",
                    f"--group=auditors-{ns}", "-n", ns)
    assert kubectl_as(cluster, lena, "get", "pods", "-n", ns).returncode == 0


def test_deny_and_the_approve_permission(client, cluster, ns, tmp_path):
    _, pem = openssl_csr(str(tmp_path), "/CN=mallory")
    denied = "denied-" + ns
    cluster.kubectl("create", "-f", "-", input=csr_object(
        denied, pem, "kubernetes.io/kube-apiserver-client", ["client auth"]))
    cluster.kubectl("certificate", "deny", denied)
    assert cluster.kubectl("get", "csr", denied).stdout.splitlines()[1].split()[-1] == "Denied"
    r = cluster.kubectl("certificate", "approve", denied, check=False)
    assert f'certificate signing request "{denied}" is already Denied' in r.stderr
    api = kubernetes.client.CertificatesV1Api(client)
    csr = api.read_certificate_signing_request(denied)
    csr.status.conditions.append(kubernetes.client.V1CertificateSigningRequestCondition(
        type="Approved", status="True", reason="Why", message="not"))
    with pytest.raises(kubernetes.client.ApiException) as err:
        api.replace_certificate_signing_request_approval(denied, csr)
    assert err.value.status == 422
    assert ('Approved and Denied conditions are mutually exclusive'
            in json.loads(err.value.body)["message"])
    # A user who may update approvals still needs ``approve`` on the signer.
    pending = "pending-" + ns
    cluster.kubectl("create", "-f", "-", input=csr_object(
        pending, pem, "kubernetes.io/kube-apiserver-client", ["client auth"]))
    name = "csr-approver-" + ns
    cluster.kubectl("create", "clusterrole", name, "--verb=get,list,update",
                    "--resource=certificatesigningrequests,certificatesigningrequests/approval")
    cluster.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                    "--user=oscar")
    oscar = cert_kubeconfig(cluster, "oscar")
    r = kubectl_as(cluster, oscar, "certificate", "approve", pending, check=False)
    assert ('certificatesigningrequests.certificates.k8s.io "' + pending + '" is forbidden: '
            'user not permitted to approve requests with signerName '
            '"kubernetes.io/kube-apiserver-client"') in r.stderr
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name + "-signer"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                   "resourceNames": ["kubernetes.io/*"], "verbs": ["approve"]}]}))
    cluster.kubectl("create", "clusterrolebinding", name + "-signer",
                    f"--clusterrole={name}-signer", "--user=oscar")
    assert kubectl_as(cluster, oscar, "certificate", "approve", pending).returncode == 0


def test_signers_refuse_what_they_may_not_issue(cluster, ns, tmp_path):
    _, masters = openssl_csr(str(tmp_path), "/CN=eve/O=system:masters")
    r = cluster.kubectl("create", "-f", "-", check=False, input=csr_object(
        "masters-" + ns, masters, "kubernetes.io/kube-apiserver-client", ["client auth"]))
    assert ("use of kubernetes.io/kube-apiserver-client signer with system:masters group is "
            "not allowed") in r.stderr
    _, pem = openssl_csr(str(tmp_path), "/CN=server")
    name = "serving-" + ns
    cluster.kubectl("create", "-f", "-", input=csr_object(
        name, pem, "kubernetes.io/kube-apiserver-client", ["server auth"]))
    cluster.kubectl("certificate", "approve", name)
    failed = wait_for(lambda: [c for c in get_csr(cluster, name)["status"]["conditions"]
                               if c["type"] == "Failed"])
    assert failed[0]["reason"] == "SignerValidationFailure"
    assert failed[0]["message"] == "invalid usage for client certificate: server auth"
    assert "certificate" not in get_csr(cluster, name)["status"]


def _bootstrap_token(cluster, *, expires_in: int = 3600) -> str:
    alphabet = string.ascii_lowercase + string.digits
    token_id = "".join(secrets.choice(alphabet) for _ in range(6))
    token_secret = "".join(secrets.choice(alphabet) for _ in range(16))
    expiry = (datetime.datetime.now(datetime.timezone.utc) +
              datetime.timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "stringData": {"token-id": token_id, "token-secret": token_secret,
                       "expiration": expiry, "usage-bootstrap-authentication": "true",
                       "usage-bootstrap-signing": "true",
                       "auth-extra-groups": "system:bootstrappers:pyk8s:default-node-token"}}))
    return f"{token_id}.{token_secret}"


def test_bootstrap_token_only_bootstraps(cluster, ns):
    token = _bootstrap_token(cluster)
    boot = token_kubeconfig(cluster, token)
    who = json.loads(kubectl_as(cluster, boot, "auth", "whoami", "-o", "json").stdout)
    info = who["status"]["userInfo"]
    assert info["username"] == "system:bootstrap:" + token.split(".")[0]
    assert info["groups"] == ["system:bootstrappers",
                              "system:bootstrappers:pyk8s:default-node-token",
                              "system:authenticated"]
    assert kubectl_as(cluster, boot, "auth", "can-i", "create",
                      "certificatesigningrequests").stdout.strip() == "yes"
    for verb, resource in (("list", "pods"), ("get", "secrets"), ("list", "nodes")):
        r = kubectl_as(cluster, boot, "auth", "can-i", verb, resource, "-n", ns, check=False)
        assert r.stdout.strip() == "no"
    expired = _bootstrap_token(cluster, expires_in=-60)
    status, body = raw(cluster, "GET", "/api", token=expired)
    assert (status, body["reason"]) == (401, "Unauthorized")


def test_node_tls_bootstrap(cluster, tmp_path):
    """A new node's kubelet: bootstrap token -> CSR -> auto-approved -> its own identity."""
    node = "node-" + uuid.uuid4().hex[:6]
    boot = token_kubeconfig(cluster, _bootstrap_token(cluster))
    key = ec.generate_private_key(ec.SECP256R1())
    req = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")]))
        .sign(key, hashes.SHA256()))
    pem = req.public_bytes(serialization.Encoding.PEM)
    name = "node-csr-" + node
    kubectl_as(cluster, boot, "create", "-f", "-", input=csr_object(
        name, pem, "kubernetes.io/kube-apiserver-client-kubelet",
        ["digital signature", "client auth"]))
    issued = wait_for(lambda: get_csr(cluster, name).get("status", {}).get("certificate"))
    approved = [c for c in get_csr(cluster, name)["status"]["conditions"]
                if c["type"] == "Approved"][0]
    assert approved["reason"] == "AutoApproved"
    assert approved["message"] == ("Auto approving kubelet client certificate after "
                                   "SubjectAccessReview.")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    kubelet = cert_kubeconfig(cluster, "", cert_pem=base64.b64decode(issued), key_pem=key_pem)
    who = json.loads(kubectl_as(cluster, kubelet, "auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == f"system:node:{node}"
    # The node registers itself, and may renew its own certificate without a human.
    kubectl_as(cluster, kubelet, "create", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}))
    renewal = "renew-" + node
    kubectl_as(cluster, kubelet, "create", "-f", "-", input=csr_object(
        renewal, pem, "kubernetes.io/kube-apiserver-client-kubelet",
        ["digital signature", "client auth"]))
    wait_for(lambda: get_csr(cluster, renewal).get("status", {}).get("certificate"))
    message = [c for c in get_csr(cluster, renewal)["status"]["conditions"]
               if c["type"] == "Approved"][0]["message"]
    assert message == "Auto approving self kubelet client certificate after SubjectAccessReview."
