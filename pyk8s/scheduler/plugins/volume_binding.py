"""VolumeBinding (basics): a pod's PersistentVolumeClaims must be satisfiable on the node.

Role: upstream ``plugins/volumebinding`` without CSI storage capacity. PreFilter
rejects missing, terminating and unbound Immediate claims; Filter checks bound
claims' PV node affinity and finds, for unbound WaitForFirstConsumer claims, a
matching Available PV usable on the node (smallest first) or a storage class that
provisions dynamically. Reserve holds the chosen PVs for the pod; PreBind writes
the decision to the API: a static PV gets ``spec.claimRef``, a claim to provision
gets the ``volume.kubernetes.io/selected-node`` annotation.

Invariants:
- A PV held (reserved) for one pod is not offered to another until unreserved.
- PreBind does not wait for the PV controller to finish binding (pyk8s runs no PV
  controller yet); the kubelet waits for the claim as usual.
- Reasons are upstream's: "node(s) had volume node affinity conflict",
  "node(s) didn't find available persistent volumes to bind", "node(s) unavailable
  due to one or more pvc(s) bound to non-existent pv(s)", all Unresolvable.
"""
from __future__ import annotations

from typing import Any

from pyk8s.api.quantities import QuantityError, parse_quantity
from pyk8s.api.selectors import SelectorError, label_selector_from_dict
from pyk8s.scheduler.framework import (NODE, PERSISTENT_VOLUME, PERSISTENT_VOLUME_CLAIM, STORAGE_CLASS, ActionType,
                                       ClusterEvent, ClusterEventWithHint, Code, Status, unresolvable)
from pyk8s.scheduler.plugins.helpers import NodeSelector, node_labels_and_name

NAME = "VolumeBinding"
ERR_REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_REASON_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
_KEY = "PreFilter" + NAME


def _storage(value: Any) -> int:
    try:
        return parse_quantity(value).value()
    except QuantityError:
        return 0


def _class_of(pvc: dict) -> str:
    return ((pvc.get("spec") or {}).get("storageClassName")
            or ((pvc.get("metadata") or {}).get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class")
            or "")


def pv_matches_node(pv: dict, node: dict) -> bool:
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required"))
    return required is None or NodeSelector(required).matches(*node_labels_and_name(node))


class _State:
    __slots__ = ("bound", "delayed", "chosen")

    def __init__(self) -> None:
        self.bound: list[dict] = []      # PVCs bound to a PV
        self.delayed: list[dict] = []    # unbound WaitForFirstConsumer PVCs
        self.chosen: dict[str, dict[str, Any]] = {}  # node -> {pvc key: pv dict | None (provision)}

    def clone(self) -> "_State":
        return self


def _key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class VolumeBinding:
    name = NAME

    def __init__(self, handle: Any):
        self.handle = handle
        self.assumed_pvs: dict[str, str] = {}  # pv name -> pvc key

    def pre_filter(self, state: Any, pod: dict) -> tuple[None, Status | None]:
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        names = [v["persistentVolumeClaim"].get("claimName") or ""
                 for v in (pod.get("spec") or {}).get("volumes") or () if v.get("persistentVolumeClaim")]
        if not names:
            return None, Status(Code.SKIP)
        listers = self.handle.listers
        s = _State()
        for name in names:
            pvc = listers.pvc(ns, name)
            if pvc is None:
                return None, unresolvable(f"persistentvolumeclaim \"{name}\" not found")
            if (pvc.get("metadata") or {}).get("deletionTimestamp"):
                return None, unresolvable(f"persistentvolumeclaim \"{name}\" is being deleted")
            if (pvc.get("spec") or {}).get("volumeName"):
                s.bound.append(pvc)
                continue
            sc = listers.storage_class(_class_of(pvc)) if _class_of(pvc) else None
            if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                s.delayed.append(pvc)
            else:
                return None, unresolvable("pod has unbound immediate PersistentVolumeClaims")
        state.write(_KEY, s)
        return None, None

    def pre_filter_extensions(self) -> None:
        return None

    def filter(self, state: Any, pod: dict, node_info: Any) -> Status | None:
        s: _State | None = state.get(_KEY)
        if s is None:
            return None
        node = node_info.node
        listers = self.handle.listers
        reasons: list[str] = []
        for pvc in s.bound:
            pv = listers.pv((pvc.get("spec") or {}).get("volumeName"))
            if pv is None:
                reasons.append(ERR_REASON_PV_NOT_EXIST)
            elif not pv_matches_node(pv, node):
                reasons.append(ERR_REASON_NODE_CONFLICT)
        chosen: dict[str, Any] = {}
        if s.delayed and not reasons:
            taken: set[str] = set()
            for pvc in s.delayed:
                pv = self._find_pv(pvc, node, taken)
                if pv is not None:
                    taken.add(pv["metadata"]["name"])
                    chosen[_key(pvc)] = pv
                    continue
                sc = listers.storage_class(_class_of(pvc))
                if sc is not None and sc.get("provisioner") and sc.get("provisioner") != NO_PROVISIONER:
                    chosen[_key(pvc)] = None
                    continue
                reasons.append(ERR_REASON_BIND_CONFLICT)
                break
        if reasons:
            return unresolvable(*dict.fromkeys(reasons))
        s.chosen[node_info.name] = chosen
        return None

    def _find_pv(self, pvc: dict, node: dict, taken: set[str]) -> dict | None:
        spec = pvc.get("spec") or {}
        want = _storage(((spec.get("resources") or {}).get("requests") or {}).get("storage", 0))
        modes = set(spec.get("accessModes") or ())
        cls = _class_of(pvc)
        mode = spec.get("volumeMode") or "Filesystem"
        try:
            selector = label_selector_from_dict(spec["selector"]) if spec.get("selector") else None
        except SelectorError:
            return None
        best: tuple[int, dict] | None = None
        for pv in self.handle.listers.pvs():
            name = pv["metadata"]["name"]
            pspec = pv.get("spec") or {}
            claim_ref = pspec.get("claimRef")
            if name in taken or (name in self.assumed_pvs and self.assumed_pvs[name] != _key(pvc)):
                continue
            if claim_ref and (claim_ref.get("namespace"), claim_ref.get("name")) != \
                    ((pvc.get("metadata") or {}).get("namespace"), (pvc.get("metadata") or {}).get("name")):
                continue
            if (pspec.get("storageClassName") or "") != cls or (pspec.get("volumeMode") or "Filesystem") != mode:
                continue
            if not modes <= set(pspec.get("accessModes") or ()):
                continue
            size = _storage((pspec.get("capacity") or {}).get("storage", 0))
            if size < want or (selector is not None and not selector.matches((pv.get("metadata") or {}).get("labels"))):
                continue
            if not pv_matches_node(pv, node):
                continue
            if best is None or size < best[0]:
                best = (size, pv)
        return best[1] if best else None

    def reserve(self, state: Any, pod: dict, node_name: str) -> Status | None:
        s: _State | None = state.get(_KEY)
        if s is None:
            return None
        for pvc_key, pv in s.chosen.get(node_name, {}).items():
            if pv is not None:
                self.assumed_pvs[pv["metadata"]["name"]] = pvc_key
        return None

    def unreserve(self, state: Any, pod: dict, node_name: str) -> None:
        s: _State | None = state.get(_KEY)
        if s is None:
            return
        for pv in s.chosen.get(node_name, {}).values():
            if pv is not None:
                self.assumed_pvs.pop(pv["metadata"]["name"], None)

    async def pre_bind(self, state: Any, pod: dict, node_name: str) -> Status | None:
        s: _State | None = state.get(_KEY)
        if s is None:
            return None
        actions = self.handle.actions
        try:
            for pvc in s.delayed:
                pv = s.chosen.get(node_name, {}).get(_key(pvc))
                if pv is None:
                    await actions.annotate_pvc(pvc, {ANN_SELECTED_NODE: node_name})
                else:
                    await actions.claim_pv(pv, pvc)
        except Exception as e:  # noqa: BLE001 - reported as an Error status
            return Status.as_status(e)
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(STORAGE_CLASS, ActionType.ADD | ActionType.UPDATE)),
                ClusterEventWithHint(ClusterEvent(PERSISTENT_VOLUME_CLAIM, ActionType.ADD | ActionType.UPDATE)),
                ClusterEventWithHint(ClusterEvent(PERSISTENT_VOLUME, ActionType.ADD | ActionType.UPDATE)),
                ClusterEventWithHint(ClusterEvent(NODE, ActionType.ADD | ActionType.UPDATE_NODE_LABEL))]


def new(args: dict, handle: Any) -> VolumeBinding:
    return VolumeBinding(handle)
