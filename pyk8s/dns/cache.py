"""A response cache for forwarded answers, as CoreDNS's ``cache`` plugin.

Role: keep upstream answers for as long as their records live (capped at
``max_ttl``, CoreDNS's ``cache 30``), negative answers for the SOA minimum
(capped at ``max_negative_ttl``), so repeated lookups from pods (search-path
expansion multiplies them) do not each cross to the upstream.

Invariants:
- A hit is a copy whose TTLs are capped at the entry's lifetime and lowered by its
  age; it is never served after its expiry.
- SERVFAIL, truncated and non-NOERROR/NXDOMAIN answers are not cached.
- The cache holds at most ``size`` entries; the oldest insertions go first.
- Time comes from the injected clock (tests do not sleep).
"""
from __future__ import annotations

import collections

from dnslib import QTYPE, RCODE, DNSRecord

from pyk8s.client.clock import REAL_CLOCK, Clock

Key = tuple[str, int, int]


def cache_key(request: DNSRecord) -> Key:
    q = request.questions[0]
    return (str(q.qname).lower(), int(q.qtype), int(q.qclass))


class ResponseCache:
    def __init__(self, *, max_ttl: int = 30, max_negative_ttl: int = 30, size: int = 10000,
                 clock: Clock = REAL_CLOCK):
        self.max_ttl, self.max_negative_ttl, self.size = max_ttl, max_negative_ttl, size
        self.clock = clock
        self._entries: collections.OrderedDict[Key, tuple[float, float, bytes]] = \
            collections.OrderedDict()
        self.hits = self.misses = 0

    def get(self, request: DNSRecord) -> DNSRecord | None:
        key = cache_key(request)
        entry = self._entries.get(key)
        now = self.clock.monotonic()
        if entry is None or entry[1] <= now:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        stored_at, _, packed = entry
        reply = DNSRecord.parse(packed)
        age = int(now - stored_at)
        for rr in (*reply.rr, *reply.auth, *reply.ar):
            if rr.rtype != QTYPE.OPT:
                rr.ttl = max(0, rr.ttl - age)
        reply.header.id = request.header.id
        self.hits += 1
        return reply

    def put(self, request: DNSRecord, reply: DNSRecord) -> None:
        ttl = self._ttl(reply)
        if ttl <= 0:
            return
        key = cache_key(request)
        now = self.clock.monotonic()
        stored = DNSRecord.parse(reply.pack())
        for rr in (*stored.rr, *stored.auth, *stored.ar):
            if rr.rtype != QTYPE.OPT:
                rr.ttl = min(rr.ttl, ttl)  # served TTLs never exceed the entry's life
        self._entries.pop(key, None)
        self._entries[key] = (now, now + ttl, stored.pack())
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def _ttl(self, reply: DNSRecord) -> int:
        if reply.header.tc:
            return 0
        rcode = reply.header.rcode
        if rcode == RCODE.NXDOMAIN or (rcode == RCODE.NOERROR and not reply.rr):
            soa = [rr.ttl for rr in reply.auth if rr.rtype == QTYPE.SOA]
            minimum = [rr.rdata.times[4] for rr in reply.auth if rr.rtype == QTYPE.SOA]
            if not soa:
                return 0
            return min(self.max_negative_ttl, soa[0], minimum[0])
        if rcode != RCODE.NOERROR:
            return 0
        ttls = [rr.ttl for rr in (*reply.rr, *reply.auth) if rr.rtype != QTYPE.OPT]
        return min([self.max_ttl, *ttls])
