"""The HorizontalPodAutoscaler controller (autoscaling/v2, resource metrics).

Role: upstream's ``horizontal-pod-autoscaler-controller`` (``pkg/controller/
podautoscaler``). Every ``sync_period`` each HPA is reconciled: read the target's
``scale`` subresource, list the pods its ``status.selector`` picks, read their usage
from ``metrics.k8s.io`` (``ResourceMetricsClient``; tests pass another
``MetricsSource``), compute the desired count per metric (``ReplicaCalculator``:
``ceil(ready pods * usage / target)`` with a 0.1 tolerance, missing and unready pods
handled as upstream), take the largest, apply min/max replicas, stabilization and
scaling policies (``Normalizer``: ``spec.behavior``, or the legacy rules without it),
write the new size through the scale subresource and the status (current metrics,
replicas, conditions AbleToScale / ScalingActive / ScalingLimited with upstream's
reasons and messages).

Invariants:
- The HPA in the informer cache is never mutated; status is written only when it
  changed (``updateStatusIfNeeded``).
- Only ``Resource`` and ``ContainerResource`` metrics have a source: ``Pods``,
  ``Object`` and ``External`` need the custom and external metrics APIs, which pyk8s
  does not serve, so they count as invalid metrics (ScalingActive False, as upstream
  with no adapter installed).
- Recommendations and scale events live in memory per HPA key (upstream keeps them
  the same way); they are dropped when the HPA goes away.
- Keys are processed every ``sync_period`` whatever happened (upstream's fixed
  interval rate limiter); a failed sync waits for the next period too.
"""
from __future__ import annotations

import copy
import datetime
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Protocol

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.api.quantities import Quantity, QuantityError
from pyk8s.client import ApiError
from pyk8s.client import resources as r
from pyk8s.client.controller import Requeue

from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)

COMPONENT = "horizontal-pod-autoscaler"
MAX_INT32 = 2**31 - 1


@dataclass(frozen=True)
class HPASettings:
    sync_period: float = 15.0                 # --horizontal-pod-autoscaler-sync-period
    tolerance: float = 0.1                    # --horizontal-pod-autoscaler-tolerance
    downscale_stabilization: float = 300.0    # ...-downscale-stabilization
    cpu_initialization_period: float = 300.0  # ...-cpu-initialization-period
    initial_readiness_delay: float = 30.0     # ...-initial-readiness-delay
    workers: int = 5                          # --concurrent-horizontal-pod-autoscaler-syncs


# -- metrics ---------------------------------------------------------------------------

@dataclass
class PodMetric:
    value: int  # milli-units
    timestamp: datetime.datetime
    window: float  # seconds


class MetricsError(Exception):
    """A metric could not be read; the message is upstream's."""


class MetricsSource(Protocol):
    async def resource_metric(self, resource: str, namespace: str, selector: str,
                              container: str) -> tuple[dict[str, PodMetric],
                                                       datetime.datetime]:
        """Usage per pod name (milli-units) of the pods ``selector`` picks, and the
        metrics' timestamp; raise MetricsError when there is nothing to read."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration_seconds(text: str) -> float:
    """A Go duration string (metav1.Duration) in seconds."""
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text or ""))


class ResourceMetricsClient:
    """PodMetrics from metrics.k8s.io/v1beta1 (upstream's resourceMetricsClient)."""

    def __init__(self, client):
        self.client = client

    async def resource_metric(self, resource, namespace, selector, container):
        try:
            doc = await self.client.request(
                "GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
                params=[("labelSelector", selector)])
        except ApiError as err:
            raise MetricsError(f"unable to fetch metrics from resource metrics API: "
                               f"{err}") from None
        items = doc.get("items") or []
        if not items:
            raise MetricsError("no metrics returned from resource metrics API")
        out: dict[str, PodMetric] = {}
        for item in items:
            stamp = m.parse_time(item["timestamp"])
            window = duration_seconds(item.get("window", ""))
            containers = item.get("containers") or []
            if container:
                found = [c for c in containers if c.get("name") == container]
                if not found:
                    raise MetricsError(f"failed to get container metrics: container "
                                       f"{container} not present in metrics for pod "
                                       f"{item['metadata'].get('namespace')}/"
                                       f"{item['metadata']['name']}")
                containers = found
            total, missing = 0, not containers
            for c in containers:
                value = (c.get("usage") or {}).get(resource)
                if value is None:
                    missing = True
                    break
                total += Quantity.parse(value).milli_value()
            if not missing:
                out[item["metadata"]["name"]] = PodMetric(total, stamp, window)
        return out, m.parse_time(items[0]["timestamp"])


# -- replica calculation -----------------------------------------------------------------

def _condition(pod: dict, kind: str) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


@dataclass
class ReplicaCalculator:
    settings: HPASettings
    now: datetime.datetime

    def group_pods(self, pods: list[dict], metrics: dict[str, PodMetric], resource: str
                   ) -> tuple[int, set[str], set[str], set[str]]:
        """(ready count, unready, missing, ignored) as upstream's groupPods."""
        ready, unready, missing, ignored = 0, set(), set(), set()
        for pod in pods:
            name = pod["metadata"]["name"]
            phase = (pod.get("status") or {}).get("phase")
            if pod["metadata"].get("deletionTimestamp") or phase == "Failed":
                ignored.add(name)
                continue
            if phase == "Pending":
                unready.add(name)
                continue
            metric = metrics.get(name)
            if metric is None:
                missing.add(name)
                continue
            if resource == "cpu" and self._cpu_unready(pod, metric):
                unready.add(name)
                continue
            ready += 1
        return ready, unready, missing, ignored

    def _cpu_unready(self, pod: dict, metric: PodMetric) -> bool:
        cond = _condition(pod, "Ready")
        start = (pod.get("status") or {}).get("startTime")
        if cond is None or not start:
            return True
        started = m.parse_time(start)
        changed = m.parse_time(cond["lastTransitionTime"]) if cond.get(
            "lastTransitionTime") else started
        init = datetime.timedelta(seconds=self.settings.cpu_initialization_period)
        if started + init > self.now:
            # still initialising: unready, or no full window of samples since it got ready
            return cond.get("status") == "False" or \
                metric.timestamp < changed + datetime.timedelta(seconds=metric.window)
        delay = datetime.timedelta(seconds=self.settings.initial_readiness_delay)
        return cond.get("status") == "False" and started + delay > changed

    @staticmethod
    def pod_requests(pods: list[dict], container: str, resource: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for pod in pods:
            spec = pod.get("spec") or {}
            containers = list(spec.get("containers") or []) + [
                c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
            total = 0
            for c in containers:
                if container and c.get("name") != container:
                    continue
                request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
                if request is None:
                    raise MetricsError(f"missing request for {resource} in container "
                                       f"{c.get('name')} of Pod {pod['metadata']['name']}")
                total += Quantity.parse(request).milli_value()
            out[pod["metadata"]["name"]] = total
        return out

    @staticmethod
    def utilization_ratio(metrics: dict[str, PodMetric], requests: dict[str, int],
                          target: int) -> tuple[float, int, int]:
        total = requested = entries = 0
        for name, metric in metrics.items():
            if name not in requests:
                continue  # metrics of pods we do not know
            total += metric.value
            requested += requests[name]
            entries += 1
        if requested == 0:
            raise MetricsError("no metrics returned matched known pods")
        utilization = int(total * 100 / requested)
        return utilization / target, utilization, total // entries

    @staticmethod
    def usage_ratio(metrics: dict[str, PodMetric], target: int) -> tuple[float, int]:
        usage = sum(p.value for p in metrics.values()) // len(metrics)
        return usage / target, usage

    def _usable(self, pods, metrics, resource):
        if not pods:
            raise MetricsError("no pods returned by selector while calculating replica count")
        ready, unready, missing, ignored = self.group_pods(pods, metrics, resource)
        metrics = {k: v for k, v in metrics.items() if k not in ignored and k not in unready}
        if not metrics:
            raise MetricsError("did not receive metrics for targeted pods (pods might be "
                               "unready)")
        return ready, unready, missing, metrics

    def _rescaled(self, current: int, ratio: float, new_ratio: float, count: int) -> int:
        if abs(1.0 - new_ratio) <= self.settings.tolerance or (ratio < 1.0 < new_ratio) \
                or (ratio > 1.0 > new_ratio):
            return current  # too small a change, or the direction flipped
        proposal = math.ceil(new_ratio * count)
        if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
            return current
        return proposal

    def resource_replicas(self, current: int, target_utilization: int, resource: str,
                          pods: list[dict], metrics: dict[str, PodMetric], container: str = ""
                          ) -> tuple[int, int, int]:
        """(replicas, utilization %, average usage in milli) for a Utilization target."""
        ready, unready, missing, metrics = self._usable(pods, metrics, resource)
        requests = self.pod_requests(pods, container, resource)
        ratio, utilization, raw = self.utilization_ratio(metrics, requests, target_utilization)
        with_unready = bool(unready) and ratio > 1.0
        if not with_unready and not missing:
            if abs(1.0 - ratio) <= self.settings.tolerance:
                return current, utilization, raw
            return math.ceil(ratio * ready), utilization, raw
        if missing:
            if ratio < 1.0:  # scaling down: missing pods count as using their request
                fallback = max(100, target_utilization)
                for name in missing:
                    metrics[name] = PodMetric(requests[name] * fallback // 100, self.now, 0)
            elif ratio > 1.0:  # scaling up: as using nothing
                for name in missing:
                    metrics[name] = PodMetric(0, self.now, 0)
        if with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, self.now, 0)
        new_ratio, _, _ = self.utilization_ratio(metrics, requests, target_utilization)
        return self._rescaled(current, ratio, new_ratio, len(metrics)), utilization, raw

    def raw_replicas(self, current: int, target_usage: int, resource: str, pods: list[dict],
                     metrics: dict[str, PodMetric]) -> tuple[int, int]:
        """(replicas, average usage in milli) for an AverageValue target."""
        ready, unready, missing, metrics = self._usable(pods, metrics, resource)
        ratio, usage = self.usage_ratio(metrics, target_usage)
        with_unready = bool(unready) and ratio > 1.0
        if not with_unready and not missing:
            if abs(1.0 - ratio) <= self.settings.tolerance:
                return current, usage
            return math.ceil(ratio * ready), usage
        for name in missing:
            metrics[name] = PodMetric(target_usage if ratio < 1.0 else 0, self.now, 0)
        if with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, self.now, 0)
        new_ratio, _ = self.usage_ratio(metrics, target_usage)
        return self._rescaled(current, ratio, new_ratio, len(metrics)), usage


# -- normalization (stabilization, policies, limits) --------------------------------------

@dataclass
class _Event:
    change: int
    time: datetime.datetime
    outdated: bool = False


@dataclass
class Normalizer:
    """Per-HPA recommendations and scale events, and the limits they imply."""

    settings: HPASettings
    recommendations: dict[str, list[tuple[int, datetime.datetime]]] = field(
        default_factory=dict)
    up_events: dict[str, list[_Event]] = field(default_factory=dict)
    down_events: dict[str, list[_Event]] = field(default_factory=dict)

    def forget(self, key: str) -> None:
        for d in (self.recommendations, self.up_events, self.down_events):
            d.pop(key, None)

    def _record(self, key: str, recommendation: int, now: datetime.datetime,
                replace_before: datetime.datetime) -> None:
        recs = self.recommendations.setdefault(key, [])
        for i, (_, at) in enumerate(recs):
            if at < replace_before:
                recs[i] = (recommendation, now)
                return
        recs.append((recommendation, now))

    def legacy(self, key: str, conditions: Conditions, current: int, desired: int,
               min_replicas: int, max_replicas: int, now: datetime.datetime) -> int:
        """Without spec.behavior: downscale stabilization, then upstream's fixed rules."""
        cutoff = now - datetime.timedelta(seconds=self.settings.downscale_stabilization)
        stabilized = desired
        for rec, at in self.recommendations.get(key, []):
            if at > cutoff:
                stabilized = max(stabilized, rec)
        self._record(key, desired, now, cutoff)
        if stabilized != desired:
            conditions.set("AbleToScale", "True", "ScaleDownStabilized",
                           "recent recommendations were higher than current one, applying "
                           "the highest recent recommendation")
        else:
            conditions.set("AbleToScale", "True", "ReadyForNewScale",
                           "recommended size matches current size")
        scale_up_limit = max(2 * current, 4)
        if max_replicas > scale_up_limit:
            top, reason, message = scale_up_limit, "ScaleUpLimit", \
                "the desired replica count is increasing faster than the maximum scale rate"
        else:
            top, reason, message = max_replicas, "TooManyReplicas", \
                "the desired replica count is more than the maximum replica count"
        if stabilized < min_replicas:
            result, reason, message = min_replicas, "TooFewReplicas", \
                "the desired replica count is less than the minimum replica count"
        elif stabilized > top:
            result = top
        else:
            result, reason, message = stabilized, "DesiredWithinRange", \
                "the desired count is within the acceptable range"
        conditions.set("ScalingLimited", "False" if result == stabilized else "True",
                       reason, message)
        return result

    def with_behavior(self, key: str, conditions: Conditions, behavior: dict, current: int,
                      desired: int, min_replicas: int, max_replicas: int,
                      now: datetime.datetime) -> int:
        up, down = behavior.get("scaleUp") or {}, behavior.get("scaleDown") or {}
        up_cut = now - datetime.timedelta(seconds=up.get("stabilizationWindowSeconds", 0))
        # unset: the controller's --horizontal-pod-autoscaler-downscale-stabilization
        # (upstream's maybeInitScaleDownStabilizationWindow)
        down_window = down.get("stabilizationWindowSeconds")
        if down_window is None:
            down_window = self.settings.downscale_stabilization
        down_cut = now - datetime.timedelta(seconds=down_window)
        up_rec = down_rec = desired
        for rec, at in self.recommendations.get(key, []):
            if at > up_cut:
                up_rec = min(up_rec, rec)
            if at > down_cut:
                down_rec = max(down_rec, rec)
        stabilized = min(max(current, up_rec), down_rec)
        self._record(key, desired, now, min(up_cut, down_cut))
        if stabilized != desired:
            if desired >= current:
                conditions.set("AbleToScale", "True", "ScaleUpStabilized",
                               "recent recommendations were lower than current one, applying "
                               "the lowest recent recommendation")
            else:
                conditions.set("AbleToScale", "True", "ScaleDownStabilized",
                               "recent recommendations were higher than current one, "
                               "applying the highest recent recommendation")
        else:
            conditions.set("AbleToScale", "True", "ReadyForNewScale",
                           "recommended size matches current size")
        result, reason, message = self._rate_limited(key, up, down, current, stabilized,
                                                     min_replicas, max_replicas, now)
        conditions.set("ScalingLimited", "False" if result == stabilized else "True",
                       reason, message)
        return result

    @staticmethod
    def _changed_in_period(events: list[_Event], period: int, now: datetime.datetime) -> int:
        cutoff = now - datetime.timedelta(seconds=period)
        return sum(e.change for e in events if e.time > cutoff)

    def _rate_limited(self, key, up, down, current, desired, min_replicas, max_replicas, now):
        if desired > current:
            limit = self.scale_up_limit(current, self.up_events.get(key, []), up, now)
            limit = max(limit, current)  # no further growth until old events expire
            if max_replicas > limit:
                top, reason, message = limit, "ScaleUpLimit", "the desired replica count " \
                    "is increasing faster than the maximum scale rate"
            else:
                top, reason, message = max_replicas, "TooManyReplicas", "the desired " \
                    "replica count is more than the maximum replica count"
            if desired > top:
                return top, reason, message
        elif desired < current:
            limit = self.scale_down_limit(current, self.down_events.get(key, []), down, now)
            limit = min(limit, current)
            if min_replicas < limit:
                bottom, reason, message = limit, "ScaleDownLimit", "the desired replica " \
                    "count is decreasing faster than the maximum scale rate"
            else:
                bottom, reason, message = min_replicas, "TooFewReplicas", "the desired " \
                    "replica count is less than the minimum replica count"
            if desired < bottom:
                return bottom, reason, message
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    def scale_up_limit(self, current: int, events: list[_Event], rules: dict,
                       now: datetime.datetime) -> int:
        select = rules.get("selectPolicy") or "Max"
        if select == "Disabled":
            return current
        pick, result = (min, MAX_INT32) if select == "Min" else (max, -MAX_INT32)
        for policy in rules.get("policies") or []:
            start = current - self._changed_in_period(events, policy["periodSeconds"], now)
            if policy["type"] == "Pods":
                proposed = start + policy["value"]
            else:
                proposed = math.ceil(start * (1 + policy["value"] / 100))
            result = pick(result, proposed)
        return result

    def scale_down_limit(self, current: int, events: list[_Event], rules: dict,
                         now: datetime.datetime) -> int:
        select = rules.get("selectPolicy") or "Max"
        if select == "Disabled":
            return current
        # the smallest change ("Min") is the largest replica count
        pick, result = (max, -MAX_INT32) if select == "Min" else (min, MAX_INT32)
        for policy in rules.get("policies") or []:
            start = current + self._changed_in_period(events, policy["periodSeconds"], now)
            if policy["type"] == "Pods":
                proposed = start - policy["value"]
            else:
                proposed = int(start * (1 - policy["value"] / 100))
            result = pick(result, proposed)
        return result

    def store_scale_event(self, key: str, behavior: dict | None, previous: int, new: int,
                          now: datetime.datetime) -> None:
        if not behavior:
            return
        if new > previous:
            events, rules = self.up_events.setdefault(key, []), behavior.get("scaleUp") or {}
            change = new - previous
        else:
            events, rules = self.down_events.setdefault(key, []), \
                behavior.get("scaleDown") or {}
            change = previous - new
        longest = max((p["periodSeconds"] for p in rules.get("policies") or []), default=0)
        cutoff = now - datetime.timedelta(seconds=longest)
        for e in events:
            if e.time < cutoff:
                e.outdated = True
        for i, e in enumerate(events):
            if e.outdated:
                events[i] = _Event(change, now)
                return
        events.append(_Event(change, now))


# -- conditions ---------------------------------------------------------------------------

class Conditions:
    """The HPA's status conditions: a changed status moves lastTransitionTime."""

    def __init__(self, existing: list[dict], now: str):
        self.items = copy.deepcopy(existing or [])
        self.now = now

    def set(self, kind: str, status: str, reason: str, message: str) -> None:
        for c in self.items:
            if c.get("type") == kind:
                if c.get("status") != status:
                    c["lastTransitionTime"] = self.now
                c.update(status=status, reason=reason, message=message)
                return
        self.items.append({"type": kind, "status": status, "lastTransitionTime": self.now,
                           "reason": reason, "message": message})


class SpecError(Exception):
    """A metric spec the controller cannot compute (upstream's invalid metric source)."""


# -- the controller -------------------------------------------------------------------------

class HorizontalController(CoreController):
    def __init__(self, ctx: ControllerContext, *, settings: HPASettings | None = None,
                 metrics: MetricsSource | None = None):
        self.settings = settings or HPASettings()
        super().__init__(ctx, name="horizontal-pod-autoscaler-controller",
                         workers=self.settings.workers)
        self.metrics = metrics or ResourceMetricsClient(ctx.client)
        self.recorder = ctx.recorder(COMPONENT)
        self.normalizer = Normalizer(self.settings)
        self.hpas = self.informer(r.HORIZONTALPODAUTOSCALERS)
        self.pods = self.informer(r.PODS)
        self.hpas.add_event_handler(on_add=self._later, on_update=lambda o, n: self._later(n),
                                    on_delete=self._deleted)

    def _later(self, hpa: dict) -> None:
        # upstream's fixed-interval rate limiter: every HPA is looked at once per period
        self.enqueue_after(hpa, self.settings.sync_period)

    def _deleted(self, hpa: dict) -> None:
        self.normalizer.forget(m.object_key(hpa))

    async def sync(self, key: str) -> None:
        hpa = self.hpas.store.get(key)
        if hpa is None:
            self.normalizer.forget(key)
            return
        try:
            await self.reconcile(copy.deepcopy(hpa))
        except MetricsError as err:
            log.info("%s: %s", key, err)
        except ApiError as err:
            log.warning("%s: %s", key, err)
        raise Requeue(self.settings.sync_period)

    # -- reconcile ----------------------------------------------------------------------

    async def reconcile(self, hpa: dict) -> None:
        key = m.object_key(hpa)
        ns = hpa["metadata"]["namespace"]
        spec = hpa.get("spec") or {}
        original = copy.deepcopy(hpa.get("status") or {})
        now = self.now()
        conditions = Conditions(original.get("conditions") or [], m.format_time(now))
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ns}/{ref.get('name')}"
        try:
            target = await self.client.resolve((ref.get("apiVersion") or "", ref.get("kind")))
            scale = await self.client.get(target, ref.get("name"), namespace=ns,
                                          subresource="scale")
        except (ApiError, LookupError, ValueError, KeyError) as err:
            text = str(err)
            self.recorder.event(hpa, "Warning", reason="FailedGetScale", message=text)
            conditions.set("AbleToScale", "False", "FailedGetScale",
                           f"the HPA controller was unable to get the target's current "
                           f"scale: {text}")
            await self._write_status(hpa, original, dict(
                original, conditions=conditions.items))
            raise MetricsError(f"failed to query scale subresource for {reference}: "
                               f"{text}") from None
        conditions.set("AbleToScale", "True", "SucceededGetScale",
                       "the HPA controller was able to get the target's current scale")
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        min_replicas = spec.get("minReplicas", 1)
        max_replicas = spec["maxReplicas"]
        statuses: list[dict] = []
        rescale, reason, desired = True, "", 0
        if current == 0 and min_replicas != 0:
            rescale = False
            conditions.set("ScalingActive", "False", "ScalingDisabled",
                           "scaling is disabled since the replica count of the target is zero")
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            proposal, metric, statuses, error = await self.replicas_for_metrics(
                hpa, scale, conditions, now)
            if proposal == -1:
                await self._write_status(hpa, original, self._status(
                    original, conditions, current, original.get("desiredReplicas", 0),
                    statuses, False, now))
                self.recorder.event(hpa, "Warning", reason="FailedComputeMetricsReplicas",
                                    message=error)
                raise MetricsError(f"failed to compute desired number of replicas based on "
                                   f"listed metrics for {reference}: {error}")
            if proposal > desired:
                desired = proposal
            if desired > current:
                reason = f"{metric} above target"
            elif desired < current:
                reason = "All metrics below target"
            behavior = spec.get("behavior")
            if behavior:
                desired = self.normalizer.with_behavior(key, conditions, behavior, current,
                                                        desired, min_replicas, max_replicas,
                                                        now)
            else:
                desired = self.normalizer.legacy(key, conditions, current, desired,
                                                 min_replicas, max_replicas, now)
            rescale = desired != current
        if rescale:
            new_scale = copy.deepcopy(scale)
            new_scale["spec"] = dict(new_scale.get("spec") or {}, replicas=desired)
            try:
                await self.client.update(target, new_scale, namespace=ns, subresource="scale")
            except ApiError as err:
                self.recorder.event(hpa, "Warning", reason="FailedRescale",
                                    message=f"New size: {desired}; reason: {reason}; "
                                            f"error: {err}")
                conditions.set("AbleToScale", "False", "FailedUpdateScale",
                               f"the HPA controller was unable to update the target scale: "
                               f"{err}")
                await self._write_status(hpa, original, self._status(
                    original, conditions, current, original.get("desiredReplicas", 0),
                    statuses, False, now))
                raise
            conditions.set("AbleToScale", "True", "SucceededRescale",
                           f"the HPA controller was able to update the target scale to "
                           f"{desired}")
            self.recorder.event(hpa, "Normal", reason="SuccessfulRescale",
                                message=f"New size: {desired}; reason: {reason}")
            self.normalizer.store_scale_event(key, spec.get("behavior"), current, desired, now)
            log.info("successful rescale of %s, old size: %d, new size: %d, reason: %s",
                     key, current, desired, reason)
        else:
            desired = current
        await self._write_status(hpa, original, self._status(
            original, conditions, current, desired, statuses, rescale, now))

    @staticmethod
    def _status(original: dict, conditions: Conditions, current: int, desired: int,
                statuses: list[dict], rescaled: bool, now: datetime.datetime) -> dict:
        status = {k: v for k, v in original.items()
                  if k in ("observedGeneration", "lastScaleTime")}
        status.update(currentReplicas=current, desiredReplicas=desired)
        if statuses:
            status["currentMetrics"] = statuses
        if rescaled:
            status["lastScaleTime"] = m.format_time(now)
        status["conditions"] = conditions.items
        return status

    async def _write_status(self, hpa: dict, original: dict, status: dict) -> None:
        if status == original:
            return
        body = dict(hpa, status=status)
        try:
            await self.client.update_status(r.HORIZONTALPODAUTOSCALERS, body)
        except ApiError as err:
            raise MetricsError(f"failed to update status for {hpa['metadata']['name']}: "
                               f"{err}") from None

    # -- metrics --------------------------------------------------------------------------

    def _selected_pods(self, namespace: str, selector: selectors.LabelSelector) -> list[dict]:
        return [p for p in self.pods.store.list_namespace(namespace)
                if selector.matches(p["metadata"].get("labels") or {})]

    async def replicas_for_metrics(self, hpa: dict, scale: dict, conditions: Conditions,
                                   now: datetime.datetime
                                   ) -> tuple[int, str, list[dict], str]:
        """(replicas or -1, metric name, metric statuses, first error)."""
        raw_selector = (scale.get("status") or {}).get("selector") or ""
        if not raw_selector:
            message = "selector is required"
            self.recorder.event(hpa, "Warning", reason="SelectorRequired", message=message)
            conditions.set("ScalingActive", "False", "InvalidSelector",
                           "the HPA target's scale is missing a selector")
            return -1, "", [], message
        try:
            selector = selectors.parse_label_selector(raw_selector)
        except selectors.SelectorError as err:
            message = f"couldn't convert selector into a corresponding internal selector " \
                      f"object: {err}"
            self.recorder.event(hpa, "Warning", reason="InvalidSelector", message=message)
            conditions.set("ScalingActive", "False", "InvalidSelector", message)
            return -1, "", [], message
        specs = (hpa.get("spec") or {}).get("metrics") or []
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        pods = self._selected_pods(hpa["metadata"]["namespace"], selector)
        calc = ReplicaCalculator(self.settings, now)
        replicas, metric, statuses = 0, "", []
        invalid, first_error, first_condition = 0, "", None
        for spec in specs:
            try:
                proposal, name, status = await self.replicas_for_metric(
                    hpa, spec, spec_replicas, raw_selector, pods, calc)
            except _MetricFailure as failure:
                if not invalid:
                    first_error, first_condition = str(failure), failure.reason
                invalid += 1
                statuses.append({"type": ""})
                continue
            statuses.append(status)
            if replicas == 0 or proposal > replicas:
                replicas, metric = proposal, name
        statuses = [s for s in statuses if s.get("type")]
        if invalid:
            first_error = f"invalid metrics ({invalid} invalid out of {len(specs)}), first " \
                          f"error is: {first_error}"
        if invalid >= len(specs) or (invalid and replicas < spec_replicas):
            reason, message = first_condition or ("FailedGetResourceMetric", first_error)
            conditions.set("ScalingActive", "False", reason, message)
            return -1, "", statuses, first_error
        conditions.set("ScalingActive", "True", "ValidMetricFound",
                       f"the HPA was able to successfully calculate a replica count from "
                       f"{metric}")
        return replicas, metric, statuses, first_error

    def _unable(self, hpa: dict, reason: str, error: str) -> "_MetricFailure":
        self.recorder.event(hpa, "Warning", reason=reason, message=error)
        return _MetricFailure(error, (reason, f"the HPA was unable to compute the replica "
                                              f"count: {error}"))

    async def replicas_for_metric(self, hpa: dict, spec: dict, current: int, selector: str,
                                  pods: list[dict], calc: ReplicaCalculator
                                  ) -> tuple[int, str, dict]:
        kind = spec.get("type")
        if kind in ("Resource", "ContainerResource"):
            source = spec.get("resource" if kind == "Resource" else "containerResource") or {}
            container = source.get("container", "") if kind == "ContainerResource" else ""
            reason = "FailedGetResourceMetric" if kind == "Resource" \
                else "FailedGetContainerResourceMetric"
            try:
                return await self._resource_metric(hpa, kind, source, container, current,
                                                   selector, pods, calc)
            except (MetricsError, QuantityError, SpecError) as err:
                error = f"failed to get {source.get('name')} resource metric value: {err}"
                if kind == "ContainerResource":
                    error = f"failed to get {source.get('name')} container metric value: {err}"
                raise self._unable(hpa, reason, error) from None
        if kind in ("Pods", "Object", "External"):
            api = "external.metrics.k8s.io" if kind == "External" else "custom.metrics.k8s.io"
            source = spec.get(kind.lower()) or {}
            name = (source.get("metric") or {}).get("name", "")
            error = f"failed to get {kind.lower()} metric value: unable to get metric {name}: " \
                    f"no {api} API is served"
            raise self._unable(hpa, f"FailedGet{kind}Metric", error)
        error = f"unknown metric source type \"{kind}\""
        raise self._unable(hpa, "InvalidMetricSourceType", error)

    async def _resource_metric(self, hpa, kind, source, container, current, selector, pods,
                               calc) -> tuple[int, str, dict]:
        resource = source.get("name", "")
        target = source.get("target") or {}
        ns = hpa["metadata"]["namespace"]
        metrics, _ = await self.metrics.resource_metric(resource, ns, selector, container)
        status_key = "resource" if kind == "Resource" else "containerResource"
        ident = {"name": resource}
        if container:
            ident["container"] = container
        if target.get("averageValue") is not None:
            goal = Quantity.parse(target["averageValue"]).milli_value()
            try:
                replicas, usage = calc.raw_replicas(current, goal, resource, pods, metrics)
            except MetricsError as err:
                raise MetricsError(f"failed to get {resource} usage: {err}") from None
            value = {"averageValue": str(Quantity.from_milli(usage))}
            return replicas, f"{resource} resource", {
                "type": kind, status_key: dict(ident, current=value)}
        if target.get("averageUtilization") is None:
            raise SpecError("invalid resource metric source: neither an average utilization "
                            "target nor an average value (usage) target was set")
        try:
            replicas, utilization, raw = calc.resource_replicas(
                current, target["averageUtilization"], resource, pods, metrics, container)
        except MetricsError as err:
            raise MetricsError(f"failed to get {resource} utilization: {err}") from None
        name = f"{resource} resource utilization (percentage of request)"
        if kind == "ContainerResource":
            name = f"{resource} container resource utilization (percentage of request)"
        value = {"averageUtilization": utilization,
                 "averageValue": str(Quantity.from_milli(raw))}
        return replicas, name, {"type": kind, status_key: dict(ident, current=value)}


class _MetricFailure(Exception):
    def __init__(self, message: str, condition: tuple[str, str]):
        super().__init__(message)
        self.reason = condition


def new_hpa_controller(ctx: ControllerContext) -> HorizontalController:
    return HorizontalController(ctx)


__all__ = ["HPASettings", "HorizontalController", "ReplicaCalculator", "Normalizer",
           "ResourceMetricsClient", "MetricsSource", "PodMetric", "MetricsError",
           "Conditions", "duration_seconds", "new_hpa_controller"]
