"""Server-level security settings, on a server of their own: Secrets encrypted in the
SQLite file, an audit log of who did what, component identities, renewal of expiring
certificates and ``pyk8s token create``."""
import base64
import datetime
import json
import os
import subprocess
import sys

import pytest
import yaml

from pyk8s.pki import issue
from pyk8s.pki.components import renew_expiring
from security_helpers import kubectl_as, token_kubeconfig, wait_for


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def secured(cluster, tmp_path_factory):
    Cluster = type(cluster)  # the API tests' server launcher (conftest.Cluster)
    d = str(tmp_path_factory.mktemp("secured"))
    encryption = os.path.join(d, "encryption.yaml")
    with open(encryption, "w") as f:
        yaml.safe_dump({"apiVersion": "apiserver.config.k8s.io/v1",
                        "kind": "EncryptionConfiguration",
                        "resources": [{"resources": ["secrets"], "providers": [
                            {"aescbc": {"keys": [{"name": "key1", "secret": base64.b64encode(
                                os.urandom(32)).decode()}]}}, {"identity": {}}]}]}, f)
    policy = os.path.join(d, "audit-policy.yaml")
    with open(policy, "w") as f:
        yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                        "omitStages": ["RequestReceived"], "rules": [
                            {"level": "None", "nonResourceURLs": ["/healthz", "/readyz",
                                                                  "/version"]},
                            {"level": "Metadata", "resources": [{"group": "",
                                                                 "resources": ["secrets"]}]},
                            {"level": "RequestResponse", "resources": [
                                {"group": "", "resources": ["configmaps"]}]},
                            {"level": "None"}]}, f)
    c = Cluster(d, free_port())
    c.start(extra=["--encryption-provider-config", encryption, "--audit-policy-file", policy,
                   "--audit-log-path", os.path.join(d, "audit.log")])
    yield c
    c.stop()


def test_secrets_are_not_plaintext_in_the_sqlite_file(secured):
    secured.kubectl("create", "secret", "generic", "db", "--from-literal=password=hunter2-"
                    "plaintext-marker", "-n", "default")
    got = json.loads(secured.kubectl("get", "secret", "db", "-n", "default", "-o",
                                     "json").stdout)
    assert base64.b64decode(got["data"]["password"]) == b"hunter2-plaintext-marker"
    marker = base64.b64encode(b"hunter2-plaintext-marker")
    db_dir = os.path.join(secured.data_dir, "server", "db")
    content = b""
    for name in os.listdir(db_dir):  # the database and its write-ahead log
        with open(os.path.join(db_dir, name), "rb") as f:
            content += f.read()
    assert b"k8s:enc:aescbc:v1:key1:" in content
    assert marker not in content and b"hunter2-plaintext-marker" not in content


def test_audit_log_records_who_did_what(secured):
    secured.kubectl("create", "configmap", "audited", "--from-literal=a=b", "-n", "default")
    secured.kubectl("get", "secret", "db", "-n", "default", check=False)
    log = os.path.join(secured.data_dir, "audit.log")

    def events():
        if not os.path.exists(log):
            return []
        with open(log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def created():
        return [e for e in events() if e["verb"] == "create" and
                e.get("objectRef", {}).get("name") == "audited"]
    event = wait_for(created)[0]
    assert event["apiVersion"] == "audit.k8s.io/v1" and event["stage"] == "ResponseComplete"
    assert event["level"] == "RequestResponse"
    assert event["user"]["username"] == "system:admin"
    assert event["objectRef"] == {"resource": "configmaps", "namespace": "default",
                                  "name": "audited", "apiVersion": "v1"}
    assert event["responseStatus"]["code"] == 201
    assert event["requestObject"]["data"] == {"a": "b"}
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    secret_reads = wait_for(lambda: [e for e in events() if e.get("objectRef", {}).get(
        "resource") == "secrets" and e["verb"] == "get"])
    assert secret_reads[0]["level"] == "Metadata" and "responseObject" not in secret_reads[0]
    assert not [e for e in events() if e["requestURI"].startswith("/healthz")]


def test_component_kubeconfigs_have_least_privilege(secured):
    cred = os.path.join(secured.data_dir, "server", "cred")
    scheduler = os.path.join(cred, "scheduler.kubeconfig")
    controller = os.path.join(cred, "controller.kubeconfig")
    assert os.stat(scheduler).st_mode & 0o777 == 0o600
    who = json.loads(kubectl_as(secured, scheduler, "auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == "system:kube-scheduler"

    def can(kubeconfig, *args):
        return kubectl_as(secured, kubeconfig, "auth", "can-i", *args,
                          check=False).stdout.strip()
    assert can(scheduler, "create", "pods", "--subresource=binding", "-n", "default") == "yes"
    assert can(scheduler, "delete", "nodes") == "no"
    assert can(controller, "list", "secrets", "-A") == "yes"
    assert can(controller, "create", "clusterrolebindings") == "no"


def test_token_create_prints_a_join_token(secured):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-m", "pyk8s.cli.main", "token", "create",
                          "--data-dir", secured.data_dir], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    token_id = out.split(".")[0]
    who = json.loads(kubectl_as(secured, token_kubeconfig(secured, out), "auth", "whoami",
                                "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == f"system:bootstrap:{token_id}"
    assert "system:bootstrappers:pyk8s:default-node-token" in \
        who["status"]["userInfo"]["groups"]


def test_expiring_certificates_are_issued_again(tmp_path):
    tls = tmp_path / "server" / "tls"
    tls.mkdir(parents=True)
    from pyk8s.pki import make_ca
    ca = make_ca()
    (tls / "server-ca.crt").write_bytes(ca.cert_pem)
    (tls / "server-ca.key").write_bytes(ca.key_pem)
    soon = issue(ca, "system:admin", orgs=("system:masters",), client=True, days=30)
    later = issue(ca, "kube-apiserver", server=True, days=365)
    (tls / "client-admin.crt").write_bytes(soon.cert_pem)
    (tls / "client-admin.key").write_bytes(soon.key_pem)
    (tls / "serving-kube-apiserver.crt").write_bytes(later.cert_pem)
    (tls / "serving-kube-apiserver.key").write_bytes(later.key_pem)
    assert renew_expiring(str(tmp_path), within=datetime.timedelta(days=90)) == ["client-admin"]
    assert sorted(os.listdir(tls)) == ["server-ca.crt", "server-ca.key",
                                       "serving-kube-apiserver.crt",
                                       "serving-kube-apiserver.key"]
