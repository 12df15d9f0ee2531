"""Write seam: everything the scheduler does to the cluster.

Role: binding (``pods/binding``), the PodScheduled condition and nominatedNodeName
(a status patch), preemption (DisruptionTarget condition, then delete), PVC
annotations for volume binding, and Events. ``ClusterActions`` is the contract;
``server.ApiActions`` implements it with pyk8s.client, ``RecordingActions`` is the
in-memory twin that records calls for unit tests.

Invariants:
- Methods raise on failure (the caller turns the error into an Error status);
  ``record_event`` never raises: events are best effort, as upstream's recorder.
- ``patch_pod_status`` only writes what it is given: a condition to upsert (by
  type) and/or a nominatedNodeName (``""`` clears it; ``None`` leaves it alone).
"""
from __future__ import annotations

from typing import Protocol


class ClusterActions(Protocol):
    async def bind(self, pod: dict, node_name: str) -> None:
        """POST a Binding for ``pod`` to ``node_name``."""

    async def patch_pod_status(self, pod: dict, *, condition: dict | None = None,
                               nominated_node_name: str | None = None) -> None: ...

    async def delete_pod(self, pod: dict) -> None:
        """Delete a preemption victim (by UID precondition)."""

    async def annotate_pvc(self, pvc: dict, annotations: dict[str, str]) -> None: ...

    async def claim_pv(self, pv: dict, pvc: dict) -> None:
        """Point a static PV's ``spec.claimRef`` at ``pvc`` (the PV controller binds)."""

    async def record_event(self, regarding: dict, *, type: str, reason: str, action: str,
                           note: str, related: dict | None = None) -> None: ...


class BindError(RuntimeError):
    """A bind the twin was told to fail."""


class RecordingActions:
    """Records every call; ``fail_binds`` names pods (``ns/name``) whose bind fails."""

    def __init__(self) -> None:
        self.binds: list[tuple[str, str]] = []
        self.status_patches: list[tuple[str, dict | None, str | None]] = []
        self.deleted: list[str] = []
        self.pvc_annotations: list[tuple[str, dict[str, str]]] = []
        self.claimed_pvs: list[tuple[str, str]] = []
        self.events: list[dict] = []
        self.fail_binds: set[str] = set()

    @staticmethod
    def _key(obj: dict) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"

    async def bind(self, pod: dict, node_name: str) -> None:
        key = self._key(pod)
        if key in self.fail_binds:
            raise BindError(f"binding {key} rejected")
        self.binds.append((key, node_name))

    async def patch_pod_status(self, pod: dict, *, condition: dict | None = None,
                               nominated_node_name: str | None = None) -> None:
        self.status_patches.append((self._key(pod), condition, nominated_node_name))

    async def delete_pod(self, pod: dict) -> None:
        self.deleted.append(self._key(pod))

    async def annotate_pvc(self, pvc: dict, annotations: dict[str, str]) -> None:
        self.pvc_annotations.append((self._key(pvc), dict(annotations)))

    async def claim_pv(self, pv: dict, pvc: dict) -> None:
        self.claimed_pvs.append((pv["metadata"]["name"], self._key(pvc)))

    async def record_event(self, regarding: dict, *, type: str, reason: str, action: str,
                           note: str, related: dict | None = None) -> None:
        self.events.append({"object": self._key(regarding), "type": type, "reason": reason,
                            "action": action, "note": note,
                            "related": self._key(related) if related else None})

    def events_for(self, reason: str) -> list[str]:
        return [e["note"] for e in self.events if e["reason"] == reason]
