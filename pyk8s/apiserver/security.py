"""The API server's security: one object wiring authentication, authorization,
admission, service-account tokens, CSRs and audit into the request path.

``Security`` is built by APIServer after its stores exist and started after the
default namespaces are. Per request, ``middleware`` (an aiohttp middleware inside
the Status-error middleware) authenticates, applies impersonation, authorizes the
request's attributes, and keeps a ``RequestContext`` (user, attributes, warnings) in
a context variable for the admission hook; it adds admission warnings to the
response and writes the audit event.

Invariants:
- no handler runs for a request that is not authenticated (401) and authorized
  (403, upstream's message);
- the admission hook sees the requesting user; writes made outside a request (the
  server's own loops, which run in a fresh context) see none and are trusted;
- ``start`` is idempotent on existing data: default RBAC objects and system
  priority classes are created or topped up, never duplicated.
"""
from __future__ import annotations

import contextvars
import dataclasses
import logging
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from ..api import errors
from . import authn, authz
from .admission import ORDER, Chain
from .authn import UserInfo
from .authz import Attributes

if TYPE_CHECKING:
    from ..registry.catalogue import ResourceInfo
    from ..registry.generic import GenericStore
    from .app import APIServer
    from .requests import Target

log = logging.getLogger(__name__)
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTEXT_KEY = "pyk8s.security"
OPENID_PATHS = ("/.well-known/openid-configuration", "/openid/v1/jwks")


@dataclasses.dataclass(frozen=True)
class SecurityConfig:
    """Settings with kube-apiserver's flag defaults."""

    data_dir: str = ""  # keys under <data_dir>/server/tls; "" keeps a key in memory
    anonymous: bool = True  # --anonymous-auth
    issuer: str = DEFAULT_ISSUER  # --service-account-issuer (the first)
    extra_issuers: tuple[str, ...] = ()  # further accepted --service-account-issuer values
    api_audiences: tuple[str, ...] = (DEFAULT_ISSUER,)  # --api-audiences
    jwks_uri: str = ""  # --service-account-jwks-uri ("" = <issuer>/openid/v1/jwks)
    extend_expiration: bool = True  # --service-account-extend-token-expiration
    admission_plugins: tuple[str, ...] = ORDER  # --enable-admission-plugins
    signing_duration: int = 365 * 24 * 3600  # --cluster-signing-duration
    audit_policy_file: str = ""  # --audit-policy-file
    audit_log_path: str = ""  # --audit-log-path

    @property
    def issuers(self) -> tuple[str, ...]:
        return (self.issuer,) + tuple(self.extra_issuers)

    @property
    def jwks_base(self) -> str:
        return (self.jwks_uri or self.issuer + "/openid/v1/jwks").rsplit("/openid/v1/jwks", 1)[0]


@dataclasses.dataclass
class RequestContext:
    attrs: Attributes
    user: UserInfo | None = None
    impersonator: UserInfo | None = None
    decision: str = "forbid"
    reason: str = ""
    dry_run: bool = False
    warnings: list[str] = dataclasses.field(default_factory=list)
    # admission's additions to the request's audit event (Attributes.AddAnnotation)
    audit_annotations: dict[str, str] = dataclasses.field(default_factory=dict)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "pyk8s_request", default=None)


def warning_header(text: str) -> str:
    """A ``Warning`` header value as upstream's NewWarningHeader: quotes and backslashes
    escaped, so kubectl can parse (and print) it."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def current() -> RequestContext | None:
    """The request being served on this task, if any."""
    return _current.get()


class Security:
    def __init__(self, server: "APIServer", config: SecurityConfig | None = None):
        from .authz.node import NodeGraph
        from .authz.rbac import RBAC
        self.server = server
        self.config = config or SecurityConfig()
        self.rbac = RBAC(server)
        self.node_graph = NodeGraph(server)
        self.admission = Chain(server, self.config.admission_plugins)
        self.signing_key = None
        self.audit = None
        self._http = None
        self._aggregator = None
        self._csr = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        from . import audit, csr, tokens
        from .admission.priority import bootstrap_classes
        from .authz import bootstrap_policy
        from .authz.aggregation import Aggregator
        self.signing_key = self._load_key(tokens)
        await bootstrap_policy.reconcile(self.server)
        await bootstrap_classes(self.server)
        await self.server.cache.sync()
        self._aggregator = Aggregator(self.server)
        await self._aggregator.reconcile_all()
        self._aggregator.start()
        authority = csr.Authority.load(self.config.data_dir) if self.config.data_dir else None
        self._csr = csr.CSRController(self.server, authority,
                                      signing_duration=self.config.signing_duration)
        self._csr.start()
        if self.config.audit_policy_file and self.config.audit_log_path:
            self.audit = audit.AuditLog(audit.Policy.load(self.config.audit_policy_file),
                                        self.config.audit_log_path)

    def _load_key(self, tokens):
        if self.config.data_dir:
            return tokens.load_or_create_key(self.config.data_dir)
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            return tokens.load_or_create_key(d)

    async def close(self) -> None:
        for part in (self._aggregator, self._csr, self.audit,
                     self.admission.get("ResourceQuota")):
            if part is not None:
                await part.close()
        if self._http is not None:
            await self._http.close()

    async def http_session(self):
        import aiohttp
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    # -- per request --------------------------------------------------------------------

    async def guard(self, request: web.Request) -> RequestContext:
        """Authenticate, impersonate and authorize; raises APIError 401/403."""
        ctx = RequestContext(attrs=authz.request_attributes(self.server, request))
        request[CONTEXT_KEY] = ctx
        user = await authn.authenticate(self.server, request)
        if user is None:
            raise authn.unauthorized()
        ctx.user = user
        acting = await authn.impersonate(self.server, request, user)
        if acting is not user:
            ctx.impersonator, ctx.user = user, acting
        allowed, reason = await authz.authorize(self.server, ctx.user, ctx.attrs)
        ctx.reason = reason
        if not allowed:
            raise authz.forbidden(ctx.user, ctx.attrs, reason)
        ctx.decision = "allow"
        ctx.dry_run = "All" in request.query.getall("dryRun", [])
        return ctx

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        from . import audit
        received = audit.now()
        code = 500
        response = None
        try:
            ctx = await self.guard(request)
            token = _current.set(ctx)
            try:
                response = await handler(request)
            finally:
                _current.reset(token)
            code = response.status
            if ctx.warnings and not response.prepared:
                for warning in ctx.warnings:
                    response.headers.add("Warning", warning_header(warning))
            return response
        except errors.APIError as err:
            code = err.code
            raise
        except web.HTTPException as err:
            code = err.status
            raise
        finally:
            if self.audit is not None:
                self._audit(request, received, code, response)

    def _audit(self, request: web.Request, received: str, code: int, response) -> None:
        ctx: RequestContext | None = request.get(CONTEXT_KEY)
        if ctx is None:
            return
        body = getattr(response, "body", None) if response is not None else None
        try:
            self.audit.record(user=ctx.user or authn.ANONYMOUS, impersonator=ctx.impersonator,
                              attrs=ctx.attrs, request=request, received=received, code=code,
                              decision=ctx.decision, reason=ctx.reason,
                              request_body=getattr(request, "_read_bytes", None),
                              response_body=body if isinstance(body, bytes) else None)
        except Exception:  # auditing must never fail the request it describes
            log.exception("writing an audit event failed")

    async def admit(self, operation: str, obj: dict | None, old: dict | None,
                    store: "GenericStore") -> None:
        """The GenericStore admission hook."""
        from . import admission
        ctx = current()
        user = ctx.user if ctx is not None else None
        subresource = ""
        if ctx is not None and ctx.attrs.resource == store.info.plural and \
                ctx.attrs.api_group == store.info.group:
            subresource = ctx.attrs.subresource
        await admission.admit(self.server, operation, obj, old, store, user,
                              subresource=subresource)

    # -- endpoints ----------------------------------------------------------------------

    async def serve_virtual(self, request: web.Request, info: "ResourceInfo",
                            t: "Target") -> web.Response:
        """POST of a review kind (selfsubjectaccessreviews, tokenreviews, ...)."""
        from . import reviews
        ctx = current()
        user = ctx.user if ctx is not None and ctx.user is not None else authn.ANONYMOUS
        return await reviews.serve(self.server, request, info, t, user)

    async def serve_subresource(self, request: web.Request, info: "ResourceInfo",
                                t: "Target") -> web.Response | None:
        """serviceaccounts/token and certificatesigningrequests/approval; None otherwise."""
        if (info.group, info.plural, t.subresource) == ("", "serviceaccounts", "token"):
            from . import tokens
            return await tokens.serve_token_request(self.server, request, t.namespace, t.name)
        if (info.group, info.plural, t.subresource) == ("certificates.k8s.io",
                                                        "certificatesigningrequests",
                                                        "approval"):
            from . import csr
            return await csr.serve_approval(self.server, request, t)
        return None

    def serve_nonresource(self, request: web.Request, path: str) -> web.Response | None:
        """The service-account issuer discovery documents; None for other paths."""
        from . import handlers, tokens
        if path == OPENID_PATHS[0]:
            return handlers.respond(tokens.openid_configuration(self.server))
        if path == OPENID_PATHS[1]:
            return web.Response(body=orjson.dumps(self.signing_key.jwks()),
                                content_type="application/jwk-set+json")
        return None


async def on_start(server: "APIServer") -> None:
    """Startup hook: default RBAC, system priority classes, the CSR and aggregation loops."""
    await server.security.start()
