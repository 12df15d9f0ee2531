"""Defaults of the core (v1) group, as ``pkg/apis/core/v1/defaults.go`` and its
generated ``zz_generated.defaults.go``.

Role: ``pod_spec`` is ``SetDefaults_PodSpec`` plus every nested defaulter the
generated code calls for a pod spec (containers, probes, lifecycle handlers, env
field references, volumes, resource lists); workloads in other groups reuse it for
their pod templates. ``pod`` adds what only a Pod gets (``SetDefaults_Pod``:
requests from limits, ``enableServiceLinks``, host-network ports). The other
functions default one kind each.

Invariants:
- Only unset fields are filled, so defaulting is idempotent.
- Resource quantities in resource lists are rounded up to milli precision and
  written in upstream's serialized form ("0.5" -> "500m"), as a decode/encode
  round trip through the real API server leaves them.
- v1.32 feature gates as shipped: ImageVolume and PodLevelResources (alpha) off.
"""
from __future__ import annotations

import re
from typing import Any

from ...api.quantities import Quantity, QuantityError, parse_quantity

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_MODE = 420  # 0644
CLIENT_IP_TIMEOUT = 10800

# --- image references (docker/distribution reference grammar) --------------------------

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_NAME_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[(?:[a-fA-F0-9:]+)\])"
           r"(?::[0-9]+)?")
_NAME = rf"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?\Z")
_IDENTIFIER = re.compile(r"^[a-f0-9]{64}\Z")


def image_tag(image: str) -> str:
    """The tag ``parsers.ParseImageName`` finds: "latest" when neither tag nor digest,
    "" when the reference does not parse."""
    if not isinstance(image, str) or not image or _IDENTIFIER.match(image):
        return ""
    slash = image.find("/")
    head = image[:slash]
    if slash == -1 or (not any(c in head for c in ".:") and head != "localhost"
                       and head.lower() == head):
        domain, remainder = "docker.io", image
    else:
        domain, remainder = head, image[slash + 1:]
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    repo = remainder.split(":", 1)[0]
    if repo.lower() != repo:
        return ""
    match = _REFERENCE.match(f"{domain}/{remainder}")
    if match is None or len(match.group(1)) > 255:
        return ""
    tag, digest = match.group(2) or "", match.group(3) or ""
    return "latest" if not tag and not digest else tag


def pull_policy(image: str) -> str:
    return "Always" if image_tag(image) == "latest" else "IfNotPresent"


# --- JSON access that tolerates absent, null and mistyped values ------------------------

def struct(parent: dict, key: str) -> dict:
    """``parent[key]`` as a dict, created when absent; a detached {} when mistyped
    (the schema check reports that)."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list:
    return value if isinstance(value, list) else []


def mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


_STRING_MAPS = {"labels", "annotations", "matchLabels", "nodeSelector", "data", "binaryData",
                "stringData", "parameters", "volumeAttributes", "limits", "requests",
                "capacity", "allocatable"}


def drop_nulls(value: Any, key: str = "") -> None:
    """Decode and re-encode nulls as upstream does: a null field disappears, a null in a
    string map becomes ""."""
    if isinstance(value, dict):
        string_map = key in _STRING_MAPS or (
            key == "selector" and not {"matchLabels", "matchExpressions"} & set(value))
        for k in list(value):
            if value[k] is None:
                if string_map:
                    value[k] = ""
                else:
                    del value[k]
            else:
                drop_nulls(value[k], k)
    elif isinstance(value, list):
        for item in value:
            drop_nulls(item, key)


# --- small defaulters ------------------------------------------------------------------

def resource_list(values: Any) -> None:
    """``SetDefaults_ResourceList``: round up to milli, serialize as upstream does."""
    if not isinstance(values, dict):
        return
    for key, value in list(values.items()):
        try:
            q = parse_quantity(value)
        except QuantityError:
            continue  # schema validation reports it
        if q.nanos % 10 ** 6:
            q = Quantity.from_milli(q.milli_value(), q.format)
        values[key] = str(q)


def object_field_selector(ref: Any) -> None:
    if isinstance(ref, dict) and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def http_get(action: Any) -> None:
    if isinstance(action, dict):
        if not action.get("path"):
            action["path"] = "/"
        if not action.get("scheme"):
            action["scheme"] = "HTTP"


def probe(pr: Any) -> None:
    if not isinstance(pr, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                       ("successThreshold", 1), ("failureThreshold", 3)):
        if not pr.get(key):
            pr[key] = value
    http_get(pr.get("httpGet"))
    grpc = pr.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def container(c: dict) -> None:
    """``SetDefaults_Container`` and the generated defaults of its fields."""
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = pull_policy(c.get("image") or "")
    if not c.get("terminationMessagePath"):
        c["terminationMessagePath"] = TERMINATION_MESSAGE_PATH
    if not c.get("terminationMessagePolicy"):
        c["terminationMessagePolicy"] = "File"
    for port in items(c.get("ports")):
        if isinstance(port, dict) and not port.get("protocol"):
            port["protocol"] = "TCP"
    for ev in items(c.get("env")):
        if isinstance(ev, dict) and isinstance(ev.get("valueFrom"), dict):
            object_field_selector(ev["valueFrom"].get("fieldRef"))
    # ResourceRequirements is a struct, never omitted: "resources: {}" always shows.
    resources = c.get("resources")
    if not isinstance(resources, dict):
        resources = c["resources"] = {}
    resource_list(resources.get("limits"))
    resource_list(resources.get("requests"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe(c.get(key))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for key in ("postStart", "preStop"):
            if isinstance(lifecycle.get(key), dict):
                http_get(lifecycle[key].get("httpGet"))


def pvc_spec(spec: Any) -> None:
    """``SetDefaults_PersistentVolumeClaimSpec`` and its resource lists."""
    if not isinstance(spec, dict):
        return
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    resources = spec.get("resources")
    if isinstance(resources, dict):
        resource_list(resources.get("limits"))
        resource_list(resources.get("requests"))


_SOURCE_KEYS = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image",
)


def _downward_items(values: Any) -> None:
    for item in items(values):
        if isinstance(item, dict):
            object_field_selector(item.get("fieldRef"))


def volume(vol: dict) -> None:
    """``SetDefaults_Volume`` and the defaults of each volume source."""
    if all(vol.get(k) is None for k in _SOURCE_KEYS):
        vol["emptyDir"] = {}
    host_path = vol.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        src = vol.get(key)
        if isinstance(src, dict) and src.get("defaultMode") is None:
            src["defaultMode"] = DEFAULT_MODE
    if isinstance(vol.get("downwardAPI"), dict):
        _downward_items(vol["downwardAPI"].get("items"))
    if isinstance(vol.get("projected"), dict):
        for source in items(vol["projected"].get("sources")):
            if not isinstance(source, dict):
                continue
            if isinstance(source.get("downwardAPI"), dict):
                _downward_items(source["downwardAPI"].get("items"))
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600
    _legacy_volume_defaults(vol)
    ephemeral = vol.get("ephemeral")
    if isinstance(ephemeral, dict) and isinstance(ephemeral.get("volumeClaimTemplate"), dict):
        pvc_spec(ephemeral["volumeClaimTemplate"].get("spec"))


def _legacy_volume_defaults(vol: dict) -> None:
    """Defaults of the in-tree plugins (iSCSI, RBD, Azure disk, ScaleIO)."""
    defaults = {
        "iscsi": {"iscsiInterface": "default"},
        "rbd": {"pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring"},
        "azureDisk": {"cachingMode": "ReadWrite", "fsType": "ext4", "readOnly": False,
                      "kind": "Shared"},
        "scaleIO": {"storageMode": "ThinProvisioned", "fsType": "xfs"},
    }
    for key, fields in defaults.items():
        src = vol.get(key)
        if isinstance(src, dict):
            for field, value in fields.items():
                if src.get(field) in (None, ""):
                    src[field] = value


def pod_spec(spec: Any) -> None:
    """``SetDefaults_PodSpec`` plus the nested defaults of a pod spec."""
    if not isinstance(spec, dict):
        return
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    for vol in items(spec.get("volumes")):
        if isinstance(vol, dict):
            volume(vol)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in items(spec.get(key)):
            if isinstance(c, dict):
                container(c)
    resource_list(spec.get("overhead"))


def template(tmpl: Any) -> None:
    """A ``PodTemplateSpec`` inside another object."""
    if isinstance(tmpl, dict):
        pod_spec(tmpl.get("spec"))


def _requests_from_limits(c: dict) -> None:
    resources = mapping(c.get("resources"))
    limits = resources.get("limits")
    if not isinstance(limits, dict):
        return
    if resources.get("requests") is None:
        resources["requests"] = {}
    if not isinstance(resources["requests"], dict):
        return
    for key, value in limits.items():
        resources["requests"].setdefault(key, value)
    c["resources"] = resources


# --- kinds ------------------------------------------------------------------------------

def pod(obj: dict) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    for key in ("containers", "initContainers"):
        for c in items(spec.get(key)):
            if isinstance(c, dict):
                _requests_from_limits(c)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork"):
        for key in ("containers", "initContainers"):
            for c in items(spec.get(key)):
                for port in items(mapping(c).get("ports")):
                    if isinstance(port, dict) and not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    pod_spec(spec)


def pod_template(obj: dict) -> None:
    template(obj.get("template"))


def replication_controller(obj: dict) -> None:
    spec = struct(obj, "spec")
    tmpl = spec.get("template")
    labels = mapping(mapping(tmpl).get("metadata")).get("labels")
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = struct(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    template(tmpl)


def service(obj: dict) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = mapping(spec.get("sessionAffinityConfig"))
        if mapping(config.get("clientIP")).get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": CLIENT_IP_TIMEOUT}}
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    for port in items(spec.get("ports")):
        if not isinstance(port, dict):
            continue
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    kind = spec["type"]
    accessible = kind in ("NodePort", "LoadBalancer") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs")))
    if accessible and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and kind in ("NodePort", "LoadBalancer", "ClusterIP"):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        for ingress in items(mapping(mapping(obj.get("status")).get("loadBalancer")).get("ingress")):
            if isinstance(ingress, dict) and ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"


def secret(obj: dict) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"


def namespace(obj: dict) -> None:
    meta = struct(obj, "metadata")
    name = meta.get("name")
    if name:
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = name
    status = obj.get("status")
    if not isinstance(status, dict):
        status = obj["status"] = {}
    if not status.get("phase"):
        status["phase"] = "Active"


def node(obj: dict) -> None:
    status = obj.get("status")
    if not isinstance(status, dict):
        return
    if status.get("allocatable") is None and status.get("capacity") is not None:
        status["allocatable"] = dict(status["capacity"])
    resource_list(status.get("capacity"))
    resource_list(status.get("allocatable"))


def persistent_volume(obj: dict) -> None:
    status = struct(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"
    spec = struct(obj, "spec")
    if not spec.get("persistentVolumeReclaimPolicy"):
        spec["persistentVolumeReclaimPolicy"] = "Retain"
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    resource_list(spec.get("capacity"))
    if isinstance(spec.get("hostPath"), dict) and spec["hostPath"].get("type") is None:
        spec["hostPath"]["type"] = ""
    _legacy_volume_defaults(spec)


def persistent_volume_claim(obj: dict) -> None:
    status = struct(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"
    pvc_spec(struct(obj, "spec"))
    resource_list(status.get("capacity"))
    resource_list(status.get("allocatedResources"))


def endpoints(obj: dict) -> None:
    for subset in items(obj.get("subsets")):
        for port in items(mapping(subset).get("ports")):
            if isinstance(port, dict) and not port.get("protocol"):
                port["protocol"] = "TCP"


def limit_range(obj: dict) -> None:
    for item in items(mapping(obj.get("spec")).get("limits")):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "Container":
            default = struct(item, "default")
            default_request = struct(item, "defaultRequest")
            for key, value in mapping(item.get("max")).items():
                default.setdefault(key, value)
            for key, value in default.items():
                default_request.setdefault(key, value)
            for key, value in mapping(item.get("min")).items():
                default_request.setdefault(key, value)
            # An empty map serializes as absent, as upstream's omitempty.
            for key in ("default", "defaultRequest"):
                if not item[key]:
                    del item[key]
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            resource_list(item.get(key))


def resource_quota(obj: dict) -> None:
    resource_list(mapping(obj.get("spec")).get("hard"))
    status = mapping(obj.get("status"))
    resource_list(status.get("hard"))
    resource_list(status.get("used"))


KINDS = {
    "Pod": pod, "PodTemplate": pod_template, "ReplicationController": replication_controller,
    "Service": service, "Secret": secret, "Namespace": namespace, "Node": node,
    "PersistentVolume": persistent_volume, "PersistentVolumeClaim": persistent_volume_claim,
    "Endpoints": endpoints, "LimitRange": limit_range, "ResourceQuota": resource_quota,
}
