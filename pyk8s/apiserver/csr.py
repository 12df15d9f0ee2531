"""CertificateSigningRequests: the ``approval`` subresource, the approver and the signer.

- ``serve_approval``: ``GET``/``PUT`` certificatesigningrequests/<name>/approval
  (``kubectl certificate approve|deny``) changes only the status conditions; Approved
  and Denied exclude each other and stay once set.
- The approver (pkg/controller/certificates/approver): a pending
  ``kubernetes.io/kube-apiserver-client-kubelet`` CSR that is a well-formed kubelet
  client request is approved when its requester may create
  ``certificatesigningrequests/selfnodeclient`` (renewing its own identity) or
  ``certificatesigningrequests/nodeclient`` (bootstrapping a new node).
- The signer (pkg/controller/certificates/signer): an approved CSR for
  kube-apiserver-client, kube-apiserver-client-kubelet or kubelet-serving that
  passes its signer's checks gets a certificate from the cluster CA, valid for
  ``spec.expirationSeconds`` capped at the signing duration (one year); one that
  fails gets a ``Failed`` condition (``SignerValidationFailure``).

Both loops run inside the API server with the server's own identity, woken by the
CSR cache; each pass is idempotent.
"""
from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime
import logging
import os
from typing import TYPE_CHECKING

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..api import meta as metautil
from ..registry.generic import WriteOptions
from ..api import errors
from . import handlers
from .admission.certificates import (parse_csr, subject_cn, subject_organizations,
                                     validate_approval)
from .authn import NODE_PREFIX, NODES_GROUP, UserInfo
from .requests import Target, content_type, decode_body

if TYPE_CHECKING:
    from .app import APIServer

log = logging.getLogger(__name__)
GROUP = "certificates.k8s.io"
CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = (CLIENT, KUBELET_CLIENT, KUBELET_SERVING)
BACKDATE = datetime.timedelta(minutes=5)

KEY_USAGES = {"signing": "digital_signature", "digital signature": "digital_signature",
              "content commitment": "content_commitment",
              "key encipherment": "key_encipherment", "key agreement": "key_agreement",
              "data encipherment": "data_encipherment", "cert sign": "key_cert_sign",
              "crl sign": "crl_sign", "encipher only": "encipher_only",
              "decipher only": "decipher_only"}
EXT_USAGES = {"any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
              "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
              "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
              "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
              "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
              "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
              "ipsec end system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
              "ipsec tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
              "ipsec user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
              "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
              "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
              "microsoft sgc": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
              "netscape sgc": x509.ObjectIdentifier("2.16.840.1.113730.4.1")}


def _store(server: "APIServer"):
    return server.stores[(GROUP, "v1", "certificatesigningrequests")]


def conditions(csr: dict) -> list[dict]:
    return list((csr.get("status") or {}).get("conditions") or ())


def has_condition(csr: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status", "True") == "True"
               for c in conditions(csr))


def stamp_times(new: list[dict], old: list[dict]) -> list[dict]:
    """upstream's populateConditionTimestamps."""
    now = metautil.now()
    out = []
    for c in new:
        c = dict(c)
        c.setdefault("status", "True")
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            previous = next((o for o in old if o.get("type") == c.get("type")), None)
            keep = previous and previous.get("status") == c["status"]
            c["lastTransitionTime"] = previous.get("lastTransitionTime") if keep else now
            if not c["lastTransitionTime"]:
                c["lastTransitionTime"] = now
        out.append(c)
    return out


# -- the approval subresource ---------------------------------------------------------------

async def serve_approval(server: "APIServer", request: web.Request, t: Target) -> web.Response:
    store = _store(server)
    if request.method == "GET":
        return handlers.respond(await store.get("", t.name))
    if request.method != "PUT":
        raise errors.method_not_allowed(request.method.lower(),
                                        "certificatesigningrequests/approval", GROUP)
    body = decode_body(await request.read(), content_type(request))
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an object")
    wanted = list((body.get("status") or {}).get("conditions") or ())
    want_rv = str((body.get("metadata") or {}).get("resourceVersion") or "")

    def transform(old: dict) -> dict:
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict("certificatesigningrequests", GROUP, t.name, errors.MODIFIED)
        previous = conditions(old)
        validate_approval(t.name, wanted, previous)
        status = dict(old.get("status") or {})
        status["conditions"] = stamp_times(wanted, previous)
        old["status"] = status
        return old
    out = await store.patch("", t.name, transform, handlers.write_options(request),
                            subresource="status")
    return handlers.respond(out)


# -- validation per signer (pkg/apis/certificates/helpers.go) -----------------------------

def _client_usages(usages: list[str]) -> str | None:
    has_client = False
    for u in usages:
        if u == "client auth":
            has_client = True
        elif u not in ("digital signature", "key encipherment"):
            return f"invalid usage for client certificate: {u}"
    return None if has_client else "missing required usage for client certificate: client auth"


def _serving_usages(usages: list[str]) -> str | None:
    has_server = False
    for u in usages:
        if u == "server auth":
            has_server = True
        elif u not in ("digital signature", "key encipherment"):
            return f"invalid usage for serving certificate: {u}"
    return None if has_server else "missing required usage for serving certificate: server auth"


def _sans(req: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def kubelet_client_problem(req: x509.CertificateSigningRequest, usages: list[str]) -> str | None:
    if subject_organizations(req) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    sans = _sans(req)
    if sans is not None and len(list(sans)):
        return "DNS, email, IP or URI subjectAltNames are not allowed"
    if not subject_cn(req).startswith(NODE_PREFIX):
        return "subject common name does not begin with system:node:"
    return _client_usages(usages)


def kubelet_serving_problem(req: x509.CertificateSigningRequest, usages: list[str]) -> str | None:
    if subject_organizations(req) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if not subject_cn(req).startswith(NODE_PREFIX):
        return "subject common name does not begin with system:node:"
    sans = _sans(req)
    names = [n for n in (sans or []) if isinstance(n, (x509.DNSName, x509.IPAddress))]
    if not names:
        return "DNS or IP subjectAltName is required"
    if sans is not None and any(isinstance(n, (x509.RFC822Name, x509.UniformResourceIdentifier))
                                for n in sans):
        return "Email and URI subjectAltNames are not allowed"
    return _serving_usages(usages)


def signer_problem(signer: str, req: x509.CertificateSigningRequest,
                   usages: list[str]) -> str | None:
    if signer == CLIENT:
        return _client_usages(usages)
    if signer == KUBELET_CLIENT:
        return kubelet_client_problem(req, usages)
    return kubelet_serving_problem(req, usages)


# -- signing -----------------------------------------------------------------------------

class Authority:
    """The cluster CA that signs approved requests."""

    def __init__(self, cert_pem: bytes, key_pem: bytes):
        self.cert = x509.load_pem_x509_certificate(cert_pem)
        self.key = serialization.load_pem_private_key(key_pem, None)

    @classmethod
    def load(cls, data_dir: str) -> "Authority | None":
        d = os.path.join(data_dir, "server", "tls")
        crt, key = os.path.join(d, "server-ca.crt"), os.path.join(d, "server-ca.key")
        if not (os.path.exists(crt) and os.path.exists(key)):
            return None
        with open(crt, "rb") as c, open(key, "rb") as k:
            return cls(c.read(), k.read())

    def sign(self, req: x509.CertificateSigningRequest, usages: list[str],
             duration: datetime.timedelta) -> bytes:
        now = datetime.datetime.now(datetime.timezone.utc)
        not_after = min(now + duration, self.cert.not_valid_after_utc)
        flags = {v: False for v in KEY_USAGES.values()}
        for u in usages:
            if u in KEY_USAGES:
                flags[KEY_USAGES[u]] = True
        ext = [EXT_USAGES[u] for u in usages if u in EXT_USAGES]
        builder = (x509.CertificateBuilder().subject_name(req.subject)
                   .issuer_name(self.cert.subject).public_key(req.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - BACKDATE).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True))
        if any(flags.values()):
            builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
        if ext:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
        sans = _sans(req)
        if sans is not None and len(list(sans)):
            builder = builder.add_extension(sans, critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()),
            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)


class CSRController:
    """The approver and the signer, over the CSR watch cache."""

    def __init__(self, server: "APIServer", authority: Authority | None, *,
                 signing_duration: int):
        self.server = server
        self.authority = authority
        self.max_duration = signing_duration
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._cache = None

    def _watch_cache(self) -> None:
        cache = _store(self.server).cache
        if cache is self._cache:
            return
        self._cache = cache
        cache.listeners.append(self._changed)
        self._pending |= {o["metadata"]["name"] for o in cache.objects.values()}
        self._wake.set()

    def _changed(self, kind, obj: dict, prev: dict | None) -> None:
        self._pending.add(obj["metadata"]["name"])
        self._wake.set()

    def start(self) -> None:
        self._watch_cache()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="csr-controller", context=contextvars.Context())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._watch_cache()
            while self._pending:
                name = self._pending.pop()
                try:
                    await self.reconcile(name)
                except errors.APIError as err:
                    if err.code == 409:
                        self._pending.add(name)
                        continue
                    log.warning("CSR %s: %s", name, err.message)
                except Exception:
                    log.exception("CSR %s failed", name)

    async def reconcile(self, name: str) -> None:
        store = _store(self.server)
        csr = store.cache.objects.get(store.key("", name))
        if csr is None or (csr.get("status") or {}).get("certificate"):
            return
        if not has_condition(csr, "Approved") and not has_condition(csr, "Denied"):
            await self.maybe_approve(csr)
            return
        if has_condition(csr, "Approved") and not has_condition(csr, "Denied") and \
                not has_condition(csr, "Failed"):
            await self.sign(csr)

    async def maybe_approve(self, csr: dict) -> None:
        from .authz import Attributes, authorize
        spec = csr.get("spec") or {}
        if spec.get("signerName") != KUBELET_CLIENT:
            return
        try:
            req = parse_csr(spec.get("request", ""))
        except ValueError:
            return
        if kubelet_client_problem(req, list(spec.get("usages") or ())) is not None:
            return
        requester = UserInfo(spec.get("username", ""), spec.get("uid", ""),
                             tuple(spec.get("groups") or ()),
                             {k: tuple(v) for k, v in (spec.get("extra") or {}).items()})
        recognizers = []
        if spec.get("username") == subject_cn(req):
            recognizers.append(("selfnodeclient", "Auto approving self kubelet client "
                                                  "certificate after SubjectAccessReview."))
        recognizers.append(("nodeclient", "Auto approving kubelet client certificate after "
                                          "SubjectAccessReview."))
        for sub, message in recognizers:
            allowed, _ = await authorize(self.server, requester, Attributes(
                "create", api_group=GROUP, api_version="*",
                resource="certificatesigningrequests", subresource=sub))
            if allowed:
                await self._add_condition(csr["metadata"]["name"], {
                    "type": "Approved", "status": "True", "reason": "AutoApproved",
                    "message": message})
                return

    async def _add_condition(self, name: str, condition: dict) -> None:
        def transform(current: dict) -> dict:
            status = dict(current.get("status") or {})
            previous = list(status.get("conditions") or ())
            status["conditions"] = previous + stamp_times([condition], previous)
            current["status"] = status
            return current
        await _store(self.server).patch("", name, transform, WriteOptions(),
                                        subresource="status")

    async def sign(self, csr: dict) -> None:
        spec = csr.get("spec") or {}
        signer = spec.get("signerName")
        if signer not in SIGNERS or self.authority is None:
            return
        name = csr["metadata"]["name"]
        usages = list(spec.get("usages") or ())
        try:
            req = parse_csr(spec.get("request", ""))
            problem = signer_problem(signer, req, usages)
        except ValueError as err:
            problem = str(err)
        if problem is not None:
            await self._add_condition(name, {"type": "Failed", "status": "True",
                                             "reason": "SignerValidationFailure",
                                             "message": problem})
            return
        seconds = self.max_duration
        if spec.get("expirationSeconds"):
            seconds = min(seconds, max(int(spec["expirationSeconds"]), 600))
        pem = self.authority.sign(req, usages, datetime.timedelta(seconds=seconds))

        def transform(current: dict) -> dict:
            status = dict(current.get("status") or {})
            if not status.get("certificate"):
                status["certificate"] = base64.b64encode(pem).decode()
            current["status"] = status
            return current
        await _store(self.server).patch("", name, transform, WriteOptions(),
                                        subresource="status")
