"""The storage contract every backend (SQLite, etcd) implements.

Keys are strings like ``/registry/<resource>/<namespace>/<name>``; values are opaque
bytes (the API server stores JSON). Every successful write advances one global,
strictly increasing revision, and that revision becomes the object's
``resourceVersion``. The API server is the only caller.

Invariants all backends keep (tests/storage/test_contract.py checks them):

- a write returns only once it is durable, and its revision is greater than every
  revision returned before it;
- ``watch(prefix, revision=N)`` yields every event on a key under ``prefix`` with a
  revision greater than N, in revision order, none lost and none twice;
- a read or watch at a revision older than the last compaction raises ``Compacted``.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import AsyncIterator, Protocol


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class StorageError(Exception):
    """Base of the errors a backend raises; the API server maps each to a Status."""


class KeyExists(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class Conflict(StorageError):
    """A compare-and-swap failed: the key's revision is not the expected one."""

    def __init__(self, key: str, expected: int, actual: int):
        super().__init__(f"conflict on {key}: expected revision {expected}, found {actual}")
        self.key, self.expected, self.actual = key, expected, actual


class Compacted(StorageError):
    """The requested revision has been compacted away (the API server answers 410)."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(
            f"required revision {requested} has been compacted (compacted at {compacted})")
        self.requested, self.compacted = requested, compacted


class FutureRevision(StorageError):
    """The requested revision is newer than the store's current revision."""

    def __init__(self, requested: int, current: int):
        super().__init__(f"required revision {requested} is a future revision (current {current})")
        self.requested, self.current = requested, current


class EventType(str, enum.Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclasses.dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    revision: int  # the revision of the write that produced this value (mod revision)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    key: str
    value: bytes  # the new value; for DELETED, the value just before deletion
    revision: int  # the revision of this write
    prev_value: bytes | None = None  # the value before this write, when there was one


@dataclasses.dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the revision the list is consistent at
    more: bool  # True when ``limit`` cut the list short; continue after items[-1].key


class Store(Protocol):
    """A revisioned key-value store with prefix watches.

    Methods are coroutines and never block the event loop. None of them mutates its
    arguments.
    """

    async def start(self) -> None:
        """Open the backend. Called once before any other method."""

    async def close(self) -> None:
        """Stop background work, end open watches and release resources."""

    async def create(self, key: str, value: bytes) -> int:
        """Store a new key; return its revision. Raises KeyExists if it is present."""

    async def get(self, key: str) -> KeyValue:
        """The latest value of ``key``. Raises KeyNotFound."""

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
                   limit: int = 0) -> ListResult:
        """Keys under ``prefix`` in key order, as of ``revision`` (0: latest).

        ``start_after`` skips keys up to and including it (the continue token's key);
        ``limit`` > 0 caps the number of items and sets ``more`` if some remain.
        Raises Compacted for a compacted revision, FutureRevision for one not yet
        written.
        """

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> int:
        """Replace ``key`` if its current revision is ``expected_revision``; return the
        new revision. Raises KeyNotFound, or Conflict when the revision differs."""

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        """Delete ``key`` (only at ``expected_revision`` when it is non-zero). Returns
        the deleted value with the revision of the deletion. Raises KeyNotFound or
        Conflict."""

    async def current_revision(self) -> int:
        """The revision of the newest write (an empty store: 0 on SQLite, 1 on etcd)."""

    async def compacted_revision(self) -> int:
        """The newest revision that has been compacted (0 if none)."""

    async def compact(self, revision: int) -> None:
        """Forget history at and before ``revision``; latest values are kept."""

    def watch(self, prefix: str, *, revision: int) -> AsyncIterator[Event]:
        """Every event under ``prefix`` with a revision > ``revision``, in order.

        The iterator raises Compacted at once when ``revision`` is older than the
        last compaction. It runs until the consumer stops iterating (``aclose``) or
        the store closes.
        """
