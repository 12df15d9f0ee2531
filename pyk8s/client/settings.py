"""Typed tunables of the client machinery, with upstream's defaults.

Role: every number the watch loops, queues, leader election and event recorder use
lives here (STYLE item 8, kopf's ``OperatorSettings``); components pass a settings
object explicitly and never hard-code a constant inside a loop.

Invariants:
- Defaults equal client-go's (reflector back-off 800 ms -> 30 s, reset after 2 min;
  min watch timeout 5 min; DefaultControllerRateLimiter 5 ms -> 1000 s and 10 qps /
  100 burst; leader election 15 s / 10 s / 2 s; event correlator 25 burst at one
  event per 5 min, aggregation of 10 similar events in 10 min).
- Settings objects are frozen; derive a variant with ``dataclasses.replace``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffSettings:
    """Bounded exponential back-off with jitter (client-go's ExponentialBackoffManager)."""

    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 1.0
    reset_after: float = 120.0  # a quiet period this long starts over from ``initial``


@dataclass(frozen=True)
class WatchSettings:
    """How lists and watches are issued (client-go's Reflector)."""

    # Each watch request asks the server to end it after a random duration in
    # [min_timeout, 2 * min_timeout], so watches of many clients do not align.
    min_timeout: float = 300.0
    # The client gives up on a stream that has been silent this much longer than
    # the timeout it asked for (a half-open connection would otherwise hang).
    inactivity_grace: float = 30.0
    page_size: int = 500
    allow_bookmarks: bool = True
    backoff: BackoffSettings = BackoffSettings()


@dataclass(frozen=True)
class RateLimiterSettings:
    """DefaultControllerRateLimiter: per-item exponential and an overall token bucket."""

    base_delay: float = 0.005
    max_delay: float = 1000.0
    qps: float = 10.0
    burst: int = 100


@dataclass(frozen=True)
class LeaderElectionSettings:
    """Lease timing, as the --leader-elect-* flags of upstream's components."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    jitter_factor: float = 1.2  # acquire retries wait retry_period * (1 + rand * jitter)
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= self.jitter_factor * self.retry_period:
            raise ValueError("renew_deadline must be greater than retry_period * jitter_factor")


@dataclass(frozen=True)
class EventSettings:
    """The event correlator and sink retries (client-go tools/record)."""

    cache_size: int = 4096
    spam_burst: int = 25
    spam_qps: float = 1.0 / 300.0
    aggregate_max_events: int = 10
    aggregate_interval: float = 600.0
    max_tries: int = 12
    retry_sleep: float = 10.0
    queue_length: int = 1000
