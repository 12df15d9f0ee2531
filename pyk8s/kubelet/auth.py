"""Who may call the kubelet's HTTPS endpoint (upstream's pkg/kubelet/server/auth.go).

Role: an aiohttp middleware for the kubelet server. Authentication, in upstream's
order: a client certificate the TLS layer verified against ``--client-ca-file``
(user = CN, groups = O), then a bearer token checked with a TokenReview at the API
server (``--authentication-token-webhook``), then, with ``--anonymous-auth``,
``system:anonymous``. Nobody: 401 ``Unauthorized``. Authorization is
``AlwaysAllow`` or ``Webhook``: a SubjectAccessReview for the node as a resource,
verb from the HTTP method (GET get, POST create, PUT update, PATCH patch, DELETE
delete), resource ``nodes``, name = the node, subresource by path (``/stats``
stats, ``/metrics`` metrics, ``/logs`` log, ``/spec`` spec, anything else proxy).
Denied: 403 ``Forbidden (user=..., verb=..., resource=nodes, subresource=...)``.

Invariants:
- ``/healthz`` is answered without asking who calls (liveness checks carry no
  credentials);
- answers of the API server are cached as upstream's webhook defaults: token reviews
  2 min, allowed decisions 5 min, denied ones 30 s; an API server that cannot be
  asked fails the request (401 for authentication, 500 for authorization), never
  opens it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from typing import Any, Callable

from aiohttp import web

log = logging.getLogger(__name__)

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
OPEN_PATHS = ("/healthz",)
VERBS = {"POST": "create", "GET": "get", "PUT": "update", "PATCH": "patch",
         "DELETE": "delete"}
SUBRESOURCE_PATHS = (("/stats/", "stats"), ("/metrics", "metrics"), ("/logs/", "log"),
                     ("/spec/", "spec"))
TOKEN_TTL = 120.0
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    """The kubelet's flags, with upstream's defaults (open, as a kubelet without a
    config file is); ``SECURE`` is what ``pyk8s server`` and ``agent`` run."""

    anonymous: bool = True  # --anonymous-auth
    token_webhook: bool = False  # --authentication-token-webhook
    authorization_mode: str = "AlwaysAllow"  # --authorization-mode: AlwaysAllow|Webhook


SECURE = AuthConfig(anonymous=False, token_webhook=True, authorization_mode="Webhook")


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def is_subpath(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


def request_attributes(method: str, path: str, node_name: str) -> dict[str, str]:
    """The SubjectAccessReview resourceAttributes for one request."""
    subresource = next((sub for prefix, sub in SUBRESOURCE_PATHS if is_subpath(path, prefix)),
                       "proxy")
    return {"verb": VERBS.get(method, ""), "group": "", "version": "v1",
            "resource": "nodes", "subresource": subresource, "name": node_name}


def certificate_user(peercert: dict | None) -> User | None:
    """The user a verified client certificate names (None without one)."""
    if not peercert:
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return User(cn, tuple(orgs) + (AUTHENTICATED,))


class _TTLCache:
    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key):
        hit = self.entries.get(key)
        if hit is None or hit[0] < self.clock():
            self.entries.pop(key, None)
            return None
        return hit[1]

    def put(self, key, value, ttl: float) -> None:
        if len(self.entries) > 4096:  # bounded: drop what has expired, else everything
            now = self.clock()
            self.entries = {k: v for k, v in self.entries.items() if v[0] >= now}
            if len(self.entries) > 4096:
                self.entries.clear()
        self.entries[key] = (self.clock() + ttl, value)


class ReviewError(Exception):
    """The API server could not be asked."""


class KubeletAuth:
    """Authentication and authorization of the kubelet's callers.

    ``client`` is the kubelet's API client (``request(method, path, body=...)``
    returning the decoded answer); ``node_name`` names the node in every review.
    """

    def __init__(self, config: AuthConfig, *, client, node_name: str,
                 clock: Callable[[], float] = time.monotonic):
        self.config, self.client, self.node_name = config, client, node_name
        self._tokens = _TTLCache(clock)
        self._decisions = _TTLCache(clock)

    async def authenticate(self, request: web.Request) -> User | None:
        transport = request.transport
        user = certificate_user(transport.get_extra_info("peercert") if transport else None)
        if user is not None:
            return user
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if self.config.token_webhook and scheme.lower() == "bearer" and token:
            return await self._review_token(token)
        if self.config.anonymous and not header:
            return User(ANONYMOUS, (UNAUTHENTICATED,))
        return None

    async def _review_token(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens.get(key)
        if cached is not None:
            return cached or None
        try:
            review = await self.client.request(
                "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                      "spec": {"token": token}})
        except Exception as err:  # the API server is down or refused us
            raise ReviewError(f"token review failed: {err}") from err
        status = (review or {}).get("status") or {}
        user: User | None = None
        info = status.get("user") or {}
        if status.get("authenticated") and info.get("username"):
            groups = tuple(info.get("groups") or ())
            if AUTHENTICATED not in groups:
                groups += (AUTHENTICATED,)
            extra = tuple(sorted((k, tuple(v)) for k, v in (info.get("extra") or {}).items()))
            user = User(info["username"], groups, info.get("uid", ""), extra)
        self._tokens.put(key, user or False, TOKEN_TTL)
        return user

    async def authorize(self, user: User, attrs: dict[str, str]) -> bool:
        if self.config.authorization_mode == "AlwaysAllow":
            return True
        key = (user, tuple(sorted(attrs.items())))
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups),
                                "resourceAttributes": attrs}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra}
        try:
            review = await self.client.request(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                body={"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                      "spec": spec})
        except Exception as err:
            raise ReviewError(f"subject access review failed: {err}") from err
        allowed = bool(((review or {}).get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed, ALLOWED_TTL if allowed else DENIED_TTL)
        return allowed

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        try:
            user = await self.authenticate(request)
        except ReviewError as err:
            log.warning("unable to authenticate a request: %s", err)
            user = None
        if user is None:
            return web.Response(status=401, text="Unauthorized")
        attrs = request_attributes(request.method, request.path, self.node_name)
        described = (f"user={user.name}, verb={attrs['verb']}, resource=nodes, "
                     f"subresource={attrs['subresource']}")
        try:
            allowed = await self.authorize(user, attrs)
        except ReviewError as err:
            log.warning("authorization error (%s): %s", described, err)
            return web.Response(status=500, text=f"Authorization error ({described})")
        if not allowed:
            return web.Response(status=403, text=f"Forbidden ({described})")
        return await handler(request)
