"""Controller expectations: creations and deletions a controller waits to observe.

Role: upstream's ``ControllerExpectations`` and ``UIDTrackingControllerExpectations``
(``pkg/controller/controller_utils.go``). Before creating N pods a controller records
"expect N adds"; the pod informer's add handler lowers the count. ``sync`` acts only
when the expectations are satisfied, so a sync that runs before the informer saw the
controller's own writes cannot create the same pods twice.

Invariants:
- Expectations of a key are satisfied when both counts are <= 0, when they are older
  than ``EXPECTATIONS_TIMEOUT`` (a lost watch event must not wedge a controller), or
  when none were ever recorded.
- Setting expectations replaces the previous ones; observations only lower them.
- Deletions are tracked by pod key (``namespace/name``) so a pod seen first with a
  deletionTimestamp and then deleted counts once.
- Only state a restart can lose: after a restart every key starts satisfied, which
  is what upstream does.
- Time comes from the injected clock's ``monotonic()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

EXPECTATIONS_TIMEOUT = 300.0


class MonotonicClock(Protocol):
    def monotonic(self) -> float: ...


@dataclass
class ControlleeExpectations:
    add: int
    delete: int
    timestamp: float

    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Per-controller-key counters of pending creations and deletions."""

    def __init__(self, clock: MonotonicClock, timeout: float = EXPECTATIONS_TIMEOUT):
        self._clock = clock
        self._timeout = timeout
        self._store: dict[str, ControlleeExpectations] = {}

    def get(self, key: str) -> ControlleeExpectations | None:
        return self._store.get(key)

    def satisfied(self, key: str) -> bool:
        exp = self._store.get(key)
        if exp is None:
            return True
        if exp.fulfilled():
            return True
        return self._clock.monotonic() - exp.timestamp > self._timeout

    def delete_expectations(self, key: str) -> None:
        self._store.pop(key, None)

    def set_expectations(self, key: str, add: int, delete: int) -> None:
        self._store[key] = ControlleeExpectations(add, delete, self._clock.monotonic())

    def expect_creations(self, key: str, adds: int) -> None:
        self.set_expectations(key, adds, 0)

    def expect_deletions(self, key: str, dels: int) -> None:
        self.set_expectations(key, 0, dels)

    def lower(self, key: str, add: int, delete: int) -> None:
        exp = self._store.get(key)
        if exp is not None:
            exp.add -= add
            exp.delete -= delete

    def raise_expectations(self, key: str, add: int, delete: int) -> None:
        exp = self._store.get(key)
        if exp is not None:
            exp.add += add
            exp.delete += delete

    def creation_observed(self, key: str) -> None:
        self.lower(key, 1, 0)

    def deletion_observed(self, key: str) -> None:
        self.lower(key, 0, 1)


@dataclass
class UIDTrackingExpectations:
    """Expectations whose deletions are tracked by pod key, counted once each."""

    expectations: ControllerExpectations
    _uids: dict[str, set[str]] = field(default_factory=dict)

    def satisfied(self, key: str) -> bool:
        return self.expectations.satisfied(key)

    def get_uids(self, key: str) -> set[str] | None:
        return self._uids.get(key)

    def expect_creations(self, key: str, adds: int) -> None:
        self.expectations.expect_creations(key, adds)

    def creation_observed(self, key: str) -> None:
        self.expectations.creation_observed(key)

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        expected = set(pod_keys)
        self._uids[key] = expected
        self.expectations.expect_deletions(key, len(expected))

    def deletion_observed(self, key: str, pod_key: str) -> None:
        uids = self._uids.get(key)
        if uids is not None and pod_key in uids:
            self.expectations.deletion_observed(key)
            uids.discard(pod_key)

    def delete_expectations(self, key: str) -> None:
        self.expectations.delete_expectations(key)
        self._uids.pop(key, None)
