"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

Role: of several candidates (replicas of a controller manager or scheduler) exactly
one runs its ``on_started_leading`` work at a time. Candidates compete for one Lease:
the holder renews ``spec.renewTime`` every ``retry_period``; the others take over
once the lease has not changed for ``leaseDurationSeconds`` of *their own* clock.

Invariants:
- Mutual exclusion rests on the API's compare-and-swap: every create/update of the
  Lease carries the resourceVersion last read, so of two racing writers one fails.
- Expiry is judged by the time this candidate last *observed a change* of the lease
  record (not by ``renewTime``), so clock skew between machines does not matter.
- A leader that cannot renew within ``renew_deadline`` stops leading: its
  ``on_started_leading`` task is cancelled before ``on_stopped_leading`` runs.
  ``lease_duration > renew_deadline`` leaves the gap during which nobody leads.
- ``leaseTransitions`` grows by one whenever the holder changes; ``acquireTime`` is
  kept across renewals. With ``release_on_cancel`` a leader that stops clears
  ``holderIdentity`` and sets ``leaseDurationSeconds: 1`` so a successor needs not
  wait out the lease.
- All waiting uses the injected clock; API calls are bounded by ``renew_deadline``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from dataclasses import dataclass
from typing import Awaitable, Callable

from pyk8s import aio
from pyk8s.api import meta as m

from .clock import REAL_CLOCK, Clock
from .errors import ApiError, is_not_found
from .resources import LEASES
from .settings import LeaderElectionSettings
from .transport import TransportError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LeaderElectionRecord:
    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    leader_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict) -> "LeaderElectionRecord":
        return cls(holder_identity=spec.get("holderIdentity") or "",
                   lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                   acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                   leader_transitions=int(spec.get("leaseTransitions") or 0))

    def to_spec(self) -> dict:
        spec: dict = {"holderIdentity": self.holder_identity,
                      "leaseDurationSeconds": self.lease_duration_seconds,
                      "leaseTransitions": self.leader_transitions}
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


class LeaseLock:
    """A Lease as the lock: ``get`` then ``update`` is a compare-and-swap."""

    def __init__(self, client, *, namespace: str, name: str, identity: str):
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self._lease: dict | None = None

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def lease(self) -> dict | None:
        """The lease as last read or written."""
        return self._lease

    async def get(self) -> LeaderElectionRecord:
        self._lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
        return LeaderElectionRecord.from_spec(self._lease.get("spec") or {})

    async def create(self, record: LeaderElectionRecord) -> None:
        self._lease = await self.client.create(LEASES, {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec()}, namespace=self.namespace)

    async def update(self, record: LeaderElectionRecord) -> None:
        if self._lease is None:
            raise RuntimeError("lease not initialized; call get or create first")
        lease = {**self._lease, "spec": record.to_spec()}
        self._lease = await self.client.update(LEASES, lease, namespace=self.namespace)


class LeaderElector:
    """Campaigns for a ``LeaseLock`` and runs the leader's work while it holds it."""

    def __init__(self, lock: LeaseLock, *,
                 on_started_leading: Callable[[], Awaitable[None]],
                 on_stopped_leading: Callable[[], None] | None = None,
                 on_new_leader: Callable[[str], None] | None = None,
                 settings: LeaderElectionSettings = LeaderElectionSettings(),
                 clock: Clock = REAL_CLOCK, rand: Callable[[], float] = random.random,
                 recorder=None):
        self.lock, self.settings, self.clock, self.rand = lock, settings, clock, rand
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.recorder = recorder
        self.observed_record = LeaderElectionRecord()
        self._observed_spec: dict | None = None
        self._observed_time = 0.0
        self._reported_leader = ""

    @property
    def identity(self) -> str:
        return self.lock.identity

    @property
    def leader(self) -> str:
        """The holder this candidate last observed ("" if none)."""
        return self.observed_record.holder_identity

    def is_leader(self) -> bool:
        return self.observed_record.holder_identity == self.identity

    async def run(self) -> None:
        """Acquire, lead until the lease is lost (or this task is cancelled), return."""
        await self._acquire()
        log.info("%s: became leader of lease %s", self.identity, self.lock.describe())
        self._record_event("became leader")
        leading = asyncio.create_task(self.on_started_leading(),
                                      name=f"leading {self.lock.describe()}")
        try:
            await self._renew_until_lost(leading)
        finally:
            leading.cancel()
            await asyncio.gather(leading, return_exceptions=True)
            if self.settings.release_on_cancel:
                await self._release()
            self._record_event("stopped leading")
            log.info("%s: stopped leading lease %s", self.identity, self.lock.describe())
            if self.on_stopped_leading is not None:
                self.on_stopped_leading()

    async def _acquire(self) -> None:
        s = self.settings
        while True:
            succeeded = await self._try_acquire_or_renew()
            self._maybe_report_transition()
            if succeeded:
                return
            await self.clock.sleep(s.retry_period * (1.0 + self.rand() * s.jitter_factor))

    async def _renew_until_lost(self, leading: asyncio.Task) -> None:
        s = self.settings
        while True:
            deadline = self.clock.monotonic() + s.renew_deadline
            while not await self._try_acquire_or_renew():
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    break
                await self.clock.sleep(min(s.retry_period, remaining))
                if self.clock.monotonic() >= deadline:
                    break
            else:
                self._maybe_report_transition()
                if leading.done():
                    return  # the leader's work ended by itself: step down
                await self.clock.sleep(s.retry_period)
                continue
            self._maybe_report_transition()
            log.warning("%s: failed to renew lease %s within %.0f s", self.identity,
                        self.lock.describe(), s.renew_deadline)
            return

    async def _try_acquire_or_renew(self) -> bool:
        now = m.micro_time(self.clock.now())
        duration = int(self.settings.lease_duration)
        desired = LeaderElectionRecord(holder_identity=self.identity,
                                       lease_duration_seconds=duration,
                                       acquire_time=now, renew_time=now)
        try:
            old = await self._bounded(self.lock.get())
        except ApiError as err:
            if not is_not_found(err):
                log.info("%s: error retrieving lease %s: %s", self.identity,
                         self.lock.describe(), err)
                return False
            return await self._write(self.lock.create(desired), desired)
        except (TransportError, asyncio.TimeoutError) as err:
            log.info("%s: error retrieving lease %s: %s", self.identity, self.lock.describe(), err)
            return False
        spec = (self.lock.lease or {}).get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec, self.observed_record = spec, old
            self._observed_time = self.clock.monotonic()
        if (old.holder_identity and not self.is_leader() and
                self._observed_time + old.lease_duration_seconds > self.clock.monotonic()):
            return False  # held by someone else and not expired
        if self.is_leader():
            desired = dataclasses.replace(desired, acquire_time=old.acquire_time,
                                          leader_transitions=old.leader_transitions)
        else:
            desired = dataclasses.replace(desired, leader_transitions=old.leader_transitions + 1)
        return await self._write(self.lock.update(desired), desired)

    async def _write(self, call: Awaitable[None], record: LeaderElectionRecord) -> bool:
        try:
            await self._bounded(call)
        except (ApiError, TransportError, asyncio.TimeoutError) as err:
            log.info("%s: failed to write lease %s: %s", self.identity, self.lock.describe(), err)
            return False
        self.observed_record = record
        self._observed_spec = (self.lock.lease or {}).get("spec") or {}
        self._observed_time = self.clock.monotonic()
        return True

    async def _bounded(self, call: Awaitable):
        return await aio.wait_for(call, self.settings.renew_deadline)

    async def _release(self) -> None:
        if not self.is_leader():
            return
        now = m.micro_time(self.clock.now())
        record = LeaderElectionRecord(lease_duration_seconds=1, acquire_time=now, renew_time=now,
                                      leader_transitions=self.observed_record.leader_transitions)
        if await self._write(self.lock.update(record), record):
            return
        # A renewal cancelled mid-flight may have landed without our seeing its new
        # resourceVersion: re-read, and release only if the lease is still ours.
        try:
            current = await self._bounded(self.lock.get())
        except (ApiError, TransportError, asyncio.TimeoutError):
            return
        if current.holder_identity == self.identity:
            await self._write(self.lock.update(record), record)

    def _maybe_report_transition(self) -> None:
        holder = self.observed_record.holder_identity
        if holder == self._reported_leader:
            return
        self._reported_leader = holder
        if self.on_new_leader is not None and holder:
            try:
                self.on_new_leader(holder)
            except Exception:  # noqa: BLE001 - a callback must not break the election
                log.exception("on_new_leader callback failed")

    def _record_event(self, what: str) -> None:
        if self.recorder is None or self.lock.lease is None:
            return
        self.recorder.event(self.lock.lease, "Normal", reason="LeaderElection",
                            message=f"{self.identity} {what}")
