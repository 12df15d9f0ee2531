"""ResourceQuota (apiserver/pkg/admission/plugin/resourcequota + pkg/quota/v1/evaluator).

A create (or a Service/PVC update that grows usage) in a namespace with
ResourceQuotas is refused when it would take a tracked resource past a quota's
``spec.hard``: ``exceeded quota: <name>, requested: <r>=<n>, used: <r>=<n>, limited:
<r>=<n>``. A quota on cpu or memory requires every container to state that request
or limit (``failed quota: <name>: must specify limits.cpu for: <containers>``).
Quota scopes (Terminating, NotTerminating, BestEffort, NotBestEffort and the
PriorityClass scope selector) restrict which pods a quota counts.

Usage is computed from the watch cache (the objects already stored) plus in-flight
charges of admitted writes not yet visible there, so concurrent creates on this API
server cannot both take the last unit. After a charge, the quota's ``status.hard``
and ``status.used`` are refreshed in the background, as upstream's admission
controller writes them.
"""
from __future__ import annotations

import asyncio
import contextvars
import copy
import logging
import time
from typing import TYPE_CHECKING

from ...api.quantities import Quantity, QuantityError, parse_quantity
from ...registry.generic import WriteOptions
from ...api import errors
from . import Plugin, Request
from .limitranger import pod_totals

if TYPE_CHECKING:
    from ..app import APIServer

log = logging.getLogger(__name__)
ONE = Quantity.from_value(1)
RESERVATION_SECONDS = 30.0
COMPUTE = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
CORE_COUNTED = {"pods", "services", "secrets", "configmaps", "persistentvolumeclaims",
                "replicationcontrollers", "resourcequotas"}


def _q(value) -> Quantity:
    try:
        return parse_quantity(value)
    except QuantityError:
        return Quantity()


def count_name(group: str, resource: str) -> str:
    return f"count/{resource}" + (f".{group}" if group else "")


def pod_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_usage(pod: dict) -> dict[str, Quantity]:
    if pod_terminal(pod):
        return {}
    usage = {"pods": ONE, "count/pods": ONE}
    spec = pod.get("spec") or {}
    requests, limits = pod_totals(spec)
    for k, v in (spec.get("overhead") or {}).items():
        if k in requests:
            requests[k] = str(_q(requests[k]) + _q(v))
        if k in limits:
            limits[k] = str(_q(limits[k]) + _q(v))
    for k, v in requests.items():
        usage["requests." + k] = _q(v)
        if k in ("cpu", "memory", "ephemeral-storage"):
            usage[k] = _q(v)
    for k, v in limits.items():
        usage["limits." + k] = _q(v)
    return usage


def usage_of(group: str, resource: str, obj: dict) -> dict[str, Quantity]:
    """What one object counts against a quota."""
    if group == "" and resource == "pods":
        return pod_usage(obj)
    usage = {count_name(group, resource): ONE}
    if group == "" and resource in CORE_COUNTED:
        usage[resource] = ONE
    spec = obj.get("spec") or {}
    if (group, resource) == ("", "services"):
        kind = spec.get("type", "ClusterIP")
        if kind == "LoadBalancer":
            usage["services.loadbalancers"] = ONE
        if kind in ("NodePort", "LoadBalancer"):
            ports = sum(1 for p in spec.get("ports") or () if p.get("nodePort"))
            usage["services.nodeports"] = Quantity.from_value(ports or len(spec.get("ports")
                                                                           or ()))
    elif (group, resource) == ("", "persistentvolumeclaims"):
        storage = _q(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0"))
        usage["requests.storage"] = storage
        sc = spec.get("storageClassName")
        if sc:
            usage[f"{sc}.storageclass.storage.k8s.io/requests.storage"] = storage
            usage[f"{sc}.storageclass.storage.k8s.io/persistentvolumeclaims"] = ONE
    return usage


def _qos_best_effort(pod: dict) -> bool:
    from ...registry.kinds import qos_class
    return qos_class(pod) == "BestEffort"


def _scope_matches(scope: str, pod: dict, values=(), operator="Exists") -> bool:
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _qos_best_effort(pod)
    if scope == "NotBestEffort":
        return not _qos_best_effort(pod)
    if scope == "PriorityClass":
        name = spec.get("priorityClassName", "")
        return {"In": name in values, "NotIn": name not in values, "Exists": bool(name),
                "DoesNotExist": not name}.get(operator, False)
    return False


def quota_matches(quota: dict, group: str, resource: str, obj: dict) -> bool:
    spec = quota.get("spec") or {}
    scopes = [(s, (), "Exists") for s in spec.get("scopes") or ()]
    scopes += [(e.get("scopeName"), tuple(e.get("values") or ()), e.get("operator", "Exists"))
               for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or ()]
    if not scopes:
        return True
    if (group, resource) != ("", "pods"):
        return False
    return all(_scope_matches(s, obj, v, op) for s, v, op in scopes)


def pretty(resources: dict[str, Quantity]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(resources.items()))


def missing_compute(pod: dict, required: set[str]) -> str:
    """upstream's podEvaluator.Constraints message body, or "" when nothing is missing."""
    required = required & set(COMPUTE)
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
        res = c.get("resources") or {}
        have = set()
        for k in (res.get("requests") or {}):
            if k in ("cpu", "memory"):
                have |= {k, "requests." + k}
        for k in (res.get("limits") or {}):
            if k in ("cpu", "memory"):
                have.add("limits." + k)
        for r in required - have:
            missing.setdefault(r, set()).add(c.get("name", ""))
    if not missing:
        return ""
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(names))}"
                                       for r, names in sorted(missing.items()))


class ResourceQuota(Plugin):
    name = "ResourceQuota"

    def __init__(self, server: "APIServer"):
        super().__init__(server)
        # (namespace, group, resource, name) -> (deadline, object) of admitted creates
        # that the watch cache has not shown yet.
        self.pending: dict[tuple[str, str, str, str], tuple[float, dict]] = {}
        self._refresh: set[str] = set()
        self._task: asyncio.Task | None = None

    def _quotas(self, namespace: str) -> list[dict]:
        store = self.server.stores[("", "v1", "resourcequotas")]
        prefix = store.key(namespace, "")
        return [o for k, o in sorted(store.cache.objects.items()) if k.startswith(prefix)]

    def used(self, quota: dict, namespace: str, group: str, resource: str,
             exclude: str = "") -> dict[str, Quantity]:
        """Current usage of one resource kind in a namespace, as ``quota`` counts it."""
        store = self.server.stores.get((group, _version(self.server, group, resource),
                                        resource))
        total: dict[str, Quantity] = {}
        if store is None:
            return total
        prefix = store.key(namespace, "")
        seen = set()
        for key, obj in store.cache.objects.items():
            if not key.startswith(prefix):
                continue
            seen.add(obj["metadata"]["name"])
            if obj["metadata"]["name"] == exclude or not quota_matches(quota, group,
                                                                        resource, obj):
                continue
            for k, v in usage_of(group, resource, obj).items():
                total[k] = total.get(k, Quantity()) + v
        now = time.monotonic()
        for key, (deadline, pending) in list(self.pending.items()):
            ns, g, r, name = key
            if deadline < now:
                del self.pending[key]
                continue
            if (ns, g, r) != (namespace, group, resource):
                continue
            if name in seen:
                del self.pending[key]  # stored and cached: counted above
                continue
            if name != exclude and quota_matches(quota, group, resource, pending):
                for k, v in usage_of(group, resource, pending).items():
                    total[k] = total.get(k, Quantity()) + v
        return total

    async def validate(self, req: Request) -> None:
        if req.subresource or not req.namespace or req.obj is None:
            return
        if req.operation == "UPDATE" and (req.group, req.resource) not in (
                ("", "services"), ("", "persistentvolumeclaims")):
            return
        if req.operation not in ("CREATE", "UPDATE"):
            return
        if req.is_("", "resourcequotas") and req.operation == "UPDATE":
            return
        quotas = self._quotas(req.namespace)
        if not quotas:
            return
        delta = usage_of(req.group, req.resource, req.obj)
        if req.operation == "UPDATE":
            old = usage_of(req.group, req.resource, req.old or {})
            delta = {k: v - old.get(k, Quantity()) for k, v in delta.items()}
            delta = {k: v for k, v in delta.items() if v.sign() > 0}
        charged = []
        for quota in quotas:
            hard = {k: _q(v) for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()}
            if not quota_matches(quota, req.group, req.resource, req.obj):
                continue
            requested = {k: v for k, v in delta.items() if k in hard}
            if req.is_("", "pods") and req.operation == "CREATE":
                why = missing_compute(req.obj, set(hard))
                if why:
                    raise req.forbidden(f"failed quota: {quota['metadata']['name']}: {why}")
            if not requested:
                continue
            used = self.used(quota, req.namespace, req.group, req.resource,
                             exclude=req.name if req.operation == "UPDATE" else "")
            exceeded = [k for k, v in requested.items()
                        if used.get(k, Quantity()) + v > hard[k]]
            if exceeded:
                raise req.forbidden(
                    f"exceeded quota: {quota['metadata']['name']}, requested: "
                    f"{pretty({k: requested[k] for k in exceeded})}, used: "
                    f"{pretty({k: used.get(k, Quantity()) for k in exceeded})}, limited: "
                    f"{pretty({k: hard[k] for k in exceeded})}")
            charged.append(quota)
        if charged and req.operation == "CREATE" and not req.dry_run:
            self.pending[(req.namespace, req.group, req.resource, req.name)] = (
                time.monotonic() + RESERVATION_SECONDS, copy.deepcopy(req.obj))
        if charged and not req.dry_run:
            self.schedule_refresh(req.namespace)

    # -- status --------------------------------------------------------------------------

    def schedule_refresh(self, namespace: str) -> None:
        self._refresh.add(namespace)
        if self._task is None or self._task.done():
            # A fresh context: the refresh is the API server's own write, not the request's.
            self._task = asyncio.get_running_loop().create_task(
                self._run_refresh(), context=contextvars.Context())

    async def _run_refresh(self) -> None:
        # Let the admitted write land in the store and the watch cache first.
        await asyncio.sleep(0)
        while self._refresh:
            namespace = self._refresh.pop()
            await self.server.cache.sync()
            for quota in self._quotas(namespace):
                try:
                    await self.refresh_status(quota)
                except errors.APIError as err:
                    if err.code not in (404, 409):
                        log.warning("quota %s/%s status: %s", namespace,
                                    quota["metadata"]["name"], err.message)

    def status_for(self, quota: dict) -> dict:
        ns = quota["metadata"].get("namespace", "")
        hard = (quota.get("spec") or {}).get("hard") or {}
        used: dict[str, Quantity] = {k: Quantity() for k in hard}
        for group, resource in _resources_for(self.server, hard):
            for k, v in self.used(quota, ns, group, resource).items():
                if k in used:
                    used[k] = used[k] + v
        return {"hard": {k: str(_q(v)) for k, v in hard.items()},
                "used": {k: str(v) for k, v in used.items()}}

    async def refresh_status(self, quota: dict) -> None:
        status = self.status_for(quota)
        if (quota.get("status") or {}) == status:
            return
        store = self.server.stores[("", "v1", "resourcequotas")]

        def transform(current: dict) -> dict:
            current["status"] = self.status_for(current)
            return current
        await store.patch(quota["metadata"]["namespace"], quota["metadata"]["name"],
                          transform, WriteOptions(), subresource="status")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _version(server: "APIServer", group: str, resource: str) -> str:
    for (g, v, r) in server.stores:
        if g == group and r == resource:
            return v
    return "v1"


def _resources_for(server: "APIServer", hard: dict) -> set[tuple[str, str]]:
    """The (group, resource) kinds whose objects count toward these hard limits."""
    out: set[tuple[str, str]] = set()
    for name in hard:
        base = name.split("/")[-1] if "storageclass" in name else name
        if name.startswith("count/"):
            res, _, group = name[len("count/"):].partition(".")
            out.add((group, res))
        elif name in CORE_COUNTED:
            out.add(("", name))
        elif name.startswith("services."):
            out.add(("", "services"))
        elif base in ("requests.storage", "persistentvolumeclaims"):
            out.add(("", "persistentvolumeclaims"))
        else:
            out.add(("", "pods"))
    return out
