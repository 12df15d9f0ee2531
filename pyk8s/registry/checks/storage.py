"""Storage checks: PersistentVolumeClaim, PersistentVolume and StorageClass.

Role: upstream's ``ValidatePersistentVolumeClaimSpec`` (also used for ephemeral
volume and StatefulSet claim templates), the claim update rules, the common
PersistentVolume rules and ``storage/validation`` for StorageClass.

Invariants:
- Functions return ``FieldError`` lists in upstream order and never mutate input.
- Diff details appended to "immutable after creation" errors are readable listings
  of the changed paths, not Go's ``cmp.Diff`` output.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...api import validation as names
from ...api.quantities import QuantityError, parse_quantity
from .field import (FieldError, diff_detail, forbidden, immutable, invalid,
                    not_supported, required, semantic_equal, too_long)
from .meta import SUBDOMAIN, label_selector, object_meta, object_meta_update, standard_meta

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]
RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
CLASS_RECLAIM_POLICIES = ["Delete", "Retain"]
BINDING_MODES = ["Immediate", "WaitForFirstConsumer"]
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
PV_SOURCES = ["hostPath", "gcePersistentDisk", "awsElasticBlockStore", "glusterfs", "flocker",
              "nfs", "rbd", "quobyte", "cephfs", "iscsi", "cinder", "fc", "flexVolume",
              "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume",
              "azureDisk", "scaleIO", "local", "storageos", "csi"]


def _quantity(value: Any):
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def access_modes(modes: list, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    rwop = other = False
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(not_supported(path, mode, ACCESS_MODES))
        if mode == "ReadWriteOncePod":
            rwop = True
        elif mode in ACCESS_MODES:
            other = True
    if rwop and other:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _data_source(ref: Mapping, path: str, *, with_namespace: bool) -> list[FieldError]:
    errs = []
    if not ref.get("name"):
        errs.append(required(f"{path}.name"))
    if not ref.get("kind"):
        errs.append(required(f"{path}.kind"))
    group = ref.get("apiGroup") or ""
    if not group and ref.get("kind") != "PersistentVolumeClaim":
        errs.append(invalid(path, ref.get("kind") or "",
                            "must be 'PersistentVolumeClaim' when referencing the default apiGroup"))
    if group:
        errs += [invalid(f"{path}.apiGroup", group, m) for m in names.is_dns1123_subdomain(group)]
    if with_namespace and ref.get("namespace"):
        errs += [invalid(f"{path}.namespace", ref["namespace"], m)
                 for m in names.name_is_dns_label(ref["namespace"], False)]
    return errs


def pvc_spec(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    """``ValidatePersistentVolumeClaimSpec``."""
    errs: list[FieldError] = []
    modes = spec.get("accessModes") or []
    if not modes:
        errs.append(required(f"{path}.accessModes", "at least 1 access mode is required"))
    if spec.get("selector") is not None:
        errs += label_selector(spec["selector"], f"{path}.selector")
    errs += access_modes(modes, f"{path}.accessModes")
    requests = (spec.get("resources") or {}).get("requests") or {}
    storage_path = f"{path}.resources[storage]"
    if "storage" not in requests:
        errs.append(required(storage_path))
    else:
        q = _quantity(requests["storage"])
        if q is not None and q.sign() <= 0:
            errs.append(invalid(storage_path, str(q), "must be greater than zero"))
    class_name = spec.get("storageClassName")
    if class_name:
        errs += [invalid(f"{path}.storageClassName", class_name, m)
                 for m in names.name_is_dns_subdomain(class_name, False)]
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    if spec.get("dataSource") is not None:
        errs += _data_source(spec["dataSource"], f"{path}.dataSource", with_namespace=False)
    ref = spec.get("dataSourceRef")
    if ref is not None:
        errs += _data_source(ref, f"{path}.dataSourceRef", with_namespace=True)
    return errs


def validate_pvc(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = standard_meta(obj, old, SUBDOMAIN, True)
    if old is not None:
        errs += standard_meta(obj, None, SUBDOMAIN, True)
    errs += pvc_spec(spec, "spec")
    if old is None:
        return errs
    return errs + _pvc_update(obj, old)


def _pvc_update(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    new_spec = dict(obj.get("spec") or {})
    old_spec = dict(old.get("spec") or {})
    if not old_spec.get("volumeName"):
        old_spec["volumeName"] = new_spec.get("volumeName")
    new_ann = (obj.get("metadata") or {}).get("annotations") or {}
    old_ann = (old.get("metadata") or {}).get("annotations") or {}
    if BETA_CLASS_ANNOTATION in old_ann and old_spec.get("storageClassName") is None and \
            new_spec.get("storageClassName") == old_ann[BETA_CLASS_ANNOTATION] and \
            new_ann.get(BETA_CLASS_ANNOTATION, old_ann[BETA_CLASS_ANNOTATION]) == \
            old_ann[BETA_CLASS_ANNOTATION]:
        new_spec.pop("storageClassName", None)
    else:
        if new_ann.get(BETA_CLASS_ANNOTATION, "") != old_ann.get(BETA_CLASS_ANNOTATION, ""):
            errs.append(invalid(f"metadata.annotations.{BETA_CLASS_ANNOTATION}",
                                new_ann.get(BETA_CLASS_ANNOTATION, ""), "field is immutable"))
        if new_spec.get("storageClassName") is not None and old_spec.get("storageClassName") is None \
                and new_spec["storageClassName"] == old_ann.get(BETA_CLASS_ANNOTATION,
                                                                new_spec["storageClassName"]):
            new_spec["storageClassName"] = None
    bound = ((obj.get("status") or {}).get("phase")) == "Bound"
    new_requests = dict((new_spec.get("resources") or {}).get("requests") or {})
    if bound and new_requests:
        old_storage = ((old_spec.get("resources") or {}).get("requests") or {}).get("storage")
        new_requests["storage"] = old_storage
        new_spec["resources"] = {**(new_spec.get("resources") or {}), "requests": new_requests}
    if bound and new_spec.get("volumeAttributesClassName") is not None:
        new_spec["volumeAttributesClassName"] = old_spec.get("volumeAttributesClassName")
    if not semantic_equal(new_spec, old_spec):
        errs.append(forbidden("spec", "spec is immutable after creation except resources.requests "
                              "and volumeAttributesClassName for bound claims\n"
                              + diff_detail(old_spec, new_spec)))
    old_size = _quantity(((old.get("spec") or {}).get("resources") or {}).get("requests", {})
                         .get("storage", "0"))
    new_size = _quantity(((obj.get("spec") or {}).get("resources") or {}).get("requests", {})
                         .get("storage", "0"))
    if old_size is not None and new_size is not None and new_size < old_size:
        errs.append(forbidden("spec.resources.requests.storage",
                              "field can not be less than previous value"))
    errs += immutable((obj.get("spec") or {}).get("volumeMode"),
                      (old.get("spec") or {}).get("volumeMode"), "volumeMode")
    return errs


def validate_pv(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    """``ValidatePersistentVolume`` (+ update immutability of the volume source)."""
    errs = standard_meta(obj, old, SUBDOMAIN, False)
    if old is not None:
        errs += standard_meta(obj, None, SUBDOMAIN, False)
    spec = obj.get("spec") or {}
    modes = spec.get("accessModes") or []
    if not modes:
        errs.append(required("spec.accessModes"))
    errs += access_modes(modes, "spec.accessModes")
    capacity = spec.get("capacity") or {}
    if not capacity:
        errs.append(required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        errs.append(not_supported("spec.capacity", capacity, ["storage"],
                                  shown="core.ResourceList{" + ", ".join(
                                      f"{names.go_quote(k)}:{{...}}" for k in capacity) + "}"))
    for key, value in capacity.items():
        q = _quantity(value)
        if q is not None and q.sign() <= 0:
            errs.append(invalid(f"spec.capacity[{key}]", str(q), "must be greater than zero"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in RECLAIM_POLICIES:
        errs.append(not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES))
    sources = [k for k in PV_SOURCES if spec.get(k) is not None]
    for extra in sources[1:]:
        errs.append(forbidden(f"spec.{extra}", "may not specify more than 1 volume type"))
    if not sources:
        errs.append(required("spec", "must specify a volume type"))
    if spec.get("local") is not None and not (spec.get("nodeAffinity") or {}).get("required"):
        errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    class_name = spec.get("storageClassName")
    if class_name:
        errs += [invalid("spec.storageClassName", class_name, m)
                 for m in names.name_is_dns_subdomain(class_name, False)]
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(not_supported("spec.volumeMode", mode, VOLUME_MODES))
    if old is not None:
        old_spec = old.get("spec") or {}
        new_src = {k: spec.get(k) for k in PV_SOURCES}
        old_src = {k: old_spec.get(k) for k in PV_SOURCES}
        if not semantic_equal(new_src, old_src):
            errs.append(forbidden("spec.persistentvolumesource",
                                  "spec.persistentvolumesource is immutable after creation\n"
                                  + diff_detail(old_src, new_src)))
        errs += immutable(spec.get("volumeMode"), old_spec.get("volumeMode"), "volumeMode")
    return errs


def validate_storage_class(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    errs = object_meta(meta, namespaced=False, name_fn=SUBDOMAIN)
    provisioner = obj.get("provisioner") or ""
    if not provisioner:
        errs.append(required("provisioner"))
    else:
        errs += [invalid("provisioner", provisioner.lower(), m)
                 for m in names.is_qualified_name(provisioner.lower())]
    params = obj.get("parameters") or {}
    if len(params) > 512:
        errs.append(too_long("parameters", 512))
    size = 0
    for key, value in params.items():
        if not key:
            errs.append(invalid("parameters", key, "field can not be empty."))
        size += len(key) + len(str(value))
    if size > 256 * 1024:
        errs.append(too_long("parameters", 256 * 1024))
    policy = obj.get("reclaimPolicy")
    if policy and policy not in CLASS_RECLAIM_POLICIES:
        errs.append(not_supported("reclaimPolicy", policy, CLASS_RECLAIM_POLICIES))
    mode = obj.get("volumeBindingMode")
    if mode is None:
        errs.append(required("volumeBindingMode"))
    elif mode not in BINDING_MODES:
        errs.append(not_supported("volumeBindingMode", mode, BINDING_MODES))
    if old is None:
        return errs
    errs += object_meta_update(meta, old.get("metadata") or {})
    if not semantic_equal(obj.get("parameters"), old.get("parameters")):
        errs.append(forbidden("parameters", "updates to parameters are forbidden."))
    if obj.get("provisioner") != old.get("provisioner"):
        errs.append(forbidden("provisioner", "updates to provisioner are forbidden."))
    if obj.get("reclaimPolicy") != old.get("reclaimPolicy"):
        errs.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    errs += immutable(obj.get("volumeBindingMode"), old.get("volumeBindingMode"),
                      "volumeBindingMode")
    return errs
