"""Forwarding queries the cluster zone does not answer to upstream resolvers.

Role: CoreDNS's ``forward . /etc/resolv.conf``: read the node's nameservers, send
a query over UDP (retrying over TCP when the answer is truncated), try the next
server on timeout or error.

Invariants:
- A forwarded query goes only to the configured upstreams; nothing else is
  contacted. Upstreams equal to the server's own listen addresses are dropped by
  ``read_resolv_conf`` (a query must not loop back to us).
- The answer returned matches the query's ID and question; anything else on the
  socket is ignored until the timeout.
- ``query`` never blocks the loop and gives up after ``timeout`` per upstream.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import struct
from typing import Iterable

from dnslib import DNSRecord

from pyk8s import aio

log = logging.getLogger(__name__)


class ForwardError(Exception):
    """No upstream answered."""


def read_resolv_conf(path: str = "/etc/resolv.conf", *,
                     exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
    """The ``nameserver`` entries of a resolv.conf as (ip, 53), minus ``exclude``."""
    skip = {str(ipaddress.ip_address(ip)) for ip in exclude}
    out = []
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                ip = str(ipaddress.ip_address(parts[1].split("%", 1)[0]))
            except ValueError:
                continue
            if ip not in skip:
                out.append((ip, 53))
    return out


class _Waiter(asyncio.DatagramProtocol):
    def __init__(self, query_id: int, future: asyncio.Future):
        self.query_id, self.future = query_id, future

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.query_id \
                and not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class Forwarder:
    """Sends queries to ``upstreams`` (ip, port) in order, ``timeout`` seconds each."""

    def __init__(self, upstreams: list[tuple[str, int]], *, timeout: float = 2.0,
                 randomize: bool = False):
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.randomize = randomize

    async def query(self, request: DNSRecord) -> DNSRecord:
        if not self.upstreams:
            raise ForwardError("no upstream resolvers configured")
        order = list(self.upstreams)
        if self.randomize:
            random.shuffle(order)
        last: Exception | None = None
        for upstream in order:
            try:
                reply = await self._udp(request, upstream)
                if reply.header.tc:
                    reply = await self._tcp(request, upstream)
                return reply
            except (OSError, asyncio.TimeoutError, ValueError) as err:
                last = err
                log.debug("upstream %s failed: %r", upstream, err)
        raise ForwardError(f"no upstream answered: {last!r}")

    async def _udp(self, request: DNSRecord, upstream: tuple[str, int]) -> DNSRecord:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        family = 10 if ":" in upstream[0] else 2  # AF_INET6 / AF_INET
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Waiter(request.header.id, future), remote_addr=upstream, family=family)
        try:
            transport.sendto(request.pack())
            data = await aio.wait_for(future, self.timeout)
        finally:
            transport.close()
        return self._check(request, data)

    async def _tcp(self, request: DNSRecord, upstream: tuple[str, int]) -> DNSRecord:
        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(*upstream)
            try:
                packet = request.pack()
                writer.write(struct.pack("!H", len(packet)) + packet)
                await writer.drain()
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                return await reader.readexactly(size)
            finally:
                writer.close()

        return self._check(request, await aio.wait_for(exchange(), self.timeout))

    @staticmethod
    def _check(request: DNSRecord, data: bytes) -> DNSRecord:
        reply = DNSRecord.parse(data)
        if reply.header.id != request.header.id or \
                [(str(q.qname).lower(), q.qtype) for q in reply.questions] != \
                [(str(q.qname).lower(), q.qtype) for q in request.questions]:
            raise ValueError("answer does not match the question")
        return reply
