"""Answering DNS over UDP and TCP: the cluster zone first, then the cache and upstreams.

Role: ``Resolver`` turns one query into one reply (``ClusterRecords`` for the
cluster zone and known reverse names, else ``ResponseCache`` then ``Forwarder``,
chasing ExternalName CNAMEs); ``DnsServer`` listens on UDP and TCP and frames the
messages (RFC 1035 4.2; TCP with a two-byte length, several queries per
connection).

Invariants:
- Every well-formed query gets exactly one reply with its ID and question;
  undecodable packets are dropped (UDP) or end the connection (TCP).
- A UDP reply larger than the client's limit (512 bytes, or its EDNS0 size) is
  sent truncated (TC set, question kept) so the client retries over TCP.
- Only QUERY opcodes are answered (others: NOTIMP); names outside the cluster
  zone without an upstream answer SERVFAIL.
- A slow upstream never blocks other queries: each query is its own task; an idle
  TCP connection is closed after ``tcp_idle_timeout``.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct

from dnslib import EDNS0, OPCODE, QTYPE, RCODE, DNSHeader, DNSRecord

from pyk8s import aio
from .cache import ResponseCache
from .forwarding import ForwardError, Forwarder
from .records import Answer, ClusterRecords

log = logging.getLogger(__name__)

MAX_CNAME_CHAIN = 8
EDNS_SIZE = 1232  # the DNS flag day 2020 default


class Resolver:
    def __init__(self, records: ClusterRecords, *, forwarder: Forwarder | None = None,
                 cache: ResponseCache | None = None):
        self.records, self.forwarder, self.cache = records, forwarder, cache

    async def resolve(self, request: DNSRecord) -> DNSRecord:
        reply = DNSRecord(DNSHeader(id=request.header.id, qr=1, aa=0, ra=1,
                                    rd=request.header.rd, opcode=request.header.opcode),
                          q=request.q)
        if any(rr.rtype == QTYPE.OPT for rr in request.ar):
            reply.add_ar(EDNS0(udp_len=EDNS_SIZE))
        if request.header.opcode != OPCODE.QUERY or len(request.questions) != 1:
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode != OPCODE.QUERY \
                else RCODE.FORMERR
            return reply
        q = request.q
        answer = self.records.lookup(str(q.qname), q.qtype)
        if answer is not None:
            reply.header.aa = 1
            await self._fill(reply, answer, q.qtype, depth=0)
            return reply
        upstream = await self._forward(request)
        if upstream is None:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        upstream.header.id = request.header.id
        return upstream

    async def _fill(self, reply: DNSRecord, answer: Answer, qtype: int, *, depth: int) -> None:
        reply.header.rcode = answer.rcode
        for rr in answer.answers:
            reply.add_answer(rr)
        for rr in answer.authority:
            reply.add_auth(rr)
        for rr in answer.additional:
            reply.add_ar(rr)
        if answer.chase is None or depth >= MAX_CNAME_CHAIN:
            return
        # ExternalName: the client asked for an address, so follow the CNAME as
        # CoreDNS does (locally when the target is in the cluster zone).
        target = answer.chase
        local = self.records.lookup(target, qtype)
        if local is not None:
            await self._fill(reply, Answer(local.rcode, local.answers,
                                           [] if local.answers else local.authority,
                                           [], local.chase), qtype, depth=depth + 1)
            return
        sub = await self._forward(DNSRecord.question(target, QTYPE.get(qtype)))
        if sub is not None:
            reply.header.rcode = sub.header.rcode
            for rr in sub.rr:
                reply.add_answer(rr)

    async def _forward(self, request: DNSRecord) -> DNSRecord | None:
        if self.cache is not None:
            hit = self.cache.get(request)
            if hit is not None:
                return hit
        if self.forwarder is None:
            return None
        try:
            upstream = await self.forwarder.query(request)
        except ForwardError as err:
            log.warning("forwarding %s failed: %s", request.q.qname, err)
            return None
        if self.cache is not None:
            self.cache.put(request, upstream)
        return upstream


def _limit(request: DNSRecord) -> int:
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, min(int(rr.rclass), 65535))
    return 512


def _truncated(reply: DNSRecord) -> DNSRecord:
    header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, tc=1)
    header.rcode = reply.header.rcode
    return DNSRecord(header, q=reply.q)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: "DnsServer"):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.server._spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr) -> None:
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises assorted errors on garbage
            return
        reply = await self.server.resolver.resolve(request)
        packet = reply.pack()
        if len(packet) > _limit(request):
            packet = _truncated(reply).pack()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packet, addr)


class DnsServer:
    """Serves ``resolver`` on UDP and TCP ``host``:``port`` (port 0 picks one)."""

    def __init__(self, resolver: Resolver, *, tcp_idle_timeout: float = 10.0):
        self.resolver = resolver
        self.tcp_idle_timeout = tcp_idle_timeout  # CoreDNS closes idle TCP after 10 s
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.address: tuple[str, int] | None = None

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port, reuse_address=True)
        port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(host, port))
        self.address = (host, port)
        return self.address

    async def start_on(self, tcp: socket.socket, udp: socket.socket) -> tuple[str, int]:
        """Serve on sockets bound by the caller (say, inside another network namespace)."""
        tcp.setblocking(False)
        udp.setblocking(False)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Udp(self), sock=udp)
        self.address = tcp.getsockname()[:2]
        return self.address

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await aio.wait_for(reader.readexactly(2), self.tcp_idle_timeout)
                    size = struct.unpack("!H", head)[0]
                    request = DNSRecord.parse(await aio.wait_for(
                        reader.readexactly(size), self.tcp_idle_timeout))
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
                    return
                except Exception:
                    return  # undecodable: drop the connection
                packet = (await self.resolver.resolve(request)).pack()
                writer.write(struct.pack("!H", len(packet)) + packet)
                await writer.drain()
        finally:
            writer.close()

