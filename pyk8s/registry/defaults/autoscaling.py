"""Defaults of autoscaling v1 and v2 HorizontalPodAutoscalers.

Role: ``pkg/apis/autoscaling/v1`` (minReplicas 1) and ``v2`` defaults.go: minReplicas
1, an 80% CPU utilization metric when no metric is given, and, when a
``behavior`` is present, both scaling rules completed with upstream's defaults
(scale up: no stabilization, max of 4 pods or 100% per 15s; scale down: 100% per
15s, stabilization left to the controller flag).
Invariant: only unset fields are filled; a policy list given by the user is kept
whole, as upstream's ``copyHPAScalingRules``.
"""
from __future__ import annotations

import copy

from . import core

DEFAULT_CPU_UTILIZATION = 80
SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                 {"type": "Percent", "value": 100, "periodSeconds": 15}],
}
SCALE_DOWN = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _rules(given: object, defaults: dict) -> dict:
    rules = copy.deepcopy(defaults)
    if isinstance(given, dict):
        for key in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
            if given.get(key) is not None:
                rules[key] = given[key]
    return rules


def hpa_v2(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization",
                                      "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _rules(behavior.get("scaleUp"), SCALE_UP)
        behavior["scaleDown"] = _rules(behavior.get("scaleDown"), SCALE_DOWN)


def hpa_v1(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
