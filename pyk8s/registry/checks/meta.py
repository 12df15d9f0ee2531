"""Object metadata checks shared by every kind.

Role: upstream's ``ValidateObjectMeta`` / ``ValidateObjectMetaUpdate`` (apimachinery's
generic ones and core's, which adds the legacy finalizer-name rule), label,
annotation, owner-reference and finalizer checks, label-selector validation and
matching, and the per-kind name rule with its namespace scope.

Invariants:
- Every function returns a list of ``FieldError`` in upstream's order and never
  mutates its input.
- ``NAME_RULES`` maps a built-in (group, kind) to the name function and scope its
  upstream strategy uses; a kind absent from it is a custom resource (DNS
  subdomain names, scope given by the caller).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ...api import selectors
from ...api import validation as names
from .field import (FieldError, forbidden, go_label_selector, go_string_map, immutable,
                    invalid, nonnegative, required, too_long)

NameFn = Callable[[str, bool], list[str]]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * (1 << 10)
STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}
BANNED_OWNERS = {("", "v1", "Event")}


def path_segment_name(name: str, prefix: bool) -> list[str]:
    """``path.ValidatePathSegmentName``: a prefix may still not hold '/' or '%'."""
    if prefix:
        return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    return names.is_valid_path_segment_name(name)


SUBDOMAIN: NameFn = names.name_is_dns_subdomain
LABEL: NameFn = names.name_is_dns_label
DNS1035: NameFn = names.name_is_dns1035_label
PATH: NameFn = path_segment_name

# (group, kind) -> (name rule, namespaced), as each upstream strategy validates.
NAME_RULES: dict[tuple[str, str], tuple[NameFn, bool]] = {
    ("", "Pod"): (SUBDOMAIN, True), ("", "PodTemplate"): (SUBDOMAIN, True),
    ("", "ReplicationController"): (SUBDOMAIN, True), ("", "Service"): (DNS1035, True),
    ("", "Endpoints"): (SUBDOMAIN, True), ("", "Node"): (SUBDOMAIN, False),
    ("", "Namespace"): (LABEL, False), ("", "LimitRange"): (SUBDOMAIN, True),
    ("", "ResourceQuota"): (SUBDOMAIN, True), ("", "Secret"): (SUBDOMAIN, True),
    ("", "ServiceAccount"): (SUBDOMAIN, True), ("", "ConfigMap"): (SUBDOMAIN, True),
    ("", "PersistentVolume"): (SUBDOMAIN, False),
    ("", "PersistentVolumeClaim"): (SUBDOMAIN, True), ("", "Event"): (SUBDOMAIN, True),
    ("apps", "Deployment"): (SUBDOMAIN, True), ("apps", "ReplicaSet"): (SUBDOMAIN, True),
    ("apps", "StatefulSet"): (LABEL, True), ("apps", "DaemonSet"): (SUBDOMAIN, True),
    ("apps", "ControllerRevision"): (SUBDOMAIN, True),
    ("batch", "Job"): (SUBDOMAIN, True), ("batch", "CronJob"): (SUBDOMAIN, True),
    ("autoscaling", "HorizontalPodAutoscaler"): (SUBDOMAIN, True),
    ("rbac.authorization.k8s.io", "Role"): (PATH, True),
    ("rbac.authorization.k8s.io", "RoleBinding"): (PATH, True),
    ("rbac.authorization.k8s.io", "ClusterRole"): (PATH, False),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (PATH, False),
    ("networking.k8s.io", "NetworkPolicy"): (SUBDOMAIN, True),
    ("networking.k8s.io", "Ingress"): (SUBDOMAIN, True),
    ("networking.k8s.io", "IngressClass"): (SUBDOMAIN, False),
    ("policy", "PodDisruptionBudget"): (SUBDOMAIN, True),
    ("discovery.k8s.io", "EndpointSlice"): (SUBDOMAIN, True),
    ("coordination.k8s.io", "Lease"): (SUBDOMAIN, True),
    ("events.k8s.io", "Event"): (SUBDOMAIN, True),
    ("scheduling.k8s.io", "PriorityClass"): (SUBDOMAIN, False),
    ("storage.k8s.io", "StorageClass"): (SUBDOMAIN, False),
    ("storage.k8s.io", "VolumeAttachment"): (SUBDOMAIN, False),
    ("storage.k8s.io", "CSIDriver"): (SUBDOMAIN, False),
    ("storage.k8s.io", "CSINode"): (SUBDOMAIN, False),
    ("storage.k8s.io", "CSIStorageCapacity"): (SUBDOMAIN, True),
    ("node.k8s.io", "RuntimeClass"): (SUBDOMAIN, False),
    ("certificates.k8s.io", "CertificateSigningRequest"): (SUBDOMAIN, False),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (SUBDOMAIN, False),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (SUBDOMAIN, False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (SUBDOMAIN, False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (SUBDOMAIN, False),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (SUBDOMAIN, False),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): (SUBDOMAIN, False),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): (SUBDOMAIN, False),
}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


# --- labels, annotations, selectors ---------------------------------------------------

def label_name(key: str, path: str) -> list[FieldError]:
    return [invalid(path, key, m) for m in names.is_qualified_name(key)]


def labels(values: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    """``ValidateLabels``: each key a qualified name, each value a label value."""
    errs: list[FieldError] = []
    for key, value in (values or {}).items():
        errs += label_name(key, path)
        errs += [invalid(path, value, m) for m in names.is_valid_label_value(str(value))]
    return errs


def annotations(values: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    """``ValidateAnnotations``: case-insensitive qualified keys, 256 KiB in total."""
    errs: list[FieldError] = []
    total = 0
    for key, value in (values or {}).items():
        errs += [invalid(path, key, m) for m in names.is_qualified_name(key.lower())]
        total += len(key.encode()) + len(str(value).encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def label_selector(sel: Mapping[str, Any] | None, path: str, *,
                   allow_invalid_values: bool = False) -> list[FieldError]:
    """``metav1validation.ValidateLabelSelector``."""
    if sel is None:
        return []
    errs = labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator") or "", expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{p}.values",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(
                    f"{p}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        errs += label_name(expr.get("key") or "", f"{p}.key")
        if not allow_invalid_values:
            for j, value in enumerate(values):
                errs += [invalid(f"{p}.values[{j}]", value, m)
                         for m in names.is_valid_label_value(str(value))]
    return errs


def as_selector(sel: Mapping[str, Any] | None) -> selectors.LabelSelector | None:
    """``LabelSelectorAsSelector``; None where upstream returns an error."""
    try:
        return selectors.label_selector_from_dict(sel)
    except (selectors.SelectorError, ValueError):
        return None


def selector_mismatch(sel: Mapping[str, Any] | None, template_labels: Mapping | None,
                      path: str, *, skip_empty: bool = True) -> list[FieldError]:
    """"`selector` does not match template `labels`" when a parsed selector misses."""
    parsed = as_selector(sel)
    if parsed is None or (skip_empty and parsed.empty()):
        return []
    if parsed.matches(template_labels or {}):
        return []
    return [invalid(path, template_labels, "`selector` does not match template `labels`",
                    shown=go_string_map(template_labels))]


def shown_selector(sel: Any) -> str:
    return go_label_selector(sel)


# --- owner references and finalizers ---------------------------------------------------

def _gvk(api_version: str, kind: str) -> tuple[str, str, str]:
    parts = api_version.split("/") if api_version else []
    if len(parts) == 1:
        return "", parts[0], kind
    if len(parts) == 2:
        return parts[0], parts[1], kind
    return "", "", kind


def owner_references(refs: list | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    first_controller = ""
    for ref in refs or []:
        group, version, kind = _gvk(ref.get("apiVersion") or "", ref.get("kind") or "")
        if not version:
            errs.append(invalid(f"{path}.apiVersion", ref.get("apiVersion") or "",
                                "version must not be empty"))
        if not kind:
            errs.append(invalid(f"{path}.kind", kind, "kind must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(f"{path}.name", "", "name must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(f"{path}.uid", "", "uid must not be empty"))
        if (group, version, kind) in BANNED_OWNERS:
            gvk = f"{group + '/' if group else '/'}{version}, Kind={kind}"
            errs.append(invalid(path, ref, f"{gvk} is disallowed from being an owner",
                                shown=_owner_ref_struct(ref)))
        if ref.get("controller") is True:
            current = f"{kind}/{ref.get('name') or ''}"
            if first_controller:
                errs.append(invalid(
                    path, refs,
                    "Only one reference can have Controller set to true. Found \"true\" in "
                    f"references for {first_controller} and {current}",
                    shown="[]v1.OwnerReference{...}"))
            else:
                first_controller = current
    return errs


def _owner_ref_struct(ref: Mapping[str, Any]) -> str:
    return (f"v1.OwnerReference{{APIVersion:{names.go_quote(ref.get('apiVersion') or '')}, "
            f"Kind:{names.go_quote(ref.get('kind') or '')}, "
            f"Name:{names.go_quote(ref.get('name') or '')}, "
            f"UID:{names.go_quote(ref.get('uid') or '')}}}")


def finalizers(values: list | None, path: str) -> list[FieldError]:
    """apimachinery's ``ValidateFinalizers``."""
    errs: list[FieldError] = []
    for name in values or []:
        errs += [invalid(path, name, m) for m in names.is_qualified_name(name)]
    if values and "orphan" in values and "foregroundDeletion" in values:
        errs.append(invalid(path, values,
                            "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def kube_finalizer_names(values: list | None, path: str) -> list[FieldError]:
    """core's ``validateKubeFinalizerName`` for each finalizer."""
    errs: list[FieldError] = []
    for i, name in enumerate(values or []):
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errs.append(invalid(f"{path}[{i}]", name, "name is neither a standard finalizer "
                                "name nor is it fully qualified"))
    return errs


# --- object meta ---------------------------------------------------------------------

def object_meta(meta: Mapping[str, Any], *, namespaced: bool | None, name_fn: NameFn,
                path: str = "metadata", core: bool = True) -> list[FieldError]:
    """``ValidateObjectMeta``; ``core`` adds core's legacy finalizer-name rule.

    ``namespaced`` None skips the namespace checks (scope unknown to the caller).
    """
    errs: list[FieldError] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        errs += [invalid(f"{path}.generateName", generate_name, m)
                 for m in name_fn(generate_name, True)]
    name = meta.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += [invalid(f"{path}.name", name, m) for m in name_fn(name, False)]
    namespace = meta.get("namespace") or ""
    if namespaced is True:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs += [invalid(f"{path}.namespace", namespace, m)
                     for m in names.name_is_dns_label(namespace, False)]
    elif namespaced is False and namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs += nonnegative(meta.get("generation") or 0, f"{path}.generation")
    errs += labels(meta.get("labels"), f"{path}.labels")
    errs += annotations(meta.get("annotations"), f"{path}.annotations")
    errs += owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences")
    errs += finalizers(meta.get("finalizers"), f"{path}.finalizers")
    if core:
        errs += kube_finalizer_names(meta.get("finalizers"), f"{path}.finalizers")
    return errs


def object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any], *,
                       path: str = "metadata", core: bool = True) -> list[FieldError]:
    """``ValidateObjectMetaUpdate`` (without the resourceVersion presence check)."""
    errs: list[FieldError] = []
    if old.get("deletionTimestamp"):
        added = [f for f in new.get("finalizers") or [] if f not in (old.get("finalizers") or [])]
        if added:
            errs.append(forbidden(f"{path}.finalizers",
                                  f"no new finalizers can be added if the object is being "
                                  f"deleted, found new finalizers {names.go_value(sorted(added))}"))
    # Upstream also requires metadata.resourceVersion here; its store fills it in for
    # unconditional updates before validating, pyk8s' store after, so the check
    # (which no client can ever trip upstream) is left to the store.
    if (new.get("generation") or 0) < (old.get("generation") or 0):
        errs.append(invalid(f"{path}.generation", new.get("generation") or 0,
                            "must not be decremented"))
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds"):
        errs += immutable(new.get(key), old.get(key), f"{path}.{key}",
                          shown=_meta_value(new.get(key), key))
    errs += labels(new.get("labels"), f"{path}.labels")
    errs += annotations(new.get("annotations"), f"{path}.annotations")
    errs += owner_references(new.get("ownerReferences"), f"{path}.ownerReferences")
    if core:
        errs += kube_finalizer_names(new.get("finalizers"), f"{path}.finalizers")
    return errs


def _meta_value(value: Any, key: str) -> str | None:
    if key in ("creationTimestamp", "deletionTimestamp"):
        return "null" if value is None else names.go_quote(str(value))
    if key == "deletionGracePeriodSeconds":
        return "null" if value is None else str(value)
    return None


def generic_create(obj: Mapping[str, Any], namespaced: bool | None) -> list[FieldError]:
    """The common pass every create ends with (``rest.BeforeCreate``)."""
    return object_meta(_meta(obj), namespaced=namespaced, name_fn=path_segment_name,
                       core=False)


def generic_update(obj: Mapping[str, Any], old: Mapping[str, Any],
                   namespaced: bool | None) -> list[FieldError]:
    """The common pass every update starts with (``rest.BeforeUpdate``)."""
    return (object_meta(_meta(obj), namespaced=namespaced, name_fn=path_segment_name,
                        core=False)
            + object_meta_update(_meta(obj), _meta(old), core=False))


def standard_meta(obj: Mapping[str, Any], old: Mapping[str, Any] | None, name_fn: NameFn,
                  namespaced: bool | None) -> list[FieldError]:
    """Create: ``ValidateObjectMeta``; update: ``ValidateObjectMetaUpdate``."""
    if old is None:
        return object_meta(_meta(obj), namespaced=namespaced, name_fn=name_fn)
    return object_meta_update(_meta(obj), _meta(old))


__all__ = ["NAME_RULES", "annotations", "as_selector", "finalizers",
           "generic_create", "generic_update", "label_name", "label_selector", "labels",
           "object_meta", "object_meta_update", "owner_references", "selector_mismatch",
           "shown_selector", "standard_meta"]
