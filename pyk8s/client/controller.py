"""The skeleton every controller runs on: informers -> handlers -> queue -> ``sync(key)``.

Role: upstream's controller pattern (``pkg/controller/replicaset/replica_set.go``)
once: event handlers only compute and enqueue keys; N workers take keys from a
rate-limited ``WorkQueue`` and call the subclass's idempotent ``sync(key)``, which
reads the informer caches, compares desired with actual state and writes through the
client.

Invariants:
- ``process_next_work_item`` is upstream's: get, try/finally ``done``, ``forget`` on
  success, ``add_rate_limited`` on error. With the queue's processing set, one key
  is never synced by two workers at once.
- ``run`` starts workers only after every informer given has synced (a controller
  must not act on a partial view), and on exit shuts the queue down and waits for
  the workers to finish their current key.
- ``sync`` gets a key (``namespace/name`` or ``name``); the object may be gone.
  Raising asks for a retry with back-off; ``Requeue(after)`` asks for a retry at a
  fixed time without counting as a failure.
"""
from __future__ import annotations

import abc
import asyncio
import logging
from typing import Iterable

from pyk8s import aio
from pyk8s.api import meta as m

from .clock import REAL_CLOCK, Clock
from .informers import SharedInformer
from .workqueue import QueueShutDown, RateLimiter, WorkQueue

log = logging.getLogger(__name__)


class Requeue(Exception):
    """Raised by ``sync`` to look at the key again after ``after`` seconds (not an error)."""

    def __init__(self, after: float):
        super().__init__(f"requeue after {after} s")
        self.after = after


class Controller(abc.ABC):
    """Subclass, implement ``sync``, connect informer handlers to ``enqueue``."""

    name: str = "controller"

    def __init__(self, *, name: str | None = None, clock: Clock = REAL_CLOCK,
                 rate_limiter: RateLimiter | None = None, sync_timeout: float | None = None):
        self.name = name or self.name
        self.clock = clock
        self.queue: WorkQueue[str] = WorkQueue(name=self.name, rate_limiter=rate_limiter,
                                               clock=clock)
        self.sync_timeout = sync_timeout

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Bring the object named by ``key`` to its desired state (idempotent)."""

    # --- enqueueing (handlers call these) -------------------------------------------

    def enqueue(self, obj: dict | str) -> None:
        self.queue.add(obj if isinstance(obj, str) else m.object_key(obj))

    def enqueue_after(self, obj: dict | str, delay: float) -> None:
        self.queue.add_after(obj if isinstance(obj, str) else m.object_key(obj), delay)

    def enqueue_rate_limited(self, obj: dict | str) -> None:
        self.queue.add_rate_limited(obj if isinstance(obj, str) else m.object_key(obj))

    # --- running --------------------------------------------------------------------

    async def run(self, *, workers: int = 1,
                  informers: Iterable[SharedInformer] = ()) -> None:
        """Wait for the caches, run ``workers`` workers until cancelled."""
        informers = list(informers)
        for inf in informers:
            inf.start()
        await asyncio.gather(*(inf.wait_for_sync() for inf in informers))
        log.info("%s: caches synced, starting %d workers", self.name, workers)
        tasks = [asyncio.create_task(self._worker(), name=f"{self.name} worker {i}")
                 for i in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shut_down()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while await self.process_next_work_item():
            pass

    async def process_next_work_item(self) -> bool:
        """Handle one key; False once the queue is shut down and empty."""
        try:
            key = await self.queue.get()
        except QueueShutDown:
            return False
        try:
            if self.sync_timeout:
                await aio.wait_for(self.sync(key), self.sync_timeout)
            else:
                await self.sync(key)
        except asyncio.CancelledError:
            raise
        except Requeue as req:
            self.queue.forget(key)
            self.queue.add_after(key, req.after)
        except Exception as err:  # noqa: BLE001 - any failure means: retry with back-off
            log.warning("%s: sync %r failed: %s", self.name, key, err,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
        finally:
            self.queue.done(key)
        return True
