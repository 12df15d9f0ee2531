"""NodeRestriction (plugin/pkg/admission/noderestriction): a kubelet writes only its own.

For requests from ``system:node:<name>``: pods only as mirror pods bound to and
owned by that node, referencing no service account, secret, configmap or claim;
pod deletes, status updates and evictions only for pods on that node; the node's
own Node object, without changing its taints or setting labels outside the kubelet's
allowed set; its own Lease in kube-node-lease and its own CSINode; service-account
tokens only bound to a pod running on that node; PVC status only.
"""
from __future__ import annotations

from ...api import errors
from ..authn import node_name
from . import Plugin, Request

MIRROR = "kubernetes.io/config.mirror"
NODE_LEASE_NS = "kube-node-lease"
KUBELET_LABELS = {
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type", "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone"}
KUBELET_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")


def forbidden_label(key: str) -> bool:
    namespace = key.split("/", 1)[0] if "/" in key else ""
    if namespace == "node-restriction.kubernetes.io" or \
            namespace.endswith(".node-restriction.kubernetes.io"):
        return True
    if key in KUBELET_LABELS or key.startswith(KUBELET_PREFIXES):
        return False
    for domain in ("kubernetes.io", "k8s.io"):
        if namespace == domain or namespace.endswith("." + domain):
            return True
    return False


def _modified_labels(new: dict, old: dict) -> set[str]:
    keys = set(new) | set(old)
    return {k for k in keys if new.get(k) != old.get(k)}


class NodeRestriction(Plugin):
    name = "NodeRestriction"

    async def admit(self, req: Request) -> None:
        if req.user is None:
            return
        node = node_name(req.user)
        if node is None:
            return
        if not node:
            raise req.forbidden(f'could not determine node from user "{req.user.name}"')
        key = (req.group, req.resource)
        if key == ("", "pods"):
            await {"": self._pod, "status": self._pod_status,
                   "eviction": self._eviction}.get(req.subresource, self._unexpected)(req, node)
        elif key == ("", "nodes"):
            self._node(req, node)
        elif key == ("", "persistentvolumeclaims"):
            self._pvc_status(req, node)
        elif key == ("", "serviceaccounts"):
            await self._token(req, node)
        elif key == ("coordination.k8s.io", "leases"):
            self._named(req, node, "node lease", NODE_LEASE_NS)
        elif key == ("storage.k8s.io", "csinodes"):
            self._named(req, node, "CSINode", None)

    async def _unexpected(self, req: Request, node: str) -> None:
        raise req.forbidden(f'unexpected subresource "{req.subresource}"')

    def _pod_object(self, req: Request, name: str) -> dict:
        store = self.server.stores[("", "v1", "pods")]
        pod = store.cache.objects.get(store.key(req.namespace, name))
        if pod is None:
            raise errors.not_found("pods", "", name)
        return pod

    async def _pod(self, req: Request, node: str) -> None:
        if req.operation == "DELETE":
            pod = req.old or self._pod_object(req, req.name)
            if (pod.get("spec") or {}).get("nodeName") != node:
                raise req.forbidden(f'node "{node}" can only delete pods with spec.nodeName '
                                    f'set to itself')
            return
        if req.operation != "CREATE":
            raise req.forbidden(f'unexpected operation "{req.operation}", node "{node}" can '
                                f'only create and delete mirror pods')
        pod = req.obj
        spec = pod.get("spec") or {}
        if MIRROR not in (pod["metadata"].get("annotations") or {}):
            raise req.forbidden(f'pod does not have "{MIRROR}" annotation, node "{node}" can '
                                f'only create mirror pods')
        if spec.get("nodeName") != node:
            raise req.forbidden(f'node "{node}" can only create pods with spec.nodeName set '
                                f'to itself')
        owners = pod["metadata"].get("ownerReferences") or []
        if len(owners) > 1:
            raise req.forbidden(f'node "{node}" can only create pods with a single owner '
                                f'reference set to itself')
        if not owners or owners[0].get("apiVersion") != "v1" or \
                owners[0].get("kind") != "Node" or owners[0].get("name") != node:
            raise req.forbidden(f'node "{node}" can only create pods with an owner reference '
                                f'set to itself')
        owner = owners[0]
        if not owner.get("controller"):
            raise req.forbidden(f'node "{node}" can only create pods with a controller owner '
                                f'reference set to itself')
        if owner.get("blockOwnerDeletion"):
            raise req.forbidden(f'node "{node}" must not set blockOwnerDeletion on an owner '
                                f'reference')
        nodes = self.server.stores[("", "v1", "nodes")]
        node_obj = nodes.cache.objects.get(nodes.key("", node))
        if node_obj is None:
            raise errors.not_found("nodes", "", node)
        if owner.get("uid") != node_obj["metadata"].get("uid"):
            raise req.forbidden(f"node {node} UID mismatch: expected "
                                f"{node_obj['metadata'].get('uid')} got {owner.get('uid')}")
        from ..authz.node import pod_references
        if spec.get("serviceAccountName"):
            raise req.forbidden(f'node "{node}" can not create pods that reference a service '
                                f'account')
        for kind, plural in (("secret", "secrets"), ("configmap", "configmaps")):
            if pod_references(pod, kind):
                raise req.forbidden(f'node "{node}" can not create pods that reference '
                                    f'{plural}')
        if any(v.get("persistentVolumeClaim") for v in spec.get("volumes") or ()):
            raise req.forbidden(f'node "{node}" can not create pods that reference '
                                f'persistentvolumeclaims')

    async def _pod_status(self, req: Request, node: str) -> None:
        if req.operation != "UPDATE":
            raise req.forbidden(f'unexpected operation "{req.operation}"')
        if ((req.old or {}).get("spec") or {}).get("nodeName") != node:
            raise req.forbidden(f'node "{node}" can only update pod status for pods with '
                                f'spec.nodeName set to itself')
        if (req.old["metadata"].get("labels") or {}) != \
                (req.obj["metadata"].get("labels") or {}):
            raise req.forbidden(f'node "{node}" cannot update labels through pod status')

    async def _eviction(self, req: Request, node: str) -> None:
        pod = self._pod_object(req, req.name)
        if (pod.get("spec") or {}).get("nodeName") != node:
            raise req.forbidden(f"node {node} can only evict pods with spec.nodeName set to "
                                f"itself")

    def _node(self, req: Request, node: str) -> None:
        if req.name != node:
            raise req.forbidden(f'node "{node}" is not allowed to modify node "{req.name}"')
        if req.operation == "CREATE":
            labels = req.obj["metadata"].get("labels") or {}
            bad = sorted(k for k in labels if forbidden_label(k))
            if bad:
                raise req.forbidden(f'node "{node}" is not allowed to set the following '
                                    f'labels: {", ".join(bad)}')
        elif req.operation == "UPDATE" and req.obj is not None and req.old is not None:
            if ((req.obj.get("spec") or {}).get("taints") or []) != \
                    ((req.old.get("spec") or {}).get("taints") or []):
                raise req.forbidden(f'node "{node}" is not allowed to modify taints')
            bad = sorted(k for k in _modified_labels(req.obj["metadata"].get("labels") or {},
                                                     req.old["metadata"].get("labels") or {})
                         if forbidden_label(k))
            if bad:
                raise req.forbidden(f"is not allowed to modify labels: {', '.join(bad)}")

    def _pvc_status(self, req: Request, node: str) -> None:
        if req.subresource != "status":
            raise req.forbidden("may only update PVC status")
        if req.operation != "UPDATE":
            raise req.forbidden(f'unexpected operation "{req.operation}"')
        new = {k: v for k, v in (req.obj or {}).items() if k != "status"}
        old = {k: v for k, v in (req.old or {}).items() if k != "status"}
        new.pop("metadata", None)
        old.pop("metadata", None)
        if new != old:
            raise req.forbidden(f'node "{node}" is not allowed to update fields other than '
                                f'status.capacity and status.conditions')

    async def _token(self, req: Request, node: str) -> None:
        if req.operation != "CREATE" or req.subresource != "token":
            return
        ref = ((req.obj or {}).get("spec") or {}).get("boundObjectRef") or {}
        if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise req.forbidden("node requested token not bound to a pod")
        if not ref.get("uid"):
            raise req.forbidden("node requested token with a pod binding without a uid")
        pod = self._pod_object(req, ref["name"])
        if ref["uid"] != pod["metadata"].get("uid"):
            raise req.forbidden(f"the UID in the bound object reference ({ref['uid']}) does "
                                f"not match the UID in record. The object might have been "
                                f"deleted and then recreated")
        if (pod.get("spec") or {}).get("nodeName") != node:
            raise req.forbidden("node requested token bound to a pod scheduled on a "
                                "different node")

    def _named(self, req: Request, node: str, what: str, namespace: str | None) -> None:
        if namespace is not None and req.namespace != namespace:
            raise req.forbidden(f'can only access leases in the "{namespace}" system '
                                f'namespace')
        name = (req.obj or {}).get("metadata", {}).get("name") \
            if req.operation == "CREATE" else req.name
        if name != node:
            raise req.forbidden(f"can only access {what} with the same name as the "
                                f"requesting node")
