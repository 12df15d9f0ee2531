"""Clocks: the one source of time for queues, back-off, resync, leases and events.

Role: everything in ``pyk8s.client`` that waits or timestamps takes a ``Clock``
(client-go's injected ``clock.Clock``; trio's ``MockClock``), so tests drive time
with ``FakeClock.advance`` instead of sleeping.

Invariants:
- ``monotonic()`` never goes backwards; ``now()`` is an aware UTC datetime that
  moves with it on a ``FakeClock`` (wall = start + elapsed).
- A timer from ``call_later`` fires at most once, never before its deadline, and
  not at all once cancelled. ``FakeClock.advance`` fires due timers synchronously,
  in deadline order (ties in creation order), with ``monotonic()`` reading each
  timer's deadline while it runs.
- ``sleep`` is ``call_later`` plus a future: cancelling the sleeping task cancels
  its timer.
"""
from __future__ import annotations

import asyncio
import datetime
import heapq
import itertools
import time
from typing import Callable, Protocol


class Timer(Protocol):
    def cancel(self) -> None:
        """Stop the timer; a no-op once it fired or was cancelled."""


class Clock(Protocol):
    """Time as the client machinery sees it.

    ``monotonic`` is for intervals and deadlines, ``now`` for timestamps written to
    objects (lease renewTime, event lastTimestamp). ``call_later`` runs a plain
    callback on the event loop after ``delay`` seconds; ``sleep`` suspends the
    calling task for ``delay`` seconds.
    """

    def monotonic(self) -> float: ...

    def now(self) -> datetime.datetime: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...

    async def sleep(self, delay: float) -> None: ...


class RealClock:
    """The event loop's clock and the system's wall clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(delay, 0.0))


REAL_CLOCK = RealClock()


class _FakeTimer:
    __slots__ = ("deadline", "seq", "callback", "cancelled")

    def __init__(self, deadline: float, seq: int, callback: Callable[[], None]):
        self.deadline, self.seq, self.callback = deadline, seq, callback
        self.cancelled = False

    def __lt__(self, other: "_FakeTimer") -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def cancel(self) -> None:
        self.cancelled = True


EPOCH = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


class FakeClock:
    """A clock that moves only when a test calls ``advance``."""

    def __init__(self, start: datetime.datetime = EPOCH, *, monotonic: float = 1000.0):
        self._wall0 = start
        self._mono0 = monotonic
        self._t = monotonic
        self._timers: list[_FakeTimer] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime.datetime:
        return self._wall0 + datetime.timedelta(seconds=self._t - self._mono0)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = _FakeTimer(self._t + max(delay, 0.0), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        timer = self.call_later(delay, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            timer.cancel()

    @property
    def pending(self) -> int:
        """How many timers (sleeps included) wait to fire."""
        return sum(1 for t in self._timers if not t.cancelled)

    def next_deadline(self) -> float | None:
        self._drop_cancelled()
        return self._timers[0].deadline if self._timers else None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer that falls due."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        end = self._t + seconds
        while True:
            self._drop_cancelled()
            if not self._timers or self._timers[0].deadline > end:
                break
            timer = heapq.heappop(self._timers)
            self._t = max(self._t, timer.deadline)
            timer.cancelled = True
            timer.callback()
        self._t = end

    def set_time(self, when: datetime.datetime) -> None:
        """Advance to wall time ``when`` (which must not be in the past)."""
        self.advance((when - self.now()).total_seconds())

    def _drop_cancelled(self) -> None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
