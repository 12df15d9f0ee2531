"""Small defaulting plugins upstream enables by default.

- TaintNodesByCondition: a new Node starts with the ``node.kubernetes.io/not-ready``
  NoSchedule taint, removed by the node lifecycle controller once it is Ready.
- DefaultTolerationSeconds: pods tolerate not-ready and unreachable nodes for 300 s.
- RuntimeClass: a pod naming a RuntimeClass gets its overhead and scheduling
  constraints (``pod rejected: RuntimeClass "x" not found`` when it is missing).
- DefaultIngressClass: an Ingress without a class gets the default IngressClass.
"""
from __future__ import annotations

from . import Plugin, Request
from .storage import newest_default

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


class TaintNodesByCondition(Plugin):
    name = "TaintNodesByCondition"

    async def admit(self, req: Request) -> None:
        if not req.is_("", "nodes") or req.operation != "CREATE":
            return
        taints = req.obj.setdefault("spec", {}).setdefault("taints", [])
        if not any(t.get("key") == NOT_READY and t.get("effect") == "NoSchedule"
                   for t in taints):
            taints.append({"key": NOT_READY, "effect": "NoSchedule"})


class DefaultTolerationSeconds(Plugin):
    name = "DefaultTolerationSeconds"

    async def admit(self, req: Request) -> None:
        if not req.is_("", "pods") or req.operation != "CREATE":
            return
        tolerations = req.obj.setdefault("spec", {}).setdefault("tolerations", [])

        def tolerated(key: str) -> bool:
            return any(t.get("key", "") in (key, "") and t.get("effect", "") in ("NoExecute", "")
                       for t in tolerations)
        for key in (NOT_READY, UNREACHABLE):
            if not tolerated(key):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})


class RuntimeClass(Plugin):
    name = "RuntimeClass"

    async def admit(self, req: Request) -> None:
        if not req.is_("", "pods") or req.operation != "CREATE":
            return
        spec = req.obj.setdefault("spec", {})
        name = spec.get("runtimeClassName")
        if not name:
            return
        store = self.server.stores[("node.k8s.io", "v1", "runtimeclasses")]
        rc = store.cache.objects.get(store.key("", name))
        if rc is None:
            raise req.forbidden(f'pod rejected: RuntimeClass "{name}" not found')
        fixed = (rc.get("overhead") or {}).get("podFixed")
        if fixed:
            if spec.get("overhead") and spec["overhead"] != fixed:
                raise req.forbidden("pod rejected: Pod's Overhead doesn't match "
                                    "RuntimeClass's defined Overhead")
            spec["overhead"] = dict(fixed)
        scheduling = rc.get("scheduling") or {}
        selector = spec.setdefault("nodeSelector", {})
        for k, v in (scheduling.get("nodeSelector") or {}).items():
            if k in selector and selector[k] != v:
                raise req.forbidden(f"conflict: runtimeClass.scheduling.nodeSelector[{k}] = "
                                    f"{v}; pod.spec.nodeSelector[{k}] = {selector[k]}")
            selector[k] = v
        if not selector:
            del spec["nodeSelector"]
        tolerations = scheduling.get("tolerations") or []
        if tolerations:
            existing = spec.setdefault("tolerations", [])
            existing += [t for t in tolerations if t not in existing]


class DefaultIngressClass(Plugin):
    name = "DefaultIngressClass"

    async def admit(self, req: Request) -> None:
        if not req.is_("networking.k8s.io", "ingresses") or req.operation != "CREATE":
            return
        spec = req.obj.setdefault("spec", {})
        annotations = req.obj["metadata"].get("annotations") or {}
        if spec.get("ingressClassName") or "kubernetes.io/ingress.class" in annotations:
            return
        store = self.server.stores[("networking.k8s.io", "v1", "ingressclasses")]
        default = newest_default(store.cache.objects.values(),
                                 ("ingressclass.kubernetes.io/is-default-class",))
        if default is not None:
            spec["ingressClassName"] = default["metadata"]["name"]
