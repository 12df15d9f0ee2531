"""Recording core/v1 Events as client-go's tools/record does.

Role: controllers call ``recorder.event(obj, "Normal", reason=..., message=...)``
without waiting; an ``EventBroadcaster`` writes the events to the API in the
background through an ``EventCorrelator`` that counts repeats (one Event per
distinct message with ``count``/``lastTimestamp`` patched), aggregates floods of
similar events and throttles spam, exactly as upstream so ``kubectl get events`` and
``kubectl describe`` read the same.

Invariants:
- An Event is named ``<involvedObject.name>.<hex of its first timestamp in ns>`` and
  lives in the object's namespace (``default`` for cluster-scoped objects); its
  ``source`` and ``reportingComponent``/``reportingInstance`` name the recorder.
- A repeat of an identical event (same source, object, type, reason, message)
  PATCHes ``count``, ``lastTimestamp`` and ``message`` of the first one; if that
  Event is gone (404) a new one is created.
- After ``aggregate_max_events`` distinct messages with the same reason for one
  object within ``aggregate_interval``, later ones are folded into one Event whose
  message is ``(combined from similar events): <latest message>``.
- Per source and object, a token bucket (burst 25, one per 5 min) drops the excess.
- ``event()`` never blocks or raises: a full queue drops the event (logged).
  Server refusals are not retried; connection failures are, up to ``max_tries``.
"""
from __future__ import annotations

import asyncio
import calendar
import collections
import logging
import random
import socket
from dataclasses import KW_ONLY, dataclass
from typing import Any, Callable

from pyk8s import aio
from pyk8s.api import meta as m

from .clock import REAL_CLOCK, Clock
from .errors import ApiError, is_not_found
from .resources import EVENTS
from .settings import EventSettings
from .transport import TransportError
from .workqueue import TokenBucket

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"


class _LRU(collections.OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def _join(*parts: Any) -> str:
    return "".join(str(p or "") for p in parts)


def event_key(ev: dict) -> str:
    src, obj = ev.get("source") or {}, ev.get("involvedObject") or {}
    return _join(src.get("component"), src.get("host"), obj.get("kind"), obj.get("namespace"),
                 obj.get("name"), obj.get("fieldPath"), obj.get("uid"), obj.get("apiVersion"),
                 ev.get("type"), ev.get("reason"), ev.get("message"))


def spam_key(ev: dict) -> str:
    src, obj = ev.get("source") or {}, ev.get("involvedObject") or {}
    return _join(src.get("component"), src.get("host"), obj.get("kind"), obj.get("namespace"),
                 obj.get("name"), obj.get("uid"), obj.get("apiVersion"))


def aggregate_key(ev: dict) -> tuple[str, str]:
    """(the group of similar events, what tells them apart): by reason, as upstream."""
    src, obj = ev.get("source") or {}, ev.get("involvedObject") or {}
    return _join(src.get("component"), src.get("host"), obj.get("kind"), obj.get("namespace"),
                 obj.get("name"), obj.get("uid"), obj.get("apiVersion"), ev.get("type"),
                 ev.get("reason"), ev.get("reportingComponent"),
                 ev.get("reportingInstance")), ev.get("message") or ""


def unix_nano(t) -> int:
    return calendar.timegm(t.utctimetuple()) * 1_000_000_000 + t.microsecond * 1000


@dataclass
class CorrelateResult:
    event: dict | None
    _: KW_ONLY
    patch: dict | None = None
    skip: bool = False


class EventCorrelator:
    """Filtering (spam), aggregation (similar events) and counting (identical events)."""

    def __init__(self, *, settings: EventSettings = EventSettings(), clock: Clock = REAL_CLOCK):
        self.settings, self.clock = settings, clock
        self._spam = _LRU(settings.cache_size)
        self._aggregate = _LRU(settings.cache_size)
        self._log = _LRU(settings.cache_size)

    def correlate(self, event: dict) -> CorrelateResult:
        aggregated, cache_key = self._aggregate_event(event)
        observed, patch = self._observe(aggregated, cache_key)
        if self._filtered(observed):
            return CorrelateResult(None, skip=True)
        return CorrelateResult(observed, patch=patch)

    def update_state(self, event: dict) -> None:
        """Remember the server's copy (name, resourceVersion, count) of ``event``."""
        self._log.put(event_key(event), (event.get("count") or 1, event.get("firstTimestamp"),
                                         event["metadata"]["name"],
                                         event["metadata"].get("resourceVersion", "")))

    def _filtered(self, event: dict) -> bool:
        key = spam_key(event)
        bucket = self._spam.get(key)
        if bucket is None:
            bucket = TokenBucket(self.settings.spam_qps, self.settings.spam_burst,
                                 clock=self.clock)
        self._spam.put(key, bucket)
        return not bucket.try_accept()

    def _aggregate_event(self, event: dict) -> tuple[dict, str]:
        s, now = self.settings, self.clock.now()
        group, local = aggregate_key(event)
        record = self._aggregate.get(group)
        if record is None or (now - record[1]).total_seconds() > s.aggregate_interval:
            record = (set(), now)
        local_keys = record[0]
        local_keys.add(local)
        self._aggregate.put(group, (local_keys, now))
        if len(local_keys) < s.aggregate_max_events:
            return event, event_key(event)
        local_keys.pop()  # keep the set from growing past the maximum
        stamp = m.format_time(now)
        combined = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{event['involvedObject'].get('name')}.{unix_nano(now):x}",
                         "namespace": event["metadata"]["namespace"]},
            "involvedObject": event["involvedObject"], "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "message": "(combined from similar events): " + (event.get("message") or ""),
            "type": event.get("type"), "reason": event.get("reason"),
            "source": event.get("source"),
        }
        return combined, group

    def _observe(self, event: dict, key: str) -> tuple[dict, dict | None]:
        event = {**event, "metadata": dict(event["metadata"])}
        last = self._log.get(key)
        patch = None
        if last is not None:
            count, first, name, rv = last
            event["metadata"]["name"] = name
            event["metadata"]["resourceVersion"] = rv
            event["firstTimestamp"] = first
            event["count"] = count + 1
            patch = {"count": event["count"], "lastTimestamp": event["lastTimestamp"],
                     "message": event.get("message") or ""}
        self._log.put(key, (event.get("count") or 1, event.get("firstTimestamp"),
                            event["metadata"]["name"],
                            event["metadata"].get("resourceVersion", "")))
        return event, patch


def object_reference(obj: dict, field_path: str | None = None) -> dict:
    """A core/v1 ObjectReference to ``obj`` (which must carry apiVersion and kind)."""
    md = obj.get("metadata") or {}
    if not obj.get("kind") or not obj.get("apiVersion"):
        raise ValueError(f"object {md.get('name')!r} has no apiVersion/kind")
    ref = {"kind": obj["kind"], "namespace": md.get("namespace"), "name": md.get("name"),
           "uid": md.get("uid"), "apiVersion": obj["apiVersion"],
           "resourceVersion": md.get("resourceVersion"), "fieldPath": field_path}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Records events on behalf of one source (component and host)."""

    def __init__(self, broadcaster: "EventBroadcaster", *, component: str, host: str = ""):
        self.broadcaster, self.component, self.host = broadcaster, component, host

    def event(self, obj: dict, event_type: str, *, reason: str, message: str,
              annotations: dict | None = None, field_path: str | None = None) -> None:
        """Queue an event about ``obj``; never blocks, never raises."""
        if event_type not in (NORMAL, WARNING):
            log.error("unsupported event type: %r", event_type)
            return
        try:
            ref = object_reference(obj, field_path)
        except ValueError as err:
            log.error("could not construct reference: %s; dropping event %s %s", err,
                      reason, message)
            return
        now = self.broadcaster.clock.now()
        stamp = m.format_time(now)
        metadata: dict[str, Any] = {"name": f"{ref['name']}.{unix_nano(now):x}",
                                    "namespace": ref.get("namespace") or "default"}
        if annotations:
            metadata["annotations"] = dict(annotations)
        self.broadcaster.action({
            "apiVersion": "v1", "kind": "Event", "metadata": metadata,
            "involvedObject": ref, "reason": reason, "message": message,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "type": event_type,
            "source": {k: v for k, v in (("component", self.component),
                                         ("host", self.host)) if v},
            "reportingComponent": self.component, "reportingInstance": self.host})


class EventBroadcaster:
    """The background writer shared by a process's recorders."""

    def __init__(self, client, *, settings: EventSettings = EventSettings(),
                 clock: Clock = REAL_CLOCK, rand: Callable[[], float] = random.random):
        self.client, self.settings, self.clock, self.rand = client, settings, clock, rand
        self.correlator = EventCorrelator(settings=settings, clock=clock)
        self._queue: asyncio.Queue[dict] | None = None
        self._task: asyncio.Task | None = None
        self._listeners: list[Callable[[dict], None]] = []

    def new_recorder(self, component: str, host: str | None = None) -> EventRecorder:
        return EventRecorder(self, component=component,
                             host=socket.gethostname() if host is None else host)

    def add_listener(self, fn: Callable[[dict], None]) -> None:
        """Also hand every recorded event (before correlation) to ``fn``."""
        self._listeners.append(fn)

    def action(self, event: dict) -> None:
        for fn in self._listeners:
            fn(event)
        if self._queue is None:
            self._queue = asyncio.Queue(self.settings.queue_length)
            self._task = asyncio.create_task(self._write_loop(), name="event broadcaster")
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.error("too many queued events, dropped %s %s", event.get("reason"),
                      event.get("message"))

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was written (or given up); False on timeout."""
        if self._queue is None:
            return True
        try:
            await aio.wait_for(self._queue.join(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def shutdown(self, timeout: float = 5.0) -> None:
        await self.flush(timeout)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task, self._queue = None, None

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._record_to_sink(event)
            except Exception:  # noqa: BLE001 - the writer must outlive a bad event
                log.exception("recording event failed")
            finally:
                self._queue.task_done()

    async def _record_to_sink(self, event: dict) -> None:
        result = self.correlator.correlate(event)
        if result.skip or result.event is None:
            return
        for attempt in range(1, self.settings.max_tries + 1):
            if await self._record(result.event, result.patch):
                return
            if attempt == self.settings.max_tries:
                log.error("unable to write event %s (retry limit exceeded)",
                          result.event["metadata"]["name"])
                return
            # Randomise the first wait so clients do not retry in step after an outage.
            delay = self.settings.retry_sleep * (self.rand() if attempt == 1 else 1.0)
            await self.clock.sleep(delay)

    async def _record(self, event: dict, patch: dict | None) -> bool:
        """True when written or refused for good, False when worth another try."""
        ns, name = event["metadata"]["namespace"], event["metadata"]["name"]
        try:
            written = None
            if patch is not None:
                try:
                    written = await self.client.patch(EVENTS, name, body=patch, namespace=ns,
                                                      patch_type="strategic")
                except ApiError as err:
                    if not is_not_found(err):
                        raise
            if written is None:
                body = {**event, "metadata": {k: v for k, v in event["metadata"].items()
                                              if k != "resourceVersion"}}
                written = await self.client.create(EVENTS, body, namespace=ns)
        except ApiError as err:
            level = logging.DEBUG if err.reason == "AlreadyExists" else logging.ERROR
            log.log(level, "server rejected event %s: %s (will not retry)", name, err)
            return True
        except TransportError as err:
            log.warning("unable to write event %s: %s (may retry)", name, err)
            return False
        self.correlator.update_state(written)
        return True


class FakeRecorder:
    """client-go's FakeRecorder: keeps ``"<type> <reason> <message>"`` strings for tests."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, obj: dict, event_type: str, *, reason: str, message: str,
              annotations: dict | None = None, field_path: str | None = None) -> None:
        self.events.append(f"{event_type} {reason} {message}")
