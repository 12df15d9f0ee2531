"""Printers for cluster-administration kinds, as upstream's printers.go.

Role: column definitions and row cells for RoleBinding, ClusterRoleBinding,
CertificateSigningRequest, Lease, StorageClass, PriorityClass, RuntimeClass,
VolumeAttachment, CSINode, CSIDriver, CSIStorageCapacity, the webhook
configurations and ValidatingAdmissionPolicy(Binding). Pure functions.

Invariants:

- rows are the wide rows, one cell per column;
- absent optional fields print upstream's defaults (a CSIDriver attaches unless told
  otherwise, a StorageClass deletes and binds immediately);
- role-binding subjects print in three lists (users, groups, ``ns/name`` service
  accounts) joined by ", ", as upstream's ``SubjectsStrings``.
"""
from __future__ import annotations

from datetime import datetime

from .common import (
    AGE, NAME, NONE, UNSET, Column, Printer, age, doc, go_label_selector, human_duration, meta,
    name, quantity_string, spec, status,
)


def _subjects(subjects: list | None) -> tuple[str, str, str]:
    users, groups, accounts = [], [], []
    for subject in subjects or []:
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
        elif kind == "User":
            users.append(subject.get("name", ""))
        elif kind == "Group":
            groups.append(subject.get("name", ""))
    return ", ".join(users), ", ".join(groups), ", ".join(accounts)


def _binding_row(obj: dict, now: datetime) -> list:
    ref = obj.get("roleRef") or {}
    return [name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}", age(obj, now),
            *_subjects(obj.get("subjects"))]


def csr_condition(obj: dict) -> str:
    """upstream ``extractCSRStatus``: Denied over Approved over Pending, then Failed, Issued."""
    kinds = {c.get("type") for c in status(obj).get("conditions") or []}
    text = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        text += ",Failed"
    if status(obj).get("certificate"):
        text += ",Issued"
    return text


def _csr_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    seconds = sp.get("expirationSeconds")
    requested = NONE if seconds is None else human_duration(seconds)
    return [name(obj), age(obj, now), sp.get("signerName") or NONE, sp.get("username", ""),
            requested, csr_condition(obj)]


def _lease_row(obj: dict, now: datetime) -> list:
    return [name(obj), spec(obj).get("holderIdentity") or "", age(obj, now)]


_DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class",
                  "storageclass.beta.kubernetes.io/is-default-class")


def _storage_class_row(obj: dict, now: datetime) -> list:
    annotations = meta(obj).get("annotations") or {}
    shown = name(obj)
    if any(annotations.get(key) == "true" for key in _DEFAULT_CLASS):
        shown += " (default)"
    return [shown, obj.get("provisioner", ""), obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate", bool(obj.get("allowVolumeExpansion")),
            age(obj, now)]


def _priority_class_row(obj: dict, now: datetime) -> list:
    return [name(obj), obj.get("value", 0), bool(obj.get("globalDefault")), age(obj, now),
            obj.get("preemptionPolicy") or ""]


def _runtime_class_row(obj: dict, now: datetime) -> list:
    return [name(obj), obj.get("handler", ""), age(obj, now)]


def _volume_attachment_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    pv = (sp.get("source") or {}).get("persistentVolumeName") or ""
    return [name(obj), sp.get("attacher", ""), pv, sp.get("nodeName", ""),
            bool(status(obj).get("attached")), age(obj, now)]


def _csi_node_row(obj: dict, now: datetime) -> list:
    return [name(obj), len(spec(obj).get("drivers") or []), age(obj, now)]


def _csi_driver_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    attach = True if sp.get("attachRequired") is None else bool(sp["attachRequired"])
    tokens = UNSET
    if sp.get("tokenRequests") is not None:
        tokens = ",".join(t.get("audience", "") for t in sp["tokenRequests"])
    modes = ",".join(sp.get("volumeLifecycleModes") or []) or NONE
    return [name(obj), attach, bool(sp.get("podInfoOnMount")), bool(sp.get("storageCapacity")),
            tokens, bool(sp.get("requiresRepublish")), modes, age(obj, now)]


def _csi_capacity_row(obj: dict, now: datetime) -> list:
    capacity = UNSET if obj.get("capacity") is None else quantity_string(obj["capacity"])
    return [name(obj), obj.get("storageClassName", ""), capacity]


def _webhook_row(obj: dict, now: datetime) -> list:
    return [name(obj), len(obj.get("webhooks") or []), age(obj, now)]


def _policy_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    param = sp.get("paramKind")
    shown = UNSET if param is None else f"{param.get('apiVersion', '')}/{param.get('kind', '')}"
    return [name(obj), len(sp.get("validations") or []), shown, age(obj, now)]


def _policy_binding_row(obj: dict, now: datetime) -> list:
    sp = spec(obj)
    ref = sp.get("paramRef")
    shown = UNSET
    if ref is not None:
        if ref.get("name"):
            # Can't tell here whether the param is cluster-scoped: no namespace means "*".
            shown = f"{ref.get('namespace') or '*'}/{ref['name']}"
        elif ref.get("selector") is not None:
            shown = go_label_selector(ref["selector"])
    return [name(obj), sp.get("policyName", ""), shown, age(obj, now)]


def _binding_columns(what: str) -> tuple[Column, ...]:
    return (
        NAME,
        Column("Role", description=doc(f"{what}.roleRef")),
        AGE,
        Column("Users", priority=1, description=f"Users in the {what[0].lower()}{what[1:]}"),
        Column("Groups", priority=1, description=f"Groups in the {what[0].lower()}{what[1:]}"),
        Column("ServiceAccounts", priority=1,
               description=f"ServiceAccounts in the {what[0].lower()}{what[1:]}"),
    )


_WEBHOOKS = (
    NAME,
    Column("Webhooks", "integer",
           "Webhooks indicates the number of webhooks registered in this configuration"),
    AGE,
)

PRINTERS: dict[str, Printer] = {
    "RoleBinding": Printer(_binding_columns("RoleBinding"), _binding_row),
    "ClusterRoleBinding": Printer(_binding_columns("ClusterRoleBinding"), _binding_row),
    "CertificateSigningRequest": Printer((
        NAME, AGE,
        Column("SignerName", description=doc("CertificateSigningRequestSpec.signerName")),
        Column("Requestor", description=doc("CertificateSigningRequestSpec.request")),
        Column("RequestedDuration",
               description=doc("CertificateSigningRequestSpec.expirationSeconds")),
        Column("Condition", description=doc("CertificateSigningRequestStatus.conditions")),
    ), _csr_row),
    "Lease": Printer((
        NAME, Column("Holder", description=doc("LeaseSpec.holderIdentity")), AGE,
    ), _lease_row),
    "StorageClass": Printer((
        NAME,
        Column("Provisioner", description=doc("StorageClass.provisioner")),
        Column("ReclaimPolicy", description=doc("StorageClass.reclaimPolicy")),
        Column("VolumeBindingMode", description=doc("StorageClass.volumeBindingMode")),
        Column("AllowVolumeExpansion", description=doc("StorageClass.allowVolumeExpansion")),
        AGE,
    ), _storage_class_row),
    "PriorityClass": Printer((
        NAME,
        Column("Value", "integer", doc("PriorityClass.value")),
        Column("Global-Default", "boolean", doc("PriorityClass.globalDefault")),
        AGE,
        Column("PreemptionPolicy", priority=1, description=doc("PriorityClass.preemptionPolicy")),
    ), _priority_class_row),
    # upstream looks the handler's doc up on ObjectMeta, where it is empty.
    "RuntimeClass": Printer((NAME, Column("Handler"), AGE), _runtime_class_row),
    "VolumeAttachment": Printer((
        NAME,
        Column("Attacher", format="name", description=doc("VolumeAttachmentSpec.attacher")),
        Column("PV", description=doc("VolumeAttachmentSource.persistentVolumeName")),
        Column("Node", description=doc("VolumeAttachmentSpec.nodeName")),
        Column("Attached", "boolean", doc("VolumeAttachmentStatus.attached")),
        AGE,
    ), _volume_attachment_row),
    "CSINode": Printer((
        NAME,
        Column("Drivers", "integer",
               "Drivers indicates the number of CSI drivers registered on the node"),
        AGE,
    ), _csi_node_row),
    "CSIDriver": Printer((
        NAME,
        Column("AttachRequired", "boolean", doc("CSIDriverSpec.attachRequired")),
        Column("PodInfoOnMount", "boolean", doc("CSIDriverSpec.podInfoOnMount")),
        Column("StorageCapacity", "boolean", doc("CSIDriverSpec.storageCapacity")),
        Column("TokenRequests", description=doc("CSIDriverSpec.tokenRequests")),
        Column("RequiresRepublish", "boolean", doc("CSIDriverSpec.requiresRepublish")),
        Column("Modes", description=doc("CSIDriverSpec.volumeLifecycleModes")),
        AGE,
    ), _csi_driver_row),
    "CSIStorageCapacity": Printer((
        NAME,
        Column("StorageClassName", description=doc("CSIStorageCapacity.storageClassName")),
        Column("Capacity", description=doc("CSIStorageCapacity.capacity")),
    ), _csi_capacity_row),
    "MutatingWebhookConfiguration": Printer(_WEBHOOKS, _webhook_row),
    "ValidatingWebhookConfiguration": Printer(_WEBHOOKS, _webhook_row),
    "ValidatingAdmissionPolicy": Printer((
        NAME,
        Column("Validations", "integer", "Validations indicates the number of validation rules "
               "defined in this configuration"),
        Column("ParamKind", description="ParamKind specifies the kind of resources used to "
               "parameterize this policy"),
        AGE,
    ), _policy_row),
    "ValidatingAdmissionPolicyBinding": Printer((
        NAME,
        Column("PolicyName", description="PolicyName indicates the policy definition which the "
               "policy binding binded to"),
        Column("ParamRef", description="ParamRef indicates the param resource which sets the "
               "configration param"),
        AGE,
    ), _policy_binding_row),
}
