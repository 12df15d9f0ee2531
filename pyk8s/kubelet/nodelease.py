"""The node's heartbeat: a Lease in kube-node-lease, renewed every 10 s (pkg/kubelet/nodelease).

Role: the node lifecycle controller judges a node alive by its Lease's `renewTime`;
`NodeLease.run` keeps renewing it every `lease_duration * renew_fraction` seconds
(40 s * 0.25 = 10 s), creating it when missing, owned by the Node so it goes when
the Node does.

Invariants:
- Renewals are updates with the resourceVersion last seen (compare-and-swap); on a
  conflict the lease is read again and the renewal retried at once.
- After a failure the next attempt waits 200 ms, doubling up to
  `node_lease_max_backoff` (7 s), as upstream's backoffEnsureLease.
- `holderIdentity` is the node name; `leaseDurationSeconds` 40; `renewTime` a
  MicroTime of the injected clock.
"""
from __future__ import annotations

import logging
from typing import Callable

from pyk8s.api import meta as metautil
from pyk8s.client import resources
from pyk8s.client.clock import Clock
from pyk8s.client.errors import ApiError, is_already_exists, is_conflict, is_not_found
from pyk8s.client.transport import TransportError
from pyk8s.kubelet.settings import KubeletSettings

log = logging.getLogger(__name__)
NAMESPACE = "kube-node-lease"
FIRST_RETRY = 0.2


class NodeLease:
    def __init__(self, client, settings: KubeletSettings, *, clock: Clock,
                 node_uid: Callable[[], str | None] = lambda: None):
        self.client, self.settings, self.clock = client, settings, clock
        self.node_uid = node_uid
        self.lease: dict | None = None

    def _spec(self) -> dict:
        return {"holderIdentity": self.settings.node_name,
                "leaseDurationSeconds": self.settings.node_lease_duration,
                "renewTime": metautil.micro_time(self.clock.now())}

    def _owner(self) -> list[dict]:
        uid = self.node_uid()
        if not uid:
            return []
        return [{"apiVersion": "v1", "kind": "Node", "name": self.settings.node_name,
                 "uid": uid}]

    async def _ensure(self) -> dict:
        name = self.settings.node_name
        try:
            return await self.client.get(resources.LEASES, name, namespace=NAMESPACE)
        except ApiError as e:
            if not is_not_found(e):
                raise
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": NAMESPACE},
                 "spec": self._spec()}
        if self._owner():
            lease["metadata"]["ownerReferences"] = self._owner()
        try:
            return await self.client.create(resources.LEASES, lease, namespace=NAMESPACE)
        except ApiError as e:
            if not is_already_exists(e):
                raise
            return await self.client.get(resources.LEASES, name, namespace=NAMESPACE)

    async def renew(self) -> dict:
        """Create or renew the lease once (retrying conflicts); returns it."""
        for _ in range(5):
            if self.lease is None:
                self.lease = await self._ensure()
            lease = dict(self.lease)
            lease["metadata"] = dict(lease["metadata"])
            lease["spec"] = dict(lease.get("spec") or {}, **self._spec())
            if not lease["metadata"].get("ownerReferences") and self._owner():
                lease["metadata"]["ownerReferences"] = self._owner()
            try:
                self.lease = await self.client.update(resources.LEASES, lease,
                                                      namespace=NAMESPACE)
                return self.lease
            except ApiError as e:
                self.lease = None
                if not (is_conflict(e) or is_not_found(e)):
                    raise
        raise RuntimeError("could not renew the node lease after 5 conflicts")

    async def run(self) -> None:
        """Renew every renew interval until cancelled; back off after failures."""
        retry = FIRST_RETRY
        while True:
            try:
                await self.renew()
                delay, retry = self.settings.lease_renew_interval, FIRST_RETRY
            except (ApiError, TransportError, RuntimeError) as e:
                log.warning("failed to renew the node lease, retrying in %.1fs: %s", retry, e)
                delay, retry = retry, min(retry * 2, self.settings.node_lease_max_backoff)
            await self.clock.sleep(delay)
