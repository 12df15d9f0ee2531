"""Defaults of apps/v1, as ``pkg/apis/apps/v1/defaults.go`` and its generated code.

Role: Deployment, ReplicaSet, StatefulSet and DaemonSet defaults, and the pod
template defaults (core ``pod_spec``) of each; StatefulSet claim templates get
the PersistentVolumeClaim defaults (``status.phase: Pending``, ``volumeMode``).
Invariant: only unset fields are filled (idempotent); v1.32 gates as shipped
(StatefulSetAutoDeletePVC on).
"""
from __future__ import annotations

from . import core


def deployment(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = spec.get("strategy")
    if not isinstance(strategy, dict):
        strategy = spec["strategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            rolling = strategy["rollingUpdate"] = {}
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = "25%"
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    core.template(spec.get("template"))


def daemon_set(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            rolling = strategy["rollingUpdate"] = {}
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    core.template(spec.get("template"))


def stateful_set(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        if strategy.get("rollingUpdate") is None:
            strategy["rollingUpdate"] = {}
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict) \
            and rolling.get("partition") is None:
        rolling["partition"] = 0
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if not isinstance(retention, dict):
        retention = spec["persistentVolumeClaimRetentionPolicy"] = {}
    for key in ("whenDeleted", "whenScaled"):
        if not retention.get(key):
            retention[key] = "Retain"
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    core.template(spec.get("template"))
    for claim in core.items(spec.get("volumeClaimTemplates")):
        if isinstance(claim, dict):
            core.persistent_volume_claim(claim)


def replica_set(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    core.template(spec.get("template"))


KINDS = {"Deployment": deployment, "DaemonSet": daemon_set, "StatefulSet": stateful_set,
         "ReplicaSet": replica_set}
