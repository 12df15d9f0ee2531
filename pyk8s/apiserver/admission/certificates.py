"""CertificateSigningRequest rules (plugin/pkg/admission/certificates, registry/certificates).

- ``stamp_requester`` (what upstream's CSR strategy does with the user): a new CSR
  records its requester in ``spec.username/uid/groups/extra`` and starts without
  status; spec never changes afterwards; ``/status`` writes keep the approval
  conditions; the request must be a PEM ``CERTIFICATE REQUEST``.
- CertificateApproval: approving or denying needs ``approve`` on
  ``signers``/<signerName> (or ``<domain>/*``) in certificates.k8s.io.
- CertificateSigning: writing ``status.certificate`` needs ``sign`` on the signer.
- CertificateSubjectRestriction: the kube-apiserver-client signer never issues for
  the ``system:masters`` group.
"""
from __future__ import annotations

import base64

from cryptography import x509
from cryptography.x509.oid import NameOID

from ...api import errors
from . import Plugin, Request

GROUP = "certificates.k8s.io"
APPROVAL_TYPES = ("Approved", "Denied")
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
MIN_EXPIRATION = 600


def parse_csr(request_b64: str) -> x509.CertificateSigningRequest:
    """The x509 request in a CSR's ``spec.request``; raises ValueError."""
    try:
        pem = base64.b64decode(request_b64 or "")
    except ValueError:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST") from None
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    return x509.load_pem_x509_csr(pem)


def subject_organizations(csr: x509.CertificateSigningRequest) -> list[str]:
    return [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def subject_cn(csr: x509.CertificateSigningRequest) -> str:
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if names else ""


def _invalid(name: str, field: str, message: str, reason="FieldValueInvalid") -> errors.APIError:
    return errors.invalid("CertificateSigningRequest", GROUP, name,
                          [errors.cause(field, message, reason)])


def stamp_requester(req: Request) -> None:
    if req.user is None or req.obj is None:
        return
    csr, spec = req.obj, req.obj.setdefault("spec", {})
    if req.operation == "CREATE":
        csr.pop("status", None)
        for key in ("username", "uid", "groups", "extra"):
            spec.pop(key, None)
        spec["username"] = req.user.name
        if req.user.uid:
            spec["uid"] = req.user.uid
        spec["groups"] = list(req.user.groups)
        if req.user.extra:
            spec["extra"] = {k: list(v) for k, v in req.user.extra.items()}
        if not spec.get("signerName"):
            raise _invalid(req.name, "spec.signerName", "Required value", "FieldValueRequired")
        try:
            parse_csr(spec.get("request", ""))
        except ValueError as err:
            raise _invalid(req.name, "spec.request", f"Invalid value: []byte{{...}}: {err}") \
                from None
        expiration = spec.get("expirationSeconds")
        if expiration is not None and expiration < MIN_EXPIRATION:
            raise _invalid(req.name, "spec.expirationSeconds",
                           f"Invalid value: {expiration}: may not specify a duration less than "
                           f"600 seconds (10 minutes)")
        return
    if req.operation != "UPDATE" or req.old is None:
        return
    req.obj["spec"] = req.old.get("spec") or {}
    if req.subresource == "status":
        kept = [c for c in (req.old.get("status") or {}).get("conditions") or ()
                if c.get("type") in APPROVAL_TYPES]
        status = req.obj.setdefault("status", {})
        others = [c for c in status.get("conditions") or () if c.get("type") not in
                  APPROVAL_TYPES]
        status["conditions"] = kept + others
        if not status["conditions"]:
            del status["conditions"]


def authorized_for_signer(server, user, verb: str, signer: str):
    """upstream's IsAuthorizedForSignerName: the exact signer, or ``<domain>/*``."""
    from ..authz import Attributes, authorize

    async def check() -> bool:
        for name in (signer, signer.split("/", 1)[0] + "/*"):
            allowed, _ = await authorize(server, user, Attributes(
                verb, api_group=GROUP, resource="signers", name=name))
            if allowed:
                return True
        return False
    return check()


class CertificateApproval(Plugin):
    name = "CertificateApproval"

    async def validate(self, req: Request) -> None:
        if req.user is None or not req.is_(GROUP, "certificatesigningrequests", "approval") \
                or req.operation != "UPDATE":
            return
        signer = ((req.obj or {}).get("spec") or {}).get("signerName", "")
        if not await authorized_for_signer(self.server, req.user, "approve", signer):
            raise req.forbidden(f'user not permitted to approve requests with signerName '
                                f'"{signer}"')


class CertificateSigning(Plugin):
    name = "CertificateSigning"

    async def validate(self, req: Request) -> None:
        if req.user is None or not req.is_(GROUP, "certificatesigningrequests", "status") \
                or req.operation != "UPDATE":
            return
        new = ((req.obj or {}).get("status") or {}).get("certificate")
        old = ((req.old or {}).get("status") or {}).get("certificate")
        if new == old:
            return
        signer = ((req.obj or {}).get("spec") or {}).get("signerName", "")
        if not await authorized_for_signer(self.server, req.user, "sign", signer):
            raise req.forbidden(f'user not permitted to sign requests with signerName '
                                f'"{signer}"')


class CertificateSubjectRestriction(Plugin):
    name = "CertificateSubjectRestriction"

    async def validate(self, req: Request) -> None:
        if not req.is_(GROUP, "certificatesigningrequests") or req.operation != "CREATE":
            return
        spec = (req.obj or {}).get("spec") or {}
        if spec.get("signerName") != CLIENT_SIGNER:
            return
        try:
            csr = parse_csr(spec.get("request", ""))
        except ValueError as err:
            raise req.forbidden(f"failed to parse CSR: {err}") from None
        if "system:masters" in subject_organizations(csr):
            raise req.forbidden(f"use of {CLIENT_SIGNER} signer with system:masters group is "
                                f"not allowed")


def validate_approval(name: str, conditions: list[dict], old: list[dict]) -> None:
    """Approved and Denied exclude each other and, once set, stay (registry validation)."""
    types = [c.get("type") for c in conditions]
    if "Approved" in types and "Denied" in types:
        i = types.index("Denied")
        raise _invalid(name, f"status.conditions[{i}].type",
                       'Invalid value: "Denied": Approved and Denied conditions are mutually '
                       'exclusive')
    for kind in APPROVAL_TYPES:
        if any(c.get("type") == kind for c in old) and kind not in types:
            raise errors.invalid("CertificateSigningRequest", GROUP, name, [errors.cause(
                "status.conditions", f'Forbidden: updates may not remove a condition of type '
                                     f'"{kind}"', "FieldValueForbidden")])
