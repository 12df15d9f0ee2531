"""Kubelet TLS bootstrap: from a join token to the node's own identity.

As upstream's kubelet with ``--bootstrap-kubeconfig``: authenticate with the
bootstrap token (group ``system:bootstrappers``), create a CertificateSigningRequest
for ``system:node:<name>`` in ``system:nodes`` with signer
``kubernetes.io/kube-apiserver-client-kubelet``, wait until the cluster's approver and
signer answer with a certificate, and write a kubeconfig that uses it. The private
key never leaves the node.

Invariants:
- A kubeconfig whose certificate is this node's and has not expired is used as it
  is, however little time it has left: the certificate manager (certrotation.py)
  renews it with the node's own identity, so the join token (24 h by default) is
  needed only for the first start and after the certificate expired, as upstream's
  ``getCurrentCertificateOrBootstrap``.
- When the token is needed and fails, ``BootstrapError`` says why the token was
  needed and what to do.
- The kubeconfig is replaced atomically (0600); every other entry in it is kept.
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

from ..aio import wait_for
from ..client import resources
from ..client.config import ClientConfig
from ..client.errors import ApiError
from ..client.rest import Client
from ..client.transport import TransportError

SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODES_GROUP = "system:nodes"
USAGES = ["digital signature", "client auth"]
CSRS = resources.Resource("certificates.k8s.io", "v1", "certificatesigningrequests",
                          "CertificateSigningRequest", False)


class BootstrapError(RuntimeError):
    """The node has no usable certificate and could not get one with its join token."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


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


def _write_private(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _current_user(doc: dict) -> dict:
    """The ``user`` section the kubeconfig's current context uses."""
    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or []}
    user_name = contexts.get(doc.get("current-context"), {}).get("user")
    users = doc.get("users") or []
    for entry in users:
        if entry.get("name") == user_name:
            return entry.setdefault("user", {})
    if users:
        return users[0].setdefault("user", {})
    raise ValueError("the kubeconfig has no user")


def client_certificate(kubeconfig: str) -> x509.Certificate | None:
    """The client certificate the kubeconfig's current user presents, if any."""
    try:
        with open(kubeconfig) as f:
            doc = yaml.safe_load(f) or {}
        user = _current_user(doc)
        if user.get("client-certificate-data"):
            pem = base64.b64decode(user["client-certificate-data"])
        elif user.get("client-certificate"):
            path = user["client-certificate"]
            if not os.path.isabs(path):
                path = os.path.join(os.path.dirname(os.path.abspath(kubeconfig)), path)
            with open(path, "rb") as f:
                pem = f.read()
        else:
            return None
        return x509.load_pem_x509_certificate(pem)
    except (OSError, KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
        return None


def node_certificate(kubeconfig: str, node: str) -> x509.Certificate | None:
    """The kubeconfig's certificate when it is ``system:node:<node>``'s, else None."""
    cert = client_certificate(kubeconfig)
    if cert is None:
        return None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return cert if cn and cn[0].value == f"system:node:{node}" else None


def valid_for(kubeconfig: str, node: str, *, margin: datetime.timedelta) -> bool:
    """True when ``kubeconfig`` holds this node's certificate, valid past ``margin``."""
    cert = node_certificate(kubeconfig, node)
    return cert is not None and cert.not_valid_after_utc - _now() > margin


def store_credentials(kubeconfig: str, cert_pem: bytes, key_pem: bytes) -> None:
    """Put a new certificate and key into the kubeconfig's current user, atomically.

    Inline data replaces file references (``-data`` wins, as upstream), so the
    kubeconfig alone is the node's identity and one rename switches it.
    """
    with open(kubeconfig) as f:
        doc = yaml.safe_load(f) or {}
    user = _current_user(doc)
    user.pop("client-certificate", None)
    user.pop("client-key", None)
    user["client-certificate-data"] = base64.b64encode(cert_pem).decode()
    user["client-key-data"] = base64.b64encode(key_pem).decode()
    _write_private(kubeconfig, yaml.safe_dump(doc, sort_keys=False))


def new_key_and_request(node: str) -> tuple[bytes, bytes]:
    """A fresh P-256 key (PKCS#8 PEM) and a CSR (PEM) for ``system:node:<node>``."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")]))
        .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, request.public_bytes(serialization.Encoding.PEM)


def _csr_outcome(csr: dict) -> bytes | None:
    """The issued certificate, None while pending; raises when denied or failed."""
    status = csr.get("status") or {}
    name = (csr.get("metadata") or {}).get("name", "")
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Denied", "Failed") and cond.get("status") == "True":
            raise RuntimeError(f"certificate request {name} {cond['type'].lower()}: "
                               f"{cond.get('message', '')}")
    if status.get("certificate"):
        return base64.b64decode(status["certificate"])
    return None


async def wait_for_certificate(client: Client, name: str, *, timeout: float) -> bytes:
    """The certificate of CSR ``name`` once issued (watching it), within ``timeout``."""
    async def wait() -> bytes:
        while True:
            csr = await client.get(CSRS, name)
            cert = _csr_outcome(csr)
            if cert is not None:
                return cert
            try:
                async for event in client.watch(
                        CSRS, field_selector=f"metadata.name={name}", timeout_seconds=60,
                        resource_version=csr["metadata"].get("resourceVersion"),
                        read_timeout=90):
                    if event.type in ("ADDED", "MODIFIED"):
                        cert = _csr_outcome(event.object)
                        if cert is not None:
                            return cert
            except (ApiError, TransportError):
                await asyncio.sleep(1.0)  # a broken watch: read the CSR again
    try:
        return await wait_for(wait(), timeout)
    except TimeoutError:
        raise TimeoutError(f"certificate request {name} was not signed in {timeout:.0f} s; "
                           "is the approver running?") from None


async def request_certificate(client: Client, node: str, *, timeout: float,
                              name: str | None = None,
                              expiration_seconds: int | None = None) -> tuple[bytes, bytes]:
    """Create a kubelet client CSR as ``client``'s identity; (cert PEM, key PEM)."""
    key_pem, request_pem = new_key_and_request(node)
    meta = {"name": name} if name else {"generateName": "csr-"}
    spec = {"request": base64.b64encode(request_pem).decode(), "signerName": SIGNER,
            "usages": list(USAGES)}
    if expiration_seconds:
        spec["expirationSeconds"] = int(expiration_seconds)
    created = await client.create(CSRS, {
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": meta, "spec": spec})
    cert_pem = await wait_for_certificate(client, created["metadata"]["name"], timeout=timeout)
    cert = x509.load_pem_x509_certificate(cert_pem)
    ours = serialization.load_pem_private_key(key_pem, None).public_key()
    if cert.public_key() != ours:
        raise RuntimeError(f"certificate request {created['metadata']['name']}: the issued "
                           "certificate is not for the requested key")
    return cert_pem, key_pem


async def bootstrap(*, server: str, ca_file: str, token: str | None, node: str,
                    kubeconfig: str, timeout: float = 300.0,
                    expiration_seconds: int | None = None) -> str:
    """The node's kubeconfig: the current one while its certificate is valid, else
    one obtained with the join ``token``; returns ``kubeconfig``."""
    current = node_certificate(kubeconfig, node)
    if current is not None and _now() < current.not_valid_after_utc:
        return kubeconfig
    if current is not None:
        why = (f"the client certificate in {kubeconfig} expired at "
               f"{current.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    else:
        why = f"there is no client certificate for system:node:{node} in {kubeconfig}"
    if not token:
        raise BootstrapError(f"node {node}: {why} and no join token was given; create one "
                             "with `pyk8s token create` on a server")
    with open(ca_file, "rb") as f:
        ca_pem = f.read()
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        async with Client(ClientConfig(server=server, ssl_context=ctx, token=token)) as client:
            cert_pem, key_pem = await request_certificate(
                client, node, timeout=timeout, name=f"node-csr-{node}-{os.urandom(4).hex()}",
                expiration_seconds=expiration_seconds)
    except ApiError as err:
        hint = (" (the join token is invalid or expired; create a new one with "
                "`pyk8s token create` on a server)" if err.code in (401, 403) else "")
        raise BootstrapError(f"node {node}: {why}, and TLS bootstrap with the join token "
                             f"failed: {err}{hint}") from err
    except (TransportError, TimeoutError, RuntimeError) as err:
        raise BootstrapError(f"node {node}: {why}, and TLS bootstrap with the join token "
                             f"failed: {err}") from err
    _write_private(kubeconfig, _kubeconfig(server, ca_pem, cert_pem, key_pem,
                                           f"system:node:{node}"))
    return kubeconfig
