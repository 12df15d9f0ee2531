"""Watching as three layered async generators (kopf's ``watching.py``, client-go's Reflector).

Role:
- ``watch_once``: one watch request with a server-side timeout (random in
  ``[min_timeout, 2*min_timeout]``) and a client-side inactivity timeout;
- ``list_then_watch``: a paginated list, a ``Listed`` marker carrying the snapshot,
  then watches resumed from the last seen resourceVersion; it *returns* on 410 so
  the caller relists;
- ``watch_forever``: relists after every return and backs off (bounded, jittered,
  exponential) after every failure. Not an instant reconnect loop.

Invariants:
- Events after a ``Listed`` marker are newer than its snapshot, in server order;
  every ``Listed`` is a complete replacement of what the consumer knows.
- A watch is resumed from the resourceVersion of the last event or bookmark seen,
  never from the list's once events have been delivered.
- 410 (``Expired``/``Gone``, as an HTTP answer or an ``ERROR`` event) relists at
  once; connection failures re-watch from the same resourceVersion after back-off;
  other API errors (403, 404, 5xx) back off and relist.
- All waiting goes through the injected clock.
"""
from __future__ import annotations

import logging
import random
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Callable, Union

from .clock import REAL_CLOCK, Clock
from .errors import ApiError
from .resources import Resource
from .settings import BackoffSettings, WatchSettings
from .transport import TransportError

if TYPE_CHECKING:
    from .rest import Client, WatchEvent

log = logging.getLogger(__name__)

# A watch that ends this fast without a single event is treated as a failure (the
# reflector's "very short watch"), so a server that drops watches is not hammered.
SHORT_WATCH = 1.0


@dataclass
class Listed:
    """The list half of list-then-watch is done: ``items`` is the whole snapshot."""

    items: list[dict]
    resource_version: str


@dataclass
class Scope:
    """What to watch: a resource, optionally narrowed by namespace and selectors."""

    resource: Resource
    _: KW_ONLY
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None


class Backoff:
    """client-go's ExponentialBackoffManager: grows by ``factor`` up to ``maximum``,
    adds up to ``jitter`` times the delay at random, and starts over after a quiet
    ``reset_after`` seconds."""

    def __init__(self, settings: BackoffSettings, *, clock: Clock = REAL_CLOCK,
                 rand: Callable[[], float] = random.random):
        self.settings, self.clock, self.rand = settings, clock, rand
        self._delay = 0.0
        self._last: float | None = None

    def next_delay(self) -> float:
        s, now = self.settings, self.clock.monotonic()
        if self._last is None or now - self._last > s.reset_after or self._delay == 0:
            self._delay = s.initial
        else:
            self._delay = min(self._delay * s.factor, s.maximum)
        self._last = now
        return self._delay + self.rand() * s.jitter * self._delay

    async def wait(self) -> None:
        await self.clock.sleep(self.next_delay())


@dataclass
class WatchContext:
    client: "Client"
    scope: Scope
    _: KW_ONLY
    settings: WatchSettings = field(default_factory=WatchSettings)
    clock: Clock = REAL_CLOCK
    rand: Callable[[], float] = random.random


async def watch_once(ctx: WatchContext, resource_version: str) -> AsyncIterator["WatchEvent"]:
    """The events of one watch request, from ``resource_version`` on."""
    s, scope = ctx.settings, ctx.scope
    timeout = int(s.min_timeout * (1.0 + ctx.rand()))
    async for event in ctx.client.watch(
            scope.resource, namespace=scope.namespace, resource_version=resource_version,
            label_selector=scope.label_selector, field_selector=scope.field_selector,
            timeout_seconds=timeout, allow_bookmarks=s.allow_bookmarks,
            read_timeout=timeout + s.inactivity_grace):
        yield event


async def list_then_watch(ctx: WatchContext, backoff: Backoff
                          ) -> AsyncIterator[Union[Listed, "WatchEvent"]]:
    """List, yield ``Listed``, then watch from there until the server says 410."""
    scope = ctx.scope
    listing = await ctx.client.list_all(
        scope.resource, namespace=scope.namespace, label_selector=scope.label_selector,
        field_selector=scope.field_selector, page_size=ctx.settings.page_size)
    rv = (listing.get("metadata") or {}).get("resourceVersion") or ""
    yield Listed(listing.get("items") or [], rv)
    while True:
        started, seen = ctx.clock.monotonic(), 0
        try:
            async for event in watch_once(ctx, rv):
                seen += 1
                rv = event.resource_version or rv
                yield event
        except ApiError as err:
            if err.code == 410:
                # Our resourceVersion fell out of the server's window: what we hold
                # may have missed deletions, so only a fresh list can repair it.
                log.info("%s: watch expired (%s); relisting", scope.resource, err.message)
                return
            raise
        except TransportError as err:
            # The connection broke, not the data: resume from the same version.
            log.info("%s: watch broke (%s); resuming from %s", scope.resource, err, rv)
            await backoff.wait()
            continue
        if not seen and ctx.clock.monotonic() - started < SHORT_WATCH:
            await backoff.wait()


async def watch_forever(ctx: WatchContext) -> AsyncIterator[Union[Listed, "WatchEvent"]]:
    """``list_then_watch`` again after every 410, with back-off after every failure."""
    backoff = Backoff(ctx.settings.backoff, clock=ctx.clock, rand=ctx.rand)
    while True:
        try:
            async for item in list_then_watch(ctx, backoff):
                yield item
        except (ApiError, TransportError) as err:
            delay = backoff.next_delay()
            log.warning("%s: list/watch failed (%s); retrying in %.1f s",
                        ctx.scope.resource, err, delay)
            await ctx.clock.sleep(delay)
