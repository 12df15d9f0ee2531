"""The Node authorizer (plugin/pkg/auth/authorizer/node): what a kubelet may read.

A kubelet (``system:node:<name>`` in ``system:nodes``) may read a Secret, ConfigMap,
PersistentVolumeClaim, PersistentVolume or ServiceAccount token only when a pod bound
to its node references it (upstream's graph, computed here from a pods-by-node
index); it may read only its own Node and Lease, list pods only with
``spec.nodeName=<itself>``, and everything else falls back to the static
``system:node`` rules. Any other user gets no opinion.

The pods-by-node index follows the pod watch cache through a listener and is
rebuilt when the cache relists, so one decision costs O(pods on that node).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ...storage import EventType
from ..authn import UserInfo, node_name
from . import Attributes

if TYPE_CHECKING:
    from ..app import APIServer

NODE_LEASE_NS = "kube-node-lease"


class PodsByNode:
    """Pod cache keys by ``spec.nodeName``."""

    def __init__(self, server: "APIServer"):
        self.store = server.stores[("", "v1", "pods")]
        self.by_node: dict[str, set[str]] = {}
        self._cache = None

    def _ensure(self) -> None:
        cache = self.store.cache
        if cache is self._cache:
            return
        self._cache = cache
        self.by_node = {}
        cache.listeners.append(self._changed)
        for key, pod in cache.objects.items():
            self._add(key, pod)

    def _add(self, key: str, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.by_node.setdefault(node, set()).add(key)

    def _remove(self, key: str, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        keys = self.by_node.get(node or "")
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.by_node[node]

    def _changed(self, kind, obj: dict, prev: dict | None) -> None:
        meta = obj["metadata"]
        key = self.store.key(meta.get("namespace", ""), meta["name"])
        if prev is not None:
            self._remove(key, prev)
        if kind is not EventType.DELETED:
            self._add(key, obj)

    def pods(self, node: str, namespace: str = "") -> Iterator[dict]:
        self._ensure()
        objects = self.store.cache.objects
        for key in list(self.by_node.get(node, ())):
            pod = objects.get(key)
            if pod is not None and (not namespace or
                                    pod["metadata"].get("namespace") == namespace):
                yield pod


# -- references from a pod (upstream's graph edges) ---------------------------------------

def _containers(spec: dict) -> Iterator[dict]:
    for k in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(k) or ()


def pod_references(pod: dict, kind: str) -> set[str]:
    """Names of the ``kind`` objects (secret, configmap, pvc, serviceaccount) a pod uses."""
    spec = pod.get("spec") or {}
    out: set[str] = set()
    if kind == "serviceaccount":
        out.add(spec.get("serviceAccountName") or "default")
        return out
    if kind == "secret":
        out |= {s.get("name", "") for s in spec.get("imagePullSecrets") or ()}
    for v in spec.get("volumes") or ():
        if kind == "secret" and v.get("secret"):
            out.add(v["secret"].get("secretName", ""))
        if kind == "configmap" and v.get("configMap"):
            out.add(v["configMap"].get("name", ""))
        if kind == "pvc" and v.get("persistentVolumeClaim"):
            out.add(v["persistentVolumeClaim"].get("claimName", ""))
        if kind == "pvc" and v.get("ephemeral"):
            out.add(f"{pod['metadata']['name']}-{v.get('name', '')}")
        for src in (v.get("projected") or {}).get("sources") or ():
            if kind == "secret" and src.get("secret"):
                out.add(src["secret"].get("name", ""))
            if kind == "configmap" and src.get("configMap"):
                out.add(src["configMap"].get("name", ""))
        for ref_holder in (v.get("csi"), v.get("cephfs"), v.get("rbd"), v.get("flexVolume"),
                           v.get("iscsi"), v.get("scaleIO"), v.get("storageos"),
                           v.get("azureFile")):
            if kind == "secret" and ref_holder:
                ref = ref_holder.get("nodePublishSecretRef") or ref_holder.get("secretRef")
                if ref:
                    out.add(ref.get("name", ""))
                if ref_holder.get("secretName"):
                    out.add(ref_holder["secretName"])
    for c in _containers(spec):
        for env in c.get("env") or ():
            source = env.get("valueFrom") or {}
            if kind == "secret" and source.get("secretKeyRef"):
                out.add(source["secretKeyRef"].get("name", ""))
            if kind == "configmap" and source.get("configMapKeyRef"):
                out.add(source["configMapKeyRef"].get("name", ""))
        for env_from in c.get("envFrom") or ():
            if kind == "secret" and env_from.get("secretRef"):
                out.add(env_from["secretRef"].get("name", ""))
            if kind == "configmap" and env_from.get("configMapRef"):
                out.add(env_from["configMapRef"].get("name", ""))
    out.discard("")
    return out


class NodeGraph:
    def __init__(self, server: "APIServer"):
        self.server = server
        self.pods = PodsByNode(server)

    def _pvcs(self, node: str) -> Iterator[dict]:
        store = self.server.stores[("", "v1", "persistentvolumeclaims")]
        for pod in self.pods.pods(node):
            ns = pod["metadata"].get("namespace", "")
            for claim in pod_references(pod, "pvc"):
                obj = store.cache.objects.get(store.key(ns, claim))
                if obj is not None:
                    yield obj

    def _pvs(self, node: str) -> Iterator[dict]:
        store = self.server.stores[("", "v1", "persistentvolumes")]
        for pvc in self._pvcs(node):
            volume = (pvc.get("spec") or {}).get("volumeName")
            obj = store.cache.objects.get(store.key("", volume)) if volume else None
            if obj is not None:
                yield obj

    def has_path(self, node: str, kind: str, namespace: str, name: str) -> bool:
        if kind == "pod":
            return any(p["metadata"]["name"] == name for p in self.pods.pods(node, namespace))
        if kind in ("secret", "configmap", "pvc", "serviceaccount"):
            for pod in self.pods.pods(node, namespace):
                if name in pod_references(pod, kind):
                    return True
        if kind == "pv":
            return any(pv["metadata"]["name"] == name for pv in self._pvs(node))
        if kind == "secret":
            for pv in self._pvs(node):
                for source in (pv.get("spec") or {}).values():
                    if isinstance(source, dict):
                        for key in ("secretRef", "nodePublishSecretRef", "controllerPublishSecretRef",
                                    "nodeStageSecretRef", "nodeExpandSecretRef"):
                            ref = source.get(key) or {}
                            if ref.get("name") == name and ref.get("namespace", namespace) \
                                    == namespace:
                                return True
        if kind == "volumeattachment":
            store = self.server.stores.get(("storage.k8s.io", "v1", "volumeattachments"))
            va = store.cache.objects.get(store.key("", name)) if store else None
            return va is not None and (va.get("spec") or {}).get("nodeName") == node
        return False


NO_RELATION = "no relationship found between node '{node}' and this object"


def _static(attrs: Attributes) -> tuple[bool | None, str]:
    from .bootstrap_policy import NODE_RULES
    from .rbac import rule_allows
    if any(rule_allows(attrs, rule) for rule in NODE_RULES):
        return True, ""
    return None, ""


def authorize(server: "APIServer", user: UserInfo, attrs: Attributes) -> tuple[bool | None,
                                                                               str]:
    node = node_name(user)
    if node is None:
        return None, ""
    if not node:
        return None, f'unknown node for user "{user.name}"'
    if not attrs.resource_request:
        return _static(attrs)
    graph: NodeGraph = server.security.node_graph
    resource = (attrs.api_group, attrs.resource)
    if resource in ((("", "secrets")), ("", "configmaps")):
        return _read_namespaced(graph, node, attrs, "secret" if attrs.resource == "secrets"
                                else "configmap")
    if resource == ("", "persistentvolumeclaims"):
        if attrs.subresource == "status":
            if attrs.verb not in ("update", "patch"):
                return None, "can only get, update, or patch persistentvolumeclaim status"
            return _related(graph, node, "pvc", attrs)
        return _get(graph, node, "pvc", attrs)
    if resource == ("", "persistentvolumes"):
        return _get(graph, node, "pv", attrs)
    if resource == ("storage.k8s.io", "volumeattachments"):
        return _get(graph, node, "volumeattachment", attrs)
    if resource == ("", "serviceaccounts"):
        if attrs.verb != "create" or not attrs.name:
            return None, "can only create tokens for individual service accounts"
        if attrs.subresource != "token":
            return None, "can only create token subresource of serviceaccount"
        return _related(graph, node, "serviceaccount", attrs)
    if resource == ("coordination.k8s.io", "leases"):
        return _own_object(node, attrs, "a node lease", NODE_LEASE_NS,
                           "can only access leases in the kube-node-lease namespace",
                           "node lease")
    if resource == ("storage.k8s.io", "csinodes"):
        return _own_object(node, attrs, "a CSINode", None, "", "CSINode")
    if resource == ("", "nodes"):
        return _node(node, attrs)
    if resource == ("", "pods") and not attrs.subresource:
        return _pods(graph, node, attrs)
    return _static(attrs)


def _read_namespaced(graph: NodeGraph, node: str, attrs: Attributes,
                     kind: str) -> tuple[bool | None, str]:
    if attrs.verb not in ("get", "list", "watch"):
        return None, "can only read resources of this type"
    if attrs.subresource:
        return None, "cannot read subresource"
    if not attrs.namespace:
        return None, "can only read namespaced object of this type"
    return _related(graph, node, kind, attrs)


def _get(graph: NodeGraph, node: str, kind: str, attrs: Attributes) -> tuple[bool | None, str]:
    if attrs.verb != "get":
        return None, "can only get individual resources of this type"
    if attrs.subresource:
        return None, "cannot get subresource"
    return _related(graph, node, kind, attrs)


def _related(graph: NodeGraph, node: str, kind: str,
             attrs: Attributes) -> tuple[bool | None, str]:
    if not attrs.name:
        return None, "No Object name found"
    if graph.has_path(node, kind, attrs.namespace, attrs.name):
        return True, ""
    return None, NO_RELATION.format(node=node)


def _own_object(node: str, attrs: Attributes, what: str, namespace: str | None,
                ns_reason: str, label: str) -> tuple[bool | None, str]:
    if attrs.verb not in ("get", "create", "update", "patch", "delete"):
        return None, f"can only get, create, update, patch, or delete {what}"
    if namespace is not None and attrs.namespace != namespace:
        return None, ns_reason
    if attrs.verb != "create" and attrs.name != node:
        return None, f"can only access {label} with the same name as the requesting node"
    return True, ""


def _node(node: str, attrs: Attributes) -> tuple[bool | None, str]:
    if attrs.verb in ("get", "list", "watch") and not attrs.subresource:
        if attrs.name == node:
            return True, ""
        if not attrs.name:
            return None, f"node '{node}' cannot read all nodes, only its own Node object"
        return None, f"node '{node}' cannot read '{attrs.name}', only its own Node object"
    return _static(attrs)


def _pods(graph: NodeGraph, node: str, attrs: Attributes) -> tuple[bool | None, str]:
    if attrs.verb in ("list", "watch"):
        terms = [t.strip().replace("==", "=") for t in attrs.field_selector.split(",") if t]
        if f"spec.nodeName={node}" in terms:
            return True, ""
        return None, "can only list/watch pods with spec.nodeName field selector"
    if attrs.verb == "get":
        return _related(graph, node, "pod", attrs)
    return _static(attrs)
