"""SPDY/3.1: a client and a server connection of ours over a socket pair, a raw
peer that behaves like moby/spdystream (no flow control), and the HTTP upgrade."""
import asyncio
import socket
import struct
import zlib

import pytest

from pyk8s import aio
from pyk8s.kubelet import spdy
from .helpers import poll


async def pair():
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)
    client = spdy.SpdyConnection(ra, wa, server=False)
    server = spdy.SpdyConnection(rb, wb, server=True)
    client.start()
    server.start()
    return client, server


async def read_all(stream) -> bytes:
    out = []
    while chunk := await aio.wait_for(stream.read(), 10):
        out.append(chunk)
    return b"".join(out)


async def test_streams_carry_headers_and_data_both_ways_with_half_close():
    client, server = await pair()
    try:
        opened = []
        for port in ("80", "8080", "9090"):  # several header blocks: one zlib context
            opened.append(await aio.wait_for(client.open_stream(
                {"streamType": "data", "port": port, "requestID": "0"}), 5))
        accepted = [await aio.wait_for(server.accept_stream(), 5) for _ in opened]
        assert [s.id for s in opened] == [1, 3, 5] == [s.id for s in accepted]
        assert [s.headers for s in accepted] == [
            {"streamtype": "data", "port": p, "requestid": "0"} for p in ("80", "8080", "9090")]
        await opened[1].write(b"GET / HTTP/1.0\r\n\r\n")
        await opened[1].close_write()
        assert await read_all(accepted[1]) == b"GET / HTTP/1.0\r\n\r\n"
        await accepted[1].write(b"HTTP/1.0 200 OK\r\n\r\nhello")
        await accepted[1].close_write()
        assert await read_all(opened[1]) == b"HTTP/1.0 200 OK\r\n\r\nhello"
        # The server side opens even-numbered streams.
        back = await aio.wait_for(server.open_stream({"x": "y"}), 5)
        assert back.id == 2 and (await aio.wait_for(client.accept_stream(), 5)).headers == {
            "x": "y"}
    finally:
        await client.close()
        await server.close()


async def test_pings_are_answered_both_ways():
    client, server = await pair()
    try:
        await aio.wait_for(client.ping(), 5)
        await aio.wait_for(server.ping(), 5)
        await aio.wait_for(client.ping(), 5)
    finally:
        await client.close()
        await server.close()


async def test_flow_control_holds_the_writer_at_the_window_until_data_is_read():
    client, server = await pair()
    try:
        out = await aio.wait_for(client.open_stream({"streamtype": "data"}), 5)
        inn = await aio.wait_for(server.accept_stream(), 5)
        payload = bytes(range(256)) * 1024  # 256 KiB, four windows
        writer = asyncio.create_task(out.write(payload))
        # Nobody reads: the writer stops with exactly one window in flight.
        async def held():
            return out._send_window == 0 and inn._buffered == spdy.DEFAULT_WINDOW
        await poll(held, timeout=10, what="the writer to use up the window")
        assert not writer.done()
        received = bytearray()
        while len(received) < len(payload):
            received += await aio.wait_for(inn.read(), 10)
        await aio.wait_for(writer, 10)
        assert bytes(received) == payload
    finally:
        await client.close()
        await server.close()


async def test_reset_ends_both_directions():
    client, server = await pair()
    try:
        out = await aio.wait_for(client.open_stream({"streamtype": "error"}), 5)
        inn = await aio.wait_for(server.accept_stream(), 5)
        await inn.reset()
        assert await aio.wait_for(out.read(), 5) == b""
        with pytest.raises(spdy.SpdyError):
            await out.write(b"x")
    finally:
        await client.close()
        await server.close()


async def test_close_ends_streams_and_accept_on_the_peer():
    client, server = await pair()
    out = await aio.wait_for(client.open_stream({"streamtype": "data"}), 5)
    inn = await aio.wait_for(server.accept_stream(), 5)
    await client.close()
    assert client.closed.is_set()
    assert await aio.wait_for(inn.read(), 5) == b""
    assert await aio.wait_for(server.accept_stream(), 5) is None
    assert await aio.wait_for(server.accept_stream(), 5) is None
    await aio.wait_for(server.closed.wait(), 5)
    assert await out.read() == b""
    with pytest.raises(spdy.SpdyError):
        await client.open_stream({"a": "b"})


class RawPeer:
    """A peer speaking frames by hand, without SETTINGS or WINDOW_UPDATE (as spdystream)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                        zdict=spdy.DICTIONARY)

    async def frame(self):
        first, second = struct.unpack(">II", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(second & 0xFFFFFF)
        return first, second >> 24, payload

    def block(self, headers):
        return self.deflate.compress(spdy.encode_headers(headers)) + self.deflate.flush(
            zlib.Z_SYNC_FLUSH)

    async def send(self, frame):
        self.writer.write(frame)
        await self.writer.drain()


async def test_a_peer_without_flow_control_is_not_held_at_the_window():
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    client = spdy.SpdyConnection(ra, wa, server=False)
    client.start()
    peer = RawPeer(*await asyncio.open_connection(sock=b))
    try:
        opening = asyncio.create_task(client.open_stream({"streamtype": "data", "port": "80"}))
        first, _, settings = await aio.wait_for(peer.frame(), 5)
        assert first == 0x80030000 | spdy.SETTINGS
        first, flags, syn = await aio.wait_for(peer.frame(), 5)
        assert first == 0x80030000 | spdy.SYN_STREAM and flags == 0
        stream_id = struct.unpack(">I", syn[:4])[0]
        headers = spdy.decode_headers(peer.inflate.decompress(syn[10:]))
        assert stream_id == 1 and headers == {"streamtype": "data", "port": "80"}
        await peer.send(spdy.control_frame(spdy.SYN_REPLY, 0,
                                           struct.pack(">I", 1) + peer.block({})))
        stream = await aio.wait_for(opening, 5)
        # 200 KiB leave without any WINDOW_UPDATE from the peer.
        await aio.wait_for(stream.write(b"z" * 200 * 1024), 10)
        got = 0
        while got < 200 * 1024:
            first, flags, payload = await aio.wait_for(peer.frame(), 5)
            if first == 1:
                got += len(payload)
        # A PING of the peer's parity is echoed.
        await peer.send(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 2)))
        while True:
            first, _, payload = await aio.wait_for(peer.frame(), 5)
            if first == 0x80030000 | spdy.PING:
                assert payload == struct.pack(">I", 2)
                break
        # A RST on a stream being opened fails open_stream.
        opening = asyncio.create_task(client.open_stream({"streamtype": "error"}))
        while True:
            first, _, syn = await aio.wait_for(peer.frame(), 5)
            if first == 0x80030000 | spdy.SYN_STREAM:
                peer.inflate.decompress(syn[10:])
                break
        await peer.send(spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 3, 3)))
        with pytest.raises(spdy.SpdyError):
            await aio.wait_for(opening, 5)
    finally:
        await client.close()
        peer.writer.close()


async def test_connect_upgrades_and_returns_the_negotiated_protocol():
    seen = {}

    async def handle(reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        seen["head"] = head
        if "/refuse" in head:
            body = b'{"kind":"Status","message":"nope"}'
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % len(body)
                         + body)
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
        conn = spdy.SpdyConnection(reader, writer, server=True)
        conn.start()
        stream = await conn.accept_stream()
        data = await stream.read()
        await stream.write(data.upper())
        await stream.close_write()
        await conn.closed.wait()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn, proto = await aio.wait_for(spdy.connect(
            f"http://127.0.0.1:{port}/portforward/tok?x=1",
            ["portforward.k8s.io", "other"]), 5)
        assert proto == "portforward.k8s.io"
        assert seen["head"].startswith("POST /portforward/tok?x=1 HTTP/1.1\r\n")
        assert "Upgrade: SPDY/3.1" in seen["head"]
        assert "X-Stream-Protocol-Version: portforward.k8s.io" in seen["head"]
        assert "X-Stream-Protocol-Version: other" in seen["head"]
        stream = await aio.wait_for(conn.open_stream({"port": "80"}), 5)
        await stream.write(b"hello")
        assert await read_all(stream) == b"HELLO"
        await conn.close()
        with pytest.raises(spdy.SpdyError, match="403"):
            await aio.wait_for(spdy.connect(f"http://127.0.0.1:{port}/refuse", ["x"]), 5)
    finally:
        server.close()
        await server.wait_closed()
