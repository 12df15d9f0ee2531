"""The garbage collector's owner graph: who owns whom, and what to look at after a change.

Role: the pure half of upstream's ``pkg/controller/garbagecollector`` —
``GraphBuilder.processGraphChanges`` (``OwnerGraph.observe``/``virtual_delete``), the
node model (``graph.go``) and ``attemptToDeleteItem``'s decision once the owners have
been classified (``decide``). ``garbagecollector`` feeds it informer events of every
resource and performs what it asks for.

Invariants:
- A node exists for every observed object that has owners or dependents, and a
  *virtual* node for an owner that was only referenced (not yet observed); a
  virtual node becomes real when its object is observed (its identity is replaced
  by the observed one) and is removed only by ``virtual_delete`` after the API
  confirmed the owner is absent.
- ``owner.dependents`` always equals the set of nodes listing the owner's uid in
  their ownerReferences (kept in step by every add/update/delete).
- The graph never talks to the API: ``observe`` returns the uids to put on the
  attempt-to-delete and attempt-to-orphan queues, exactly where upstream enqueues.
- "Starts waiting" transitions (an object reaching deletion with the ``orphan`` or
  ``foregroundDeletion`` finalizer) fire on the event that first shows them; a
  relist after a restart shows them again (old object None), so nothing is lost.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

from pyk8s.api import meta as m

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
ADD, UPDATE, DELETE = "add", "update", "delete"


@dataclass(frozen=True)
class Identity:
    """An object's coordinates as an ownerReference names them, plus its namespace."""

    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str = ""

    @classmethod
    def of(cls, obj: dict) -> "Identity":
        md = obj.get("metadata") or {}
        return cls(obj.get("apiVersion") or "", obj.get("kind") or "", md.get("name") or "",
                   md.get("uid") or "", md.get("namespace") or "")

    @classmethod
    def from_ref(cls, ref: dict, namespace: str) -> "Identity":
        return cls(ref.get("apiVersion") or "", ref.get("kind") or "", ref.get("name") or "",
                   ref.get("uid") or "", namespace)

    def matches_ref(self, ref: dict) -> bool:
        """``ownerReferenceMatchesCoordinates``."""
        return (ref.get("uid") == self.uid and ref.get("name") == self.name
                and ref.get("kind") == self.kind and ref.get("apiVersion") == self.api_version)

    def __str__(self) -> str:
        ns = f"namespace={self.namespace}, " if self.namespace else ""
        return (f"[{self.api_version}/{self.kind}, {ns}name={self.name}, uid={self.uid}]")


@dataclass(eq=False)
class Node:
    identity: Identity
    owners: list[dict] = field(default_factory=list)
    dependents: set[str] = field(default_factory=set)
    being_deleted: bool = False
    deleting_dependents: bool = False
    virtual: bool = False
    observed: bool = False

    @property
    def uid(self) -> str:
        return self.identity.uid


def being_deleted(obj: dict | None) -> bool:
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


def has_finalizer(obj: dict | None, name: str) -> bool:
    return bool(obj) and m.has_finalizer(obj, name)


def _starts_waiting(old: dict | None, new: dict, finalizer: str) -> bool:
    """The object is being deleted with ``finalizer`` and was not so before."""
    if not (being_deleted(new) and has_finalizer(new, finalizer)):
        return False
    return old is None or not (being_deleted(old) and has_finalizer(old, finalizer))


@dataclass
class Actions:
    """What the caller must enqueue after a graph change."""

    delete: list[str] = field(default_factory=list)        # attemptToDelete
    delete_later: list[str] = field(default_factory=list)  # attemptToDelete, rate limited
    orphan: list[str] = field(default_factory=list)        # attemptToOrphan
    invalid_namespace: list[tuple[str, str]] = field(default_factory=list)  # (dep, owner uid)

    def extend(self, other: "Actions") -> None:
        self.delete += other.delete
        self.delete_later += other.delete_later
        self.orphan += other.orphan
        self.invalid_namespace += other.invalid_namespace


class AbsentOwnerCache:
    """An LRU set of owner identities known not to exist (``ReferenceCache``)."""

    def __init__(self, size: int = 500):
        self.size = size
        self._items: collections.OrderedDict[Identity, None] = collections.OrderedDict()

    def add(self, ident: Identity) -> None:
        self._items[ident] = None
        self._items.move_to_end(ident)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def has(self, ident: Identity) -> bool:
        if ident in self._items:
            self._items.move_to_end(ident)
            return True
        return False


class OwnerGraph:
    """uid -> Node, updated from informer events of every watched resource."""

    def __init__(self, absent: AbsentOwnerCache | None = None):
        self.nodes: dict[str, Node] = {}
        self.absent = absent or AbsentOwnerCache()

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def dependents(self, node: Node) -> list[Node]:
        return [self.nodes[u] for u in sorted(node.dependents) if u in self.nodes]

    def blocking_dependents(self, node: Node) -> list[Node]:
        """Dependents whose reference to ``node`` has ``blockOwnerDeletion: true``."""
        out = []
        for dep in self.dependents(node):
            if any(ref.get("uid") == node.uid and ref.get("blockOwnerDeletion")
                   for ref in dep.owners):
                out.append(dep)
        return out

    # --- events -------------------------------------------------------------------

    def observe(self, event: str, obj: dict, old: dict | None = None) -> Actions:
        """Apply one informer event (``add``, ``update`` or ``delete``) of ``obj``."""
        acts = Actions()
        ident = Identity.of(obj)
        if not ident.uid:
            return acts
        existing = self.nodes.get(ident.uid)
        if existing is not None and not existing.observed:
            if existing.identity != ident:
                # Dependents that named the owner by other coordinates may be wrong:
                # check them (the bad child -> good parent observation order).
                _, mismatched = self._partition(existing, ident)
                for dep in mismatched:
                    if ident.namespace and dep.identity.namespace != ident.namespace:
                        acts.invalid_namespace.append((dep.uid, ident.uid))
                    acts.delete.append(dep.uid)
                existing.identity = ident
            existing.observed = True
            existing.virtual = False
        if event in (ADD, UPDATE):
            if existing is None:
                node = Node(ident, owners=list(m.owner_references(obj)),
                            being_deleted=being_deleted(obj),
                            deleting_dependents=being_deleted(obj) and has_finalizer(obj, FOREGROUND),
                            observed=True)
                self.nodes[ident.uid] = node
                acts.extend(self._add_dependent_to_owners(node, node.owners))
                acts.extend(self._transitions(old, obj, node))
            else:
                acts.extend(self._update(existing, obj, old))
        elif event == DELETE and existing is not None:
            acts.extend(self._remove(existing, ident))
        return acts

    def virtual_delete(self, ident: Identity) -> Actions:
        """The API said ``ident`` does not exist: a delete event nobody observed."""
        acts = Actions()
        existing = self.nodes.get(ident.uid)
        if existing is None:
            return acts
        if existing.virtual:
            matching, nonmatching = self._partition(existing, ident)
            if nonmatching:
                # Dependents disagree on the owner's coordinates: keep the node.
                if matching:
                    self.absent.add(ident)
                    acts.delete += [d.uid for d in matching]
                if existing.identity == ident:
                    replacement = _alternate_identity(nonmatching, ident)
                    if replacement is not None:
                        existing.identity = replacement
                        acts.delete_later.append(existing.uid)
                return acts
        elif existing.identity != ident:
            # An observed object disagrees with the virtual event: keep it.
            matching, _ = self._partition(existing, ident)
            if matching:
                self.absent.add(ident)
                acts.delete += [d.uid for d in matching]
            return acts
        return self._remove(existing, ident)

    # --- internals -----------------------------------------------------------------

    def _update(self, node: Node, obj: dict, old: dict | None) -> Actions:
        acts = Actions()
        new_refs = list(m.owner_references(obj))
        added, removed, changed = references_diffs(node.owners, new_refs)
        if added or removed or changed:
            acts.extend(self._unblocked_owners(removed, changed))
            node.owners = new_refs
            acts.extend(self._add_dependent_to_owners(node, added))
            for ref in removed:
                owner = self.nodes.get(ref.get("uid") or "")
                if owner is not None:
                    owner.dependents.discard(node.uid)
        if being_deleted(obj):
            node.being_deleted = True
        acts.extend(self._transitions(old, obj, node))
        return acts

    def _remove(self, node: Node, ident: Identity) -> Actions:
        acts = Actions()
        self.nodes.pop(node.uid, None)
        for ref in node.owners:
            owner = self.nodes.get(ref.get("uid") or "")
            if owner is not None:
                owner.dependents.discard(node.uid)
        if node.dependents:
            self.absent.add(ident)
        acts.delete += sorted(u for u in node.dependents if u in self.nodes)
        for ref in node.owners:
            owner = self.nodes.get(ref.get("uid") or "")
            if owner is not None and owner.deleting_dependents:
                # Let the owner check whether all its dependents are gone now.
                acts.delete.append(owner.uid)
        return acts

    def _transitions(self, old: dict | None, new: dict, node: Node) -> Actions:
        acts = Actions()
        if _starts_waiting(old, new, ORPHAN):
            acts.orphan.append(node.uid)
            return acts
        if _starts_waiting(old, new, FOREGROUND):
            node.deleting_dependents = True
            acts.delete += sorted(node.dependents)
            acts.delete.append(node.uid)
        return acts

    def _add_dependent_to_owners(self, node: Node, owners: list[dict]) -> Actions:
        acts = Actions()
        suspicious = False
        for ref in owners:
            uid = ref.get("uid") or ""
            if not uid:
                continue
            owner = self.nodes.get(uid)
            if owner is None:
                # Not seen yet: a virtual node the collector will verify with the API.
                owner = Node(Identity.from_ref(ref, node.identity.namespace), virtual=True)
                self.nodes[uid] = owner
                owner.dependents.add(node.uid)
                acts.delete.append(uid)
                continue
            owner.dependents.add(node.uid)
            if suspicious:
                continue
            owner_ns = owner.identity.namespace
            if owner_ns and owner_ns != node.identity.namespace:
                if owner.observed:
                    acts.invalid_namespace.append((node.uid, uid))
                suspicious = True
            elif not owner.identity.matches_ref(ref):
                suspicious = True
            elif not owner_ns and owner_ns != node.identity.namespace and not owner.observed:
                # A virtual cluster-scoped owner may really be a missing namespaced
                # owner referenced from a cluster-scoped child: verify.
                suspicious = True
        if suspicious:
            acts.delete.append(node.uid)
        return acts

    def _unblocked_owners(self, removed: list[dict], changed: list[tuple[dict, dict]]) -> Actions:
        """Owners waiting on their dependents that a reference change may unblock."""
        acts = Actions()
        for ref in removed:
            if ref.get("blockOwnerDeletion"):
                owner = self.nodes.get(ref.get("uid") or "")
                if owner is not None and owner.deleting_dependents:
                    acts.delete.append(owner.uid)
        for old_ref, new_ref in changed:
            if old_ref.get("blockOwnerDeletion") and not new_ref.get("blockOwnerDeletion"):
                owner = self.nodes.get(new_ref.get("uid") or "")
                if owner is not None and owner.deleting_dependents:
                    acts.delete.append(owner.uid)
        return acts

    def _partition(self, node: Node, ident: Identity) -> tuple[list[Node], list[Node]]:
        """``partitionDependents``: dependents whose reference to ``node`` matches
        ``ident`` and those that name it otherwise (a dependent may be in both)."""
        matching, nonmatching = [], []
        for dep in self.dependents(node):
            found_match = found_mismatch = False
            if ident.namespace and ident.namespace != dep.identity.namespace:
                found_mismatch = True
            else:
                for ref in dep.owners:
                    if ref.get("uid") == ident.uid:
                        if ident.matches_ref(ref):
                            found_match = True
                        else:
                            found_mismatch = True
            if found_match:
                matching.append(dep)
            if found_mismatch:
                nonmatching.append(dep)
        return matching, nonmatching


def _ref_key(i: Identity) -> tuple:
    return (i.namespace, i.api_version, i.kind, i.name, i.uid)


def _alternate_identity(deps: list[Node], absent: Identity) -> Identity | None:
    """``getAlternateOwnerIdentity``: another identity the dependents use for the absent
    owner's uid — the first following ``absent`` in reference order, else the first."""
    seen = {absent}
    first = following = None
    for dep in deps:
        for ref in dep.owners:
            if ref.get("uid") != absent.uid:
                continue
            if absent.matches_ref(ref) and (not absent.namespace
                                            or absent.namespace == dep.identity.namespace):
                continue
            cand = Identity.from_ref(ref, dep.identity.namespace)
            if not absent.namespace and (cand.api_version, cand.kind) == (absent.api_version,
                                                                           absent.kind):
                cand = Identity(cand.api_version, cand.kind, cand.name, cand.uid, "")
            if cand in seen:
                continue
            seen.add(cand)
            if first is None or _ref_key(cand) < _ref_key(first):
                first = cand
            if _ref_key(absent) < _ref_key(cand) and (
                    following is None or _ref_key(cand) < _ref_key(following)):
                following = cand
    return following or first


def references_diffs(old: list[dict], new: list[dict]) -> tuple[list, list, list]:
    """(added, removed, changed as (old, new) pairs) between two ownerReference lists."""
    old_by_uid = {r.get("uid"): r for r in old}
    new_by_uid = {r.get("uid"): r for r in new}
    added = [r for u, r in new_by_uid.items() if u not in old_by_uid]
    removed = [r for u, r in old_by_uid.items() if u not in new_by_uid]
    changed = [(old_by_uid[u], r) for u, r in new_by_uid.items()
               if u in old_by_uid and old_by_uid[u] != r]
    return added, removed, changed


# --- attemptToDeleteItem's decision ---------------------------------------------------

NOTHING, PATCH_REFS, DELETE_OBJECT, UNBLOCK_THEN_DELETE = "nothing", "patch", "delete", "unblock"


@dataclass
class Decision:
    """What to do with an item whose owners were classified."""

    action: str
    remove_owner_uids: list[str] = field(default_factory=list)
    policy: str | None = None


def decide(graph: OwnerGraph, node: Node, latest: dict, solid: list[dict], dangling: list[dict],
           waiting: list[dict]) -> Decision:
    """The switch at the end of upstream's ``attemptToDeleteItem``.

    ``solid`` owners exist and are not being foreground-deleted; ``dangling`` ones are
    absent; ``waiting`` ones are being deleted with ``foregroundDeletion``.
    """
    if solid:
        if not dangling and not waiting:
            return Decision(NOTHING)
        # References to absent owners and to owners waiting for us must go, or those
        # owners would wait forever.
        return Decision(PATCH_REFS, [r["uid"] for r in dangling + waiting])
    if waiting and node.dependents:
        deps = graph.dependents(node)
        if any(d.deleting_dependents for d in deps):
            # A cycle of foreground deletions: stop blocking our owners, then delete.
            return Decision(UNBLOCK_THEN_DELETE, [r["uid"] for r in waiting], "Foreground")
        return Decision(DELETE_OBJECT, policy="Foreground")
    if has_finalizer(latest, ORPHAN):
        policy = "Orphan"
    elif has_finalizer(latest, FOREGROUND):
        policy = "Foreground"
    else:
        policy = "Background"
    return Decision(DELETE_OBJECT, policy=policy)


def remove_refs(refs: list[dict], uids: list[str]) -> list[dict]:
    drop = set(uids)
    return [r for r in refs if r.get("uid") not in drop]


def unblock_refs(refs: list[dict], uids: list[str]) -> list[dict]:
    """``blockOwnerDeletion: false`` on the references to ``uids``."""
    drop = set(uids)
    return [({**r, "blockOwnerDeletion": False} if r.get("uid") in drop
             and r.get("blockOwnerDeletion") else r) for r in refs]
