"""Rate-limited work queues with client-go's dirty/processing semantics.

Role: the queue between informer handlers and a controller's workers
(``util/workqueue``: Type + DelayingQueue + RateLimitingQueue in one class), and the
rate limiters that decide how long a failing key waits.

Invariants:
- An item is in ``dirty`` from ``add`` until a worker ``get``s it; adding a dirty
  item again is a no-op (duplicate adds collapse).
- An item is in ``processing`` from ``get`` until ``done``; it is never handed to two
  workers at once. Re-adding it meanwhile marks it dirty only; ``done`` then puts
  it back in the queue.
- ``add_after`` keeps the earliest ready time per waiting item and adds it through
  ``add`` when the (injected) clock reaches it; delay <= 0 adds at once.
- After ``shut_down`` nothing new is accepted; waiting (delayed) items are dropped;
  ``get`` still drains what is queued, then raises ``QueueShutDown``.
- Rate limiter maths equals client-go's: per item ``base * 2**failures`` capped at
  ``max``; the token bucket as golang.org/x/time/rate (``burst`` tokens, refilled at
  ``qps``); ``MaxOfRateLimiter`` asks every limiter and takes the longest wait.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Generic, Hashable, Protocol, TypeVar

from .clock import REAL_CLOCK, Clock, Timer
from .settings import RateLimiterSettings

T = TypeVar("T", bound=Hashable)


class QueueShutDown(Exception):
    """The queue was shut down and is empty: the worker should exit."""


# --- rate limiters ------------------------------------------------------------------

class RateLimiter(Protocol):
    """Decides how long an item waits before it is retried.

    ``when`` is called once per retry and records the failure; ``forget`` clears the
    item's history (call it after a success); ``num_requeues`` counts the retries
    since the last ``forget``.
    """

    def when(self, item: Hashable) -> float: ...

    def forget(self, item: Hashable) -> None: ...

    def num_requeues(self, item: Hashable) -> int: ...


class ItemExponentialFailureRateLimiter:
    def __init__(self, base_delay: float, max_delay: float):
        self.base_delay, self.max_delay = base_delay, max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp >= 1023:  # 2**exp would overflow a float; long past max_delay anyway
            return self.max_delay
        return min(self.base_delay * 2.0 ** exp, self.max_delay)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class TokenBucket:
    """golang.org/x/time/rate's Limiter: starts full with ``burst`` tokens, refills at
    ``qps``; a reservation may drive it negative (the caller then waits)."""

    def __init__(self, qps: float, burst: int, *, clock: Clock = REAL_CLOCK):
        self.qps, self.burst, self.clock = qps, burst, clock
        self._tokens = float(burst)
        self._last: float | None = None

    def _advance(self) -> tuple[float, float]:
        now = self.clock.monotonic()
        tokens = self._tokens
        if self._last is not None:
            tokens = min(float(self.burst), tokens + max(now - self._last, 0.0) * self.qps)
        return now, tokens

    def reserve(self) -> float:
        """Take a token; return how long to wait until it is really there."""
        now, tokens = self._advance()
        tokens -= 1.0
        self._tokens, self._last = tokens, now
        return 0.0 if tokens >= 0 else -tokens / self.qps

    def try_accept(self) -> bool:
        """Take a token if one is there now."""
        now, tokens = self._advance()
        if tokens < 1.0:
            return False
        self._tokens, self._last = tokens - 1.0, now
        return True


class BucketRateLimiter:
    """An overall token bucket: every retry of any item takes one token."""

    def __init__(self, qps: float, burst: int, *, clock: Clock = REAL_CLOCK):
        self.bucket = TokenBucket(qps, burst, clock=clock)

    def when(self, item: Hashable) -> float:
        return self.bucket.reserve()

    def forget(self, item: Hashable) -> None:
        return None

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    def __init__(self, *limiters: RateLimiter):
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(settings: RateLimiterSettings = RateLimiterSettings(), *,
                                    clock: Clock = REAL_CLOCK) -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter: 5 ms..1000 s per item, 10 qps/100 overall."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(settings.base_delay, settings.max_delay),
        BucketRateLimiter(settings.qps, settings.burst, clock=clock))


# --- the queue ----------------------------------------------------------------------

class WorkQueue(Generic[T]):
    """A FIFO of distinct items with delayed and rate-limited adds."""

    def __init__(self, *, name: str = "", rate_limiter: RateLimiter | None = None,
                 clock: Clock = REAL_CLOCK):
        self.name, self.clock = name, clock
        self.rate_limiter = rate_limiter or default_controller_rate_limiter(clock=clock)
        self._queue: collections.deque[T] = collections.deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._waiting: dict[T, tuple[float, Timer]] = {}
        self._getters: collections.deque[asyncio.Future] = collections.deque()
        self._shutting_down = False
        self._drained: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def waiting(self) -> int:
        """Items scheduled by ``add_after`` and not yet added."""
        return len(self._waiting)

    def is_processing(self, item: T) -> bool:
        return item in self._processing

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return  # ``done`` queues it again
        self._queue.append(item)
        self._wake_one()

    def add_after(self, item: T, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        ready_at = self.clock.monotonic() + delay
        current = self._waiting.get(item)
        if current is not None:
            if current[0] <= ready_at:
                return
            current[1].cancel()
        timer = self.clock.call_later(delay, lambda: self._ready(item))
        self._waiting[item] = (ready_at, timer)

    def _ready(self, item: T) -> None:
        self._waiting.pop(item, None)
        self.add(item)

    def add_rate_limited(self, item: T) -> None:
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)

    async def get(self) -> T:
        """The next item, now owned by the caller until ``done(item)``."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._getters:
                    self._getters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken but leave: hand the wake-up on
                raise
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: T) -> None:
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
            self._wake_one()
        elif not self._processing and self._drained is not None:
            self._drained.set()

    def shut_down(self) -> None:
        self._shutting_down = True
        for _, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every item handed out is ``done``."""
        self._drained = asyncio.Event()
        self.shut_down()
        if self._processing:
            await self._drained.wait()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
