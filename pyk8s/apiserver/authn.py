"""Authentication: who sent a request (upstream's apiserver/pkg/authentication).

Authenticators are tried in upstream's order and the first that recognises the
request wins: the x509 client certificate the TLS handshake verified against the
cluster CA (CN is the user, each O a group), then a bearer token (a bootstrap token
``<id>.<secret>`` from a ``bootstrap-token-<id>`` Secret in kube-system, or a
service-account JWT from tokens.py). A request with no credentials is
``system:anonymous`` in ``system:unauthenticated``. A bearer token no authenticator
accepts is never anonymous: it is answered 401, as upstream's fail-on-error union.

Impersonation (``Impersonate-User``/``-Group``/``-Uid``/``-Extra-*`` headers) runs
after authentication: every requested attribute needs the ``impersonate`` verb on
users, groups, serviceaccounts, uids or userextras, checked with the authorizer.

Invariants:
- every authenticated user but ``system:anonymous`` carries ``system:authenticated``;
- service-account users carry ``system:serviceaccounts`` and
  ``system:serviceaccounts:<namespace>``;
- a token is compared in constant time.
"""
from __future__ import annotations

import dataclasses
import hmac
import re
from typing import TYPE_CHECKING, Mapping
from urllib.parse import unquote

from aiohttp import web

from ..api import meta as metautil
from ..api import errors

if TYPE_CHECKING:
    from .app import APIServer

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
MASTERS = "system:masters"
ANONYMOUS_USER = "system:anonymous"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
BOOTSTRAP_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS = "system:bootstrappers"
BOOTSTRAP_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
BOOTSTRAP_SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_GROUP_PATTERN = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


@dataclasses.dataclass(frozen=True)
class UserInfo:
    """An authenticated identity (authentication.k8s.io/v1 UserInfo)."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict,
                                                             compare=False)

    def to_dict(self) -> dict:
        out: dict = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "UserInfo":
        d = d or {}
        return cls(d.get("username") or d.get("user") or "", d.get("uid") or "",
                   tuple(d.get("groups") or ()),
                   {k: tuple(v or ()) for k, v in (d.get("extra") or {}).items()})

    @property
    def privileged(self) -> bool:
        return MASTERS in self.groups


ANONYMOUS = UserInfo(ANONYMOUS_USER, groups=(UNAUTHENTICATED,))


class TokenInvalid(Exception):
    """A bearer token was presented and rejected; the message says why."""


def unauthorized() -> errors.APIError:
    return errors.APIError(401, "Unauthorized", "Unauthorized")


def with_authenticated(name: str, groups, *, uid: str = "", extra=None) -> UserInfo:
    groups = tuple(g for g in groups if g != AUTHENTICATED)
    return UserInfo(name, uid, groups + (AUTHENTICATED,), extra or {})


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (SA_GROUP, f"{SA_GROUP}:{namespace}")


def split_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a ``system:serviceaccount:<ns>:<name>`` user, else None."""
    if not username.startswith(SA_PREFIX):
        return None
    parts = username[len(SA_PREFIX):].split(":")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def node_name(user: UserInfo) -> str | None:
    """The node a kubelet identity speaks for (``system:node:<name>`` in system:nodes)."""
    if NODES_GROUP not in user.groups or not user.name.startswith(NODE_PREFIX):
        return None
    return user.name[len(NODE_PREFIX):]


# -- authenticators ------------------------------------------------------------------

def x509_user(request: web.Request) -> UserInfo | None:
    """The verified client certificate's subject (the handshake checked chain/expiry)."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport else None
    if not cert:
        return None
    cn, orgs = "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return with_authenticated(cn, orgs)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def bootstrap_user(server: "APIServer", token: str) -> UserInfo | None:
    """A bootstrap token's identity, or None when the token is not a valid one."""
    m = BOOTSTRAP_TOKEN.match(token)
    if m is None:
        return None
    token_id, token_secret = m.groups()
    store = server.stores[("", "v1", "secrets")]
    secret = store.cache.objects.get(store.key("kube-system", "bootstrap-token-" + token_id))
    if secret is None or secret.get("type") != BOOTSTRAP_SECRET_TYPE:
        return None
    if secret["metadata"].get("deletionTimestamp"):
        return None
    data = _secret_strings(secret)
    if data.get("token-id", token_id) != token_id:
        return None
    if not hmac.compare_digest(data.get("token-secret", ""), token_secret):
        return None
    if data.get("usage-bootstrap-authentication") != "true":
        return None
    expiration = data.get("expiration")
    if expiration and _expired(expiration):
        return None
    groups = [BOOTSTRAPPERS]
    for g in (data.get("auth-extra-groups") or "").split(","):
        g = g.strip()
        if g and BOOTSTRAP_GROUP_PATTERN.match(g) and g not in groups:
            groups.append(g)
    return with_authenticated(BOOTSTRAP_PREFIX + token_id, groups)


def _secret_strings(secret: dict) -> dict[str, str]:
    import base64
    out = dict(secret.get("stringData") or {})
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _expired(stamp: str) -> bool:
    import datetime
    try:
        when = metautil.parse_time(stamp)
    except ValueError:
        return True
    return when <= datetime.datetime.now(datetime.timezone.utc)


async def token_user(server: "APIServer", token: str, *,
                     audiences: tuple[str, ...] = ()) -> UserInfo:
    """The identity of a bearer token; raises TokenInvalid with upstream's reasons."""
    user = bootstrap_user(server, token)
    if user is not None:
        return user
    if BOOTSTRAP_TOKEN.match(token):
        raise TokenInvalid("invalid bearer token")
    from . import tokens
    return await tokens.authenticate(server, token, audiences=audiences)


async def authenticate(server: "APIServer", request: web.Request) -> UserInfo | None:
    """The request's identity; None when it presented credentials that are invalid
    (the caller answers 401 Unauthorized)."""
    user = x509_user(request)
    if user is not None:
        return user
    token = bearer_token(request)
    if token is not None:
        try:
            return await token_user(server, token)
        except TokenInvalid:
            return None
    if not server.security.config.anonymous:
        return None
    return ANONYMOUS


# -- impersonation ---------------------------------------------------------------------

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "Impersonate-Extra-"


async def impersonate(server: "APIServer", request: web.Request,
                      user: UserInfo) -> UserInfo:
    """The identity the request asks to act as, after checking ``impersonate`` rights.

    Returns ``user`` unchanged when no impersonation header is present.
    """
    from .authz import Attributes, authorize, forbidden
    headers = request.headers
    name = headers.get(IMPERSONATE_USER, "")
    groups = [g for g in headers.getall(IMPERSONATE_GROUP, []) if g]
    uid = headers.get(IMPERSONATE_UID, "")
    extra: dict[str, list[str]] = {}
    for key in headers:
        if key.lower().startswith(IMPERSONATE_EXTRA.lower()):
            extra_key = unquote(key[len(IMPERSONATE_EXTRA):]).lower()
            extra.setdefault(extra_key, []).extend(headers.getall(key))
    if not name:
        if groups or uid or extra:
            raise errors.APIError(
                500, "InternalError", "Internal error occurred: requested "
                f"{_describe(groups, uid, extra)} without impersonating a user")
        return user
    checks: list[Attributes] = []
    sa = split_service_account(name)
    if sa is not None:
        checks.append(Attributes("impersonate", namespace=sa[0], resource="serviceaccounts",
                                 name=sa[1]))
    else:
        checks.append(Attributes("impersonate", resource="users", name=name))
    checks += [Attributes("impersonate", resource="groups", name=g) for g in groups]
    if uid:
        checks.append(Attributes("impersonate", api_group="authentication.k8s.io",
                                 resource="uids", name=uid))
    for key, values in extra.items():
        checks += [Attributes("impersonate", api_group="authentication.k8s.io",
                              resource="userextras", subresource=key, name=v)
                   for v in values]
    for attrs in checks:
        allowed, reason = await authorize(server, user, attrs)
        if not allowed:
            raise forbidden(user, attrs, reason)
    out_groups = list(groups)
    if sa is not None and not groups:
        out_groups = list(service_account_groups(sa[0]))
    if name == ANONYMOUS_USER:
        if UNAUTHENTICATED not in out_groups:
            out_groups.append(UNAUTHENTICATED)
        return UserInfo(name, uid, tuple(out_groups), {k: tuple(v) for k, v in extra.items()})
    return with_authenticated(name, out_groups, uid=uid,
                              extra={k: tuple(v) for k, v in extra.items()})


def _describe(groups, uid, extra) -> str:
    parts = []
    if groups:
        parts.append(f"groups={groups}")
    if uid:
        parts.append(f"uid={uid}")
    if extra:
        parts.append(f"extra={extra}")
    return ", ".join(parts)
