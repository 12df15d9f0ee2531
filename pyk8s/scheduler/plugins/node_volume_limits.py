"""NodeVolumeLimits: a node takes no more CSI volumes per driver than its CSINode allows.

Role: upstream ``plugins/nodevolumelimits`` (``CSILimits``). The limit of driver D on a
node is ``CSINode.spec.drivers[name=D].allocatable.count``; the volumes counted are
the pod's PersistentVolumeClaims and generic ephemeral volumes, each resolved to
``driver/volumeHandle`` through its bound PV (``spec.csi``) or, while unbound,
to the StorageClass provisioner with a per-claim handle. A volume already attached
for another pod on the node is counted once. In-tree volume types are not counted:
CSI migration translation is not modelled, and the in-tree limits plugins are no
longer in upstream's default set.

Invariants:
- PreFilter skips pods with neither claims nor ephemeral volumes.
- A claim of the incoming pod that does not exist is UnschedulableAndUnresolvable
  (upstream: it can never fit until the claim is created); an existing pod's
  missing claim is simply not counted.
- Over the limit is Unschedulable "node(s) exceed max volume count" (preemption
  can free volumes by removing pods).
"""
from __future__ import annotations

import uuid
from typing import Any

from pyk8s.scheduler.framework import (CSI_NODE, POD, PERSISTENT_VOLUME_CLAIM, ActionType, ClusterEvent,
                                       ClusterEventWithHint, Code, QueueingHint, Status, unresolvable,
                                       unschedulable)

NAME = "NodeVolumeLimits"
ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED = "node(s) exceed max volume count"


class _ClaimMissing(Exception):
    """A claim the pod names does not exist (yet)."""


class _NotForPod(Exception):
    """A claim that belongs to another pod (an ephemeral volume's claim not made for
    this one)."""


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _claim_name(pod: dict, volume: dict) -> tuple[str, bool] | None:
    """The claim a volume uses and whether it is a generic ephemeral one, or None."""
    if volume.get("persistentVolumeClaim") is not None:
        return volume["persistentVolumeClaim"].get("claimName") or "", False
    if volume.get("ephemeral") is not None:
        return f"{_meta(pod).get('name', '')}-{volume.get('name', '')}", True
    return None


def _storage_class_of(pvc: dict) -> str:
    return ((pvc.get("spec") or {}).get("storageClassName")
            or (_meta(pvc).get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class") or "")


def csi_volume_limits(csi_node: dict | None) -> dict[str, int]:
    """Driver name -> attach limit, from a CSINode (upstream ``getVolumeLimits``)."""
    limits: dict[str, int] = {}
    for d in ((csi_node or {}).get("spec") or {}).get("drivers") or ():
        count = (d.get("allocatable") or {}).get("count")
        if count is not None and d.get("name"):
            limits[d["name"]] = int(count)
    return limits


class NodeVolumeLimits:
    name = NAME

    def __init__(self, handle: Any):
        self.handle = handle
        # Unbound claims get a handle no real volume has (upstream's random prefix).
        self._prefix = uuid.uuid4().hex

    @property
    def _listers(self) -> Any:
        return self.handle.listers

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        for v in (pod.get("spec") or {}).get("volumes") or ():
            if v.get("persistentVolumeClaim") is not None or v.get("ephemeral") is not None:
                return None, None
        return None, Status(Code.SKIP)

    def pre_filter_extensions(self) -> None:
        return None

    def _driver_and_handle(self, pvc: dict) -> tuple[str, str]:
        listers = self._listers
        pv_name = (pvc.get("spec") or {}).get("volumeName") or ""
        pv = listers.pv(pv_name) if pv_name else None
        if pv is not None:
            csi = (pv.get("spec") or {}).get("csi")
            if not csi:
                return "", ""
            return csi.get("driver") or "", csi.get("volumeHandle") or ""
        sc_name = _storage_class_of(pvc)
        sc = listers.storage_class(sc_name) if sc_name else None
        if sc is None:
            return "", ""
        meta = _meta(pvc)
        return sc.get("provisioner") or "", f"{self._prefix}-{meta.get('namespace', '')}/{meta.get('name', '')}"

    def _attachable(self, pod: dict, new_pod: bool, result: dict[str, str]) -> None:
        """Add ``driver/handle -> driver`` for each counted volume of ``pod``."""
        meta = _meta(pod)
        ns = meta.get("namespace") or ""
        for v in (pod.get("spec") or {}).get("volumes") or ():
            claim = _claim_name(pod, v)
            if claim is None:
                continue
            name, ephemeral = claim
            if not name:
                raise ValueError("PersistentVolumeClaim had no name")
            pvc = self._listers.pvc(ns, name)
            if pvc is None:
                if new_pod:
                    raise _ClaimMissing(f'looking up PVC {ns}/{name}: persistentvolumeclaim "{name}" not found')
                continue
            if ephemeral and not any(o.get("controller") and o.get("uid") == meta.get("uid")
                                     for o in _meta(pvc).get("ownerReferences") or ()):
                raise _NotForPod(f"PVC {ns}/{name} was not created for pod {ns}/{meta.get('name', '')} "
                                 "(pod is not owner)")
            driver, handle = self._driver_and_handle(pvc)
            if driver and handle:
                result[f"{driver}/{handle}"] = driver

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        if not (pod.get("spec") or {}).get("volumes"):
            return None
        listers = self._listers
        csi_node = listers.csi_node(node_info.name) if listers is not None else None
        new_volumes: dict[str, str] = {}
        try:
            self._attachable(pod, True, new_volumes)
        except _ClaimMissing as e:
            return unresolvable(str(e))
        except (ValueError, _NotForPod) as e:
            return Status.as_status(e)
        if not new_volumes:
            return None
        limits = csi_volume_limits(csi_node)
        if not limits:
            return None
        attached: dict[str, str] = {}
        for pi in node_info.pods:
            try:
                self._attachable(pi.pod, False, attached)
            except (ValueError, _NotForPod) as e:
                return Status.as_status(e)
        attached_count: dict[str, int] = {}
        for unique, driver in attached.items():
            new_volumes.pop(unique, None)  # a volume shared with a pod on the node counts once
            attached_count[driver] = attached_count.get(driver, 0) + 1
        new_count: dict[str, int] = {}
        for driver in new_volumes.values():
            new_count[driver] = new_count.get(driver, 0) + 1
        for driver, count in new_count.items():
            limit = limits.get(driver)
            if limit is not None and attached_count.get(driver, 0) + count > limit:
                return unschedulable(ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED)
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(CSI_NODE, ActionType.ADD)),
                ClusterEventWithHint(ClusterEvent(POD, ActionType.DELETE), self._after_pod_deleted),
                ClusterEventWithHint(ClusterEvent(PERSISTENT_VOLUME_CLAIM, ActionType.ADD), self._after_pvc_added)]

    @staticmethod
    def _after_pod_deleted(pod: dict, old: Any, new: Any) -> QueueingHint:
        deleted = old or {}
        spec = deleted.get("spec") or {}
        if not spec.get("nodeName"):
            return QueueingHint.QUEUE_SKIP
        if any(v.get("persistentVolumeClaim") is not None or v.get("ephemeral") is not None
               for v in spec.get("volumes") or ()):
            return QueueingHint.QUEUE
        return QueueingHint.QUEUE_SKIP

    @staticmethod
    def _after_pvc_added(pod: dict, old: Any, new: Any) -> QueueingHint:
        pvc = new or {}
        if _meta(pvc).get("namespace") != _meta(pod).get("namespace"):
            return QueueingHint.QUEUE_SKIP
        for v in (pod.get("spec") or {}).get("volumes") or ():
            claim = _claim_name(pod, v)
            if claim is not None and claim[0] == _meta(pvc).get("name"):
                return QueueingHint.QUEUE
        return QueueingHint.QUEUE_SKIP


def new(args: dict, handle: Any) -> NodeVolumeLimits:
    return NodeVolumeLimits(handle)
