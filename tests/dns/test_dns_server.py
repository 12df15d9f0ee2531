"""The DNS server over loopback: real UDP and TCP queries, a fake upstream on 127.0.0.1.

Nothing leaves the machine: the server listens on 127.0.0.1 and forwards only to
the fake upstream the test runs there.
"""
from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord, TXT

from pyk8s.client import FakeClock
from pyk8s.dns.cache import ResponseCache
from pyk8s.dns.forwarding import Forwarder, read_resolv_conf
from pyk8s.dns.records import ClusterRecords
from pyk8s.dns.serving import DnsServer, Resolver

from dns_objects import endpoint, endpoint_slice, service


class FakeUpstream:
    """Answers www.example.com A 192.0.2.10 (TTL 60), big.example.com with 40 TXT
    records (truncated over UDP), anything else NXDOMAIN; counts queries."""

    def __init__(self):
        self.queries: list[tuple[str, str]] = []
        self.server = DnsServer(self)

    async def resolve(self, request: DNSRecord) -> DNSRecord:
        name = str(request.q.qname).lower()
        self.queries.append((name, QTYPE[request.q.qtype]))
        reply = request.reply()
        reply.header.aa = 0
        if name == "www.example.com." and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(name, QTYPE.A, ttl=60, rdata=A("192.0.2.10")))
        elif name == "big.example.com.":
            for i in range(40):
                reply.add_answer(RR(name, QTYPE.TXT, ttl=60, rdata=TXT("x" * 40 + str(i))))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(RR("example.com.", QTYPE.SOA, ttl=60, rdata=SOA(
                "ns.example.com.", "h.example.com.", (1, 2, 3, 4, 20))))
        return reply


@pytest.fixture
async def dns():
    upstream = FakeUpstream()
    up_addr = await upstream.server.start("127.0.0.1", 0)
    clock = FakeClock()
    records = ClusterRecords()
    records.set_service(service("web", "10.43.0.5"))
    records.set_service({"metadata": {"namespace": "ns", "name": "ext"},
                         "spec": {"type": "ExternalName", "externalName": "www.example.com"}})
    records.set_service(service("db", "None", ports=(("pg", 5432, "TCP"),)))
    records.set_slice(endpoint_slice("db", [endpoint("10.42.0.21", hostname="db-0")],
                                     ports=(("pg", 5432, "TCP"),)))
    cache = ResponseCache(clock=clock)
    server = DnsServer(Resolver(records, forwarder=Forwarder([up_addr], timeout=1.0),
                                cache=cache))
    addr = await server.start("127.0.0.1", 0)
    yield addr, upstream, records, cache, clock
    await server.stop()
    await upstream.server.stop()


async def ask(addr, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    data = await asyncio.to_thread(q.send, addr[0], addr[1], tcp, 2)
    reply = DNSRecord.parse(data)
    assert reply.header.id == q.header.id
    return reply


def answers(reply: DNSRecord) -> list[str]:
    return [f"{QTYPE[rr.rtype]} {rr.rdata}" for rr in reply.rr]


async def test_cluster_names_over_udp_and_tcp(dns):
    addr, upstream, *_ = dns
    for tcp in (False, True):
        reply = await ask(addr, "web.ns.svc.cluster.local", tcp=tcp)
        assert reply.header.aa == 1 and answers(reply) == ["A 10.43.0.5"]
    assert answers(await ask(addr, "_pg._tcp.db.ns.svc.cluster.local", "SRV")) == \
        ["SRV 0 100 5432 db-0.db.ns.svc.cluster.local."]
    assert answers(await ask(addr, "5.0.43.10.in-addr.arpa", "PTR")) == \
        ["PTR web.ns.svc.cluster.local."]
    missing = await ask(addr, "nope.ns.svc.cluster.local")
    assert missing.header.rcode == RCODE.NXDOMAIN and missing.auth[0].rtype == QTYPE.SOA
    assert upstream.queries == []  # the cluster zone never leaves the server


async def test_other_names_are_forwarded_and_cached(dns):
    addr, upstream, _, cache, clock = dns
    assert answers(await ask(addr, "www.example.com")) == ["A 192.0.2.10"]
    assert answers(await ask(addr, "www.example.com")) == ["A 192.0.2.10"]
    assert upstream.queries == [("www.example.com.", "A")]
    clock.advance(10)
    reply = await ask(addr, "www.example.com")
    assert reply.rr[0].ttl == 20  # capped at 30 s by the cache, 10 s old
    clock.advance(21)
    await ask(addr, "www.example.com")
    assert len(upstream.queries) == 2
    # Negative answers are cached for the SOA minimum (20 s here).
    nx = await ask(addr, "nothing.example.com")
    assert nx.header.rcode == RCODE.NXDOMAIN
    await ask(addr, "nothing.example.com")
    assert upstream.queries.count(("nothing.example.com.", "A")) == 1


async def test_external_name_answers_cname_and_the_target(dns):
    addr, upstream, *_ = dns
    reply = await ask(addr, "ext.ns.svc.cluster.local")
    assert answers(reply) == ["CNAME www.example.com.", "A 192.0.2.10"]


async def test_truncated_upstream_answers_are_fetched_over_tcp_and_truncated_for_udp(dns):
    addr, upstream, *_ = dns
    big = await ask(addr, "big.example.com", "TXT", tcp=True)
    assert len(big.rr) == 40
    small = await ask(addr, "big.example.com", "TXT")
    assert small.header.tc == 1 and small.rr == [] and str(small.q.qname) == "big.example.com."


async def test_garbage_is_ignored_and_the_server_keeps_answering(dns):
    addr, *_ = dns
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00\x01garbage", addr)
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(struct.pack("!H", 3) + b"bad")
    await writer.drain()
    assert await reader.read() == b""  # the connection is dropped
    writer.close()
    assert answers(await ask(addr, "web.ns.svc.cluster.local")) == ["A 10.43.0.5"]


async def test_without_upstream_foreign_names_fail(dns):
    server = DnsServer(Resolver(ClusterRecords()))
    addr = await server.start("127.0.0.1", 0)
    try:
        assert (await ask(addr, "www.example.com")).header.rcode == RCODE.SERVFAIL
    finally:
        await server.stop()


def test_resolv_conf_nameservers(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 10.43.0.10\nnameserver 127.0.0.53\n"
                    "nameserver fe80::1%eth0\nsearch example.com\noptions ndots:5\n")
    assert read_resolv_conf(str(conf), exclude=["10.43.0.10"]) == \
        [("127.0.0.53", 53), ("fe80::1", 53)]
    assert read_resolv_conf(str(tmp_path / "missing")) == []
