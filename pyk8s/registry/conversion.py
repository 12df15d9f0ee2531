"""Resources served in one shape and stored in another.

Upstream stores a resource once and converts per request: ``autoscaling/v1``
HorizontalPodAutoscalers are stored as ``autoscaling/v2``; ``events.k8s.io/v1``
Events are core ``v1`` Events. A ConvertingStore serves the other shape over the
storage resource's keys, so both views always show the same objects.

Invariants: ``from_storage(to_storage(x))`` keeps every field the served version
has; fields only the storage version has survive a round trip through the served
version in annotations (HPA) or are kept from the stored object (Events).
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import orjson

from .catalogue import ResourceInfo
from .generic import GenericStore, WriteOptions, resource_prefix, with_zero_status

HPA_METRICS = "autoscaling.alpha.kubernetes.io/metrics"
HPA_CURRENT = "autoscaling.alpha.kubernetes.io/current-metrics"
HPA_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
HPA_BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"


def _is_cpu_utilization(metric: dict) -> bool:
    res = metric.get("resource") or {}
    return (metric.get("type") == "Resource" and res.get("name") == "cpu"
            and (res.get("target") or {}).get("type") == "Utilization")


def hpa_v2_to_v1(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    spec = out.get("spec") or {}
    meta = out.setdefault("metadata", {})
    ann = dict(meta.get("annotations") or {})
    metrics = spec.pop("metrics", None) or []
    others = [m for m in metrics if not _is_cpu_utilization(m)]
    for m in metrics:
        if _is_cpu_utilization(m):
            spec["targetCPUUtilizationPercentage"] = m["resource"]["target"].get(
                "averageUtilization")
    if others:
        ann[HPA_METRICS] = orjson.dumps(others).decode()
    behavior = spec.pop("behavior", None)
    if behavior:
        ann[HPA_BEHAVIOR] = orjson.dumps(behavior).decode()
    status = out.get("status")
    if status is not None:
        current = status.pop("currentMetrics", None) or []
        for m in current:
            res = m.get("resource") or {}
            if m.get("type") == "Resource" and res.get("name") == "cpu":
                util = (res.get("current") or {}).get("averageUtilization")
                if util is not None:
                    status["currentCPUUtilizationPercentage"] = util
        if current:
            ann[HPA_CURRENT] = orjson.dumps(current).decode()
        conds = status.pop("conditions", None)
        if conds:
            ann[HPA_CONDITIONS] = orjson.dumps(conds).decode()
    if ann:
        meta["annotations"] = ann
    return out


def hpa_v1_to_v2(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    spec = out.setdefault("spec", {})
    meta = out.setdefault("metadata", {})
    ann = dict(meta.get("annotations") or {})
    metrics: list[dict[str, Any]] = []
    target = spec.pop("targetCPUUtilizationPercentage", None)
    if target is not None:
        metrics.append({"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
    if HPA_METRICS in ann:
        metrics += orjson.loads(ann.pop(HPA_METRICS))
    if metrics:
        spec["metrics"] = metrics
    if HPA_BEHAVIOR in ann:
        spec["behavior"] = orjson.loads(ann.pop(HPA_BEHAVIOR))
    status = out.get("status")
    if status is not None:
        util = status.pop("currentCPUUtilizationPercentage", None)
        current = orjson.loads(ann.pop(HPA_CURRENT)) if HPA_CURRENT in ann else []
        if util is not None and not current:
            current = [{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": util}}}]
        if current:
            status["currentMetrics"] = current
        if HPA_CONDITIONS in ann:
            status["conditions"] = orjson.loads(ann.pop(HPA_CONDITIONS))
    else:
        for k in (HPA_CURRENT, HPA_CONDITIONS):
            ann.pop(k, None)
    if ann:
        meta["annotations"] = ann
    else:
        meta.pop("annotations", None)
    return out


# (events.k8s.io/v1 field, core/v1 field)
_EVENT_FIELDS = (("regarding", "involvedObject"), ("note", "message"), ("reason", "reason"),
                 ("type", "type"), ("eventTime", "eventTime"), ("action", "action"),
                 ("related", "related"), ("reportingController", "reportingComponent"),
                 ("reportingInstance", "reportingInstance"), ("deprecatedSource", "source"),
                 ("deprecatedFirstTimestamp", "firstTimestamp"),
                 ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"),
                 ("series", "series"))


def event_core_to_events(obj: dict) -> dict:
    out = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
           "metadata": copy.deepcopy(obj.get("metadata") or {})}
    for new, old in _EVENT_FIELDS:
        if old in obj and obj[old] not in (None, "", 0, {}):
            out[new] = copy.deepcopy(obj[old])
    if out.get("eventTime") is None:
        # Legacy events carry no eventTime; the events.k8s.io shape requires one, so
        # show when the event was first seen (clients validate it as a timestamp).
        first = obj.get("firstTimestamp") or out["metadata"].get("creationTimestamp")
        out["eventTime"] = first[:-1] + ".000000Z" if first and first.endswith("Z") \
            else first
    return out


def event_events_to_core(obj: dict) -> dict:
    out = {"apiVersion": "v1", "kind": "Event",
           "metadata": copy.deepcopy(obj.get("metadata") or {})}
    for new, old in _EVENT_FIELDS:
        if new in obj and obj[new] is not None:
            out[old] = copy.deepcopy(obj[new])
    out.setdefault("involvedObject", {})
    return out


Codec = tuple[Callable[[dict], dict], Callable[[dict], dict]]  # (to_storage, from_storage)

# served (group, version, plural) -> (storage (group, version, plural), codec)
CONVERTED: dict[tuple[str, str, str], tuple[tuple[str, str, str], Codec]] = {
    ("autoscaling", "v1", "horizontalpodautoscalers"):
        (("autoscaling", "v2", "horizontalpodautoscalers"), (hpa_v1_to_v2, hpa_v2_to_v1)),
    ("events.k8s.io", "v1", "events"):
        (("", "v1", "events"), (event_events_to_core, event_core_to_events)),
}


class ConvertingStore(GenericStore):
    """A served version over another resource's storage (see module docstring).

    Like every store it takes served-shape bodies and returns stored-shape objects;
    the HTTP layer renders them through ``present``."""

    def __init__(self, served: ResourceInfo, storage: GenericStore, codec: Codec):
        super().__init__(storage.info, storage.store, storage.watchcache, storage.strategy,
                         admit=storage.admit)
        self.storage = storage
        self.served_info = served
        self.to_storage, self.from_storage = codec
        self.served_api_version = served.group_version
        self.served_kind = served.kind

    # The served identity for discovery, errors and field selectors; storage keys.
    @property
    def info(self) -> ResourceInfo:
        return self.served_info

    @info.setter
    def info(self, value: ResourceInfo) -> None:
        self._storage_info = value

    def key(self, namespace: str, name: str) -> str:
        return self.storage.key(namespace, name)

    def prefix(self, namespace: str = "") -> str:
        return resource_prefix(self.storage.info, namespace)

    @property
    def cache(self):
        return self.storage.cache

    def present(self, obj: dict) -> dict:
        return with_zero_status(self.from_storage(obj), self.served_api_version,
                                self.served_kind)

    def _check_kind(self, obj: dict) -> None:
        from ..api import errors
        api_version = obj.get("apiVersion")
        if api_version and api_version != self.served_api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({self.served_api_version})")
        if obj.get("kind") and obj["kind"] != self.served_kind:
            raise errors.bad_request(f'Object kind "{obj["kind"]}" does not match the '
                                     f'expected kind "{self.served_kind}"')

    async def create(self, namespace: str, obj: dict, opts: WriteOptions) -> dict:
        self._check_kind(obj)
        return await self.storage.create(namespace, self.to_storage(obj), opts)

    async def update(self, namespace: str, name: str, body: dict, opts: WriteOptions, *,
                     subresource: str = "") -> tuple[dict, bool]:
        self._check_kind(body)
        return await self.storage.update(namespace, name, self.to_storage(body), opts,
                                         subresource=subresource)

    async def patch(self, namespace: str, name: str, apply_patch, opts: WriteOptions, *,
                    subresource: str = "") -> dict:
        def transform(old: dict) -> dict:
            new = apply_patch(self.present(old))
            self._check_kind(new)
            return self.to_storage(new)
        return await self.storage.patch(namespace, name, transform, opts,
                                        subresource=subresource)

    async def delete(self, namespace: str, name: str, opts) -> tuple[dict, bool]:
        return await self.storage.delete(namespace, name, opts)
