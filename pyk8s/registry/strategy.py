"""Strategies: what one resource adds to the generic store.

A Strategy answers the per-resource questions of registry/generic.py: defaults,
schema and semantic validation, what create and update reset, the grace period of
a deletion, and allocations (Service IPs and ports). The default Strategy serves
most kinds from the v1.32 schemas alone; kinds with behaviour of their own subclass
it in ``registry/kinds/`` and register there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api import schemas
from .catalogue import ResourceInfo

if TYPE_CHECKING:
    from .generic import GenericStore

# Kinds whose metadata.generation tracks spec changes, as upstream's strategies.
GENERATION_KINDS = {
    "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController", "Job",
    "CronJob", "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress", "PodDisruptionBudget",
    "CustomResourceDefinition", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "PriorityLevelConfiguration",
    "IngressClass", "ValidatingAdmissionPolicyBinding", "EndpointSlice",
}
# Kinds a PUT may create, as upstream's AllowCreateOnUpdate.
CREATE_ON_UPDATE_KINDS = {"Endpoints", "Lease", "Event", "EndpointSlice", "LimitRange",
                          "PodTemplate", "ResourceQuota"}


class Strategy:
    def __init__(self, info: ResourceInfo, version: str, kind: str):
        self.info = info
        self.group = info.group
        self.version = version
        self.kind = kind
        self.api_version = f"{info.group}/{version}" if info.group else version
        subs = {s.name for s in info.subresources}
        self.has_status = "status" in subs
        self.has_generation = kind in GENERATION_KINDS
        self.allow_create_on_update = kind in CREATE_ON_UPDATE_KINDS
        self.default_propagation = "Background"

    # -- schema --------------------------------------------------------------------

    def check_schema(self, obj: dict) -> tuple[list[str], list[dict[str, Any]], list[str]]:
        """(type errors, invalid causes, unknown field paths) against the v1.32 schema."""
        v = schemas.validator(self.group, self.version, self.kind, strict=True)
        if v is None:
            return [], [], []
        type_errors, causes, unknown = [], [], []
        for viol in v.validate(obj):
            if viol.reason == schemas.UNKNOWN:
                unknown.append(viol.field)
            elif viol.reason == schemas.TYPE:
                type_errors.append(viol.message)
            else:
                msg = viol.message
                if viol.field and msg.startswith(viol.field + ": "):
                    msg = msg[len(viol.field) + 2:]
                reason = {schemas.REQUIRED: "FieldValueRequired",
                          schemas.ENUM: "FieldValueNotSupported"}.get(viol.reason,
                                                                       "FieldValueInvalid")
                causes.append({"reason": reason, "message": msg, "field": viol.field})
        return type_errors, causes, unknown

    @staticmethod
    def prune(obj: dict, paths: list[str]) -> None:
        """Drop the unknown fields at ``paths`` (decoding ignores them upstream)."""
        for path in paths:
            parts = schemas.parse_field_path(path)
            cur: Any = obj
            for part in parts[:-1]:
                try:
                    cur = cur[part]
                except (KeyError, IndexError, TypeError):
                    cur = None
                    break
            if isinstance(cur, dict):
                cur.pop(parts[-1], None)

    # -- hooks ---------------------------------------------------------------------

    def prepare_for_create(self, obj: dict) -> None:
        if self.has_status:
            obj.pop("status", None)

    def prepare_for_update(self, new: dict, old: dict, *, subresource: str = "") -> None:
        """Called after the generic reset of metadata and status on a write through the
        main resource or a non-status subresource (``subresource`` names it)."""

    def default(self, obj: dict) -> None:
        from . import defaulting
        defaulting.apply_defaults(self.group, self.version, self.kind, obj)

    def validate(self, obj: dict, old: dict | None, *,
                 subresource: str = "") -> list[dict[str, Any]]:
        from . import semantic
        return [e.as_cause() for e in semantic.validate(
            self.group, self.version, self.kind, obj, old,
            namespaced=self.info.namespaced, subresource=subresource)]

    def after_admission(self, obj: dict, old: dict | None) -> None:
        """Last changes after admission plugins ran (e.g. derived status fields)."""

    def needs_finalizing(self, obj: dict) -> bool:
        """True while a kind-specific finalizer (a Namespace's spec.finalizers) holds a
        deleted object; it is removed only once this and metadata.finalizers clear."""
        return False

    def mark_deleting(self, obj: dict) -> None:
        """Changes a graceful or finalized deletion makes (a Namespace's phase)."""

    def grace_period(self, obj: dict, requested: int | None) -> int:
        return 0 if requested is None else max(requested, 0)

    async def allocate(self, obj: dict, old: dict | None, store: "GenericStore") -> None:
        """Reserve what ``obj`` needs beyond ``old`` (IPs, ports) before it is written."""

    async def release(self, obj: dict, store: "GenericStore") -> None:
        """Free what a deleted (or never written) ``obj`` held."""

    async def release_new(self, new: dict, old: dict, store: "GenericStore") -> None:
        """An update failed: free what ``allocate`` reserved for ``new`` only."""

    async def release_old(self, new: dict, old: dict, store: "GenericStore") -> None:
        """An update succeeded: free what ``old`` held and ``new`` no longer does."""
