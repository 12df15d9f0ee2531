"""Per-namespace identity: the ``default`` ServiceAccount, the ``kube-root-ca.crt``
ConfigMap, and legacy service-account token Secrets filled in on request.

Role: three upstream controllers —
- ``serviceaccount-controller`` (``serviceaccounts_controller.go``): every Active
  namespace has a ServiceAccount ``default``; recreated when deleted;
- ``root-ca-certificate-publisher-controller`` (``rootcacertpublisher``): every
  Active namespace has ConfigMap ``kube-root-ca.crt`` with the cluster CA in
  ``ca.crt`` (the configured one, else the one the client trusts) and upstream's
  description annotation; edits are reverted;
- ``serviceaccount-token-controller`` (``tokens_controller.go``): a Secret of type
  ``kubernetes.io/service-account-token`` naming a ServiceAccount gets ``token`` (a
  legacy JWT signed with the service-account key), ``ca.crt`` and ``namespace``;
  tokens of a deleted ServiceAccount are deleted. Nothing creates such Secrets
  unasked: since 1.24 they exist only when a user creates one.

Invariants:
- Nothing is created in a namespace that is not Active (terminating namespaces
  refuse creations, and a retry would loop).
- Legacy tokens carry upstream's claims (issuer ``kubernetes/serviceaccount``, the
  ``kubernetes.io/serviceaccount/*`` private claims, no expiry) so the API server's
  legacy token authenticator accepts them.
"""
from __future__ import annotations

import base64
import hashlib
import logging

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_already_exists, is_not_found
from pyk8s.client import resources as r

from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)

DEFAULT_SERVICE_ACCOUNTS = ("default",)
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
LEGACY_ISSUER = "kubernetes/serviceaccount"


def _active(ns: dict | None) -> bool:
    return ns is not None and (ns.get("status") or {}).get("phase", "Active") == "Active"


def _terminating_refusal(err: ApiError) -> bool:
    """The create failed because the namespace is gone or going (do not retry)."""
    causes = (err.details or {}).get("causes") or []
    return is_not_found(err) or any(c.get("reason") == "NamespaceTerminating" or
                                    c.get("type") == "NamespaceTerminating" for c in causes)


# --- pure decisions ----------------------------------------------------------------------

def root_ca_from_client(client) -> str:
    """The CA bundle the client trusts (upstream's fallback to the kubeconfig's CA when
    ``--root-ca-file`` is not given); empty when it trusts none explicitly."""
    import ssl
    ctx = getattr(getattr(client, "config", None), "ssl_context", None)
    if ctx is None:
        return ""
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in ctx.get_ca_certs(binary_form=True))


def root_ca_configmap(ca_pem: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP,
                         "annotations": {DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}},
            "data": {"ca.crt": ca_pem}}


def root_ca_update(cm: dict, ca_pem: str) -> dict | None:
    """The ConfigMap to write back, or None when data and annotation are right."""
    data = {"ca.crt": ca_pem}
    if cm.get("data") == data and m.annotations(cm).get(DESCRIPTION_ANNOTATION):
        return None
    new = {**cm, "data": data, "metadata": dict(cm["metadata"])}
    new["metadata"]["annotations"] = {**m.annotations(cm),
                                      DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}
    return new


def legacy_claims(sa: dict, secret_name: str) -> dict:
    """``serviceaccount.LegacyClaims``."""
    md = sa["metadata"]
    return {"iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": md["namespace"],
            "kubernetes.io/serviceaccount/secret.name": secret_name,
            "kubernetes.io/serviceaccount/service-account.name": md["name"],
            "kubernetes.io/serviceaccount/service-account.uid": md.get("uid", ""),
            "sub": f"system:serviceaccount:{md['namespace']}:{md['name']}"}


def key_id(private_pem: bytes) -> str:
    """The JWT ``kid``: base64url SHA-256 of the public key's DER encoding."""
    from cryptography.hazmat.primitives import serialization
    public = serialization.load_pem_private_key(private_pem, None).public_key()
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def sign_legacy_token(private_pem: bytes, sa: dict, secret_name: str) -> str:
    import jwt
    return jwt.encode(legacy_claims(sa, secret_name), private_pem, algorithm="RS256",
                      headers={"kid": key_id(private_pem)})


def token_secret_update(secret: dict, sa: dict, *, ca_pem: str, token: str | None) -> dict | None:
    """The filled-in Secret, or None when ``token``, ``ca.crt`` and ``namespace`` are set
    (``generateTokenIfNeeded``); ``token`` is only used when one is missing."""
    data = dict(secret.get("data") or {})
    ns = secret["metadata"]["namespace"]
    needs_ca = bool(ca_pem) and data.get("ca.crt") != _b64(ca_pem)
    needs_ns = data.get("namespace") != _b64(ns)
    needs_token = not data.get("token")
    needs_uid = m.annotations(secret).get(SA_UID_ANNOTATION) != sa["metadata"].get("uid")
    if not (needs_ca or needs_ns or needs_token or needs_uid):
        return None
    if needs_ca:
        data["ca.crt"] = _b64(ca_pem)
    if needs_ns:
        data["namespace"] = _b64(ns)
    if needs_token and token is not None:
        data["token"] = _b64(token)
    new = {**secret, "data": data, "metadata": dict(secret["metadata"])}
    new["metadata"]["annotations"] = {**m.annotations(secret),
                                      SA_UID_ANNOTATION: sa["metadata"].get("uid", "")}
    return new


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- controllers ----------------------------------------------------------------------

class ServiceAccountsController(CoreController):
    """A ``default`` ServiceAccount in every Active namespace."""

    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="serviceaccount-controller", workers=1)
        self.namespaces = self.informer(r.NAMESPACES)
        self.accounts = self.informer(r.SERVICEACCOUNTS)
        self.namespaces.add_event_handler(on_add=self._ns, on_update=lambda o, n: self._ns(n))
        self.accounts.add_event_handler(on_delete=self._sa_deleted)

    def _ns(self, ns: dict) -> None:
        self.enqueue(ns["metadata"]["name"])

    def _sa_deleted(self, sa: dict) -> None:
        if sa["metadata"]["name"] in DEFAULT_SERVICE_ACCOUNTS:
            self.enqueue(sa["metadata"]["namespace"])

    async def sync(self, key: str) -> None:
        ns = self.namespaces.store.get(key)
        if not _active(ns) or (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        for name in DEFAULT_SERVICE_ACCOUNTS:
            if self.accounts.store.get_object(key, name) is not None:
                continue
            try:
                await self.client.create(r.SERVICEACCOUNTS, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": key}}, namespace=key)
            except ApiError as err:
                if is_already_exists(err) or _terminating_refusal(err):
                    continue
                raise


class RootCACertPublisher(CoreController):
    """``kube-root-ca.crt`` in every Active namespace."""

    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="root-ca-certificate-publisher-controller", workers=1)
        self.ca_pem = ctx.settings.serviceaccounts.root_ca_pem or root_ca_from_client(ctx.client)
        self.namespaces = self.informer(r.NAMESPACES)
        self.configmaps = self.informer(r.CONFIGMAPS)
        self.namespaces.add_event_handler(on_add=self._ns, on_update=lambda o, n: self._ns(n))
        self.configmaps.add_event_handler(on_update=lambda o, n: self._cm(n),
                                          on_delete=self._cm)

    def _ns(self, ns: dict) -> None:
        if _active(ns):
            self.enqueue(ns["metadata"]["name"])

    def _cm(self, cm: dict) -> None:
        if cm["metadata"]["name"] == ROOT_CA_CONFIGMAP:
            self.enqueue(cm["metadata"]["namespace"])

    async def sync(self, key: str) -> None:
        ns = self.namespaces.store.get(key)
        if not _active(ns):
            return
        cm = self.configmaps.store.get_object(key, ROOT_CA_CONFIGMAP)
        if cm is None:
            try:
                await self.client.create(r.CONFIGMAPS, root_ca_configmap(self.ca_pem),
                                         namespace=key)
            except ApiError as err:
                if is_already_exists(err) or _terminating_refusal(err):
                    return
                raise
            return
        new = root_ca_update(cm, self.ca_pem)
        if new is not None:
            await self.client.update(r.CONFIGMAPS, new, namespace=key)


class TokensController(CoreController):
    """Legacy token Secrets: filled in when created, deleted with their account."""

    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="serviceaccount-token-controller", workers=1)
        s = ctx.settings.serviceaccounts
        self.key_pem, self.ca_pem = s.signing_key_pem, s.root_ca_pem
        self.accounts = self.informer(r.SERVICEACCOUNTS)
        self.secrets = self.informer(r.SECRETS, field_selector=f"type={SA_TOKEN_TYPE}")
        self.accounts.add_event_handler(on_delete=self._sa_deleted)
        self.secrets.add_event_handler(on_add=self.enqueue,
                                       on_update=lambda o, n: self.enqueue(n))

    def _sa_deleted(self, sa: dict) -> None:
        for secret in self.secrets.store.list_namespace(sa["metadata"]["namespace"]):
            if m.annotations(secret).get(SA_NAME_ANNOTATION) == sa["metadata"]["name"]:
                self.enqueue(secret)

    async def _account(self, secret: dict) -> dict | None:
        ns = secret["metadata"]["namespace"]
        name = m.annotations(secret).get(SA_NAME_ANNOTATION, "")
        uid = m.annotations(secret).get(SA_UID_ANNOTATION, "")
        sa = self.accounts.store.get_object(ns, name)
        if sa is None:
            # The cache may lag behind a just-created account: ask the API.
            try:
                sa = await self.client.get(r.SERVICEACCOUNTS, name, namespace=ns)
            except ApiError as err:
                if is_not_found(err):
                    return None
                raise
        if uid and sa["metadata"].get("uid") != uid:
            return None
        return sa

    async def sync(self, key: str) -> None:
        secret = self.secrets.store.get(key)
        if secret is None or secret.get("type") != SA_TOKEN_TYPE:
            return
        if secret["metadata"].get("deletionTimestamp"):
            return
        sa = await self._account(secret)
        ns, name = secret["metadata"]["namespace"], secret["metadata"]["name"]
        if sa is None:
            try:
                await self.client.delete(r.SECRETS, name, namespace=ns,
                                         preconditions={"uid": secret["metadata"]["uid"]})
            except ApiError as err:
                if not is_not_found(err):
                    raise
            return
        token = None
        if not (secret.get("data") or {}).get("token"):
            token = sign_legacy_token(self.key_pem, sa, name)
        new = token_secret_update(secret, sa, ca_pem=self.ca_pem, token=token)
        if new is not None:
            await self.client.update(r.SECRETS, new, namespace=ns)


def new_serviceaccount_controller(ctx: ControllerContext) -> ServiceAccountsController:
    return ServiceAccountsController(ctx)


def new_root_ca_publisher(ctx: ControllerContext) -> RootCACertPublisher | None:
    """None when there is no CA to publish (neither configured nor trusted by the client)."""
    if not (ctx.settings.serviceaccounts.root_ca_pem or root_ca_from_client(ctx.client)):
        return None
    return RootCACertPublisher(ctx)


def new_tokens_controller(ctx: ControllerContext) -> TokensController:
    return TokensController(ctx)
