"""Kubelet TLS bootstrap: from a join token to the node's own identity.

As upstream's kubelet with ``--bootstrap-kubeconfig``: authenticate with the
bootstrap token (group ``system:bootstrappers``), create a CertificateSigningRequest
for ``system:node:<name>`` in ``system:nodes`` with signer
``kubernetes.io/kube-apiserver-client-kubelet``, wait until the cluster's approver and
signer answer with a certificate, and write a kubeconfig that uses it. The private
key never leaves the node. An existing, still valid kubeconfig is reused.
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import os
import ssl

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..client import resources
from ..client.config import ClientConfig
from ..client.rest import Client

SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"


def _kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
                user: str) -> str:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "default", "cluster": {
            "server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem),
                                          "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": user}}],
        "current-context": "default"}, sort_keys=False)


def valid_for(kubeconfig: str, node: str, *, margin: datetime.timedelta) -> bool:
    """True when ``kubeconfig`` holds this node's certificate, valid past ``margin``."""
    try:
        with open(kubeconfig) as f:
            cfg = yaml.safe_load(f)
        cert = x509.load_pem_x509_certificate(base64.b64decode(
            cfg["users"][0]["user"]["client-certificate-data"]))
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return False
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    expires = cert.not_valid_after_utc
    return (bool(cn) and cn[0].value == f"system:node:{node}" and
            expires - datetime.datetime.now(datetime.timezone.utc) > margin)


async def bootstrap(*, server: str, ca_file: str, token: str, node: str, kubeconfig: str,
                    timeout: float = 300.0) -> str:
    """Obtain the node's client certificate with ``token``; returns ``kubeconfig``."""
    if valid_for(kubeconfig, node, margin=datetime.timedelta(days=1)):
        return kubeconfig
    with open(ca_file, "rb") as f:
        ca_pem = f.read()
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    key = ec.generate_private_key(ec.SECP256R1())
    request = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")]))
        .sign(key, hashes.SHA256()))
    csr_name = f"node-csr-{node}-{os.urandom(4).hex()}"
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": csr_name},
            "spec": {"request": base64.b64encode(request.public_bytes(
                serialization.Encoding.PEM)).decode(),
                "signerName": SIGNER, "usages": ["digital signature", "client auth"]}}
    csrs = resources.Resource("certificates.k8s.io", "v1", "certificatesigningrequests",
                              "CertificateSigningRequest", False)
    async with Client(ClientConfig(server=server, ssl_context=ctx, token=token)) as client:
        await client.create(csrs, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            csr = await client.get(csrs, csr_name)
            status = csr.get("status") or {}
            for cond in status.get("conditions") or []:
                if cond.get("type") in ("Denied", "Failed") and cond.get("status") == "True":
                    raise RuntimeError(f"certificate request {csr_name} {cond['type'].lower()}: "
                                       f"{cond.get('message', '')}")
            if status.get("certificate"):
                cert_pem = base64.b64decode(status["certificate"])
                break
            if loop.time() > deadline:
                raise TimeoutError(f"certificate request {csr_name} was not signed in "
                                   f"{timeout:.0f} s; is the approver running?")
            await asyncio.sleep(1.0)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    os.makedirs(os.path.dirname(os.path.abspath(kubeconfig)), exist_ok=True)
    tmp = kubeconfig + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(_kubeconfig(server, ca_pem, cert_pem, key_pem, f"system:node:{node}"))
    os.replace(tmp, kubeconfig)
    return kubeconfig
