"""ResourceQuota usage: ``status.hard`` and ``status.used`` kept true.

Role: upstream's ``resourcequota-controller`` (``pkg/controller/resourcequota``) with
the usage evaluators of ``pkg/quota/v1/evaluator/core``. Admission charges new
objects as they are created; this controller recalculates every quota from what
exists — when a quota changes, when objects in its namespace change or go away
(replenishment), and every ``resync_period``.

Invariants:
- ``status.hard`` equals ``spec.hard``; ``status.used`` has exactly the keys of
  ``spec.hard`` (zero when nothing is used), in canonical quantity form.
- Pods count for compute resources and ``pods`` only while not terminal and not past
  their deletion grace period (``QuotaV1Pod``); ``count/pods`` counts every pod.
  Requests and limits are the pod's effective ones: the sum of its containers and
  sidecars, at least each init container, plus the pod overhead.
- Quota scopes (Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass)
  narrow only which pods count; other objects are counted by ``count/<resource>``
  and the legacy names (``services``, ``secrets``, ``configmaps``,
  ``persistentvolumeclaims``, ``replicationcontrollers``, ``resourcequotas``).
"""
from __future__ import annotations

import datetime
import logging

from pyk8s.api import meta as m
from pyk8s.api.quantities import Quantity, QuantityError, parse_quantity
from pyk8s.client import resources as r

from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)

ONE = Quantity.from_value(1)
LEGACY_COUNTED = {"pods", "services", "secrets", "configmaps", "persistentvolumeclaims",
                  "replicationcontrollers", "resourcequotas"}
BUILTIN_WATCHED = {("", "pods"): r.PODS, ("", "services"): r.SERVICES,
                   ("", "persistentvolumeclaims"): r.PERSISTENTVOLUMECLAIMS,
                   ("", "configmaps"): r.CONFIGMAPS, ("", "secrets"): r.SECRETS,
                   ("", "replicationcontrollers"): r.REPLICATIONCONTROLLERS,
                   ("", "resourcequotas"): r.RESOURCEQUOTAS}
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"


def _q(value) -> Quantity:
    try:
        return parse_quantity(value)
    except QuantityError:
        return Quantity()


def _add(acc: dict[str, Quantity], extra: dict) -> None:
    for k, v in extra.items():
        acc[k] = acc.get(k, Quantity()) + _q(v)


def _max(acc: dict[str, Quantity], other: dict[str, Quantity]) -> None:
    for k, v in other.items():
        if k not in acc or v > acc[k]:
            acc[k] = v


def pod_resources(spec: dict, part: str) -> dict[str, Quantity]:
    """``resourcehelper.PodRequests``/``PodLimits`` (``part`` requests or limits)."""
    total: dict[str, Quantity] = {}
    for c in spec.get("containers") or []:
        _add(total, (c.get("resources") or {}).get(part) or {})
    sidecars: dict[str, Quantity] = {}
    init_max: dict[str, Quantity] = {}
    for c in spec.get("initContainers") or []:
        res = (c.get("resources") or {}).get(part) or {}
        if c.get("restartPolicy") == "Always":
            _add(sidecars, res)
            _max(init_max, dict(sidecars))
            continue
        step = dict(sidecars)
        _add(step, res)
        _max(init_max, step)
    _add(total, sidecars)
    _max(total, init_max)
    if spec.get("overhead"):
        for k, v in spec["overhead"].items():
            if k in total or part == "requests":
                total[k] = total.get(k, Quantity()) + _q(v)
    return total


def counts_compute(pod: dict, now: datetime.datetime) -> bool:
    """``QuotaV1Pod``: not terminal and not past its deletion grace period."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    md = pod["metadata"]
    if md.get("deletionTimestamp") and md.get("deletionGracePeriodSeconds") is not None:
        gone = m.parse_time(md["deletionTimestamp"]) + datetime.timedelta(
            seconds=md["deletionGracePeriodSeconds"])
        if now > gone:
            return False
    return True


def pod_usage(pod: dict, now: datetime.datetime) -> dict[str, Quantity]:
    usage = {"count/pods": ONE}
    if not counts_compute(pod, now):
        return usage
    spec = pod.get("spec") or {}
    requests, limits = pod_resources(spec, "requests"), pod_resources(spec, "limits")
    usage["pods"] = ONE
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            usage[name] = requests[name]
            usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-"):
            usage[name] = value
            usage[f"requests.{name}"] = value
        elif "/" in name and not name.startswith("kubernetes.io/"):
            usage[f"requests.{name}"] = value   # extended resources
    return usage


def object_usage(group: str, resource: str, obj: dict,
                 now: datetime.datetime) -> dict[str, Quantity]:
    """What one object counts against a quota."""
    if (group, resource) == ("", "pods"):
        return pod_usage(obj, now)
    usage = {f"count/{resource}" + (f".{group}" if group else ""): ONE}
    if group == "" and resource in LEGACY_COUNTED:
        usage[resource] = ONE
    spec = obj.get("spec") or {}
    if (group, resource) == ("", "services"):
        kind = spec.get("type") or "ClusterIP"
        if kind == "LoadBalancer":
            usage["services.loadbalancers"] = ONE
        if kind in ("NodePort", "LoadBalancer"):
            usage["services.nodeports"] = Quantity.from_value(
                sum(1 for p in spec.get("ports") or [] if p.get("nodePort")))
    elif (group, resource) == ("", "persistentvolumeclaims"):
        storage = _q(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0"))
        allocated = (obj.get("status") or {}).get("allocatedResources") or {}
        if "storage" in allocated and _q(allocated["storage"]) > storage:
            storage = _q(allocated["storage"])
        usage["requests.storage"] = storage
        sc = spec.get("storageClassName")
        if sc:
            usage[f"{sc}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
            usage[f"{sc}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
    return usage


def _best_effort(pod: dict) -> bool:
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            if any(k in ("cpu", "memory") for k in (res.get(part) or {})):
                return False
    return True


def scope_matches(scope: str, pod: dict, operator: str = "Exists", values=()) -> bool:
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _best_effort(pod)
    if scope == "NotBestEffort":
        return not _best_effort(pod)
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        return {"In": name in values, "NotIn": name not in values, "Exists": bool(name),
                "DoesNotExist": not name}.get(operator, False)
    if scope == "CrossNamespacePodAffinity":
        aff = spec.get("affinity") or {}
        terms = []
        for kind in ("podAffinity", "podAntiAffinity"):
            a = aff.get(kind) or {}
            terms += a.get("requiredDuringSchedulingIgnoredDuringExecution") or []
            terms += [w.get("podAffinityTerm") or {}
                      for w in a.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        return any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms)
    return False


def quota_selects(quota: dict, group: str, resource: str, obj: dict) -> bool:
    spec = quota.get("spec") or {}
    scopes = [(s, "Exists", ()) for s in spec.get("scopes") or []]
    scopes += [(e.get("scopeName"), e.get("operator", "Exists"), tuple(e.get("values") or ()))
               for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or []]
    if not scopes or (group, resource) != ("", "pods"):
        return True
    return all(scope_matches(s, obj, op, vals) for s, op, vals in scopes)


def resources_for(hard: dict) -> set[tuple[str, str]]:
    """The (group, resource) whose objects count towards these hard limits."""
    out: set[tuple[str, str]] = set()
    for name in hard:
        if name.startswith("count/"):
            res, _, group = name[len("count/"):].partition(".")
            out.add((group, res))
        elif name in LEGACY_COUNTED:
            out.add(("", name))
        elif name.startswith("services."):
            out.add(("", "services"))
        elif name == "requests.storage" or STORAGE_CLASS_SUFFIX in name:
            out.add(("", "persistentvolumeclaims"))
        else:
            out.add(("", "pods"))
    return out


def quota_status(quota: dict, objects: dict[tuple[str, str], list[dict]],
                 now: datetime.datetime) -> dict:
    """The status a quota should have given the objects of its namespace."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    used = {k: Quantity() for k in hard}
    for (group, resource), items in objects.items():
        for obj in items:
            if not quota_selects(quota, group, resource, obj):
                continue
            for k, v in object_usage(group, resource, obj, now).items():
                if k in used:
                    used[k] = used[k] + v
    return {"hard": {k: str(_q(v)) for k, v in hard.items()},
            "used": {k: str(v) for k, v in used.items()}}


class ResourceQuotaController(CoreController):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.quota
        super().__init__(ctx, name="resourcequota-controller", workers=s.workers)
        self.quotas = self.informer(r.RESOURCEQUOTAS)
        self.quotas.add_event_handler(on_add=self.enqueue, on_update=self._quota_update,
                                      resync_period=s.resync_period)
        self.sources = {}
        for key, res in BUILTIN_WATCHED.items():
            inf = self.informer(res)
            self.sources[key] = inf
            if key == ("", "resourcequotas"):
                continue
            inf.add_event_handler(on_update=lambda o, n: self._replenish(n),
                                  on_delete=self._replenish)

    def _quota_update(self, old: dict, new: dict) -> None:
        self.enqueue(new)

    def _replenish(self, obj: dict) -> None:
        for quota in self.quotas.store.list_namespace(obj["metadata"].get("namespace")):
            self.enqueue(quota)

    async def _objects(self, ns: str, wanted: set[tuple[str, str]]) -> dict:
        found: dict[tuple[str, str], list[dict]] = {}
        for group, resource in wanted:
            inf = self.sources.get((group, resource))
            if inf is not None:
                found[(group, resource)] = inf.store.list_namespace(ns)
                continue
            try:
                mapper = self.client.mapper
                versions = await mapper.preferred_versions()
                version = versions.get(group)
                if version is None:
                    continue
                api_version = f"{group}/{version}" if group else version
                res = next((x for x in await mapper.resources(api_version)
                            if x.plural == resource), None)
                if res is None or not res.namespaced:
                    continue
                found[(group, resource)] = (await self.client.list_all(res, namespace=ns))["items"]
            except Exception as err:  # noqa: BLE001 - count what can be counted
                log.warning("resource quota: cannot count %s.%s in %s: %s", resource, group,
                            ns, err)
        return found

    async def sync(self, key: str) -> None:
        quota = self.quotas.store.get(key)
        if quota is None:
            return
        hard = (quota.get("spec") or {}).get("hard") or {}
        ns = quota["metadata"]["namespace"]
        status = quota_status(quota, await self._objects(ns, resources_for(hard)), self.now())
        old = quota.get("status") or {}
        if old.get("hard") == status["hard"] and old.get("used") == status["used"]:
            return
        await self.client.update_status(r.RESOURCEQUOTAS, {**quota, "status": status})


def new_resourcequota_controller(ctx: ControllerContext) -> ResourceQuotaController:
    return ResourceQuotaController(ctx)
