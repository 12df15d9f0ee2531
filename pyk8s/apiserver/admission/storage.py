"""DefaultStorageClass and StorageObjectInUseProtection (plugin/pkg/admission/storage).

A PersistentVolumeClaim created without ``storageClassName`` gets the default
StorageClass (annotation ``storageclass.kubernetes.io/is-default-class: "true"``; the
newest one when several claim it). New claims and volumes get the
``kubernetes.io/pvc-protection`` / ``kubernetes.io/pv-protection`` finalizers, so they
outlive the pods that use them.
"""
from __future__ import annotations

from . import Plugin, Request

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"


def newest_default(objects, annotations: tuple[str, ...]) -> dict | None:
    marked = [o for o in objects
              if any((o["metadata"].get("annotations") or {}).get(a) == "true"
                     for a in annotations)]
    if not marked:
        return None
    return max(marked, key=lambda o: (o["metadata"].get("creationTimestamp", ""),
                                      o["metadata"]["name"]))


class DefaultStorageClass(Plugin):
    name = "DefaultStorageClass"

    async def admit(self, req: Request) -> None:
        if not req.is_("", "persistentvolumeclaims") or req.operation != "CREATE":
            return
        spec = req.obj.setdefault("spec", {})
        if "storageClassName" in spec and spec["storageClassName"] is not None:
            return
        store = self.server.stores[("storage.k8s.io", "v1", "storageclasses")]
        default = newest_default(store.cache.objects.values(),
                                 (DEFAULT_CLASS, BETA_DEFAULT_CLASS))
        if default is not None:
            spec["storageClassName"] = default["metadata"]["name"]


class StorageObjectInUseProtection(Plugin):
    name = "StorageObjectInUseProtection"

    async def admit(self, req: Request) -> None:
        if req.operation != "CREATE" or req.subresource or req.obj is None:
            return
        finalizer = {("", "persistentvolumeclaims"): "kubernetes.io/pvc-protection",
                     ("", "persistentvolumes"): "kubernetes.io/pv-protection"}.get(
            (req.group, req.resource))
        if finalizer is None:
            return
        finalizers = req.obj["metadata"].setdefault("finalizers", [])
        if finalizer not in finalizers:
            finalizers.append(finalizer)
