"""VolumeRestrictions: exclusive volumes may not be shared on a node.

Role: upstream ``plugins/volumerestrictions``: GCE PD, AWS EBS, iSCSI and RBD
volumes conflict with an existing pod on the node using the same disk (unless both
mount it read-only), and a ReadWriteOncePod claim already used by any pod blocks
every node.
"""
from __future__ import annotations

from typing import Any

from pyk8s.scheduler.framework import (NODE, POD, PERSISTENT_VOLUME_CLAIM, ActionType, ClusterEvent,
                                       ClusterEventWithHint, Code, Status, unresolvable, unschedulable)
from pyk8s.scheduler.nodeinfo import pod_info_of

NAME = "VolumeRestrictions"
ERR_REASON_DISK_CONFLICT = "node(s) had no available disk"
ERR_REASON_RWOP_CONFLICT = ("node has pod using PersistentVolumeClaim with the same name and "
                            "ReadWriteOncePod access mode")
_KEY = "PreFilter" + NAME
_RESTRICTED = ("gcePersistentDisk", "awsElasticBlockStore", "rbd", "iscsi")


def _conflict(volume: dict, existing: dict) -> bool:
    for kind in _RESTRICTED:
        a, b = volume.get(kind), existing.get(kind)
        if not a or not b:
            continue
        both_ro = bool(a.get("readOnly")) and bool(b.get("readOnly"))
        if kind == "gcePersistentDisk":
            return a.get("pdName") == b.get("pdName") and not both_ro
        if kind == "awsElasticBlockStore":
            return a.get("volumeID") == b.get("volumeID")
        if kind == "iscsi":
            return a.get("iqn") == b.get("iqn") and not both_ro
        overlap = set(a.get("monitors") or ()) & set(b.get("monitors") or ())
        return (bool(overlap) and a.get("pool", "rbd") == b.get("pool", "rbd")
                and a.get("image") == b.get("image") and not both_ro)
    return False


def _claims(pod: dict) -> list[str]:
    return [v["persistentVolumeClaim"].get("claimName") or "" for v in (pod.get("spec") or {}).get("volumes") or ()
            if v.get("persistentVolumeClaim")]


class _State:
    __slots__ = ("rwop_keys", "conflicting")

    def __init__(self, rwop_keys: set[str], conflicting: int):
        self.rwop_keys = rwop_keys
        self.conflicting = conflicting

    def clone(self) -> "_State":
        return _State(self.rwop_keys, self.conflicting)


class VolumeRestrictions:
    name = NAME

    def __init__(self, handle: Any):
        self.handle = handle

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        volumes = (pod.get("spec") or {}).get("volumes") or ()
        needs_check = any(any(v.get(k) for k in _RESTRICTED) for v in volumes)
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        rwop: set[str] = set()
        listers = self.handle.listers
        for name in _claims(pod):
            pvc = listers.pvc(ns, name) if listers is not None else None
            if pvc is None:
                return None, unresolvable(f"persistentvolumeclaim \"{name}\" not found")
            if "ReadWriteOncePod" in ((pvc.get("spec") or {}).get("accessModes") or ()):
                rwop.add(f"{ns}/{name}")
        conflicting = sum(1 for key in rwop if self.handle.snapshot.is_pvc_used_by_pods(key))
        if not needs_check and conflicting == 0:
            return None, Status(Code.SKIP)
        state.write(_KEY, _State(rwop, conflicting))
        return None, None

    def pre_filter_extensions(self) -> "VolumeRestrictions":
        return self

    def _update(self, state: Any, other: Any, sign: int) -> None:
        s: _State | None = state.get(_KEY)
        if s is None:
            return
        other_pod = pod_info_of(other).pod
        ns = (other_pod.get("metadata") or {}).get("namespace") or ""
        s.conflicting += sign * sum(1 for name in _claims(other_pod) if f"{ns}/{name}" in s.rwop_keys)

    def add_pod(self, state: Any, pod: dict, pod_info: Any, node_info: Any) -> Status | None:
        self._update(state, pod_info, 1)
        return None

    def remove_pod(self, state: Any, pod: dict, pod_info: Any, node_info: Any) -> Status | None:
        self._update(state, pod_info, -1)
        return None

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            if not any(volume.get(k) for k in _RESTRICTED):
                continue
            for pi in node_info.pods:
                for existing in (pi.pod.get("spec") or {}).get("volumes") or ():
                    if _conflict(volume, existing):
                        return unschedulable(ERR_REASON_DISK_CONFLICT)
        s: _State | None = state.get(_KEY)
        if s is not None and s.conflicting > 0:
            return unschedulable(ERR_REASON_RWOP_CONFLICT)
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(POD, ActionType.DELETE)),
                ClusterEventWithHint(ClusterEvent(PERSISTENT_VOLUME_CLAIM, ActionType.ADD | ActionType.UPDATE)),
                ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD))]


def new(args: dict, handle: Any) -> VolumeRestrictions:
    return VolumeRestrictions(handle)
