"""Component identities and certificate renewal (k3s' layout under <data-dir>/server).

Each control-plane component gets its own least-privilege client certificate and
kubeconfig, named as upstream's bootstrap RBAC expects: ``system:kube-controller-manager``,
``system:kube-scheduler`` and ``system:kube-proxy`` (kubeconfigs in
``server/cred/<component>.kubeconfig``, certificates in ``server/tls/client-*.crt``).
``renew_expiring`` runs at start before the certificates are loaded: a leaf
certificate that expires within ``RENEW_BEFORE`` (or already has) is removed so it is
issued again from the CA; the CA itself is never replaced. Keys are written 0600.
"""
from __future__ import annotations

import datetime
import os

from cryptography import x509

from . import KeyPair, _load_or_make, _write, issue, kubeconfig

RENEW_BEFORE = datetime.timedelta(days=90)
COMPONENTS = {"controller": "system:kube-controller-manager",
              "scheduler": "system:kube-scheduler",
              "proxy": "system:kube-proxy"}
CA_NAMES = ("server-ca",)


def expires_within(cert_pem: bytes, delta: datetime.timedelta) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    now = datetime.datetime.now(datetime.timezone.utc)
    return cert.not_valid_after_utc - now < delta


def renew_expiring(data_dir: str, *, within: datetime.timedelta = RENEW_BEFORE) -> list[str]:
    """Remove leaf certificates (and their keys) that expire soon; their names."""
    d = os.path.join(data_dir, "server", "tls")
    if not os.path.isdir(d):
        return []
    renewed = []
    for entry in sorted(os.listdir(d)):
        name, ext = os.path.splitext(entry)
        if ext != ".crt" or name in CA_NAMES:
            continue
        path = os.path.join(d, entry)
        with open(path, "rb") as f:
            pem = f.read()
        try:
            due = expires_within(pem, within)
        except ValueError:
            due = True  # unreadable: issue it again
        if due:
            os.remove(path)
            key = os.path.join(d, name + ".key")
            if os.path.exists(key):
                os.remove(key)
            renewed.append(name)
    return renewed


def ensure_component_credentials(data_dir: str, server_url: str, ca: KeyPair) -> dict[str, str]:
    """Client certificates and kubeconfigs for the controller manager, scheduler and
    kube-proxy; returns component -> kubeconfig path."""
    tls = os.path.join(data_dir, "server", "tls")
    cred = os.path.join(data_dir, "server", "cred")
    os.makedirs(tls, mode=0o700, exist_ok=True)
    os.makedirs(cred, mode=0o700, exist_ok=True)
    out = {}
    for component, user in COMPONENTS.items():
        pair = _load_or_make(tls, f"client-{component}",
                             lambda user=user: issue(ca, user, client=True))
        path = os.path.join(cred, f"{component}.kubeconfig")
        _write(path, kubeconfig(server_url, ca, pair, user=user).encode())
        out[component] = path
    return out


def node_credentials(ca: KeyPair, node: str) -> KeyPair:
    """A kubelet client certificate (``system:node:<name>`` in ``system:nodes``) for an
    embedded node that does not go through TLS bootstrap."""
    return issue(ca, f"system:node:{node}", orgs=("system:nodes",), client=True)
