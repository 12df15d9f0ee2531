"""Per-key exponential back-off on an injected clock: client-go's flowcontrol.Backoff.

Role: the kubelet's container restart back-off (CrashLoopBackOff) and image pull
back-off (ImagePullBackOff). A key is one container of one pod (or one image of
one pod); `next(key, event_time)` is called when an attempt is made, and
`in_backoff_since(key, event_time)` says whether an attempt must still wait.

Invariants (upstream's maths, without jitter):
- The first `next` of a key sets its delay to `initial`; each further one doubles
  it, capped at `maximum`.
- A key whose last update lies more than `2 * maximum` before the event is
  expired: it starts over at `initial` (a container that ran 10 minutes without
  crashing with the 5 min cap).
- `in_backoff_since(key, t)` holds while `now - t < delay` for an unexpired key;
  `remaining(key, t)` is how long until it no longer holds (containers: measured
  from their exit); `remaining_since_update(key)` measures from the last `next`
  (image pulls: from the failed pull).
- Time is the clock's wall time (`now()`), as CRI timestamps are wall times.
"""
from __future__ import annotations

import dataclasses
import datetime

from pyk8s.client.clock import Clock


@dataclasses.dataclass
class _Entry:
    delay: float
    last_update: datetime.datetime


class Backoff:
    def __init__(self, initial: float, maximum: float, *, clock: Clock):
        self.initial, self.maximum, self.clock = initial, maximum, clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, event_time: datetime.datetime) -> bool:
        return (event_time - entry.last_update).total_seconds() > 2 * self.maximum

    def get(self, key: str) -> float:
        """The current delay of `key` (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def next(self, key: str, event_time: datetime.datetime) -> None:
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            self._entries[key] = _Entry(self.initial, self.clock.now())
            return
        entry.delay = min(entry.delay * 2, self.maximum)
        entry.last_update = self.clock.now()

    def in_backoff_since(self, key: str, event_time: datetime.datetime) -> bool:
        return self.remaining(key, event_time) > 0

    def remaining(self, key: str, event_time: datetime.datetime) -> float:
        """Seconds until an attempt after an event at `event_time` may go ahead."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return 0.0
        return max(entry.delay - (self.clock.now() - event_time).total_seconds(), 0.0)

    def remaining_since_update(self, key: str) -> float:
        """Seconds until the delay since the last `next` passed (image pulls)."""
        entry = self._entries.get(key)
        now = self.clock.now()
        if entry is None or self._expired(entry, now):
            return 0.0
        return max(entry.delay - (now - entry.last_update).total_seconds(), 0.0)

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def gc(self) -> None:
        """Forget keys that expired (upstream's GC, run from housekeeping)."""
        now = self.clock.now()
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]

    def forget_containing(self, text: str) -> None:
        """Forget every key containing `text` (a removed pod's containers)."""
        for key in [k for k in self._entries if text in k]:
            del self._entries[key]
