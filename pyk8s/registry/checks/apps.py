"""apps/v1 checks: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

Role: upstream's ``apps/validation`` plus the selector immutability the apps
strategies add on update (``spec.selector: Invalid value: v1.LabelSelector{...}:
field is immutable``), for the v1 API where it applies.

Invariants:
- Selector-vs-template checks use upstream's ``LabelSelectorAsSelector``
  semantics: a missing selector selects nothing, an empty one everything.
- StatefulSet templates get only metadata checks, as upstream (its pod spec is
  not validated by the API server).
"""
from __future__ import annotations

from typing import Any, Mapping

from ...api import validation as names
from .field import (FieldError, forbidden, go_struct, immutable, int_or_string, invalid, nonnegative,
                    not_supported, required, semantic_equal)
from .meta import (LABEL, SUBDOMAIN, annotations, as_selector, label_selector, labels,
                   selector_mismatch, shown_selector, standard_meta)
from .pods import pod_annotations, template_spec

_PERCENT_ERROR = names.regex_error(
    "a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%",
    "1%", "93%")


# --- int-or-percent helpers ----------------------------------------------------------

def _percent(value: Any) -> int | None:
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        return int(value[:-1])
    return None


def _int_or_percent_value(value: Any) -> int:
    pct = _percent(value)
    if pct is not None:
        return pct
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return 0


def positive_int_or_percent(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str):
        if _percent(value) is None:
            return [invalid(path, value, _PERCENT_ERROR, shown=value)]
        return []
    return nonnegative(value or 0, path)


def not_more_than_100_percent(value: Any, path: str) -> list[FieldError]:
    pct = _percent(value)
    if pct is None or pct <= 100:
        return []
    return [invalid(path, value, "must not be greater than 100%", shown=int_or_string(value))]


# --- Deployment and ReplicaSet -------------------------------------------------------------

def _selector_common(spec: Mapping[str, Any], kind: str) -> list[FieldError]:
    sel = spec.get("selector")
    if sel is None:
        return [required("spec.selector")]
    errs = label_selector(sel, "spec.selector")
    if not (sel.get("matchLabels") or sel.get("matchExpressions")):
        errs.append(invalid("spec.selector", sel, f"empty selector is invalid for {kind}",
                            shown=shown_selector(sel)))
    return errs


def template_for_replica_set(spec: Mapping[str, Any], kind_word: str) -> list[FieldError]:
    """``ValidatePodTemplateSpecForReplicaSet`` (Deployment and ReplicaSet)."""
    sel = spec.get("selector")
    if sel is not None and as_selector(sel) is None:
        return [invalid("spec.selector", sel, "invalid label selector", shown=shown_selector(sel))]
    template = spec.get("template") or {}
    tlabels = (template.get("metadata") or {}).get("labels")
    errs = selector_mismatch(sel, tlabels, "spec.template.metadata.labels")
    errs += template_spec(template, "spec.template")
    tspec = template.get("spec") or {}
    if tspec.get("restartPolicy") != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy",
                                  tspec.get("restartPolicy") or "", ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              f"activeDeadlineSeconds in {kind_word} is not Supported"))
    return errs


def _deployment_strategy(strategy: Mapping[str, Any]) -> list[FieldError]:
    kind = strategy.get("type") or ""
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return [required("spec.strategy.rollingUpdate",
                             "this should be defaulted and never be nil")]
        p = "spec.strategy.rollingUpdate"
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        errs = positive_int_or_percent(unavailable, f"{p}.maxUnavailable")
        errs += positive_int_or_percent(surge, f"{p}.maxSurge")
        if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
            errs.append(invalid(f"{p}.maxUnavailable", unavailable,
                                "may not be 0 when `maxSurge` is 0", shown=int_or_string(unavailable)))
        return errs + not_more_than_100_percent(unavailable, f"{p}.maxUnavailable")
    shown = (f"apps.DeploymentStrategy{{Type:{names.go_quote(kind)}, "
             f"RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}")
    return [not_supported("spec.strategy", strategy, ["Recreate", "RollingUpdate"], shown=shown)]


def deployment_spec(spec: Mapping[str, Any]) -> list[FieldError]:
    errs = nonnegative(spec.get("replicas") or 0, "spec.replicas")
    errs += _selector_common(spec, "deployment")
    errs += template_for_replica_set(spec, "ReplicaSet")
    errs += _deployment_strategy(spec.get("strategy") or {})
    errs += nonnegative(spec.get("minReadySeconds") or 0, "spec.minReadySeconds")
    if spec.get("revisionHistoryLimit") is not None:
        errs += nonnegative(spec["revisionHistoryLimit"], "spec.revisionHistoryLimit")
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        errs += nonnegative(deadline, "spec.progressDeadlineSeconds")
        if deadline <= (spec.get("minReadySeconds") or 0):
            errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
    return errs


def _selector_immutable(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    sel = (obj.get("spec") or {}).get("selector")
    return immutable(sel, (old.get("spec") or {}).get("selector"), "spec.selector",
                     shown=shown_selector(sel))


def validate_deployment(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    errs += deployment_spec(obj.get("spec") or {})
    if old is not None:
        errs += _selector_immutable(obj, old)
    return errs


def validate_replica_set(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    errs += nonnegative(spec.get("replicas") or 0, "spec.replicas")
    errs += nonnegative(spec.get("minReadySeconds") or 0, "spec.minReadySeconds")
    errs += _selector_common(spec, "deployment")
    errs += template_for_replica_set(spec, "ReplicaSet")
    if old is not None:
        errs += _selector_immutable(obj, old)
    return errs


# --- DaemonSet ---------------------------------------------------------------------

def _daemon_set_strategy(strategy: Mapping[str, Any]) -> list[FieldError]:
    kind = strategy.get("type") or ""
    if kind == "OnDelete":
        return []
    if kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        p = "spec.updateStrategy.rollingUpdate"
        if rolling is None:
            return [required(p)]
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        errs = positive_int_or_percent(unavailable, f"{p}.maxUnavailable")
        errs += positive_int_or_percent(surge, f"{p}.maxSurge")
        errs += not_more_than_100_percent(unavailable, f"{p}.maxUnavailable")
        errs += not_more_than_100_percent(surge, f"{p}.maxSurge")
        has_unavailable = _int_or_percent_value(unavailable) != 0
        has_surge = _int_or_percent_value(surge) != 0
        if has_unavailable and has_surge:
            errs.append(invalid(f"{p}.maxSurge", surge, "may not be set when maxUnavailable is "
                                "non-zero", shown=int_or_string(surge)))
        elif not has_unavailable and not has_surge:
            errs.append(required(f"{p}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
        return errs
    shown = (f"apps.DaemonSetUpdateStrategy{{Type:{names.go_quote(kind)}, "
             f"RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}")
    return [not_supported("spec.updateStrategy", strategy, ["RollingUpdate", "OnDelete"],
                          shown=shown)]


def validate_daemon_set(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    sel = spec.get("selector")
    errs += label_selector(sel, "spec.selector")
    template = spec.get("template") or {}
    errs += selector_mismatch(sel, (template.get("metadata") or {}).get("labels"),
                              "spec.template.metadata.labels", skip_empty=False)
    if sel is not None and not (sel.get("matchLabels") or sel.get("matchExpressions")):
        errs.append(invalid("spec.selector", sel, "empty selector is invalid for daemonset",
                            shown=shown_selector(sel)))
    errs += template_spec(template, "spec.template")
    tspec = template.get("spec") or {}
    if tspec.get("restartPolicy") != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy",
                                  tspec.get("restartPolicy") or "", ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in DaemonSet is not Supported"))
    errs += nonnegative(spec.get("minReadySeconds") or 0, "spec.minReadySeconds")
    errs += _daemon_set_strategy(spec.get("updateStrategy") or {})
    if spec.get("revisionHistoryLimit") is not None:
        errs += nonnegative(spec["revisionHistoryLimit"], "spec.revisionHistoryLimit")
    if old is not None:
        errs += _selector_immutable(obj, old)
    return errs


# --- StatefulSet -------------------------------------------------------------------

STATEFULSET_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
    "forbidden")


def _stateful_set_strategy(strategy: Mapping[str, Any]) -> list[FieldError]:
    kind = strategy.get("type") or ""
    rolling = strategy.get("rollingUpdate")
    p = "spec.updateStrategy"
    if not kind:
        return [required(p)]
    if kind == "OnDelete":
        if rolling is not None:
            return [invalid(f"{p}.rollingUpdate", rolling,
                            "only allowed for updateStrategy 'RollingUpdate'",
                            shown=go_struct("apps.RollingUpdateStatefulSetStrategy", rolling))]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return []
        errs = nonnegative(rolling.get("partition") or 0, f"{p}.rollingUpdate.partition")
        unavailable = rolling.get("maxUnavailable")
        if unavailable is not None:
            up = f"{p}.rollingUpdate.maxUnavailable"
            errs += positive_int_or_percent(unavailable, up)
            if _int_or_percent_value(unavailable) == 0:
                errs.append(invalid(up, unavailable, "cannot be 0", shown=int_or_string(unavailable)))
            errs += not_more_than_100_percent(unavailable, up)
        return errs
    shown = (f"apps.StatefulSetUpdateStrategy{{Type:{names.go_quote(kind)}, "
             f"RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}}")
    return [invalid(p, strategy, "must be 'RollingUpdate' or 'OnDelete'", shown=shown)]


def stateful_set_spec(spec: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    policy = spec.get("podManagementPolicy") or ""
    if not policy:
        errs.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", policy,
                            "must be 'OrderedReady' or 'Parallel'"))
    errs += _stateful_set_strategy(spec.get("updateStrategy") or {})
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for key in ("whenDeleted", "whenScaled"):
            value = retention.get(key) or ""
            if value not in ("Retain", "Delete"):
                errs.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                                          value, ["Retain", "Delete"]))
    errs += nonnegative(spec.get("replicas") or 0, "spec.replicas")
    errs += nonnegative(spec.get("minReadySeconds") or 0, "spec.minReadySeconds")
    if spec.get("ordinals") is not None:
        errs += nonnegative(spec["ordinals"].get("start") or 0, "spec.ordinals.start")
    sel = spec.get("selector")
    if sel is None:
        errs.append(required("spec.selector"))
    else:
        errs += label_selector(sel, "spec.selector")
        if not (sel.get("matchLabels") or sel.get("matchExpressions")):
            errs.append(invalid("spec.selector", sel, "empty selector is invalid for statefulset",
                                shown=shown_selector(sel)))
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    if sel is not None and as_selector(sel) is None:
        errs.append(invalid("spec.selector", sel, "", shown=shown_selector(sel)))
    else:
        errs += selector_mismatch(sel, tmeta.get("labels"), "spec.template.metadata.labels")
        errs += labels(tmeta.get("labels"), "spec.template.labels")
        errs += annotations(tmeta.get("annotations"), "spec.template.annotations")
        errs += pod_annotations(tmeta.get("annotations"), template.get("spec") or {},
                                "spec.template.annotations")
    tspec = template.get("spec") or {}
    if tspec.get("restartPolicy") != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy",
                                  tspec.get("restartPolicy") or "", ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in StatefulSet is not Supported"))
    return errs


def validate_stateful_set(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    if old is None:
        return standard_meta(obj, None, LABEL, True) + stateful_set_spec(spec)
    errs = standard_meta(obj, old, LABEL, True) + stateful_set_spec(spec)
    old_spec = old.get("spec") or {}
    mutable = ("replicas", "template", "updateStrategy", "minReadySeconds", "ordinals",
               "persistentVolumeClaimRetentionPolicy")
    rest = {k: v for k, v in spec.items() if k not in mutable}
    old_rest = {k: v for k, v in old_spec.items() if k not in mutable}
    if not semantic_equal(rest, old_rest):
        errs.append(forbidden("spec", STATEFULSET_UPDATE_FORBIDDEN))
    return errs


def validate_controller_revision(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    if old is not None:
        errs += standard_meta(obj, None, SUBDOMAIN, True)
    if obj.get("data") is None:
        errs.append(required("data", "data is mandatory"))
    errs += nonnegative(obj.get("revision") or 0, "revision")
    if old is not None and not semantic_equal(obj.get("data"), old.get("data")):
        errs.append(invalid("data", obj.get("data"), "field is immutable",
                            shown="runtime.RawExtension{...}"))
    return errs
