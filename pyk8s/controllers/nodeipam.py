"""Node IPAM: a pod CIDR per node out of the cluster CIDR.

Role: upstream's ``node-ipam-controller`` with the ``RangeAllocator``
(``pkg/controller/nodeipam/ipam/range_allocator.go``) and its ``CidrSet``
(``cidrset/cidr_set.go``): every node without ``spec.podCIDR`` gets the next free
/24 (``node_cidr_mask_size``) of 10.42.0.0/16 (``cluster_cidr``), written to
``spec.podCIDR`` and ``spec.podCIDRs``; CIDRs of deleted nodes are reused.

Invariants:
- Before the first allocation every CIDR already on a node is marked used, so a
  restarted controller never hands out a CIDR twice.
- Allocation is round-robin from the last allocated index (``nextCandidate``), so a
  CIDR freed by a deleted node is not reused at once while others are free.
- A CIDR is released only when its node is deleted or the write that assigned it
  failed; ``podCIDR`` is never changed once set (the API makes it immutable).
"""
from __future__ import annotations

import ipaddress
import logging

from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r

from .corecontext import ControllerContext, CoreController

log = logging.getLogger(__name__)


class CIDRRangeFull(Exception):
    def __init__(self) -> None:
        super().__init__("CIDR allocation failed; there are no remaining CIDRs left to allocate "
                         "in the accepted range")


class CidrSet:
    """Sub-networks of one cluster CIDR, as a bitmap of used indexes."""

    def __init__(self, cluster_cidr: str, mask_size: int):
        self.network = ipaddress.ip_network(cluster_cidr)
        if mask_size < self.network.prefixlen:
            raise ValueError(f"node CIDR mask /{mask_size} is larger than the cluster CIDR "
                             f"{cluster_cidr}")
        self.mask_size = mask_size
        self.max = 1 << (mask_size - self.network.prefixlen)
        self.used: set[int] = set()
        self.next_candidate = 0

    def _cidr(self, index: int) -> str:
        step = 1 << (self.network.max_prefixlen - self.mask_size)
        base = int(self.network.network_address) + index * step
        return f"{ipaddress.ip_address(base)}/{self.mask_size}"

    def _index(self, cidr: str) -> int | None:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version != self.network.version or net.prefixlen != self.mask_size \
                or not net.subnet_of(self.network):
            return None
        step = 1 << (self.network.max_prefixlen - self.mask_size)
        return (int(net.network_address) - int(self.network.network_address)) // step

    def allocate_next(self) -> str:
        for offset in range(self.max):
            index = (self.next_candidate + offset) % self.max
            if index not in self.used:
                self.used.add(index)
                self.next_candidate = (index + 1) % self.max
                return self._cidr(index)
        raise CIDRRangeFull()

    def occupy(self, cidr: str) -> bool:
        """Mark ``cidr`` used; False when it is not a sub-network of this set."""
        index = self._index(cidr)
        if index is None:
            return False
        self.used.add(index)
        return True

    def release(self, cidr: str) -> None:
        index = self._index(cidr)
        if index is not None:
            self.used.discard(index)


def node_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


class NodeIPAMController(CoreController):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.ipam
        super().__init__(ctx, name="node-ipam-controller", workers=1)
        self.cidrs = CidrSet(s.cluster_cidr, s.node_cidr_mask_size)
        self.recorder = ctx.recorder("cidrAllocator")
        self.nodes = self.informer(r.NODES)
        self.nodes.add_event_handler(on_add=self._added, on_update=lambda o, n: self._added(n),
                                     on_delete=self._deleted)

    def _added(self, node: dict) -> None:
        # Workers start after the first list was delivered here, so every CIDR in
        # use is occupied before the first allocation.
        for cidr in node_cidrs(node):
            self.cidrs.occupy(cidr)
        if not node_cidrs(node):
            self.enqueue(node)

    def _deleted(self, node: dict) -> None:
        for cidr in node_cidrs(node):
            self.cidrs.release(cidr)

    async def sync(self, key: str) -> None:
        node = self.nodes.store.get(key)
        if node is None or node_cidrs(node):
            return
        try:
            cidr = self.cidrs.allocate_next()
        except CIDRRangeFull:
            self.recorder.event(_ref(node), "Normal", reason="CIDRNotAvailable",
                                message=f"Node {key} status is now: CIDRNotAvailable")
            raise
        try:
            await self.client.patch(r.NODES, key,
                                    body={"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}},
                                    patch_type="strategic")
        except ApiError as err:
            self.cidrs.release(cidr)
            if is_not_found(err):
                return
            self.recorder.event(_ref(node), "Normal", reason="CIDRAssignmentFailed",
                                message=f"Node {key} status is now: CIDRAssignmentFailed")
            raise
        log.info("node %s: pod CIDR %s", key, cidr)


def _ref(node: dict) -> dict:
    md = node["metadata"]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": md["name"], "uid": md.get("uid", ""), "namespace": ""}}


def new_node_ipam_controller(ctx: ControllerContext) -> NodeIPAMController:
    return NodeIPAMController(ctx)
