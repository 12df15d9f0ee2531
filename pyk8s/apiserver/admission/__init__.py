"""The admission chain: mutating plugins, then validating plugins, in upstream's order.

A plugin is a class with a ``name`` and two optional coroutines, ``admit`` (may
change ``req.obj``) and ``validate`` (may only refuse); both refuse by raising
APIError with upstream's message. ``ORDER`` is kube-apiserver's plugin order
(pkg/kubeapiserver/options/plugins.go) restricted to the plugins a v1.32 server
enables by default, plus NodeRestriction; adding a policy is a new module and one
``PLUGINS`` line.

Before the plugins run, the write passes the checks upstream's REST storage makes
for some kinds (RBAC escalation, a CSR's requester identity); they need the user,
which is why they live here rather than in the registry strategies.

``req.user`` is None for the API server's own writes (bootstrap objects, its
controllers); plugins that judge the requester let those through, as upstream's
loopback ``system:apiserver`` identity in ``system:masters`` is.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ...api import errors
from ..authn import UserInfo
from ..authz import forbidden_error

if TYPE_CHECKING:
    from ..app import APIServer
    from ...registry.generic import GenericStore


@dataclasses.dataclass
class Request:
    """upstream's admission.Attributes for one write."""

    server: "APIServer"
    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    obj: dict | None
    old: dict | None
    group: str
    version: str
    resource: str
    subresource: str
    kind: str
    namespace: str
    name: str
    user: UserInfo | None
    dry_run: bool = False
    store: "GenericStore | None" = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def internal(self) -> bool:
        """The API server's own write (no requesting user)."""
        return self.user is None

    def is_(self, group: str, resource: str, subresource: str = "") -> bool:
        return (self.group, self.resource, self.subresource) == (group, resource, subresource)

    def forbidden(self, message: str) -> errors.APIError:
        """upstream's admission.NewForbidden."""
        return forbidden_error(self.resource, self.group, self.name, message)

    def current(self) -> dict | None:
        return self.obj if self.obj is not None else self.old


class Plugin:
    """A named admission plugin; subclasses override ``admit`` and/or ``validate``."""

    name = ""

    def __init__(self, server: "APIServer"):
        self.server = server

    async def admit(self, req: Request) -> None:
        """Mutate ``req.obj`` (mutating phase)."""

    async def validate(self, req: Request) -> None:
        """Refuse by raising APIError (validating phase)."""


def _registry() -> dict[str, Any]:
    from . import (certificates, lifecycle, limitranger, noderestriction, podsecurity, policy,
                   priority, resourcequota, serviceaccount, storage, webhooks, workloads)
    return {
        "NamespaceLifecycle": lifecycle.NamespaceLifecycle,
        "LimitRanger": limitranger.LimitRanger,
        "ServiceAccount": serviceaccount.ServiceAccount,
        "NodeRestriction": noderestriction.NodeRestriction,
        "TaintNodesByCondition": workloads.TaintNodesByCondition,
        "PodSecurity": podsecurity.PodSecurity,
        "Priority": priority.Priority,
        "DefaultTolerationSeconds": workloads.DefaultTolerationSeconds,
        "DefaultStorageClass": storage.DefaultStorageClass,
        "StorageObjectInUseProtection": storage.StorageObjectInUseProtection,
        "RuntimeClass": workloads.RuntimeClass,
        "CertificateApproval": certificates.CertificateApproval,
        "CertificateSigning": certificates.CertificateSigning,
        "CertificateSubjectRestriction": certificates.CertificateSubjectRestriction,
        "DefaultIngressClass": workloads.DefaultIngressClass,
        "MutatingAdmissionWebhook": webhooks.MutatingWebhook,
        "ValidatingAdmissionPolicy": policy.ValidatingAdmissionPolicy,
        "ValidatingAdmissionWebhook": webhooks.ValidatingWebhook,
        "ResourceQuota": resourcequota.ResourceQuota,
    }


# kube-apiserver's order (AllOrderedPlugins), default-enabled plugins and NodeRestriction.
ORDER = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction",
         "TaintNodesByCondition", "PodSecurity", "Priority", "DefaultTolerationSeconds",
         "DefaultStorageClass", "StorageObjectInUseProtection", "RuntimeClass",
         "CertificateApproval", "CertificateSigning", "CertificateSubjectRestriction",
         "DefaultIngressClass", "MutatingAdmissionWebhook", "ValidatingAdmissionPolicy",
         "ValidatingAdmissionWebhook", "ResourceQuota")


class Chain:
    """The enabled plugins of one API server, in order."""

    def __init__(self, server: "APIServer", names: tuple[str, ...] = ORDER):
        registry = _registry()
        unknown = [n for n in names if n not in registry]
        if unknown:
            raise ValueError(f"unknown admission plugins: {', '.join(unknown)}")
        self.plugins: list[Plugin] = [registry[n](server) for n in ORDER if n in names]

    def get(self, name: str) -> Plugin | None:
        return next((p for p in self.plugins if p.name == name), None)

    async def run(self, req: Request) -> None:
        await _storage_checks(req)
        for plugin in self.plugins:
            await plugin.admit(req)
        for plugin in self.plugins:
            await plugin.validate(req)


async def _storage_checks(req: Request) -> None:
    """What upstream's REST storage checks with the user before admission."""
    if req.group == "rbac.authorization.k8s.io" and not req.subresource:
        from ..authz.rbac import check_escalation
        await check_escalation(req.server, req.user, req.operation, req.obj, req.old,
                               req.resource)
    if req.is_("certificates.k8s.io", "certificatesigningrequests"):
        from .certificates import stamp_requester
        stamp_requester(req)


def _request_for(server: "APIServer", operation: str, obj: dict | None, old: dict | None,
                 *, group: str, version: str, resource: str, subresource: str, kind: str,
                 namespace: str, name: str, user: UserInfo | None,
                 store: "GenericStore | None" = None) -> Request:
    from .. import security
    ctx = security.current()
    return Request(server, operation, obj, old, group, version, resource, subresource, kind,
                   namespace, name, user, dry_run=bool(ctx and ctx.dry_run), store=store,
                   warnings=ctx.warnings if ctx is not None else [])


async def admit(server: "APIServer", operation: str, obj: dict | None, old: dict | None,
                store: "GenericStore", user: UserInfo | None, *, subresource: str = "") -> None:
    """Run the chain for a write through ``store``; raises APIError to refuse it."""
    info = store.info
    current = obj if obj is not None else old
    meta = (current or {}).get("metadata") or {}
    kind = (current or {}).get("kind") or store.strategy.kind
    req = _request_for(server, operation, obj, old, group=info.group,
                       version=store.strategy.version, resource=info.plural,
                       subresource=subresource, kind=kind,
                       namespace=meta.get("namespace", "") if info.namespaced else "",
                       name=meta.get("name", ""), user=user, store=store)
    await server.security.admission.run(req)


async def admit_request(server: "APIServer", operation: str, obj: dict | None,
                        old: dict | None, *, resource: str, subresource: str, namespace: str,
                        name: str, group: str = "", version: str = "v1") -> None:
    """Run the chain for a write that does not go through a GenericStore (TokenRequest)."""
    from .. import security
    ctx = security.current()
    kind = (obj or old or {}).get("kind", "")
    req = _request_for(server, operation, obj, old, group=group, version=version,
                       resource=resource, subresource=subresource, kind=kind,
                       namespace=namespace, name=name, user=ctx.user if ctx else None)
    await server.security.admission.run(req)
