"""Read seam: the cluster objects plugins look up besides nodes and pods' placement.

Role: upstream plugins hold informer listers (namespaces, services, ReplicaSets,
PVCs, PDBs...). ``Listers`` is that contract; ``server`` implements it over
pyk8s.client informers and ``StaticListers`` is the in-memory twin for unit tests.

Invariants:
- Every method is a synchronous cache read: no I/O, safe inside Filter/Score.
- Returned objects belong to the cache: callers never mutate them.
- A missing object is ``None`` (or an empty list), never an exception.
"""
from __future__ import annotations

from typing import Protocol


class Listers(Protocol):
    def pod(self, namespace: str, name: str) -> dict | None:
        """The latest pod as the informer sees it."""

    def namespace_labels(self, name: str) -> dict | None:
        """Labels of namespace ``name``; None when the namespace is unknown."""

    def services(self, namespace: str) -> list[dict]: ...

    def replica_set(self, namespace: str, name: str) -> dict | None: ...

    def stateful_set(self, namespace: str, name: str) -> dict | None: ...

    def replication_controller(self, namespace: str, name: str) -> dict | None: ...

    def pvc(self, namespace: str, name: str) -> dict | None: ...

    def pv(self, name: str) -> dict | None: ...

    def pvs(self) -> list[dict]: ...

    def storage_class(self, name: str) -> dict | None: ...

    def csi_node(self, name: str) -> dict | None:
        """The CSINode of node ``name`` (its CSI drivers' attach limits)."""

    def pdbs(self) -> list[dict]:
        """Every PodDisruptionBudget in the cluster."""


_KINDS = {"Pod": "pods", "Namespace": "namespaces", "Service": "services", "ReplicaSet": "replicasets",
          "StatefulSet": "statefulsets", "ReplicationController": "replicationcontrollers",
          "PersistentVolumeClaim": "pvcs", "PersistentVolume": "pvs", "StorageClass": "storageclasses",
          "PodDisruptionBudget": "pdbs", "CSINode": "csinodes"}


class StaticListers:
    """Listers over plain dicts, filled by ``add`` (objects need ``kind``)."""

    def __init__(self, *objects: dict):
        self._store: dict[str, dict[tuple[str, str], dict]] = {k: {} for k in _KINDS.values()}
        for obj in objects:
            self.add(obj)

    def add(self, obj: dict) -> dict:
        meta = obj.get("metadata") or {}
        self._store[_KINDS[obj["kind"]]][(meta.get("namespace") or "", meta.get("name") or "")] = obj
        return obj

    def remove(self, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        self._store[_KINDS[obj["kind"]]].pop((meta.get("namespace") or "", meta.get("name") or ""), None)

    def _get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self._store[kind].get((namespace, name))

    def pod(self, namespace: str, name: str) -> dict | None:
        return self._get("pods", namespace, name)

    def namespace_labels(self, name: str) -> dict | None:
        ns = self._get("namespaces", "", name)
        return None if ns is None else ((ns.get("metadata") or {}).get("labels") or {})

    def services(self, namespace: str) -> list[dict]:
        return [o for (ns, _), o in self._store["services"].items() if ns == namespace]

    def replica_set(self, namespace: str, name: str) -> dict | None:
        return self._get("replicasets", namespace, name)

    def stateful_set(self, namespace: str, name: str) -> dict | None:
        return self._get("statefulsets", namespace, name)

    def replication_controller(self, namespace: str, name: str) -> dict | None:
        return self._get("replicationcontrollers", namespace, name)

    def pvc(self, namespace: str, name: str) -> dict | None:
        return self._get("pvcs", namespace, name)

    def pv(self, name: str) -> dict | None:
        return self._get("pvs", "", name)

    def pvs(self) -> list[dict]:
        return list(self._store["pvs"].values())

    def storage_class(self, name: str) -> dict | None:
        return self._get("storageclasses", "", name)

    def csi_node(self, name: str) -> dict | None:
        return self._get("csinodes", "", name)

    def pdbs(self) -> list[dict]:
        return list(self._store["pdbs"].values())
