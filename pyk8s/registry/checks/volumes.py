"""Pod volume checks (``ValidateVolumes`` and the volume sources users write).

Role: upstream core validation of ``spec.volumes``: unique DNS-1123 names, exactly
one source per volume, and the per-source rules for emptyDir, hostPath, secret,
configMap, persistentVolumeClaim, downwardAPI, projected, nfs, csi, ephemeral and
image. The remaining in-tree cloud sources count toward "one source" and get the
required-field checks upstream gives them.

Invariants:
- ``validate_volumes`` returns (names of valid volumes -> source, errors), like
  upstream, so mounts can be checked against the volumes that passed.
- Paths follow upstream exactly, including its quirks (``downwarAPI`` in the
  "more than 1 volume type" error, ``persistentDisk`` for GCE PD).
"""
from __future__ import annotations

import posixpath
from typing import Any, Mapping

from ...api import validation as names
from ...api.quantities import QuantityError, parse_quantity
from .field import FieldError, forbidden, invalid, not_supported, required, too_long
from .meta import annotations, labels
from .storage import pvc_spec

FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                   "FileOrCreate", "Socket"]
VOLUME_DOWNWARD_FIELDS = ["metadata.annotations", "metadata.labels", "metadata.name",
                          "metadata.namespace", "metadata.uid"]

# Sources in upstream's order of checking, with the path name of their errors
# ("may not specify more than 1 volume type" is reported at the second one met).
_SOURCES = [
    ("emptyDir", "emptyDir"), ("hostPath", "hostPath"), ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"), ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"), ("nfs", "nfs"), ("iscsi", "iscsi"), ("glusterfs", "glusterfs"),
    ("flocker", "flocker"), ("persistentVolumeClaim", "persistentVolumeClaim"), ("rbd", "rbd"),
    ("cinder", "cinder"), ("cephfs", "cephFS"), ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"), ("fc", "fc"), ("flexVolume", "flexVolume"),
    ("configMap", "configMap"), ("azureFile", "azureFile"), ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"), ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"), ("storageos", "storageos"), ("projected", "projected"),
    ("scaleIO", "scaleIO"), ("csi", "csi"), ("ephemeral", "ephemeral"), ("image", "image"),
]
# Simple "this field is required" rules of the remaining sources: (key, field path).
_REQUIRED_FIELDS = {
    "gitRepo": [("repository", "repository")],
    "gcePersistentDisk": [("pdName", "pdName")],
    "awsElasticBlockStore": [("volumeID", "volumeID")],
    "glusterfs": [("endpoints", "endpoints"), ("path", "path")],
    "rbd": [("monitors", "monitors"), ("image", "image")],
    "cinder": [("volumeID", "volumeID")],
    "cephfs": [("monitors", "monitors")],
    "flexVolume": [("driver", "driver")],
    "azureFile": [("secretName", "secretName"), ("shareName", "shareName")],
    "vsphereVolume": [("volumePath", "volumePath")],
    "photonPersistentDisk": [("pdID", "pdID")],
    "portworxVolume": [("volumeID", "volumeID")],
    "azureDisk": [("diskName", "diskName"), ("diskURI", "diskURI")],
    "scaleIO": [("gateway", "gateway"), ("system", "system"), ("volumeName", "volumeName")],
    "iscsi": [("targetPortal", "targetPortal"), ("iqn", "iqn")],
}
# Upstream reports a few sources' field errors under another path segment.
_ERROR_PATH = {"gcePersistentDisk": "persistentDisk", "cephfs": "cephfs"}


def validate_volumes(volumes: list | None, pod_meta: Mapping[str, Any] | None,
                     path: str, *, resource_is_pod: bool) -> tuple[dict[str, dict], list[FieldError]]:
    errs: list[FieldError] = []
    valid: dict[str, dict] = {}
    created_pvcs: set[str] = set()
    pod_name = (pod_meta or {}).get("name") or ""
    if pod_name:
        created_pvcs = {f"{pod_name}-{v.get('name')}" for v in volumes or [] if v.get("ephemeral")}
    for i, vol in enumerate(volumes or []):
        p = f"{path}[{i}]"
        name = vol.get("name") or ""
        el = volume_source(vol, p, name, pod_name, resource_is_pod=resource_is_pod)
        if not name:
            el.append(required(f"{p}.name"))
        else:
            el += [invalid(f"{p}.name", name, m) for m in names.is_dns1123_label(name)]
        if name in valid:
            el.append(FieldError("FieldValueDuplicate", f"{p}.name", name))
        if not el:
            valid[name] = vol
        else:
            errs += el
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if vol.get("persistentVolumeClaim") is not None and claim in created_pvcs:
            errs.append(invalid(f"{p}.persistentVolumeClaim.claimName", claim,
                                "must not reference a PVC that gets created for an "
                                "ephemeral volume"))
    return valid, errs


def volume_source(vol: Mapping[str, Any], path: str, vol_name: str, pod_name: str, *,
                  resource_is_pod: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    for key, error_name in _SOURCES:
        src = vol.get(key)
        if src is None:
            continue
        if count > 0:
            errs.append(forbidden(f"{path}.{error_name}", "may not specify more than 1 volume type"))
            continue
        count += 1
        errs += _one_source(key, src, f"{path}.{_ERROR_PATH.get(key, key)}", vol_name, pod_name,
                            resource_is_pod=resource_is_pod)
    if count == 0:
        errs.append(required(path, "must specify a volume type"))
    return errs


def _one_source(key: str, src: Any, path: str, vol_name: str, pod_name: str, *,
                resource_is_pod: bool) -> list[FieldError]:
    src = src if isinstance(src, Mapping) else {}
    checker = _CHECKERS.get(key)
    if checker is not None:
        return checker(src, path)
    if key == "ephemeral":
        return _ephemeral(src, path, vol_name, pod_name)
    if key == "image":
        return _image(src, path, resource_is_pod)
    return [required(f"{path}.{field}") for k, field in _REQUIRED_FIELDS.get(key, [])
            if not src.get(k)]


def _mode(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 0o777:
        return [invalid(path, value, FILE_MODE_ERROR)]
    return []


def path_no_backsteps(target: str, path: str) -> list[FieldError]:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def local_descending_path(target: str, path: str) -> list[FieldError]:
    errs = []
    if posixpath.isabs(target):
        errs.append(invalid(path, target, "must be a relative path"))
    return errs + path_no_backsteps(target, path)


def local_non_reserved_path(target: str, path: str) -> list[FieldError]:
    errs = local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid(path, target, "must not start with '..'"))
    return errs


def _key_to_path(item: Mapping[str, Any], path: str) -> list[FieldError]:
    errs = []
    if not item.get("key"):
        errs.append(required(f"{path}.key"))
    if not item.get("path"):
        errs.append(required(f"{path}.path"))
    errs += local_non_reserved_path(item.get("path") or "", f"{path}.path")
    return errs + _mode(item.get("mode"), f"{path}.mode")


def _empty_dir(src: Mapping, path: str) -> list[FieldError]:
    limit = src.get("sizeLimit")
    try:
        negative = limit is not None and parse_quantity(limit).sign() < 0
    except QuantityError:
        negative = False  # the schema check already rejected a malformed quantity
    if negative:
        return [forbidden(f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity")]
    return []


def _host_path(src: Mapping, path: str) -> list[FieldError]:
    if not src.get("path"):
        return [required(f"{path}.path")]
    errs = path_no_backsteps(src["path"], f"{path}.path")
    kind = src.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        errs.append(not_supported(f"{path}.type", kind, HOST_PATH_TYPES))
    return errs


def _secret(src: Mapping, path: str) -> list[FieldError]:
    errs = [] if src.get("secretName") else [required(f"{path}.secretName")]
    errs += _mode(src.get("defaultMode"), f"{path}.defaultMode")
    for i, item in enumerate(src.get("items") or []):
        errs += _key_to_path(item, f"{path}.items[{i}]")
    return errs


def _config_map(src: Mapping, path: str) -> list[FieldError]:
    errs = [] if src.get("name") else [required(f"{path}.name")]
    errs += _mode(src.get("defaultMode"), f"{path}.defaultMode")
    for i, item in enumerate(src.get("items") or []):
        errs += _key_to_path(item, f"{path}.items[{i}]")
    return errs


def _pvc(src: Mapping, path: str) -> list[FieldError]:
    return [] if src.get("claimName") else [required(f"{path}.claimName")]


def _nfs(src: Mapping, path: str) -> list[FieldError]:
    errs = []
    if not src.get("server"):
        errs.append(required(f"{path}.server"))
    if not src.get("path"):
        errs.append(required(f"{path}.path"))
    if not posixpath.isabs(src.get("path") or ""):
        errs.append(invalid(f"{path}.path", src.get("path") or "", "must be an absolute path"))
    return errs


_CONVERTIBLE_FIELDS = {
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
    "metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
    "spec.schedulerName", "status.phase", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
}


def split_subscript(field_path: str) -> tuple[str, str] | None:
    """``fieldpath.SplitMaybeSubscriptedPath``: ``metadata.labels['key']``."""
    if not field_path.endswith("']"):
        return None
    base, sep, subscript = field_path[:-2].partition("['")
    if not sep or not base:
        return None
    return base, subscript


def _convert_field_label(api_version: str, field_path: str) -> str | None:
    """The error of ``ConvertDownwardAPIFieldLabel``, or None when it converts."""
    if api_version != "v1":
        return f"unsupported pod version: {api_version}"
    split = split_subscript(field_path)
    if split is not None:
        if split[0] in ("metadata.annotations", "metadata.labels"):
            return None
        return f"field label does not support subscript: {field_path}"
    if field_path == "spec.host" or field_path in _CONVERTIBLE_FIELDS:
        return None
    return f"field label not supported: {field_path}"


def object_field_selector(ref: Mapping[str, Any], allowed: list[str], path: str) -> list[FieldError]:
    """``validateObjectFieldSelector`` for downward-API field references."""
    api_version = ref.get("apiVersion") or ""
    if not api_version:
        return [required(f"{path}.apiVersion")]
    field_path = ref.get("fieldPath") or ""
    if not field_path:
        return [required(f"{path}.fieldPath")]
    problem = _convert_field_label(api_version, field_path)
    if problem is not None:
        return [invalid(f"{path}.fieldPath", field_path, f"error converting fieldPath: {problem}")]
    internal = "spec.nodeName" if field_path == "spec.host" else field_path
    split = split_subscript(internal)
    if split is not None:
        base, subscript = split
        if base == "metadata.annotations":
            return [invalid(path, subscript.lower(), m)
                    for m in names.is_qualified_name(subscript.lower())]
        if base == "metadata.labels":
            return [invalid(path, subscript, m) for m in names.is_qualified_name(subscript)]
        return [invalid(path, base, "does not support subscript")]
    if internal not in allowed:
        return [not_supported(f"{path}.fieldPath", internal, allowed)]
    return []


def _downward_file(item: Mapping, path: str) -> list[FieldError]:
    errs = [] if item.get("path") else [required(f"{path}.path")]
    errs += local_non_reserved_path(item.get("path") or "", f"{path}.path")
    if item.get("fieldRef") is not None:
        errs += object_field_selector(item["fieldRef"], VOLUME_DOWNWARD_FIELDS, f"{path}.fieldRef")
        if item.get("resourceFieldRef") is not None:
            errs.append(invalid(path, "resource", "fieldRef and resourceFieldRef can not be "
                                "specified simultaneously"))
    elif item.get("resourceFieldRef") is not None:
        ref = item["resourceFieldRef"]
        if not ref.get("containerName"):
            errs.append(required(f"{path}.resourceFieldRef.containerName"))
        elif not ref.get("resource"):
            errs.append(required(f"{path}.resourceFieldRef.resource"))
    else:
        errs.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    return errs + _mode(item.get("mode"), f"{path}.mode")


def _downward_api(src: Mapping, path: str) -> list[FieldError]:
    errs = _mode(src.get("defaultMode"), f"{path}.defaultMode")
    for item in src.get("items") or []:
        errs += _downward_file(item, path)
    return errs


def _projected(src: Mapping, path: str) -> list[FieldError]:
    errs = _mode(src.get("defaultMode"), f"{path}.defaultMode")
    seen: set[str] = set()
    for i, source in enumerate(src.get("sources") or []):
        sp = f"{path}.sources[{i}]"
        count = 0
        for key in ("secret", "configMap"):
            part = source.get(key)
            if part is None:
                continue
            count += 1
            if not part.get("name"):
                errs.append(required(f"{sp}.{key}.name"))
            for j, item in enumerate(part.get("items") or []):
                errs += _key_to_path(item, f"{sp}.{key}.items[{j}]")
                if item.get("path"):
                    if item["path"] in seen:
                        errs.append(invalid(path, part.get("name") or "",
                                            "conflicting duplicate paths"))
                    seen.add(item["path"])
        if source.get("downwardAPI") is not None:
            count += 1
            for item in source["downwardAPI"].get("items") or []:
                errs += _downward_file(item, f"{sp}.downwardAPI")
                if item.get("path"):
                    if item["path"] in seen:
                        errs.append(invalid(path, item["path"], "conflicting duplicate paths"))
                    seen.add(item["path"])
        token = source.get("serviceAccountToken")
        if token is not None:
            count += 1
            tp = f"{sp}.serviceAccountToken"
            seconds = token.get("expirationSeconds", 3600)
            if seconds < 600:
                errs.append(invalid(f"{tp}.expirationSeconds", seconds,
                                    "may not specify a duration less than 10 minutes"))
            if seconds > 1 << 32:
                errs.append(invalid(f"{tp}.expirationSeconds", seconds,
                                    "may not specify a duration larger than 2^32 seconds"))
            if not token.get("path"):
                errs.append(required(f"{path}.path"))
            else:
                errs += local_non_reserved_path(token["path"], f"{path}.path")
        if source.get("clusterTrustBundle") is not None:
            count += 1
        if count > 1:
            errs.append(forbidden(sp, "may not specify more than 1 volume type per source"))
    return errs


def _csi(src: Mapping, path: str) -> list[FieldError]:
    errs = csi_driver_name(src.get("driver") or "", f"{path}.driver")
    ref = src.get("nodePublishSecretRef")
    if ref is not None:
        if not ref.get("name"):
            errs.append(required(f"{path}.nodePublishSecretRef.name"))
        else:
            errs += [invalid(f"{path}.name", ref["name"], m)
                     for m in names.name_is_dns_subdomain(ref["name"], False)]
    return errs


def csi_driver_name(name: str, path: str) -> list[FieldError]:
    errs = [] if name else [required(path)]
    if len(name) > 63:
        errs.append(too_long(path, 63))
    errs += [invalid(path, name, m) for m in names.is_dns1123_subdomain(name.lower())]
    return errs


def _ephemeral(src: Mapping, path: str, vol_name: str, pod_name: str) -> list[FieldError]:
    template = src.get("volumeClaimTemplate")
    if template is None:
        return [required(f"{path}.volumeClaimTemplate")]
    tp = f"{path}.volumeClaimTemplate"
    meta = template.get("metadata") or {}
    errs = annotations(meta.get("annotations"), f"{tp}.metadata.annotations")
    errs += labels(meta.get("labels"), f"{tp}.metadata.labels")
    for key in sorted(set(meta) - {"labels", "annotations"}):
        if meta[key] not in (None, "", [], {}):
            errs.append(forbidden(f"{tp}.metadata.{key}", "cannot be set"))
    errs += pvc_spec(template.get("spec") or {}, f"{tp}.spec")
    if pod_name and vol_name:
        pvc_name = f"{pod_name}-{vol_name}"
        errs += [invalid(f"{path}.name", vol_name, f"PVC name {names.go_quote(pvc_name)}: {m}")
                 for m in names.name_is_dns_subdomain(pvc_name, False)]
    return errs


def _image(src: Mapping, path: str, resource_is_pod: bool) -> list[FieldError]:
    errs = []
    if resource_is_pod and not src.get("reference"):
        errs.append(required(f"{path}.reference"))
    policy = src.get("pullPolicy") or ""
    if not policy:
        errs.append(required(f"{path}.pullPolicy"))
    elif policy not in ("Always", "IfNotPresent", "Never"):
        errs.append(not_supported(f"{path}.pullPolicy", policy, ["Always", "IfNotPresent", "Never"]))
    return errs


_CHECKERS = {
    "emptyDir": _empty_dir, "hostPath": _host_path, "secret": _secret,
    "configMap": _config_map, "persistentVolumeClaim": _pvc, "nfs": _nfs,
    "downwardAPI": _downward_api, "projected": _projected, "csi": _csi,
}
