"""NamespaceLifecycle (plugin/pkg/admission/namespace/lifecycle).

Nothing is created in a namespace that does not exist (404 NotFound) or is being
terminated (403 Forbidden); the system namespaces default, kube-system and
kube-public may not be deleted. Namespaces themselves, cluster-scoped objects and
access reviews are exempt.
"""
from __future__ import annotations

from ...api import errors
from . import Plugin, Request

IMMORTAL = ("default", "kube-system", "kube-public")
EXEMPT = {("authorization.k8s.io", "localsubjectaccessreviews"),
          ("authorization.k8s.io", "subjectaccessreviews"),
          ("authorization.k8s.io", "selfsubjectaccessreviews"),
          ("authentication.k8s.io", "tokenreviews")}


class NamespaceLifecycle(Plugin):
    name = "NamespaceLifecycle"

    async def validate(self, req: Request) -> None:
        if req.is_("", "namespaces"):
            if req.operation == "DELETE" and req.name in IMMORTAL:
                raise req.forbidden("this namespace may not be deleted")
            return
        if not req.namespace or req.operation != "CREATE" or \
                (req.group, req.resource) in EXEMPT:
            return
        store = self.server.stores[("", "v1", "namespaces")]
        ns = store.cache.objects.get(store.key("", req.namespace))
        if ns is None:
            # The cache may trail a namespace created a moment ago: catch up once.
            await self.server.cache.sync()
            ns = store.cache.objects.get(store.key("", req.namespace))
        if ns is None:
            raise errors.not_found("namespaces", "", req.namespace)
        if ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            err = req.forbidden(f"unable to create new content in namespace "
                                f"{req.namespace} because it is being terminated")
            err.details = dict(err.details or {}, causes=[{
                "reason": "NamespaceTerminating", "field": "metadata.namespace",
                "message": f"namespace {req.namespace} is being terminated"}])
            raise err
