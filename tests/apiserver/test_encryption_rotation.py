"""Secrets at rest through the API, on a server restarted with new settings: key
rotation by ``kubectl get secrets -A -o json | kubectl replace -f -`` (upstream's
documented recipe), encrypted data read without an encryption config, private file
modes for the database and the audit log, and what the audit log says about failures."""
import base64
import json
import os
import sqlite3
import stat

import pytest
import yaml

from security_helpers import raw, wait_for
from support.cluster import KUBECTL, Cluster, free_port


def _key(name: str) -> dict:
    return {"name": name, "secret": base64.b64encode(os.urandom(32)).decode()}


K1, K2 = _key("k1"), _key("k2")


def _config(path: str, *providers) -> str:
    with open(path, "w") as f:
        yaml.safe_dump({"apiVersion": "apiserver.config.k8s.io/v1",
                        "kind": "EncryptionConfiguration",
                        "resources": [{"resources": ["secrets"],
                                       "providers": list(providers)}]}, f)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    d = str(tmp_path_factory.mktemp("rotation"))
    policy = os.path.join(d, "audit-policy.yaml")
    with open(policy, "w") as f:
        yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                        "omitStages": ["RequestReceived"],
                        "rules": [{"level": "None", "nonResourceURLs": ["/readyz"]},
                                  {"level": "Metadata"}]}, f)
    c = Cluster(d, free_port())
    c.audit = ["--audit-policy-file", policy, "--audit-log-path",
               os.path.join(d, "audit.log")]
    yield c
    c.stop()


def restart(c: Cluster, *extra: str) -> None:
    c.stop()
    c.start(extra=[*c.audit, *extra])


def stored(c: Cluster) -> dict[str, bytes]:
    """The current raw value of every Secret in the SQLite file."""
    db = os.path.join(c.data_dir, "server", "db", "state.db")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT kv.name, kv.value FROM current JOIN kv ON kv.id = "
                            "current.id WHERE kv.name LIKE '/registry/core/secrets/%' "
                            "AND kv.deleted = 0").fetchall()
    finally:
        conn.close()
    return {name: bytes(value) for name, value in rows}


def secrets(c: Cluster) -> dict[str, dict]:
    items = json.loads(c.kubectl("get", "secrets", "-A", "-o", "json").stdout)["items"]
    return {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in items}


def replace_all(c: Cluster) -> str:
    dump = c.kubectl("get", "secrets", "-A", "-o", "json").stdout
    return c.kubectl("replace", "-f", "-", input=dump).stdout


def test_rotation_then_reading_without_a_config(server):
    d = server.data_dir
    cfg1 = _config(os.path.join(d, "enc1.yaml"), {"aescbc": {"keys": [K1]}}, {"identity": {}})
    server.start(extra=[*server.audit, "--encryption-provider-config", cfg1])
    server.kubectl("create", "namespace", "team")
    server.kubectl("create", "secret", "generic", "db", "-n", "default",
                   "--from-literal=password=first")
    server.kubectl("create", "secret", "generic", "api", "-n", "team",
                   "--from-literal=token=second")
    replace_all(server)  # settles managedFields: a later replace changes nothing
    before = secrets(server)
    assert {"default/db", "team/api"} <= set(before)
    raw_values = stored(server)
    assert raw_values and all(v.startswith(b"k8s:enc:aescbc:v1:k1:")
                              for v in raw_values.values())
    # An unchanged object is not written again while its value is current.
    replace_all(server)
    assert {k: s["metadata"]["resourceVersion"] for k, s in secrets(server).items()} == \
        {k: s["metadata"]["resourceVersion"] for k, s in before.items()}

    # Rotate: the new key first, the old one still readable.
    cfg2 = _config(os.path.join(d, "enc2.yaml"), {"secretbox": {"keys": [K2]}},
                   {"aescbc": {"keys": [K1]}}, {"identity": {}})
    restart(server, "--encryption-provider-config", cfg2)
    assert {k: s["data"] for k, s in secrets(server).items()} == \
        {k: s["data"] for k, s in before.items()}
    out = replace_all(server)
    assert 'secret/db replaced' in out and 'secret/api replaced' in out
    after = secrets(server)
    for name, s in before.items():  # written again although nothing changed
        assert int(after[name]["metadata"]["resourceVersion"]) > \
            int(s["metadata"]["resourceVersion"])
    raw_values = stored(server)
    assert set(raw_values) == {f"/registry/core/secrets/{k}" for k in before}
    assert all(v.startswith(b"k8s:enc:secretbox:v1:k2:") for v in raw_values.values())

    # k1 can go now.
    cfg3 = _config(os.path.join(d, "enc3.yaml"), {"secretbox": {"keys": [K2]}})
    restart(server, "--encryption-provider-config", cfg3)
    got = json.loads(server.kubectl("get", "secret", "db", "-n", "default", "-o",
                                    "json").stdout)
    assert base64.b64decode(got["data"]["password"]) == b"first"

    # Started without the config: the server runs, the encrypted objects do not read.
    restart(server)
    r = server.kubectl("get", "secret", "db", "-n", "default", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "Error from server (InternalError): Internal error occurred: " \
        "identity transformer tried to read encrypted data"
    r = server.kubectl("get", "secrets", "-n", "team", check=False)
    assert r.returncode == 1
    assert 'Internal error occurred: unable to transform key "/registry/core/secrets/team/' \
        'api": identity transformer tried to read encrypted data' in r.stderr
    status, body = raw(server, "GET", "/api/v1/namespaces/default/secrets/db", cert=(
        os.path.join(d, "server", "tls", "client-admin.crt"),
        os.path.join(d, "server", "tls", "client-admin.key")))
    assert status == 500 and body["reason"] == "InternalError" and body["code"] == 500
    assert server.kubectl("get", "namespace", "team").returncode == 0
    with open(os.path.join(d, "server.log")) as f:
        log = f.read()
    assert "cannot be read and will fail reads with InternalError" in log
    assert "Traceback" not in log


def test_database_and_audit_log_are_private(server):
    if server.proc is None or server.proc.poll() is not None:
        restart(server)
    db_dir = os.path.join(server.data_dir, "server", "db")
    assert stat.S_IMODE(os.stat(db_dir).st_mode) == 0o700
    names = os.listdir(db_dir)
    assert "state.db" in names and "state.db-wal" in names
    for name in names:
        assert stat.S_IMODE(os.stat(os.path.join(db_dir, name)).st_mode) == 0o600, name
    audit = os.path.join(server.data_dir, "audit.log")
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600


def _events(server) -> list[dict]:
    with open(os.path.join(server.data_dir, "audit.log")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_audit_events_for_failures(server):
    if server.proc is None or server.proc.poll() is not None:
        restart(server)
    r = server.kubectl("get", "configmap", "no-such-map", "-n", "default", check=False)
    assert "NotFound" in r.stderr
    status, _ = raw(server, "GET", "/api/v1/namespaces/default/pods?audit=unauth",
                    token="not-a-valid-token")
    assert status == 401
    not_found = wait_for(lambda: [e for e in _events(server) if e.get("objectRef", {}).get(
        "name") == "no-such-map"])[0]
    assert not_found["responseStatus"] == {
        "metadata": {}, "status": "Failure",
        "message": 'configmaps "no-such-map" not found', "reason": "NotFound",
        "details": {"name": "no-such-map", "kind": "configmaps"}, "code": 404}
    assert not_found["annotations"]["authorization.k8s.io/decision"] == "allow"
    unauth = wait_for(lambda: [e for e in _events(server)
                               if e["requestURI"].endswith("audit=unauth")])[0]
    assert unauth["user"] == {}
    assert unauth["responseStatus"] == {"metadata": {}, "status": "Failure",
                                        "message": "Unauthorized", "reason": "Unauthorized",
                                        "code": 401}
    assert "annotations" not in unauth
