"""Service-account tokens: signing keys, the TokenRequest API and JWT validation.

Tokens are RS256 JWTs signed with ``<data-dir>/server/tls/service.key`` (made on
first start, mode 0600), with upstream's claims (pkg/serviceaccount/claims.go):
``iss``, ``sub`` = ``system:serviceaccount:<ns>:<name>``, ``aud``, ``exp``, ``iat``,
``nbf``, ``jti`` and a private ``kubernetes.io`` claim naming the namespace, the
service account and the pod, secret or node the token is bound to. Legacy
Secret-based tokens (issuer ``kubernetes/serviceaccount``) are validated too.

Invariants:
- a token is valid only while its service account (same uid) exists, and, if it is
  bound, while the bound object (same uid) exists and is not being deleted;
- ``exp``/``nbf`` are checked with 60 s of leeway, as upstream;
- the JWT ``kid`` header is the base64url SHA-256 of the public key's DER bytes.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import os
import time
import uuid
from typing import TYPE_CHECKING

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..api import meta as metautil
from ..api import errors
from .authn import SA_PREFIX, TokenInvalid, UserInfo, service_account_groups, with_authenticated

if TYPE_CHECKING:
    from .app import APIServer

LEGACY_ISSUER = "kubernetes/serviceaccount"
LEEWAY = 60
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
DEFAULT_EXPIRATION = 3600
# The kubelet asks for 3607 s; the API server then issues a year-long token that
# warns after 3607 s (--service-account-extend-token-expiration, on upstream).
KUBELET_EXPIRATION = 3607
EXTENDED_EXPIRATION = 365 * 24 * 3600
EXTRA_PREFIX = "authentication.kubernetes.io/"


@dataclasses.dataclass
class SigningKey:
    private_pem: bytes
    key_id: str

    @functools.cached_property
    def public_key(self):
        # Loaded once: loading (and checking) the RSA key takes tens of milliseconds,
        # which every service-account token's verification would otherwise pay.
        return serialization.load_pem_private_key(self.private_pem, None).public_key()

    def jwks(self) -> dict:
        numbers = self.public_key.public_numbers()

        def b64(n: int) -> str:
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return {"keys": [{"use": "sig", "kty": "RSA", "kid": self.key_id, "alg": "RS256",
                          "n": b64(numbers.n), "e": b64(numbers.e)}]}


def load_or_create_key(data_dir: str) -> SigningKey:
    """The service-account signing key under ``<data-dir>/server/tls``, made once."""
    directory = os.path.join(data_dir, "server", "tls")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "service.key")
    if os.path.exists(path):
        with open(path, "rb") as f:
            pem = f.read()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        tmp = path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(pem)
        os.replace(tmp, path)
    public = serialization.load_pem_private_key(pem, None).public_key()
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    return SigningKey(pem, kid)


# -- minting --------------------------------------------------------------------------

def mint(key: SigningKey, *, issuer: str, namespace: str, sa: dict, audiences: list[str],
         expiration: int, bound: dict | None = None, node: dict | None = None,
         warn_after: int | None = None, now: float | None = None) -> tuple[str, int]:
    """A signed token and its expiry (unix seconds)."""
    iat = int(now if now is not None else time.time())
    exp = iat + expiration
    private: dict = {"namespace": namespace,
                     "serviceaccount": {"name": sa["metadata"]["name"],
                                        "uid": sa["metadata"].get("uid", "")}}
    if bound is not None:
        kind = bound["kind"].lower()
        private[kind] = {"name": bound["metadata"]["name"],
                         "uid": bound["metadata"].get("uid", "")}
    if node is not None:
        private["node"] = {"name": node["metadata"]["name"],
                           "uid": node["metadata"].get("uid", "")}
    if warn_after is not None:
        private["warnafter"] = warn_after
    claims = {"aud": audiences, "exp": exp, "iat": iat, "iss": issuer,
              "jti": str(uuid.uuid4()), "kubernetes.io": private, "nbf": iat,
              "sub": f"{SA_PREFIX}{namespace}:{sa['metadata']['name']}"}
    token = jwt.encode(claims, key.private_pem, algorithm="RS256",
                       headers={"kid": key.key_id})
    return token, exp


# -- validation -----------------------------------------------------------------------

def _cached(server: "APIServer", group: str, plural: str, namespace: str,
            name: str) -> dict | None:
    store = server.stores.get((group, "v1", plural))
    if store is None:
        return None
    return store.cache.objects.get(store.key(namespace, name))


async def authenticate(server: "APIServer", token: str, *,
                       audiences: tuple[str, ...] = ()) -> UserInfo:
    """The service account a JWT speaks for; raises TokenInvalid."""
    sec = server.security
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenInvalid("invalid bearer token") from None
    issuer = unverified.get("iss")
    if issuer == LEGACY_ISSUER:
        return _legacy(server, token)
    if issuer not in sec.config.issuers:
        raise TokenInvalid("invalid bearer token")
    if header.get("alg") != "RS256":
        raise TokenInvalid("invalid bearer token")
    wanted = list(audiences or sec.config.api_audiences)
    try:
        claims = jwt.decode(token, sec.signing_key.public_key, algorithms=["RS256"],
                            leeway=LEEWAY, options={"verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise TokenInvalid("invalid bearer token, service account token has expired") \
            from None
    except jwt.PyJWTError:
        raise TokenInvalid("invalid bearer token") from None
    aud = claims.get("aud") or []
    aud = [aud] if isinstance(aud, str) else list(aud)
    if not set(aud) & set(wanted):
        raise TokenInvalid(f"invalid bearer token, token audiences {_q(aud)} is invalid "
                           f"for the target audiences {_q(wanted)}")
    private = claims.get("kubernetes.io") or {}
    namespace = private.get("namespace", "")
    sa_ref = private.get("serviceaccount") or {}
    sa = _cached(server, "", "serviceaccounts", namespace, sa_ref.get("name", ""))
    if sa is None:
        raise TokenInvalid(f"invalid bearer token, service account {namespace}/"
                           f"{sa_ref.get('name', '')} has been deleted")
    if sa_ref.get("uid") and sa["metadata"].get("uid") != sa_ref["uid"]:
        raise TokenInvalid(f"invalid bearer token, service account UID "
                           f"({sa['metadata'].get('uid')}) does not match claim "
                           f"({sa_ref['uid']})")
    extra: dict[str, tuple[str, ...]] = {}
    for kind, plural in (("pod", "pods"), ("secret", "secrets")):
        ref = private.get(kind)
        if not ref:
            continue
        obj = _cached(server, "", plural, namespace, ref.get("name", ""))
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            raise TokenInvalid(f"invalid bearer token, {kind} {namespace}/"
                               f"{ref.get('name', '')} has been deleted")
        if obj["metadata"].get("uid") != ref.get("uid"):
            raise TokenInvalid(f"invalid bearer token, {kind} UID "
                               f"({obj['metadata'].get('uid')}) does not match claim "
                               f"({ref.get('uid')})")
        if kind == "pod":
            extra[EXTRA_PREFIX + "pod-name"] = (ref["name"],)
            extra[EXTRA_PREFIX + "pod-uid"] = (ref["uid"],)
    node_ref = private.get("node")
    if node_ref:
        extra[EXTRA_PREFIX + "node-name"] = (node_ref.get("name", ""),)
        extra[EXTRA_PREFIX + "node-uid"] = (node_ref.get("uid", ""),)
    if claims.get("jti"):
        extra[EXTRA_PREFIX + "credential-id"] = (f"JTI={claims['jti']}",)
    name = sa_ref.get("name", "")
    return with_authenticated(f"{SA_PREFIX}{namespace}:{name}",
                              service_account_groups(namespace),
                              uid=sa["metadata"].get("uid", ""), extra=extra)


def _legacy(server: "APIServer", token: str) -> UserInfo:
    """A Secret-based token: valid while its Secret still holds exactly this token."""
    try:
        claims = jwt.decode(token, server.security.signing_key.public_key,
                            algorithms=["RS256"], options={"verify_aud": False})
    except jwt.PyJWTError:
        raise TokenInvalid("invalid bearer token") from None
    ns = claims.get("kubernetes.io/serviceaccount/namespace", "")
    secret_name = claims.get("kubernetes.io/serviceaccount/secret.name", "")
    sa_name = claims.get("kubernetes.io/serviceaccount/service-account.name", "")
    sa_uid = claims.get("kubernetes.io/serviceaccount/service-account.uid", "")
    secret = _cached(server, "", "secrets", ns, secret_name)
    if secret is None or secret["metadata"].get("deletionTimestamp"):
        raise TokenInvalid(f"invalid bearer token, secret {ns}/{secret_name} has been "
                           f"deleted")
    stored = base64.b64decode((secret.get("data") or {}).get("token", "")).decode(
        errors="replace")
    if stored != token:
        raise TokenInvalid("invalid bearer token, token does not match the secret")
    sa = _cached(server, "", "serviceaccounts", ns, sa_name)
    if sa is None or sa["metadata"].get("uid") != sa_uid:
        raise TokenInvalid(f"invalid bearer token, service account {ns}/{sa_name} has "
                           f"been deleted")
    return with_authenticated(f"{SA_PREFIX}{ns}:{sa_name}", service_account_groups(ns),
                              uid=sa_uid)


def _q(values) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


# -- TokenRequest ------------------------------------------------------------------------

BOUND_KINDS = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


async def serve_token_request(server: "APIServer", request: web.Request, namespace: str,
                              name: str) -> web.Response:
    """POST serviceaccounts/<name>/token: mint a token for the service account."""
    from . import admission, handlers
    from .requests import content_type, decode_body
    if request.method != "POST":
        raise errors.method_not_allowed(request.method.lower(), "serviceaccounts/token")
    body = decode_body(await request.read(), content_type(request))
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an object")
    sa_store = server.stores[("", "v1", "serviceaccounts")]
    sa = await sa_store.get(namespace, name)
    spec = dict(body.get("spec") or {})
    expiration = spec.get("expirationSeconds")
    expiration = DEFAULT_EXPIRATION if expiration in (None, 0) else int(expiration)
    causes = []
    if expiration < MIN_EXPIRATION:
        causes.append(errors.cause("spec.expirationSeconds", f"Invalid value: {expiration}: "
                                   "may not specify a duration less than 10 minutes"))
    elif expiration > MAX_EXPIRATION:
        causes.append(errors.cause("spec.expirationSeconds", f"Invalid value: {expiration}: "
                                   "may not specify a duration larger than 2^32 seconds"))
    ref = spec.get("boundObjectRef")
    if ref and ref.get("kind") not in BOUND_KINDS:
        causes.append(errors.cause("spec.boundObjectRef.kind", f'Unsupported value: '
                                   f'"{ref.get("kind")}": supported values: "Node", "Pod", '
                                   f'"Secret"', "FieldValueNotSupported"))
    if causes:
        raise errors.invalid("TokenRequest", "authentication.k8s.io", name, causes)
    bound = node = None
    if ref:
        plural = BOUND_KINDS[ref["kind"]]
        ns = "" if ref["kind"] == "Node" else namespace
        store = server.stores[("", "v1", plural)]
        bound = await store.get(ns, ref.get("name", ""))
        if ref.get("uid") and ref["uid"] != bound["metadata"].get("uid"):
            raise errors.conflict(plural, "", ref.get("name", ""),
                                  f"the UID in the bound object reference ({ref['uid']}) "
                                  "does not match the UID in record. The object might have "
                                  "been deleted and then recreated")
        if ref["kind"] == "Pod":
            if (bound.get("spec") or {}).get("serviceAccountName", "default") != name:
                raise errors.bad_request(
                    f"cannot bind token for serviceaccount \"{name}\" to pod running with "
                    f"different serviceaccount name.")
            node_name = (bound.get("spec") or {}).get("nodeName")
            if node_name:
                node = _cached(server, "", "nodes", "", node_name)
        elif ref["kind"] == "Node":
            node, bound = bound, None
    audiences = list(spec.get("audiences") or server.security.config.api_audiences)
    out = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
           "metadata": {"name": name, "namespace": namespace,
                        "creationTimestamp": metautil.now()},
           "spec": {"audiences": audiences, "expirationSeconds": expiration,
                    "boundObjectRef": ref}}
    await admission.admit_request(server, "CREATE", out, None, resource="serviceaccounts",
                                  subresource="token", namespace=namespace, name=name)
    warn_after = None
    lifetime = expiration
    if bound is not None and bound.get("kind") == "Pod" and \
            expiration == KUBELET_EXPIRATION and server.security.config.extend_expiration:
        lifetime = EXTENDED_EXPIRATION
        warn_after = int(time.time()) + expiration
    token, exp = mint(server.security.signing_key, issuer=server.security.config.issuer,
                      namespace=namespace, sa=sa, audiences=audiences, expiration=lifetime,
                      bound=bound, node=node, warn_after=warn_after)
    out["status"] = {"token": token,
                     "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime(exp))}
    if not ref:
        out["spec"].pop("boundObjectRef")
    return handlers.respond(out, 201)


def openid_configuration(server: "APIServer") -> dict:
    issuer = server.security.config.issuer
    return {"issuer": issuer, "jwks_uri": f"{server.security.config.jwks_base}/openid/v1/jwks",
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]}
