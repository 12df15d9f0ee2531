"""VolumeZone: a pod's bound PersistentVolumes must be in the node's zone and region.

Role: upstream ``plugins/volumezone``. The zone and region of a PV are its topology
labels (``topology.kubernetes.io/{zone,region}`` and the beta
``failure-domain.beta.kubernetes.io/{zone,region}``); a value may list several zones
joined by ``__``. A node carrying any of those labels must carry the PV's value (a
beta PV label also matches the node's GA label). Nodes without topology labels
accept every pod (single-zone clusters).

Invariants:
- PreFilter resolves the pod's bound claims once; pods without bound PVs carrying
  topology labels are skipped. Unbound WaitForFirstConsumer claims are left to
  VolumeBinding; an unbound claim of any other class, a missing claim, class or PV
  are UnschedulableAndUnresolvable with upstream's messages.
- A mismatch is UnschedulableAndUnresolvable "node(s) had no available volume zone".
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import (NODE, PERSISTENT_VOLUME, PERSISTENT_VOLUME_CLAIM, STORAGE_CLASS, ActionType,
                                       ClusterEvent, ClusterEventWithHint, Code, Status, unresolvable)

NAME = "VolumeZone"
ERR_REASON_CONFLICT = "node(s) had no available volume zone"
BETA_ZONE = "failure-domain.beta.kubernetes.io/zone"
BETA_REGION = "failure-domain.beta.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
TOPOLOGY_LABELS = (BETA_ZONE, BETA_REGION, ZONE, REGION)
_GA = {BETA_ZONE: ZONE, BETA_REGION: REGION}
_KEY = "PreFilter" + NAME


def label_zones_to_set(value: str) -> set[str]:
    """Upstream ``LabelZonesToSet``: ``a__b`` is zones {a, b}."""
    return {z for z in value.split("__") if z}


def pv_topologies(pv: dict) -> list[tuple[str, set[str]]]:
    labels = (pv.get("metadata") or {}).get("labels") or {}
    return [(key, label_zones_to_set(labels[key])) for key in TOPOLOGY_LABELS if key in labels]


class _State:
    __slots__ = ("topologies",)

    def __init__(self, topologies: list[tuple[str, set[str]]]):
        self.topologies = topologies

    def clone(self) -> "_State":
        return self


class VolumeZone:
    name = NAME

    def __init__(self, handle: Any):
        self.handle = handle

    def _topologies(self, pod: dict) -> tuple[list[tuple[str, set[str]]], Status | None]:
        listers = self.handle.listers
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        out: list[tuple[str, set[str]]] = []
        for v in (pod.get("spec") or {}).get("volumes") or ():
            ref = v.get("persistentVolumeClaim")
            if ref is None:
                continue
            name = ref.get("claimName") or ""
            if not name:
                return [], unresolvable("PersistentVolumeClaim had no name")
            pvc = listers.pvc(ns, name) if listers is not None else None
            if pvc is None:
                return [], unresolvable(f'persistentvolumeclaim "{name}" not found')
            spec = pvc.get("spec") or {}
            pv_name = spec.get("volumeName") or ""
            if not pv_name:
                sc_name = (spec.get("storageClassName")
                           or ((pvc.get("metadata") or {}).get("annotations") or {}).get(
                               "volume.beta.kubernetes.io/storage-class") or "")
                if not sc_name:
                    return [], unresolvable("PersistentVolumeClaim had no pv name and storageClass name")
                sc = listers.storage_class(sc_name)
                if sc is None:
                    return [], unresolvable(f'storageclass.storage.k8s.io "{sc_name}" not found')
                mode = sc.get("volumeBindingMode")
                if not mode:
                    return [], unresolvable(f'VolumeBindingMode not set for StorageClass "{sc_name}"')
                if mode == "WaitForFirstConsumer":
                    continue
                return [], unresolvable("PersistentVolume had no name")
            pv = listers.pv(pv_name)
            if pv is None:
                return [], unresolvable(f'persistentvolume "{pv_name}" not found')
            out.extend(pv_topologies(pv))
        return out, None

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        topologies, status = self._topologies(pod)
        if status is not None:
            return None, status
        if not topologies:
            return None, Status(Code.SKIP)
        state.write(_KEY, _State(topologies))
        return None, None

    def pre_filter_extensions(self) -> None:
        return None

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        if not (pod.get("spec") or {}).get("volumes"):
            return None
        s: _State | None = state.get(_KEY)
        if s is None:
            topologies, status = self._topologies(pod)
            if status is not None:
                return status
        else:
            topologies = s.topologies
        labels = node_info.labels
        if not any(key in labels for key in TOPOLOGY_LABELS):
            return None
        for key, values in topologies:
            value = labels.get(key)
            if value is None:
                value = labels.get(_GA.get(key, key))
            if value is None or value not in values:
                return unresolvable(ERR_REASON_CONFLICT)
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(STORAGE_CLASS, ActionType.ADD)),
                ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.UPDATE_NODE_LABEL)),
                ClusterEventWithHint(ClusterEvent(PERSISTENT_VOLUME_CLAIM, ActionType.ADD | ActionType.UPDATE)),
                ClusterEventWithHint(ClusterEvent(PERSISTENT_VOLUME, ActionType.ADD | ActionType.UPDATE))]


def new(args: dict, handle: Any) -> VolumeZone:
    return VolumeZone(handle)
