"""The namespace controller: empties a namespace being deleted, then releases it.

Role: upstream's ``pkg/controller/namespace`` with its ``deletion`` package
(``namespaced_resources_deleter.go``, ``status_condition_utils.go``). For a namespace
with a deletionTimestamp it sets phase Terminating, deletes every namespaced resource
the API serves (found by discovery on each pass, CRDs included) — pods first, and the
rest only once no pod remains (``OrderedNamespaceDeletion``) — records progress in the
five upstream status conditions, and when nothing is left removes the ``kubernetes``
finalizer through ``/finalize``, after which the API server deletes the namespace.

Invariants:
- The five conditions are always all present once deletion ran, with upstream's
  types, reasons and messages; ``lastTransitionTime`` moves only when a status flips.
- Content is deleted with propagationPolicy Background (no ``orphan`` finalizer can
  be added behind our back); deletecollection is used when discovery offers it.
- The finalizer is removed only after a pass found no content left and no pod whose
  grace period may still be running (``estimate`` 0); while content remains the key
  is looked at again after ``estimate/2 + 1`` seconds, as upstream.
"""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from .corecontext import ControllerContext, CoreController, discover, retry_on_conflict

log = logging.getLogger(__name__)

NAME = "namespace-controller"
FINALIZER_TOKEN = "kubernetes"
FINALIZER_ESTIMATE_SECONDS = 15

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GV_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

CONDITION_TYPES = (DISCOVERY_FAILURE, GV_PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING,
                   FINALIZERS_REMAINING)
OK_MESSAGES = {
    DISCOVERY_FAILURE: "All resources successfully discovered",
    GV_PARSING_FAILURE: "All legacy kube types successfully parsed",
    CONTENT_FAILURE: "All content successfully deleted, may be waiting on finalization",
    CONTENT_REMAINING: "All content successfully removed",
    FINALIZERS_REMAINING: "All content-preserving finalizers finished",
}
OK_REASONS = {
    DISCOVERY_FAILURE: "ResourcesDiscovered",
    GV_PARSING_FAILURE: "ParsedGroupVersions",
    CONTENT_FAILURE: "ContentDeleted",
    CONTENT_REMAINING: "ContentRemoved",
    FINALIZERS_REMAINING: "ContentHasNoFinalizers",
}


# --- conditions (pure) --------------------------------------------------------------

def gvr_string(res) -> str:
    """``schema.GroupVersionResource.String()``: ``apps/v1, Resource=deployments``."""
    return f"{res.group}/{res.version}, Resource={res.plural}"


@dataclass
class ConditionUpdater:
    """``namespaceConditionUpdater``: collects failures, then writes all five conditions."""

    now: str
    new: list[dict] = field(default_factory=list)
    content_errors: list[str] = field(default_factory=list)

    def discovery_error(self, message: str, failed_groups: int | None = None) -> None:
        if failed_groups is not None:
            message = f"Discovery failed for some groups, {failed_groups} failing: {message}"
        self._add(DISCOVERY_FAILURE, "DiscoveryFailed", message)

    def group_version_error(self, message: str) -> None:
        self._add(GV_PARSING_FAILURE, "GroupVersionParsingFailed", message)

    def delete_content_error(self, message: str) -> None:
        self.content_errors.append(message)

    def content_totals(self, remaining: dict[tuple[str, str], int],
                       finalizers: dict[str, int]) -> None:
        """``remaining``: (plural, group) -> count; ``finalizers``: name -> count."""
        items = sorted(f"{plural}.{group} has {n} resource instances"
                       for (plural, group), n in remaining.items() if n)
        if remaining:
            self._add(CONTENT_REMAINING, "SomeResourcesRemain",
                      "Some resources are remaining: " + ", ".join(items))
        fins = sorted(f"{name} in {n} resource instances" for name, n in finalizers.items() if n)
        if finalizers:
            self._add(FINALIZERS_REMAINING, "SomeFinalizersRemain",
                      "Some content in the namespace has finalizers remaining: " + ", ".join(fins))

    def update(self, status: dict) -> bool:
        """Write the conditions into ``status``; True when anything changed."""
        if not _find(self.new, CONTENT_FAILURE) and self.content_errors:
            msgs = sorted(self.content_errors)
            self._add(CONTENT_FAILURE, "ContentDeletionFailed",
                      f"Failed to delete all resource types, {len(msgs)} remaining: "
                      + ", ".join(msgs))
        return update_conditions(status, self.new, self.now)

    def _add(self, ctype: str, reason: str, message: str) -> None:
        self.new.append({"type": ctype, "status": "True", "lastTransitionTime": self.now,
                         "reason": reason, "message": message})


def _find(conditions: list[dict], ctype: str) -> dict | None:
    return next((c for c in conditions if c.get("type") == ctype), None)


def update_conditions(status: dict, new_conditions: list[dict], now: str) -> bool:
    """``updateConditions``: each maintained type gets its failure or its "ok" variant."""
    conditions = status.setdefault("conditions", [])
    changed = False
    for ctype in CONDITION_TYPES:
        new = _find(new_conditions, ctype) or {
            "type": ctype, "status": "False", "lastTransitionTime": now,
            "reason": OK_REASONS[ctype], "message": OK_MESSAGES[ctype]}
        old = _find(conditions, ctype)
        if old is None:
            conditions.append(dict(new))
            changed = True
        elif (old.get("status"), old.get("message"), old.get("reason")) != (
                new["status"], new["message"], new["reason"]):
            if old.get("status") != new["status"]:
                old["lastTransitionTime"] = now
            old.update(type=ctype, status=new["status"], reason=new["reason"],
                       message=new["message"])
            changed = True
    return changed


def pod_grace_estimate(pods: list[dict], deleted_at: datetime.datetime,
                       now: datetime.datetime) -> int:
    """``estimateGracefulTermination`` for pods: the longest grace period of a
    non-terminal pod, or 0 once that long has passed since the namespace was deleted."""
    estimate = 0
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        if grace is not None and grace > estimate:
            estimate = int(grace)
    if (now - deleted_at).total_seconds() >= estimate:
        return 0
    return estimate


def finalized_spec(finalizers: list[str], token: str = FINALIZER_TOKEN) -> list[str]:
    """The spec finalizers with ``token`` removed, sorted as upstream's string set."""
    return sorted({f for f in finalizers if f != token})


class ResourcesRemaining(Exception):
    def __init__(self, estimate: int):
        super().__init__(f"some content remains in the namespace, estimate {estimate} "
                         f"seconds before it is removed")
        self.estimate = estimate


@dataclass
class GVRResult:
    estimate: int = 0
    remaining: int = 0
    finalizers: dict[str, int] = field(default_factory=dict)


# --- the controller ------------------------------------------------------------------

class NamespaceController(CoreController):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.namespace
        super().__init__(ctx, name=NAME, workers=s.workers)
        self.settings = s
        inf = self.informer(r.NAMESPACES)
        inf.add_event_handler(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                              resync_period=s.resync_period)

    def _enqueue(self, ns: dict) -> None:
        if not (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        # Give HA API servers time to observe the deletion, and etcd members the
        # last objects created in the namespace.
        self.enqueue_after(ns, self.settings.deletion_grace)

    async def sync(self, key: str) -> None:
        try:
            await self.delete(key)
        except ResourcesRemaining as err:
            raise Requeue(err.estimate // 2 + 1) from None

    async def delete(self, name: str) -> None:
        """``namespacedResourcesDeleter.Delete``."""
        try:
            ns = await self.client.get(r.NAMESPACES, name)
        except ApiError as err:
            if is_not_found(err):
                return
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return
        try:
            ns = await self._ensure_terminating(ns)
        except ApiError as err:
            if is_not_found(err):
                return
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return
        if not (ns.get("spec") or {}).get("finalizers"):
            return
        estimate = await self.delete_all_content(ns)
        if estimate > 0:
            raise ResourcesRemaining(estimate)
        await self._finalize(ns)

    async def _ensure_terminating(self, ns: dict) -> dict:
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return ns
        name, uid = ns["metadata"]["name"], ns["metadata"]["uid"]

        async def attempt() -> dict:
            latest = await self.client.get(r.NAMESPACES, name)
            if latest["metadata"].get("uid") != uid:
                raise RuntimeError("namespace uid has changed across retries")
            if (latest.get("status") or {}).get("phase") == "Terminating":
                return latest
            latest.setdefault("status", {})["phase"] = "Terminating"
            return await self.client.update_status(r.NAMESPACES, latest)

        return await retry_on_conflict(attempt, attempts=10)

    async def _finalize(self, ns: dict) -> None:
        name, uid = ns["metadata"]["name"], ns["metadata"]["uid"]

        async def attempt() -> None:
            latest = await self.client.get(r.NAMESPACES, name)
            if latest["metadata"].get("uid") != uid:
                raise RuntimeError("namespace uid has changed across retries")
            spec = latest.setdefault("spec", {})
            spec["finalizers"] = finalized_spec(spec.get("finalizers") or [])
            await self.client.update(r.NAMESPACES, latest, subresource="finalize")

        try:
            await retry_on_conflict(attempt, attempts=10)
        except ApiError as err:
            if not is_not_found(err):
                raise

    async def delete_all_content(self, ns: dict) -> int:
        """Delete what the namespace holds; the estimate of seconds still needed."""
        name = ns["metadata"]["name"]
        deleted_at = m.parse_time(ns["metadata"]["deletionTimestamp"])
        updater = ConditionUpdater(self.now_str())
        errors: list[str] = []
        found = await discover(self.client)
        discovery_error = found.error()
        if discovery_error:
            errors.append(discovery_error)
            updater.discovery_error(discovery_error, len(found.failed))
        deletable = {d.resource: d.verbs for d in found.resources
                     if d.resource.namespaced and "delete" in d.verbs}
        remaining: dict[tuple[str, str], int] = {}
        finalizers: dict[str, int] = {}
        estimate = 0

        def account(res, result: GVRResult) -> None:
            nonlocal estimate
            estimate = max(estimate, result.estimate)
            if result.remaining > 0:
                remaining[(res.plural, res.group)] = result.remaining
                for fin, n in result.finalizers.items():
                    finalizers[fin] = finalizers.get(fin, 0) + n

        pods = next((res for res in deletable if (res.group, res.plural) == ("", "pods")), None)
        if pods is not None:
            # Pods go first, so workloads stop before the objects they use disappear.
            try:
                account(pods, await self._delete_gvr(pods, deletable[pods], name, deleted_at))
            except Exception as err:  # noqa: BLE001 - recorded in a condition
                errors.append(f"failed to delete pods for namespace: {name}, err: {err}")
                updater.delete_content_error(str(err))
                result = getattr(err, "result", None)
                if result is not None:
                    account(pods, result)
            if remaining.get(("pods", ""), 0) > 0:
                # Upstream writes the conditions here without the totals, which then
                # claim "All content successfully removed"; we say what remains.
                updater.content_totals(remaining, finalizers)
                await self._write_conditions(ns, updater)
                if errors:
                    raise RuntimeError("; ".join(errors))
                return estimate
        for res, verbs in deletable.items():
            if res is pods:
                continue
            try:
                account(res, await self._delete_gvr(res, verbs, name, deleted_at))
            except Exception as err:  # noqa: BLE001 - go on with the other resources
                errors.append(str(err))
                updater.delete_content_error(str(err))
                result = getattr(err, "result", None)
                if result is not None:
                    account(res, result)
        updater.content_totals(remaining, finalizers)
        await self._write_conditions(ns, updater)
        if errors:
            raise RuntimeError("; ".join(errors))
        return estimate

    async def _write_conditions(self, ns: dict, updater: ConditionUpdater) -> None:
        status = ns.setdefault("status", {})
        if not updater.update(status):
            return
        try:
            await self.client.update_status(r.NAMESPACES, ns)
        except ApiError as err:
            log.warning("couldn't update status condition for namespace %r: %s",
                        ns["metadata"]["name"], err)

    async def _delete_gvr(self, res, verbs: frozenset, namespace: str,
                          deleted_at: datetime.datetime) -> GVRResult:
        """``deleteAllContentForGroupVersionResource``."""
        estimate = 0
        if (res.group, res.plural) == ("", "pods"):
            listing = await self.client.list_all(r.PODS, namespace=namespace)
            estimate = pod_grace_estimate(listing["items"], deleted_at, self.now())
        done = False
        if "deletecollection" in verbs:
            try:
                await self.client.delete_collection(res, namespace=namespace,
                                                    propagation_policy="Background")
                done = True
            except ApiError as err:
                if err.code not in (404, 405):
                    raise _with_result(err, GVRResult(estimate))
        if not done and "list" in verbs:
            for item in (await self.client.list_all(res, namespace=namespace))["items"]:
                try:
                    await self.client.delete(res, item["metadata"]["name"], namespace=namespace,
                                             propagation_policy="Background")
                except ApiError as err:
                    if err.code not in (404, 405):
                        raise _with_result(err, GVRResult(estimate))
        if "list" not in verbs:
            return GVRResult(estimate)
        items = (await self.client.list_all(res, namespace=namespace))["items"]
        if not items:
            return GVRResult(0, 0)
        fins: dict[str, int] = {}
        for item in items:
            for fin in item["metadata"].get("finalizers") or []:
                fins[fin] = fins.get(fin, 0) + 1
        if estimate:
            return GVRResult(estimate, len(items), fins)
        if fins:
            # Finalizers are normal: give whoever owns them time to finish.
            return GVRResult(FINALIZER_ESTIMATE_SECONDS, len(items), fins)
        err = RuntimeError(f"unexpected items still remain in namespace: {namespace} for gvr: "
                           f"{gvr_string(res)}")
        raise _with_result(err, GVRResult(estimate, len(items)))


def _with_result(err: Exception, result: GVRResult) -> Exception:
    err.result = result  # type: ignore[attr-defined]
    return err


def new_namespace_controller(ctx: ControllerContext) -> NamespaceController:
    return NamespaceController(ctx)
