"""A stand-in kubelet for the API server's node-proxying tests: a raw TLS server that
records each request head and answers exec/attach/portForward upgrades by itself.

- WebSocket upgrades get a real handshake; with ``v5.channel.k8s.io`` or
  ``v4.channel.k8s.io`` it plays a tiny exec: writes ``ran <target>`` on the stdout
  channel, echoes what arrives on stdin while ``input=1``, and closes with a Success
  Status on the error channel once stdin closes (or at once without stdin). Any other
  subprotocol echoes each frame back.
- ``Upgrade: SPDY/3.1`` answers 101 and echoes raw bytes until the peer closes.
- A path ending in ``/broken`` answers 400 with a Status (no upgrade).
- The metrics scraper's ``/stats/summary`` gets a 404 and is not recorded.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import struct

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


class FakeKubelet:
    def __init__(self, context: ssl.SSLContext):
        self.context = context
        self.requests: list[tuple[str, str, dict]] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                 ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *rest = head.rstrip("\r\n").split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = {}
            for h in rest:
                k, _, v = h.partition(":")
                k = k.strip().lower()
                headers[k] = f"{headers[k]},{v.strip()}" if k in headers else v.strip()
            if not target.startswith("/stats/"):
                # The API server's metrics scraper asks every node for /stats/summary
                # (answered 404 below) at any time: left out, so ``requests[-1]`` is the
                # last request a test sent through the API server.
                self.requests.append((method, target, headers))
            if target.split("?")[0].endswith("/broken"):
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                   "status": "Failure", "message": "container is broken",
                                   "reason": "BadRequest", "code": 400}).encode()
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json"
                             b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            elif headers.get("upgrade", "").lower() == "websocket":
                await self._websocket(reader, writer, target, headers)
            elif headers.get("upgrade", "").upper().startswith("SPDY/3.1"):
                version = headers.get("x-stream-protocol-version", "").split(",")[0]
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: "
                             + version.encode() + b"\r\n\r\n")
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()

    async def _websocket(self, reader, writer, target: str, headers: dict) -> None:
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")
                   if p.strip()]
        chosen = offered[0] if offered else ""
        accept = base64.b64encode(hashlib.sha1(
            (headers["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        writer.write((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                      + (f"Sec-WebSocket-Protocol: {chosen}\r\n" if chosen else "")
                      + "\r\n").encode())
        channels = chosen in ("v5.channel.k8s.io", "v4.channel.k8s.io")
        if channels:
            writer.write(_frame(2, b"\x01ran " + target.encode() + b"\n"))
        stdin = "input=1" in target
        while channels and stdin or not channels:
            opcode, data = await _read_frame(reader)
            if opcode == 8:
                break
            if not channels:
                writer.write(_frame(opcode, data))
            elif data[:1] == b"\x00":
                writer.write(_frame(2, b"\x01" + data[1:]))
            elif data[:1] == b"\xff":  # v5: the client closed a stream (stdin)
                break
            await writer.drain()
        if channels:
            writer.write(_frame(2, b"\x03" + json.dumps(
                {"metadata": {}, "status": "Success"}).encode()))
        writer.write(_frame(8, struct.pack("!H", 1000)))
        await writer.drain()
