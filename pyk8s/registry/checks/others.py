"""Checks for the remaining groups: HorizontalPodAutoscaler, PriorityClass, CRD names,
and the metadata-only rule for every other built-in kind.

Role: upstream's ``autoscaling/validation`` spec bounds (minReplicas, maxReplicas,
scaleTargetRef, metric types and resource targets), ``scheduling/validation`` for
PriorityClass (reserved ``system-`` names, value bounds, immutable value), the CRD
name rule (``<plural>.<group>``) and ``ValidateObjectMeta`` with the kind's name
rule for kinds whose own checks are not ported.

Invariants: HPA behavior policies and CRD schema structure are not checked here.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...api import validation as names
from ...api.quantities import QuantityError, parse_quantity
from .containers import resource_name
from .field import (FieldError, forbidden, immutable, invalid, not_supported, required)
from .meta import NameFn, SUBDOMAIN, object_meta, object_meta_update, standard_meta

METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
_METRIC_FIELD = {"Object": "object", "Pods": "pods", "Resource": "resource",
                 "External": "external", "ContainerResource": "containerResource"}
HIGHEST_USER_PRIORITY = 1000000000
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000,
                           "system-cluster-critical": 2000000000}


# --- HorizontalPodAutoscaler ---------------------------------------------------------

def _cross_version_ref(ref: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            errs.append(required(f"{path}.{key}"))
        else:
            errs += [invalid(f"{path}.{key}", value, m)
                     for m in names.is_valid_path_segment_name(value)]
    return errs


def _metric_target(target: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = target.get("type") or ""
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        errs.append(invalid(f"{path}.type", kind, "must be either Utilization, Value, or AverageValue"))
    for key in ("value", "averageValue"):
        if target.get(key) is None:
            continue
        try:
            quantity = parse_quantity(target[key])
        except QuantityError:
            continue  # the schema check reports malformed quantities
        if quantity.sign() != 1:
            errs.append(invalid(f"{path}.{key}", str(quantity), "must be positive",
                                shown=str(quantity)))
    utilization = target.get("averageUtilization")
    if utilization is not None and utilization < 1:
        errs.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return errs


def _resource_source(src: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = src.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name", "must specify a resource name"))
    else:
        errs += resource_name(name, f"{path}.name")
    target = src.get("target") or {}
    errs += _metric_target(target, f"{path}.target")
    if target.get("averageUtilization") is None and target.get("averageValue") is None:
        errs.append(required(f"{path}.target.averageUtilization",
                             "must set either a target raw value or a target utilization"))
    if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
        errs.append(forbidden(f"{path}.target.averageValue",
                              "may not set both a target raw value and a target utilization"))
    return errs


def _metric(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = spec.get("type") or ""
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric source type"))
    if kind not in METRIC_TYPES:
        errs.append(not_supported(f"{path}.type", kind, METRIC_TYPES))
    present = [f for f in ("object", "external", "pods", "resource", "containerResource")
               if spec.get(f) is not None]
    if spec.get("resource") is not None and present[0] == "resource":
        errs += _resource_source(spec["resource"], f"{path}.resource")
    expected = _METRIC_FIELD.get(kind)
    if expected is not None and spec.get(expected) is None:
        errs.append(required(f"{path}.{expected}", "must populate information for the given "
                             "metric source"))
    if len(present) != 1:
        for extra in present:
            if extra != expected:
                errs.append(forbidden(f"{path}.{extra}", "must populate the given metric source only"))
    return errs


def validate_hpa(obj: Mapping[str, Any], old: Mapping[str, Any] | None, version: str) -> list[FieldError]:
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    spec = obj.get("spec") or {}
    low = spec.get("minReplicas")
    high = spec.get("maxReplicas") or 0
    if low is not None and low < 1:
        errs.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if high < 1:
        errs.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
    if low is not None and high < low:
        errs.append(invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    errs += _cross_version_ref(spec.get("scaleTargetRef") or {}, "spec.scaleTargetRef")
    if version != "v1":
        for i, metric in enumerate(spec.get("metrics") or []):
            errs += _metric(metric, f"spec.metrics[{i}]")
    return errs


# --- PriorityClass, CRD, metadata-only kinds -------------------------------------------

def validate_priority_class(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    if old is not None:
        errs = object_meta_update(meta, old.get("metadata") or {})
        if obj.get("value") != old.get("value"):
            errs.append(forbidden("value", "may not be changed in an update."))
        return errs + immutable(obj.get("preemptionPolicy"), old.get("preemptionPolicy"),
                                "preemptionPolicy")
    errs = object_meta(meta, namespaced=False, name_fn=SUBDOMAIN)
    name, value = meta.get("name") or "", obj.get("value") or 0
    if name.startswith("system-"):
        problem = None
        if name not in SYSTEM_PRIORITY_CLASSES:
            problem = f"{name} is not a known system priority class"
        elif SYSTEM_PRIORITY_CLASSES[name] != value:
            problem = f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
        elif obj.get("globalDefault"):
            problem = f"globalDefault of {name} PriorityClass must be false"
        if problem:
            errs.append(forbidden("metadata.name", "priority class names with 'system-' prefix "
                                  f"are reserved for system use only. error: {problem}"))
    elif value > HIGHEST_USER_PRIORITY:
        errs.append(forbidden("value", "maximum allowed value of a user defined priority is "
                              f"{HIGHEST_USER_PRIORITY}"))
    policy = obj.get("preemptionPolicy")
    if policy is not None and policy not in ("PreemptLowerPriority", "Never"):
        errs.append(not_supported("preemptionPolicy", policy, ["PreemptLowerPriority", "Never"]))
    return errs


def validate_crd(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    wanted = f"{(spec.get('names') or {}).get('plural') or ''}.{spec.get('group') or ''}"

    def crd_name(name: str, prefix: bool) -> list[str]:
        msgs = names.name_is_dns_subdomain(name, prefix)
        if name != wanted:
            msgs.append('must be spec.names.plural+"."+spec.group')
        return msgs

    errs = object_meta(obj.get("metadata") or {}, namespaced=False, name_fn=crd_name, core=False)
    if old is not None:
        errs += object_meta_update(obj.get("metadata") or {}, old.get("metadata") or {}, core=False)
    return errs


def validate_metadata_only(obj: Mapping[str, Any], old: Mapping[str, Any] | None,
                           name_fn: NameFn, namespaced: bool | None) -> list[FieldError]:
    errs = standard_meta(obj, old, name_fn, namespaced)
    if old is not None:
        errs += standard_meta(obj, None, name_fn, namespaced)
    return errs
