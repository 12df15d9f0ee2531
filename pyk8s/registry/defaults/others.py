"""Defaults of the smaller built-in groups.

Role: upstream's defaults.go of networking.k8s.io/v1 (NetworkPolicy policy types
and port protocols, IngressClass parameter scope), rbac.authorization.k8s.io/v1
(role reference and subject API groups), storage.k8s.io/v1 (StorageClass,
CSIDriver, VolumeAttachment inline volumes), scheduling.k8s.io/v1 (PriorityClass
preemption policy), discovery.k8s.io/v1 (EndpointSlice ports),
admissionregistration.k8s.io/v1 (webhooks, rules, admission policies),
apiextensions.k8s.io/v1 (CRD names, conversion, stored versions) and
flowcontrol.apiserver.k8s.io/v1.
Invariant: only unset fields are filled (idempotent).
"""
from __future__ import annotations

from typing import Any, Callable

from . import core

RBAC = "rbac.authorization.k8s.io"


def _setdefault(obj: dict, key: str, value: Any) -> None:
    if obj.get(key) is None:
        obj[key] = value


# --- networking ---------------------------------------------------------------------

def network_policy(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    for direction in ("ingress", "egress"):
        for rule in core.items(spec.get(direction)):
            for port in core.items(core.mapping(rule).get("ports")):
                if isinstance(port, dict):
                    _setdefault(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


def ingress_class(obj: dict) -> None:
    params = core.mapping(obj.get("spec")).get("parameters")
    if isinstance(params, dict):
        _setdefault(params, "scope", "Cluster")


# --- rbac -----------------------------------------------------------------------------

def _subjects(obj: dict) -> None:
    for subject in core.items(obj.get("subjects")):
        if isinstance(subject, dict) and not subject.get("apiGroup"):
            if subject.get("kind") == "ServiceAccount":
                subject["apiGroup"] = ""
            elif subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = RBAC


def role_binding(obj: dict) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = RBAC
    _subjects(obj)


# --- storage ------------------------------------------------------------------------

def storage_class(obj: dict) -> None:
    _setdefault(obj, "reclaimPolicy", "Delete")
    _setdefault(obj, "volumeBindingMode", "Immediate")


def csi_driver(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    _setdefault(spec, "attachRequired", True)
    _setdefault(spec, "podInfoOnMount", False)
    _setdefault(spec, "storageCapacity", False)
    _setdefault(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType")
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]
    _setdefault(spec, "requiresRepublish", False)
    _setdefault(spec, "seLinuxMount", False)


def volume_attachment(obj: dict) -> None:
    inline = core.mapping(core.mapping(obj.get("spec")).get("source")).get("inlineVolumeSpec")
    if not isinstance(inline, dict):
        return
    core.resource_list(inline.get("capacity"))
    host_path = inline.get("hostPath")
    if isinstance(host_path, dict):
        _setdefault(host_path, "type", "")
    core._legacy_volume_defaults(inline)  # noqa: SLF001 - same group of defaulters


# --- scheduling, discovery ---------------------------------------------------------------

def priority_class(obj: dict) -> None:
    _setdefault(obj, "preemptionPolicy", "PreemptLowerPriority")


def endpoint_slice(obj: dict) -> None:
    for port in core.items(obj.get("ports")):
        if isinstance(port, dict):
            _setdefault(port, "name", "")
            _setdefault(port, "protocol", "TCP")


# --- admissionregistration --------------------------------------------------------------

def _rules(rules: Any) -> None:
    for rule in core.items(rules):
        if isinstance(rule, dict):
            _setdefault(rule, "scope", "*")


def _service_port(client_config: Any) -> None:
    service = core.mapping(client_config).get("service")
    if isinstance(service, dict):
        _setdefault(service, "port", 443)


def _webhook(hook: dict, mutating: bool) -> None:
    _setdefault(hook, "failurePolicy", "Fail")
    _setdefault(hook, "matchPolicy", "Equivalent")
    _setdefault(hook, "namespaceSelector", {})
    _setdefault(hook, "objectSelector", {})
    _setdefault(hook, "timeoutSeconds", 10)
    if mutating:
        _setdefault(hook, "reinvocationPolicy", "Never")
    _rules(hook.get("rules"))
    _service_port(hook.get("clientConfig"))


def validating_webhooks(obj: dict) -> None:
    for hook in core.items(obj.get("webhooks")):
        if isinstance(hook, dict):
            _webhook(hook, False)


def mutating_webhooks(obj: dict) -> None:
    for hook in core.items(obj.get("webhooks")):
        if isinstance(hook, dict):
            _webhook(hook, True)


def _match_resources(match: Any) -> None:
    if not isinstance(match, dict):
        return
    _setdefault(match, "matchPolicy", "Equivalent")
    _setdefault(match, "namespaceSelector", {})
    _setdefault(match, "objectSelector", {})
    _rules(match.get("resourceRules"))
    _rules(match.get("excludeResourceRules"))


def admission_policy(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    _setdefault(spec, "failurePolicy", "Fail")
    _match_resources(spec.get("matchConstraints"))


def admission_policy_binding(obj: dict) -> None:
    _match_resources(core.mapping(obj.get("spec")).get("matchResources"))


# --- apiextensions, flowcontrol -------------------------------------------------------------

def custom_resource_definition(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    crd_names = core.struct(spec, "names")
    if not crd_names.get("singular"):
        crd_names["singular"] = (crd_names.get("kind") or "").lower()
    if not crd_names.get("listKind") and crd_names.get("kind"):
        crd_names["listKind"] = crd_names["kind"] + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}
    webhook = core.mapping(spec.get("conversion")).get("webhook")
    if isinstance(webhook, dict):
        _service_port(webhook.get("clientConfig"))
    status = core.struct(obj, "status")
    if not status.get("storedVersions"):
        stored = [v.get("name") for v in core.items(spec.get("versions"))
                  if isinstance(v, dict) and v.get("storage")]
        if stored:
            status["storedVersions"] = stored[:1]


def flow_schema(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    if not spec.get("matchingPrecedence"):
        spec["matchingPrecedence"] = 1000


def priority_level(obj: dict) -> None:
    spec = core.struct(obj, "spec")
    limited = spec.get("limited")
    if isinstance(limited, dict):
        _setdefault(limited, "nominalConcurrencyShares", 30)
        _setdefault(limited, "lendablePercent", 0)
        queuing = core.mapping(limited.get("limitResponse")).get("queuing")
        if isinstance(queuing, dict):
            for key, value in (("handSize", 8), ("queues", 64), ("queueLengthLimit", 50)):
                if not queuing.get(key):
                    queuing[key] = value
    exempt = spec.get("exempt")
    if isinstance(exempt, dict):
        _setdefault(exempt, "nominalConcurrencyShares", 0)
        _setdefault(exempt, "lendablePercent", 0)


KINDS: dict[tuple[str, str], Callable[[dict], None]] = {
    ("networking.k8s.io", "NetworkPolicy"): network_policy,
    ("networking.k8s.io", "IngressClass"): ingress_class,
    (RBAC, "RoleBinding"): role_binding,
    (RBAC, "ClusterRoleBinding"): role_binding,
    ("storage.k8s.io", "StorageClass"): storage_class,
    ("storage.k8s.io", "CSIDriver"): csi_driver,
    ("storage.k8s.io", "VolumeAttachment"): volume_attachment,
    ("scheduling.k8s.io", "PriorityClass"): priority_class,
    ("discovery.k8s.io", "EndpointSlice"): endpoint_slice,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): validating_webhooks,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): mutating_webhooks,
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): admission_policy,
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): admission_policy_binding,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): custom_resource_definition,
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): flow_schema,
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): priority_level,
}
