"""Semantic validation of API objects, as upstream's strategies run it.

Role: ``validate(group, version, kind, obj, old)`` returns the field errors the
v1.32 API server reports for a create (``old`` None) or an update: the kind's own
``Validate``/``ValidateUpdate`` (``registry/checks/<group>.py``) plus the generic
object-metadata pass of ``rest.BeforeCreate``/``rest.BeforeUpdate``. Schema
(type/required/enum) problems are the schema validator's; this module checks what
a schema cannot: names, selectors against template labels, cross-field rules,
immutable fields.

Invariants:
- ``obj`` and ``old`` are plain dicts in JSON shape, already defaulted; they are
  never mutated. Nulls are read as Go decodes them (zero values).
- Errors come in upstream's order. As upstream, a create stops at the kind's
  errors before the generic metadata pass, an update reports the generic pass
  first; duplicates are kept (the Status message de-duplicates them, see
  ``aggregate_message``) as upstream keeps them in ``details.causes``.
- Custom resources (kinds this module does not know) get the metadata checks with
  DNS-subdomain names; pass ``namespaced`` to tell their scope.
- Writes through a subresource must say so (``subresource=``): a status or binding
  write is not checked against the pod-update or immutable-spec rules.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from .checks import admissionregistration, apps, batch, core, others, rbac, storage
from .checks.field import FieldError, dedupe_messages
from .checks.meta import NAME_RULES, SUBDOMAIN, generic_create, generic_update, object_meta, \
    object_meta_update
from .checks.pods import validate_ephemeral_update, validate_pod, validate_pod_template

__all__ = ["FieldError", "aggregate_message", "validate"]

Check = Callable[[Mapping[str, Any], "Mapping[str, Any] | None", str], list[FieldError]]
RBAC = "rbac.authorization.k8s.io"

_CHECKS: dict[tuple[str, str], Check] = {
    ("", "Pod"): lambda o, old, v: validate_pod(o, old),
    ("", "PodTemplate"): lambda o, old, v: validate_pod_template(o, old),
    ("", "ReplicationController"): lambda o, old, v: core.validate_replication_controller(o, old),
    ("", "Service"): lambda o, old, v: core.validate_service(o, old),
    ("", "ConfigMap"): lambda o, old, v: core.validate_config_map(o, old),
    ("", "Secret"): lambda o, old, v: core.validate_secret(o, old),
    ("", "Namespace"): lambda o, old, v: core.validate_namespace(o, old),
    ("", "ServiceAccount"): lambda o, old, v: core.validate_service_account(o, old),
    ("", "Endpoints"): lambda o, old, v: core.validate_endpoints(o, old),
    ("", "Node"): lambda o, old, v: core.validate_node(o, old),
    ("", "PersistentVolumeClaim"): lambda o, old, v: storage.validate_pvc(o, old),
    ("", "PersistentVolume"): lambda o, old, v: storage.validate_pv(o, old),
    ("apps", "Deployment"): lambda o, old, v: apps.validate_deployment(o, old),
    ("apps", "ReplicaSet"): lambda o, old, v: apps.validate_replica_set(o, old),
    ("apps", "StatefulSet"): lambda o, old, v: apps.validate_stateful_set(o, old),
    ("apps", "DaemonSet"): lambda o, old, v: apps.validate_daemon_set(o, old),
    ("apps", "ControllerRevision"): lambda o, old, v: apps.validate_controller_revision(o, old),
    ("batch", "Job"): lambda o, old, v: batch.validate_job(o, old),
    ("batch", "CronJob"): lambda o, old, v: batch.validate_cron_job(o, old),
    ("autoscaling", "HorizontalPodAutoscaler"): lambda o, old, v: others.validate_hpa(o, old, v),
    (RBAC, "Role"): lambda o, old, v: rbac.validate_role(o, old, namespaced=True),
    (RBAC, "ClusterRole"): lambda o, old, v: rbac.validate_role(o, old, namespaced=False),
    (RBAC, "RoleBinding"): lambda o, old, v: rbac.validate_binding(o, old, namespaced=True),
    (RBAC, "ClusterRoleBinding"): lambda o, old, v: rbac.validate_binding(o, old, namespaced=False),
    ("storage.k8s.io", "StorageClass"): lambda o, old, v: storage.validate_storage_class(o, old),
    ("scheduling.k8s.io", "PriorityClass"): lambda o, old, v: others.validate_priority_class(o, old),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): lambda o, old, v: others.validate_crd(o, old),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"):
        lambda o, old, v: admissionregistration.validate_webhook_configuration(o, old, False),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"):
        lambda o, old, v: admissionregistration.validate_webhook_configuration(o, old, True),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"):
        lambda o, old, v: admissionregistration.validate_admission_policy(o, old),
}


def _custom_resource(obj: Mapping[str, Any], old: Mapping[str, Any] | None,
                     namespaced: bool | None) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    errs = object_meta(meta, namespaced=namespaced, name_fn=SUBDOMAIN, core=False)
    if old is not None:
        errs += object_meta_update(meta, old.get("metadata") or {}, core=False)
    return errs


_STRING_MAPS = {"labels", "annotations", "matchLabels", "nodeSelector", "data", "binaryData",
                "stringData", "parameters", "volumeAttributes"}


def _go_view(value: Any, key: str = "") -> Any:
    """A copy read as Go decodes JSON: null is the zero value of the field's type.

    A null struct field or pointer is as good as absent; a null value in a string
    map is ""; a null list item is the zero item ({} for a struct list).
    """
    if isinstance(value, dict):
        string_map = key in _STRING_MAPS or (
            key == "selector" and not {"matchLabels", "matchExpressions"} & set(value))
        if string_map:
            return {k: "" if v is None else v for k, v in value.items()}
        return {k: _go_view(v, k) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        scalar = next((type(v)() for v in value if isinstance(v, (str, int, float))), None)
        return [(scalar if scalar is not None else {}) if v is None else _go_view(v, key)
                for v in value]
    return value


def validate(group: str, version: str, kind: str, obj: dict, old: dict | None = None, *,
             namespaced: bool | None = None, subresource: str = "") -> list[FieldError]:
    """Field errors of creating ``obj`` (``old`` None) or replacing ``old`` with it.

    ``subresource`` names the subresource an update came through: upstream checks a
    ``status`` write and a pod ``binding`` for metadata only (the spec is not the
    writer's), and a pod's ``ephemeralcontainers`` write with its own rule.
    """
    obj = _go_view(obj)
    old = None if old is None else _go_view(old)
    rule = NAME_RULES.get((group, kind))
    if namespaced is None and rule is not None:
        namespaced = rule[1]
    if old is not None and subresource in ("status", "binding"):
        meta, old_meta = obj.get("metadata") or {}, old.get("metadata") or {}
        # Built-in kinds check metadata with core's rules (kube finalizer names); CRDs
        # and custom resources with apimachinery's generic ones.
        core_rules = rule is not None and group != "apiextensions.k8s.io"
        return generic_update(obj, old, namespaced) + object_meta_update(meta, old_meta,
                                                                         core=core_rules)
    if old is not None and subresource == "ephemeralcontainers" and (group, kind) == ("", "Pod"):
        return generic_update(obj, old, namespaced) + validate_ephemeral_update(obj, old)
    check = _CHECKS.get((group, kind))
    if check is not None:
        specific = check(obj, old, version)
    elif rule is not None:
        specific = others.validate_metadata_only(obj, old, rule[0], namespaced)
    else:
        specific = _custom_resource(obj, old, namespaced)
    if old is None:
        # rest.BeforeCreate: the kind's errors win; the generic pass runs only after.
        return specific or generic_create(obj, namespaced)
    return generic_update(obj, old, namespaced) + specific


def aggregate_message(errors: Iterable[FieldError]) -> str:
    """``field.ErrorList.ToAggregate().Error()``: de-duplicated, bracketed when > 1."""
    messages = dedupe_messages(errors)
    if len(messages) == 1:
        return messages[0]
    return "[" + ", ".join(messages) + "]"
