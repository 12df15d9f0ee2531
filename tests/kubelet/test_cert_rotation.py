"""The kubelet's client certificate rotation (upstream's certificate manager) and its
start with a certificate about to expire, against a real API server.

The API server's approver auto-approves a node's renewal (``selfnodeclient``) and its
signer issues it. Certificates with a lifetime of seconds are minted in the test with
the cluster CA (CSRs cannot ask for less than 600 s); the rotation deadline is driven
with a FakeClock or by the certificate's own short life.
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import subprocess
import sys
import uuid

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.aio import wait_for
from pyk8s.client import Client, FakeClock, TransportError, load_config
from pyk8s.client.resources import Resource
from pyk8s.kubelet import bootstrap as boot
from pyk8s.kubelet.certrotation import (CertificateRotator, backoff_delays,
                                        rotation_deadline)
from support.cluster import KUBECTL, Cluster, free_port

SELF_SUBJECT_REVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews",
                                "SelfSubjectReview", False)
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path_factory.mktemp("rotation")), free_port())
    c.start()
    yield c
    c.stop()


def ca_file(api) -> str:
    return os.path.join(api.data_dir, "server", "tls", "server-ca.crt")


def join_token(api) -> str:
    return subprocess.run(
        [sys.executable, "-m", "pyk8s.cli.main", "token", "create", "--kubeconfig",
         api.kubeconfig], capture_output=True, text=True, check=True).stdout.strip()


def mint_node_kubeconfig(api, node: str, path: str, *, not_before: datetime.datetime,
                         not_after: datetime.datetime) -> x509.Certificate:
    """A kubeconfig for system:node:<node> whose certificate the cluster CA signed
    with the given validity (what an earlier bootstrap or rotation left on disk)."""
    tls = os.path.join(api.data_dir, "server", "tls")
    with open(os.path.join(tls, "server-ca.crt"), "rb") as f:
        ca_pem = f.read()
    with open(os.path.join(tls, "server-ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with open(path, "w") as f:
        f.write(boot._kubeconfig(api.url, ca_pem, cert.public_bytes(serialization.Encoding.PEM),
                                 key_pem, f"system:node:{node}"))
    os.chmod(path, 0o600)
    return cert


def cert_on_disk(path: str) -> x509.Certificate:
    with open(path) as f:
        user = yaml.safe_load(f)["users"][0]["user"]
    return x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))


def node_csrs(api, node: str) -> list[dict]:
    items = json.loads(api.kubectl("get", "csr", "-o", "json").stdout)["items"]
    return [c for c in items if c["spec"].get("username") == f"system:node:{node}"]


def whoami_kubectl(path: str, home) -> str:
    env = dict(os.environ, KUBECONFIG=path, HOME=str(home))
    out = subprocess.run([KUBECTL, "auth", "whoami", "-o", "json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["status"]["userInfo"]["username"]


async def whoami(client: Client) -> dict:
    review = await client.create(SELF_SUBJECT_REVIEWS, {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review["status"]["userInfo"]


# --- the deadline ---------------------------------------------------------------------

def test_rotation_deadline_is_70_to_90_percent_of_the_lifetime():
    begin = datetime.datetime(2025, 1, 1, tzinfo=UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(begin)
            .not_valid_after(begin + datetime.timedelta(seconds=1000))
            .sign(key, hashes.SHA256()))
    assert rotation_deadline(cert, lambda: 0.0) == begin + datetime.timedelta(seconds=700)
    assert rotation_deadline(cert, lambda: 1.0) == begin + datetime.timedelta(seconds=900)
    assert rotation_deadline(cert, lambda: 0.5) == begin + datetime.timedelta(seconds=800)
    delays = backoff_delays(lambda: 0.0)
    assert [next(delays) for _ in range(7)] == [2, 4, 8, 16, 32, 32, 32]


# --- rotation while running -------------------------------------------------------------

async def test_kubelet_renews_its_certificate_with_its_own_identity(api, tmp_path):
    node = "rot-" + uuid.uuid4().hex[:6]
    path = str(tmp_path / "kubelet.kubeconfig")
    # the node's first certificate, by TLS bootstrap with a join token (600 s life)
    await boot.bootstrap(server=api.url, ca_file=ca_file(api), token=join_token(api),
                         node=node, kubeconfig=path, timeout=60, expiration_seconds=600)
    old = cert_on_disk(path)
    # (the signer backdates notBefore by 5 minutes, as upstream)
    assert (old.not_valid_after_utc - datetime.datetime.now(UTC)).total_seconds() <= 600
    assert node_csrs(api, node) == []  # the bootstrap CSR was the token's

    clock = FakeClock(datetime.datetime.now(UTC))
    async with Client(load_config(path)) as client:
        rotator = CertificateRotator.for_kubeconfig(client, path, node, clock=clock,
                                                    rand=lambda: 0.5)
        assert rotator is not None
        assert rotator.deadline == old.not_valid_before_utc + \
            (old.not_valid_after_utc - old.not_valid_before_utc) * 0.8
        task = asyncio.create_task(rotator.run())
        try:
            # it sleeps until the deadline: nothing is requested before it
            await wait_for(_until(lambda: clock.pending >= 1), 10)
            assert rotator.rotations == 0 and node_csrs(api, node) == []
            clock.set_time(rotator.deadline)
            await wait_for(rotator.wait_rotated(1), 60)
            new = rotator.cert
            assert rotator.deadline > clock.now()  # the next rotation is the new cert's
            # the client keeps working as the node, on a new handshake with the new pair
            user = await whoami(client)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert user["username"] == f"system:node:{node}"
    assert "system:nodes" in user["groups"]

    # what the cluster saw: a CSR by the node itself, auto-approved as a renewal, issued
    csrs = node_csrs(api, node)
    assert len(csrs) == 1
    csr = csrs[0]
    assert csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    approved = [c for c in csr["status"]["conditions"] if c["type"] == "Approved"]
    assert approved and approved[0]["reason"] == "AutoApproved"
    assert approved[0]["message"] == ("Auto approving self kubelet client certificate after "
                                      "SubjectAccessReview.")
    table = api.kubectl("get", "csr", csr["metadata"]["name"]).stdout
    assert f"system:node:{node}" in table and "Approved,Issued" in table
    issued = x509.load_pem_x509_certificate(base64.b64decode(csr["status"]["certificate"]))
    subject = {a.oid: a.value for a in issued.subject}
    assert subject[NameOID.COMMON_NAME] == f"system:node:{node}"
    assert subject[NameOID.ORGANIZATION_NAME] == "system:nodes"

    # on disk: the issued certificate, later expiry, new serial, private file
    on_disk = cert_on_disk(path)
    assert on_disk.serial_number == issued.serial_number == new.serial_number
    assert on_disk.serial_number != old.serial_number
    assert on_disk.not_valid_after_utc > old.not_valid_after_utc
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert whoami_kubectl(path, tmp_path) == f"system:node:{node}"


async def test_rotation_before_expiry_keeps_the_node_authenticated(api, tmp_path):
    """A certificate past its deadline is renewed at once; once the old one expired,
    the API server still accepts the live client (it presents the new certificate)
    and refuses the old pair."""
    node = "exp-" + uuid.uuid4().hex[:6]
    path = str(tmp_path / "kubelet.kubeconfig")
    now = datetime.datetime.now(UTC)
    # past its deadline (at most 90 % of 315 s), and 15 s left for the renewal
    # (CSR, approval, signing) before it expires
    old = mint_node_kubeconfig(api, node, path, not_before=now - datetime.timedelta(seconds=300),
                               not_after=now + datetime.timedelta(seconds=15))
    with open(path) as f:
        old_kubeconfig = f.read()
    async with Client(load_config(path)) as client:
        assert (await whoami(client))["username"] == f"system:node:{node}"
        rotator = CertificateRotator.for_kubeconfig(client, path, node)
        task = asyncio.create_task(rotator.run())
        try:
            await wait_for(rotator.wait_rotated(1), 30)
            # wait (on the wall clock) until the old certificate has expired
            await wait_for(_until(lambda: datetime.datetime.now(UTC) >
                                  old.not_valid_after_utc + datetime.timedelta(seconds=1)), 30)
            user = await whoami(client)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert user["username"] == f"system:node:{node}"
    assert rotator.cert.serial_number != old.serial_number
    assert cert_on_disk(path).serial_number == rotator.cert.serial_number
    stale = tmp_path / "old.kubeconfig"
    stale.write_text(old_kubeconfig)
    async with Client(load_config(str(stale))) as old_client:
        with pytest.raises(TransportError):
            await whoami(old_client)


# --- start ----------------------------------------------------------------------------

async def test_start_with_a_certificate_about_to_expire_needs_no_join_token(api, tmp_path):
    node = "near-" + uuid.uuid4().hex[:6]
    path = str(tmp_path / "kubelet.kubeconfig")
    now = datetime.datetime.now(UTC)
    old = mint_node_kubeconfig(api, node, path, not_before=now - datetime.timedelta(hours=20),
                               not_after=now + datetime.timedelta(hours=2))
    before = os.stat(path).st_mtime_ns
    # no token at all: the current certificate is used as it is
    assert await boot.bootstrap(server=api.url, ca_file=ca_file(api), token=None, node=node,
                                kubeconfig=path, timeout=5) == path
    assert os.stat(path).st_mtime_ns == before
    # and the certificate manager renews it at once with the node's identity
    async with Client(load_config(path)) as client:
        rotator = CertificateRotator.for_kubeconfig(client, path, node)
        assert rotator.deadline < now
        task = asyncio.create_task(rotator.run())
        try:
            await wait_for(rotator.wait_rotated(1), 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert cert_on_disk(path).not_valid_after_utc > old.not_valid_after_utc
    assert [c["spec"]["username"] for c in node_csrs(api, node)] == [f"system:node:{node}"]
    assert whoami_kubectl(path, tmp_path) == f"system:node:{node}"


async def test_expired_certificate_falls_back_to_the_join_token(api, tmp_path):
    node = "late-" + uuid.uuid4().hex[:6]
    path = str(tmp_path / "kubelet.kubeconfig")
    now = datetime.datetime.now(UTC)
    mint_node_kubeconfig(api, node, path, not_before=now - datetime.timedelta(days=2),
                         not_after=now - datetime.timedelta(minutes=1))
    with pytest.raises(boot.BootstrapError) as err:
        await boot.bootstrap(server=api.url, ca_file=ca_file(api),
                             token="abcdef.0123456789abcdef", node=node, kubeconfig=path,
                             timeout=10)
    message = str(err.value)
    assert f"the client certificate in {path} expired at" in message
    assert "join token failed: Unauthorized" in message and "pyk8s token create" in message
    with pytest.raises(boot.BootstrapError, match="no join token was given"):
        await boot.bootstrap(server=api.url, ca_file=ca_file(api), token=None, node=node,
                             kubeconfig=path, timeout=10)
    await boot.bootstrap(server=api.url, ca_file=ca_file(api), token=join_token(api),
                         node=node, kubeconfig=path, timeout=60)
    assert cert_on_disk(path).not_valid_after_utc > now
    assert whoami_kubectl(path, tmp_path) == f"system:node:{node}"


async def test_no_rotation_for_a_kubeconfig_that_is_not_the_nodes(api):
    async with Client(load_config(api.kubeconfig)) as client:
        assert CertificateRotator.for_kubeconfig(client, api.kubeconfig, "any-node") is None


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.05)
