"""The scheduler's view of nodes and placed pods, and the per-cycle snapshot.

Role: upstream's ``internal/cache`` (cache.go, node_tree.go, snapshot.go). Informer
events add/update/remove nodes and bound pods; the scheduling loop *assumes* a pod
on its chosen node before binding, so the next cycle already counts it while the
bind request is in flight. ``update_snapshot`` brings a ``Snapshot`` up to date
before each cycle by copying only NodeInfos whose generation moved.

Invariants:
- Every NodeInfo mutation bumps its generation (see ``nodeinfo``); ``_recent`` keeps
  node names ordered by last change, so a snapshot update walks only the nodes
  changed since the previous one (no O(nodes x pods) rebuild per cycle).
- Snapshot lists (all nodes, nodes with affinity pods) are rebuilt only when a node
  appeared/disappeared or an affinity subset changed; otherwise changed NodeInfos
  are overwritten in place, so list entries stay valid.
- A pod is in at most one NodeInfo. An assumed pod stays until the informer confirms
  it (``add_pod``) or the binding cycle fails (``forget_pod``); assumed pods do not
  expire (upstream's default TTL of 0).
- Nodes are listed zone-interleaved (upstream's nodeTree), so sampling a prefix of
  the list spreads over zones.
- A NodeInfo whose node was deleted but still has pods stays as a placeholder
  (``node is None``) and is left out of snapshots.
"""
from __future__ import annotations

from collections import OrderedDict

from .nodeinfo import ImageStateSummary, NodeInfo, PodInfo, normalized_image_name
from .plugins.helpers import zone_key


class CacheError(RuntimeError):
    """An inconsistent cache operation (assuming a pod twice, forgetting a stranger)."""


class NodeTree:
    """Node names per zone; ``list`` interleaves zones round-robin."""

    def __init__(self) -> None:
        self.tree: dict[str, list[str]] = {}
        self.zones: list[str] = []
        self.num_nodes = 0

    def add(self, node: dict) -> None:
        zone, name = zone_key(node), node["metadata"]["name"]
        names = self.tree.get(zone)
        if names is None:
            self.tree[zone] = [name]
            self.zones.append(zone)
        elif name in names:
            return
        else:
            names.append(name)
        self.num_nodes += 1

    def remove(self, node: dict) -> None:
        zone, name = zone_key(node), node["metadata"]["name"]
        names = self.tree.get(zone)
        if names is None or name not in names:
            return
        i = names.index(name)
        names[i] = names[-1]
        names.pop()
        if not names:
            del self.tree[zone]
            self.zones.remove(zone)
        self.num_nodes -= 1

    def update(self, old: dict, new: dict) -> None:
        if zone_key(old) == zone_key(new):
            return
        self.remove(old)
        self.add(new)

    def list(self) -> list[str]:
        out: list[str] = []
        index = 0
        while len(out) < self.num_nodes:
            for zone in self.zones:
                names = self.tree[zone]
                if index < len(names):
                    out.append(names[index])
            index += 1
        return out


class Snapshot:
    """The nodes one scheduling cycle sees; plugins read it through the handle."""

    def __init__(self) -> None:
        self.node_info_map: dict[str, NodeInfo] = {}
        self.node_info_list: list[NodeInfo] = []
        self.have_pods_with_affinity: list[NodeInfo] = []
        self.have_pods_with_required_anti_affinity: list[NodeInfo] = []
        self.used_pvcs: set[str] = set()
        self.generation = 0

    def list(self) -> list[NodeInfo]:
        return self.node_info_list

    def get(self, name: str) -> NodeInfo | None:
        return self.node_info_map.get(name)

    def num_nodes(self) -> int:
        return len(self.node_info_list)

    def have_pods_with_affinity_list(self) -> list[NodeInfo]:
        return self.have_pods_with_affinity

    def have_pods_with_required_anti_affinity_list(self) -> list[NodeInfo]:
        return self.have_pods_with_required_anti_affinity

    def is_pvc_used_by_pods(self, key: str) -> bool:
        return key in self.used_pvcs

    @classmethod
    def of(cls, node_infos: list[NodeInfo]) -> "Snapshot":
        """A snapshot of the given NodeInfos as they are (tests, preemption)."""
        snap = cls()
        snap.node_info_map = {ni.name: ni for ni in node_infos}
        snap.node_info_list = list(node_infos)
        snap._rebuild_subsets()
        return snap

    def _rebuild_subsets(self) -> None:
        self.have_pods_with_affinity = [ni for ni in self.node_info_list if ni.pods_with_affinity]
        self.have_pods_with_required_anti_affinity = [
            ni for ni in self.node_info_list if ni.pods_with_required_anti_affinity]
        self.used_pvcs = {key for ni in self.node_info_list for key in ni.pvc_ref_counts}


class _PodState:
    __slots__ = ("pod", "node_name", "binding_finished")

    def __init__(self, pod: dict, node_name: str):
        self.pod = pod
        self.node_name = node_name
        self.binding_finished = False


def _uid(pod: dict) -> str:
    uid = (pod.get("metadata") or {}).get("uid")
    if not uid:
        raise CacheError("cannot get cache key for pod with empty UID")
    return uid


def _node_name(pod: dict) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


class Cache:
    """Nodes, bound pods and assumed pods, as the scheduler believes them to be."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.node_tree = NodeTree()
        self.pod_states: dict[str, _PodState] = {}
        self.assumed: set[str] = set()
        self.image_states: dict[str, ImageStateSummary] = {}

    def _touch(self, name: str) -> None:
        self._recent[name] = None
        self._recent.move_to_end(name)

    def _node_info(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo()
            ni.name = name
        return ni

    # -- nodes ----------------------------------------------------------------------

    def add_node(self, node: dict) -> NodeInfo:
        name = node["metadata"]["name"]
        ni = self.nodes.get(name)
        if ni is not None and ni.node is not None:
            return self.update_node(ni.node, node)
        ni = self._node_info(name)
        self._remove_images(ni)
        self.node_tree.add(node)
        self._add_images(node, ni)
        ni.set_node(node)
        self._touch(name)
        return ni

    def update_node(self, old: dict, new: dict) -> NodeInfo:
        name = new["metadata"]["name"]
        ni = self.nodes.get(name)
        if ni is None or ni.node is None:
            return self.add_node(new)
        self.node_tree.update(ni.node, new)
        self._remove_images(ni)
        self._add_images(new, ni)
        ni.set_node(new)
        self._touch(name)
        return ni

    def remove_node(self, node: dict) -> None:
        name = node["metadata"]["name"]
        ni = self.nodes.get(name)
        if ni is None:
            return
        if ni.node is not None:
            self.node_tree.remove(ni.node)
        self._remove_images(ni)
        if ni.pods:
            # Pods may still be bound to it until their deletion is observed.
            ni.remove_node()
            self._touch(name)
        else:
            del self.nodes[name]
            self._recent.pop(name, None)

    def _add_images(self, node: dict, ni: NodeInfo) -> None:
        states: dict[str, ImageStateSummary] = {}
        for image in (node.get("status") or {}).get("images") or ():
            for name in image.get("names") or ():
                name = normalized_image_name(name)
                state = self.image_states.get(name)
                if state is None:
                    state = self.image_states[name] = ImageStateSummary(int(image.get("sizeBytes") or 0))
                state.nodes.add(node["metadata"]["name"])
                states[name] = state
        ni.image_states = states

    def _remove_images(self, ni: NodeInfo) -> None:
        for name, state in ni.image_states.items():
            state.nodes.discard(ni.name)
            if not state.nodes:
                self.image_states.pop(name, None)
        ni.image_states = {}

    # -- pods -------------------------------------------------------------------------

    def _add_pod(self, pod: dict, assumed: bool) -> None:
        name = _node_name(pod)
        self._node_info(name).add_pod_info(PodInfo(pod))
        self._touch(name)
        self.pod_states[_uid(pod)] = _PodState(pod, name)
        if assumed:
            self.assumed.add(_uid(pod))

    def _remove_pod(self, state: _PodState) -> None:
        ni = self.nodes.get(state.node_name)
        if ni is not None and ni.has_pod(_uid(state.pod)):
            ni.remove_pod(state.pod)
            if not ni.pods and ni.node is None:
                del self.nodes[state.node_name]
                self._recent.pop(state.node_name, None)
            else:
                self._touch(state.node_name)
        del self.pod_states[_uid(state.pod)]
        self.assumed.discard(_uid(state.pod))

    def assume_pod(self, pod: dict) -> None:
        """Place ``pod`` (whose spec.nodeName is the chosen node) before it is bound."""
        uid = _uid(pod)
        if uid in self.pod_states:
            raise CacheError(f"pod {pod['metadata'].get('namespace')}/{pod['metadata'].get('name')} "
                             "is in the cache, so can't be assumed")
        self._add_pod(pod, assumed=True)

    def finish_binding(self, pod: dict) -> None:
        state = self.pod_states.get(_uid(pod))
        if state is not None and _uid(pod) in self.assumed:
            state.binding_finished = True

    def forget_pod(self, pod: dict) -> None:
        """Drop an assumed pod whose binding cycle failed."""
        uid = _uid(pod)
        state = self.pod_states.get(uid)
        if state is None or uid not in self.assumed:
            raise CacheError(f"pod {pod['metadata'].get('name')} wasn't assumed so cannot be forgotten")
        if state.node_name != _node_name(pod):
            raise CacheError(f"pod {pod['metadata'].get('name')} was assumed on {state.node_name} "
                             f"but assigned to {_node_name(pod)}")
        self._remove_pod(state)

    def add_pod(self, pod: dict) -> None:
        """The informer saw a bound pod: confirm an assumed one, or add it."""
        uid = _uid(pod)
        state = self.pod_states.get(uid)
        if state is None:
            self._add_pod(pod, assumed=False)
            return
        if uid in self.assumed:
            # Replace the assumed copy by the real pod (possibly on another node).
            self._remove_pod(state)
            self._add_pod(pod, assumed=False)
            return
        self.update_pod(state.pod, pod)

    def update_pod(self, old: dict, new: dict) -> None:
        state = self.pod_states.get(_uid(old))
        if state is None:
            self._add_pod(new, assumed=False)
            return
        if _uid(old) in self.assumed:
            # An assumed pod is updated only through add_pod (confirmation).
            return
        self._remove_pod(state)
        self._add_pod(new, assumed=False)

    def remove_pod(self, pod: dict) -> None:
        state = self.pod_states.get(_uid(pod))
        if state is not None:
            self._remove_pod(state)

    def is_assumed_pod(self, pod: dict) -> bool:
        return _uid(pod) in self.assumed

    def get_pod(self, pod: dict) -> dict | None:
        state = self.pod_states.get(_uid(pod))
        return state.pod if state else None

    def node_count(self) -> int:
        return self.node_tree.num_nodes

    # -- snapshot -----------------------------------------------------------------------

    def update_snapshot(self, snap: Snapshot) -> None:
        """Bring ``snap`` up to date, copying only NodeInfos changed since its generation."""
        update_all = update_subsets = False
        newest = snap.generation
        for name in reversed(self._recent):
            ni = self.nodes[name]
            if ni.generation <= snap.generation:
                break
            newest = max(newest, ni.generation)
            if ni.node is None:
                continue
            clone = ni.snapshot()
            existing = snap.node_info_map.get(name)
            if existing is None:
                update_all = True
                snap.node_info_map[name] = clone
                continue
            if (bool(existing.pods_with_affinity) != bool(clone.pods_with_affinity)
                    or bool(existing.pods_with_required_anti_affinity)
                    != bool(clone.pods_with_required_anti_affinity)
                    or existing.pvc_ref_counts.keys() != clone.pvc_ref_counts.keys()):
                update_subsets = True
            for slot in NodeInfo.__slots__:
                setattr(existing, slot, getattr(clone, slot))
        snap.generation = newest
        if len(snap.node_info_map) > self.node_tree.num_nodes:
            for name in [n for n, ni in snap.node_info_map.items()
                         if self.nodes.get(n) is None or self.nodes[n].node is None]:
                del snap.node_info_map[name]
            update_all = True
        if update_all:
            snap.node_info_list = [snap.node_info_map[n] for n in self.node_tree.list()
                                   if n in snap.node_info_map]
        if update_all or update_subsets:
            snap._rebuild_subsets()
