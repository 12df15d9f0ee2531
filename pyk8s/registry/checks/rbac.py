"""rbac.authorization.k8s.io/v1 checks: Role, ClusterRole and their bindings.

Role: upstream's ``rbac/validation``: path-segment names, policy rules (verbs,
API groups and resources, non-resource URLs only on cluster roles), aggregation
rules, role references (immutable on update: "cannot change roleRef") and
subjects.

Invariants: returns upstream's errors in its order; note that upstream's RBAC
update validation runs the create checks first, then the metadata update checks.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...api import validation as names
from .field import FieldError, invalid, not_supported, required, semantic_equal
from .meta import PATH, as_selector, label_selector, object_meta, object_meta_update, shown_selector

GROUP = "rbac.authorization.k8s.io"


def policy_rule(rule: Mapping[str, Any], namespaced: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not rule.get("verbs"):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not rule.get("apiGroups"):
        errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errs


def _role(obj: Mapping[str, Any], namespaced: bool) -> list[FieldError]:
    errs = object_meta(obj.get("metadata") or {}, namespaced=namespaced, name_fn=PATH)
    for i, rule in enumerate(obj.get("rules") or []):
        errs += policy_rule(rule, namespaced, f"rules[{i}]")
    aggregation = obj.get("aggregationRule")
    if not namespaced and aggregation is not None:
        selectors = aggregation.get("clusterRoleSelectors") or []
        base = "aggregationRule.clusterRoleSelectors"
        if not selectors:
            errs.append(required(base, "at least one clusterRoleSelector required if "
                                 "aggregationRule is non-nil"))
        for i, sel in enumerate(selectors):
            errs += label_selector(sel, f"{base}[{i}]")
            if as_selector(sel) is None:
                errs.append(invalid(f"{base}[{i}]", sel, "invalid label selector.",
                                    shown=shown_selector(sel)))
    return errs


def subject(sub: Mapping[str, Any], namespaced: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name, kind, group = sub.get("name") or "", sub.get("kind") or "", sub.get("apiGroup") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid(f"{path}.name", name, m)
                     for m in names.name_is_dns_subdomain(name, False)]
        if group:
            errs.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not sub.get("namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.append(not_supported(f"{path}.apiGroup", group, [GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def _role_ref_struct(ref: Mapping[str, Any]) -> str:
    return (f"rbac.RoleRef{{APIGroup:{names.go_quote(ref.get('apiGroup') or '')}, "
            f"Kind:{names.go_quote(ref.get('kind') or '')}, "
            f"Name:{names.go_quote(ref.get('name') or '')}}}")


def _binding(obj: Mapping[str, Any], namespaced: bool) -> list[FieldError]:
    errs = object_meta(obj.get("metadata") or {}, namespaced=namespaced, name_fn=PATH)
    ref = obj.get("roleRef") or {}
    if (ref.get("apiGroup") or "") != GROUP:
        errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if (ref.get("kind") or "") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    name = ref.get("name") or ""
    if not name:
        errs.append(required("roleRef.name"))
    else:
        errs += [invalid("roleRef.name", name, m) for m in names.is_valid_path_segment_name(name)]
    for i, sub in enumerate(obj.get("subjects") or []):
        errs += subject(sub, namespaced, f"subjects[{i}]")
    return errs


def validate_role(obj: Mapping[str, Any], old: Mapping[str, Any] | None, *,
                  namespaced: bool) -> list[FieldError]:
    errs = _role(obj, namespaced)
    if old is not None:
        errs += object_meta_update(obj.get("metadata") or {}, old.get("metadata") or {})
    return errs


def validate_binding(obj: Mapping[str, Any], old: Mapping[str, Any] | None, *,
                     namespaced: bool) -> list[FieldError]:
    errs = _binding(obj, namespaced)
    if old is None:
        return errs
    errs += object_meta_update(obj.get("metadata") or {}, old.get("metadata") or {})
    ref, old_ref = obj.get("roleRef") or {}, old.get("roleRef") or {}
    if not semantic_equal(ref, old_ref):
        errs.append(invalid("roleRef", ref, "cannot change roleRef", shown=_role_ref_struct(ref)))
    return errs
