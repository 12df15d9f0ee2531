"""The etcd v3 backend: the Store contract on a real etcd cluster (HA control planes).

Mapping: a key is ``prefix + key`` in etcd (the prefix lets several stores share one
cluster and is stripped from every key returned); a revision is etcd's cluster-wide
revision, so a value's revision is its ``mod_revision``. Calls go straight to the KV
and Watch gRPC stubs of an ``aetcd.Client``, because aetcd's helpers leave out what
the contract needs (range revision and limit, txn header revision, watch cancel
reasons).

Invariants:
- every write is one etcd Txn whose compares make it a compare-and-swap; the Txn
  header's revision is the write's revision, and etcd acknowledges it only once it is
  committed to a quorum's disk;
- reads are linearizable (etcd's default); a list at revision 0 reports the header
  revision it was read at;
- an RPC fails over to the next endpoint only when retrying cannot apply a write
  twice: reads and compaction on any unavailability, writes only when the request
  never reached a member able to apply it (no connection, no leader);
- a watch is one gRPC Watch stream of its own (``prev_kv`` on, leader required); a
  broken stream resumes after the last delivered revision on the next endpoint, so no
  event is lost or repeated; ``aclose()`` and ``close()`` cancel the stream;
- periodic compaction (``compaction_interval``, compactor.Compactor) keeps one interval
  of history as kube-apiserver does; several API servers on one cluster compact once
  per interval between them: each tick is a compare-and-swap on the version of
  ``compact_rev_key`` (a key outside every prefix, as compaction is cluster-wide), and
  only the server whose swap succeeded compacts, to the revision it saw at its
  previous tick; the others learn the key's version and try again next interval;
- etcd 3.4 cannot report its compacted revision, so the store remembers the
  compactions it made and learns others' from the one place etcd tells it: the
  ``compact_revision`` of a watch started at revision 1.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import aetcd
import grpc
from aetcd import rpc

from .compactor import CompactionState, Compactor
from .interface import (Compacted, Conflict, Event, EventType, FutureRevision, KeyExists,
                        KeyNotFound, KeyValue, ListResult, StorageError)

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS = {
    # Lists of many objects exceed gRPC's 4 MiB default (upstream lifts it as well).
    "grpc.max_receive_message_length": -1,
    # Notice a dead member under an open watch (etcd accepts pings every 5 s or more).
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    # etcd is reached directly, never through a proxy from the environment.
    "grpc.enable_http_proxy": 0,
}
# A member without a leader refuses calls that carry this at once ("no leader",
# before anything is proposed) and ends such watch streams when it loses the leader,
# so calls and watches move to a member that still sees writes.
_REQUIRE_LEADER = (("hasleader", "true"),)
# Errors after which a write surely was not applied, so another endpoint may take it.
_NOT_SENT = ("failed to connect to all addresses", "etcdserver: no leader")
_RETRYABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_ANY_KEY = b"\x00"  # a key nobody writes: probes that only want a header read it
COMPACT_REV_KEY = "compact_rev_key"  # upstream's: whoever swaps its version compacts


class EtcdUnavailable(StorageError):
    """No etcd endpoint answered, or the answer cannot tell whether a write applied."""


def prefix_range_end(prefix: bytes) -> bytes:
    """The etcd ``range_end`` that selects every key starting with ``prefix``."""
    for i in reversed(range(len(prefix))):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes([prefix[i] + 1])
    return b"\x00"  # etcd's "every key from the start key on"


class EtcdStore:
    """Store on an etcd v3 cluster; see the module docstring for the mapping."""

    def __init__(self, endpoints: list[str], *, prefix: str = "",
                 request_timeout: float = 30.0, dial_timeout: float = 5.0,
                 compaction_interval: float = 0.0, compact_rev_key: str = COMPACT_REV_KEY):
        """``compaction_interval``: seconds between periodic compactions of the whole
        cluster, each to the revision seen one interval before (0: never; open_store
        passes the ``--etcd-compaction-interval`` flag, 5m by default)."""
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self.endpoints = [e.split("://", 1)[-1].rstrip("/") for e in endpoints]
        self.prefix = prefix
        self.request_timeout = request_timeout
        self.dial_timeout = dial_timeout
        self._prefix = prefix.encode()
        self._clients: list[aetcd.Client | None] = [None] * len(self.endpoints)
        self._active = 0
        self._compacted = 0
        self._watch_calls: set[grpc.aio.StreamStreamCall] = set()
        self._closed = False
        self.compact_rev_key = compact_rev_key.encode()
        self._compactor = Compactor(self._compaction_step, compaction_interval, name="etcd")

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        failures = []
        for index, endpoint in enumerate(self.endpoints):
            client = await self._client(index)
            try:
                await client.kvstub.Range(rpc.RangeRequest(key=_ANY_KEY, count_only=True),
                                          timeout=self.dial_timeout, metadata=_REQUIRE_LEADER)
            except grpc.aio.AioRpcError as err:
                if err.code() not in _RETRYABLE_CODES:
                    raise StorageError(f"etcd {endpoint}: {err.details()}") from err
                failures.append(f"{endpoint}: {err.details()}")
                continue
            self._active = index
            self._compactor.start()
            return
        raise EtcdUnavailable("no etcd endpoint answered: " + "; ".join(failures))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._compactor.stop()
        for call in list(self._watch_calls):
            call.cancel()
        for client in self._clients:
            if client is not None:
                await client.close()

    async def _client(self, index: int) -> aetcd.Client:
        if self._closed:
            raise StorageError("store is closed")
        client = self._clients[index]
        if client is None:
            host, _, port = self.endpoints[index].rpartition(":")
            client = aetcd.Client(host, int(port), options=_CHANNEL_OPTIONS)
            self._clients[index] = client
        await client.connect()
        return client

    def _fail_over(self, index: int, reason: str) -> None:
        if self._active == index and len(self.endpoints) > 1:
            self._active = (index + 1) % len(self.endpoints)
            log.warning("etcd %s failed (%s); using %s", self.endpoints[index], reason,
                        self.endpoints[self._active])

    # -- one RPC, with failover and error mapping -----------------------------------

    async def _rpc(self, method: str, request, *, idempotent: bool, revision: int = 0):
        """``KV.<method>(request)`` on the active endpoint; ``revision`` is the one the
        request reads at, for the Compacted and FutureRevision it may raise."""
        failures = []
        for _ in self.endpoints:
            index = self._active
            stub = (await self._client(index)).kvstub
            try:
                return await getattr(stub, method)(request, timeout=self.request_timeout,
                                                   metadata=_REQUIRE_LEADER)
            except grpc.aio.AioRpcError as err:
                if not self._may_retry(err, idempotent):
                    raise await self._storage_error(err, revision) from err
                failures.append(f"{self.endpoints[index]}: {err.details()}")
                self._fail_over(index, err.details())
        raise EtcdUnavailable("no etcd endpoint answered: " + "; ".join(failures))

    @staticmethod
    def _may_retry(err: grpc.aio.AioRpcError, idempotent: bool) -> bool:
        if err.code() not in _RETRYABLE_CODES:
            return False
        # A write that timed out or lost its connection may still commit: retrying
        # it elsewhere could answer KeyExists/Conflict for the caller's own write.
        return idempotent or any(m in (err.details() or "") for m in _NOT_SENT)

    async def _storage_error(self, err: grpc.aio.AioRpcError, revision: int) -> StorageError:
        details = err.details() or ""
        if err.code() == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
            return Compacted(revision, await self._discover_compacted())
        if err.code() == grpc.StatusCode.OUT_OF_RANGE and "future revision" in details:
            try:
                current = await self.current_revision()
            except StorageError:
                current = 0
            return FutureRevision(revision, current)
        if err.code() in _RETRYABLE_CODES:
            return EtcdUnavailable(f"etcd: {details} (a write may or may not have applied)")
        return StorageError(f"etcd {err.code().name}: {details}")

    # -- keys ----------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _unkey(self, key: bytes) -> str:
        return key[len(self._prefix):].decode()

    def _range(self, prefix: str) -> tuple[bytes, bytes]:
        start = self._key(prefix)
        return start or _ANY_KEY, prefix_range_end(start)

    # -- writes --------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        k = self._key(key)
        resp = await self._rpc("Txn", rpc.TxnRequest(
            compare=[_compare_create(k, rpc.Compare.EQUAL, 0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
        ), idempotent=False)
        if not resp.succeeded:
            raise KeyExists(key)
        return resp.header.revision

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> int:
        k = self._key(key)
        resp = await self._rpc("Txn", rpc.TxnRequest(
            compare=_compare_existing(k, expected_revision),
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        ), idempotent=False)
        if not resp.succeeded:
            raise _compare_failure(key, expected_revision, resp)
        return resp.header.revision

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        k = self._key(key)
        resp = await self._rpc("Txn", rpc.TxnRequest(
            compare=_compare_existing(k, expected_revision),
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(
                key=k, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        ), idempotent=False)
        if not resp.succeeded:
            raise _compare_failure(key, expected_revision, resp)
        deleted = resp.responses[0].response_delete_range.prev_kvs[0]
        return KeyValue(key, deleted.value, resp.header.revision)

    async def compact(self, revision: int) -> None:
        try:
            await self._rpc("Compact", rpc.CompactionRequest(revision=revision, physical=True),
                            idempotent=True, revision=revision)
        except Compacted:
            return  # history up to `revision` is already gone: nothing left to do
        self._compacted = max(self._compacted, revision)

    @property
    def compactor(self) -> Compactor:
        return self._compactor

    async def _compaction_step(self, state: CompactionState) -> int:
        """One tick of upstream's compactor (k8s.io/apiserver etcd3/compact.go).

        If ``compact_rev_key``'s version is still the one we last saw, bump it and
        compact to the revision of our previous tick; otherwise another server
        compacted this interval: remember its version and the current revision.
        """
        key = self.compact_rev_key
        resp = await self._rpc("Txn", rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.VERSION,
                                 result=rpc.Compare.EQUAL, version=state.version)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(
                key=key, value=str(state.revision).encode()))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
        ), idempotent=False)
        target, state.revision = state.revision, resp.header.revision
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            state.version = kvs[0].version if kvs else 0
            return 0
        state.version += 1
        if target == 0:
            return 0  # upstream does not compact on its first successful tick
        await self.compact(target)
        return target

    # -- reads ---------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue:
        resp = await self._rpc("Range", rpc.RangeRequest(key=self._key(key)), idempotent=True)
        if not resp.kvs:
            raise KeyNotFound(key)
        kv = resp.kvs[0]
        return KeyValue(key, kv.value, kv.mod_revision)

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
                   limit: int = 0) -> ListResult:
        start, end = self._range(prefix)
        if start_after:
            start = max(start, self._key(start_after) + b"\x00")
        resp = await self._rpc("Range", rpc.RangeRequest(
            key=start, range_end=end, revision=revision, limit=limit,
        ), idempotent=True, revision=revision)
        items = [KeyValue(self._unkey(kv.key), kv.value, kv.mod_revision) for kv in resp.kvs]
        return ListResult(items, revision or resp.header.revision, bool(resp.more))

    async def current_revision(self) -> int:
        # etcd's revision starts at 1 before any write; it is shared by all prefixes.
        resp = await self._rpc("Range", rpc.RangeRequest(key=_ANY_KEY, count_only=True),
                               idempotent=True)
        return resp.header.revision

    async def compacted_revision(self) -> int:
        # A read at the newest compaction we know of fails only if a later one
        # happened (by another store or API server); that failure discovers it.
        try:
            await self._read_at(max(self._compacted, 1))
        except Compacted:
            pass
        return self._compacted

    async def _read_at(self, revision: int) -> None:
        """Raise Compacted if ``revision`` is older than the last compaction."""
        await self._rpc("Range", rpc.RangeRequest(key=_ANY_KEY, revision=revision,
                                                  count_only=True),
                        idempotent=True, revision=revision)

    async def _discover_compacted(self) -> int:
        """The cluster's compacted revision, after a read reported one newer than ours.

        A watch from revision 1 is refused with the compacted revision at once
        whenever any compaction above 1 happened, which the failed read proved.
        """
        call = None
        try:
            stub = rpc.WatchStub((await self._client(self._active)).channel)
            call = stub.Watch()
            async with asyncio.timeout(self.request_timeout):
                await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                    key=_ANY_KEY, start_revision=1)))
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF or (resp.canceled and not resp.compact_revision):
                        break
                    if resp.compact_revision:
                        self._compacted = max(self._compacted, resp.compact_revision)
                        break
        except (grpc.aio.AioRpcError, TimeoutError, StorageError) as err:
            log.warning("could not learn etcd's compacted revision: %s", err)
        finally:
            if call is not None:
                call.cancel()
        return self._compacted

    # -- watch ---------------------------------------------------------------------

    async def watch(self, prefix: str, *, revision: int) -> AsyncIterator[Event]:
        start, end = self._range(prefix)
        next_rev = revision + 1
        failures = 0
        while not self._closed:
            index, call = self._active, None
            try:
                await self._check_history(next_rev - 1)
                index = self._active  # the check may have failed over
                call = await self._open_watch(index, start, end, next_rev)
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise _StreamEnded("etcd ended the watch stream")
                    if resp.compact_revision:
                        self._compacted = max(self._compacted, resp.compact_revision)
                        raise Compacted(next_rev - 1, resp.compact_revision)
                    if resp.canceled:
                        raise StorageError(f"etcd canceled the watch: {resp.cancel_reason}")
                    if resp.created:
                        failures = 0
                    for ev in resp.events:
                        event = await self._event(ev)
                        yield event
                        next_rev = event.revision + 1
            except (grpc.aio.AioRpcError, _StreamEnded) as err:
                if self._closed:
                    return
                reason = err.details() if isinstance(err, grpc.aio.AioRpcError) else str(err)
                if isinstance(err, grpc.aio.AioRpcError) and err.code() not in _RETRYABLE_CODES:
                    raise StorageError(f"etcd watch failed: {reason}") from err
                failures += 1
                if failures >= len(self.endpoints):
                    raise EtcdUnavailable(f"etcd watch failed on every endpoint: {reason}") \
                        from err
                self._fail_over(index, reason)
            except asyncio.CancelledError:
                # close() cancelled the call under us; a cancelled task still unwinds.
                if self._closed and not asyncio.current_task().cancelling():
                    return
                raise
            except StorageError:
                if self._closed:
                    return  # close() ended a call the watch was making
                raise
            finally:
                if call is not None:
                    self._watch_calls.discard(call)
                    call.cancel()

    async def _check_history(self, revision: int) -> None:
        """Raise Compacted if events after ``revision`` may be gone.

        etcd refuses a watch only from before its compacted revision, yet a deletion
        made at exactly that revision is already gone; a read at ``revision`` fails
        in both cases. A revision not written yet is fine: the watch waits for it.
        """
        if revision < self._compacted:
            raise Compacted(revision, self._compacted)
        if revision > 0:
            try:
                await self._read_at(revision)
            except FutureRevision:
                pass

    async def _open_watch(self, index: int, start: bytes, end: bytes,
                          start_revision: int) -> grpc.aio.StreamStreamCall:
        """A Watch stream of its own on endpoint ``index``, its watch requested."""
        stub = rpc.WatchStub((await self._client(index)).channel)
        call = stub.Watch(metadata=_REQUIRE_LEADER)
        self._watch_calls.add(call)
        try:
            await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=start, range_end=end, start_revision=start_revision, prev_kv=True)))
        except BaseException:
            self._watch_calls.discard(call)
            call.cancel()
            raise
        return call

    async def _event(self, ev) -> Event:
        kv, key = ev.kv, self._unkey(ev.kv.key)
        prev = ev.prev_kv.value if ev.HasField("prev_kv") else None
        if ev.type == rpc.Event.DELETE:
            if prev is None:
                # etcd drops prev_kv when compaction removed it meanwhile; a DELETED
                # event without the deleted object is lost history.
                raise Compacted(kv.mod_revision - 1, await self._discover_compacted())
            return Event(EventType.DELETED, key, prev, kv.mod_revision, prev)
        kind = EventType.ADDED if kv.create_revision == kv.mod_revision else EventType.MODIFIED
        return Event(kind, key, kv.value, kv.mod_revision, prev)


class _StreamEnded(Exception):
    """etcd closed a watch stream without an error (a member shutting down)."""


def _compare_create(key: bytes, result, revision: int) -> rpc.Compare:
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, result=result,
                       create_revision=revision)


def _compare_existing(key: bytes, expected_revision: int) -> list[rpc.Compare]:
    """The key exists (and, when ``expected_revision`` is set, is at that revision)."""
    compares = [_compare_create(key, rpc.Compare.GREATER, 0)]
    if expected_revision:
        compares.append(rpc.Compare(key=key, target=rpc.Compare.MOD,
                                    result=rpc.Compare.EQUAL, mod_revision=expected_revision))
    return compares


def _compare_failure(key: str, expected_revision: int, resp) -> StorageError:
    """KeyNotFound or Conflict, from the failure branch's read of the key."""
    found = resp.responses[0].response_range.kvs
    if not found:
        return KeyNotFound(key)
    return Conflict(key, expected_revision, found[0].mod_revision)
