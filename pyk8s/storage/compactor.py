"""Periodic compaction, the same for every backend (kube-apiserver's etcd3 compactor).

Role: every ``interval`` seconds, forget the history older than one interval. At each
tick the compactor compacts to the revision it saw at the *previous* tick, so a watcher
or a paged list always has at least one interval to catch up before its revision is
gone (upstream ``--etcd-compaction-interval``, default 5m; 0 disables it).

The backend supplies one step, ``compaction_step(state) -> int``: it records the
current revision in ``state`` and compacts to the one recorded before, returning the
revision it compacted to (0 if it did not compact). Keeping the step in the backend
lets etcd coordinate several API servers (a compare-and-swap on ``compact_rev_key``:
only the server whose swap succeeds compacts in that interval) while SQLite, which has
a single API server, just compacts.

Invariants:
- the first tick never compacts (there is no previous revision yet);
- a failing step is logged and retried at the next tick; the loop only ends on
  ``stop()``;
- ``stop()`` cancels the loop and waits for it, so no compaction runs after it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Awaitable, Callable

from .interface import StorageError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0  # upstream --etcd-compaction-interval default: 5m

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``5m``, ``30s``, ``1h30m``, ``500ms``, ``0``).

    Raises ValueError like Go's ``time.ParseDuration`` (argparse turns it into a usage
    error); negative durations are refused because an interval cannot be negative.
    """
    s = text.strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise ValueError(f"time: invalid duration {text!r}")
    return total


@dataclasses.dataclass
class CompactionState:
    """What a backend's step remembers between ticks."""

    revision: int = 0  # the revision seen at the previous tick: the next compaction target
    version: int = 0  # etcd: the compact_rev_key version this server last saw
    compactions: int = 0  # compactions this compactor made (for logs and tests)
    last_compacted: int = 0  # the revision of the last compaction it made


class Compactor:
    """Runs ``step`` every ``interval`` seconds until ``stop()``."""

    def __init__(self, step: Callable[[CompactionState], Awaitable[int]], interval: float,
                 *, name: str = "storage"):
        self.step = step
        self.interval = interval
        self.name = name
        self.state = CompactionState()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-compactor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Our own cancel of the compactor task; re-raise only if the caller
                # itself is being cancelled.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    async def tick(self) -> int:
        """One step now; the revision compacted to (0 if none). Public for tests."""
        rev = await self.step(self.state)
        if rev:
            self.state.compactions += 1
            self.state.last_compacted = rev
            log.info("%s: compacted history up to revision %d", self.name, rev)
        return rev

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except StorageError as err:
                log.warning("%s: periodic compaction failed: %s", self.name, err)
            except Exception:  # noqa: BLE001 - keep compacting after a bug, but say so
                log.exception("%s: periodic compaction failed", self.name)
