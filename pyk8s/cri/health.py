"""The gRPC health check (`grpc.health.v1.Health/Check`) for the kubelet's grpc probes.

Role: only `pyk8s.cri` may import gRPC (STYLE item 6), so the kubelet's grpc probe
calls `check_health` here. It dials the address, sends one `HealthCheckRequest`
and answers as upstream's probe/grpc/grpc.go does: `(True, "service is serving")`
when the service is SERVING, else `(False, <upstream's message>)`.

Invariants:
- The messages are encoded by hand (field 1 of each message), so no generated
  health stubs are needed; an unknown status number prints as the number.
- Every failure is a verdict, never an exception: connection errors, timeouts and
  servers without the health service all answer `(False, message)`.
- The whole check (connect and call) is bounded by `timeout` seconds.
"""
from __future__ import annotations

import asyncio

import grpc

from pyk8s import aio

CHECK_METHOD = "/grpc.health.v1.Health/Check"
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVING = 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_request(service: str) -> bytes:
    """A `HealthCheckRequest{service}`; the empty service is the empty message."""
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data if data else b""


def decode_status(message: bytes) -> int:
    """The `status` (field 1, varint) of a `HealthCheckResponse`; 0 when absent."""
    i, status = 0, 0
    while i < len(message):
        tag = message[i]
        i += 1
        if tag == 0x08:
            shift = 0
            status = 0
            while i < len(message):
                byte = message[i]
                i += 1
                status |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
        else:  # not expected in a HealthCheckResponse: stop rather than misparse
            break
    return status


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


async def check_health(address: str, service: str, *, timeout: float) -> tuple[bool, str]:
    """One health check of `address` (host:port), plaintext, as upstream's grpc probe."""
    channel = grpc.aio.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
    try:
        try:
            await aio.wait_for(channel.channel_ready(), timeout)
        except asyncio.TimeoutError:
            return False, (f"timeout: failed to connect service \"{address}\" within "
                           f"{_duration(timeout)}: context deadline exceeded")
        call = channel.unary_unary(CHECK_METHOD, request_serializer=None,
                                   response_deserializer=None)
        try:
            reply = await call(encode_request(service), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return False, ("error: this server does not implement the grpc health "
                               f"protocol (grpc.health.v1.Health): {e.details()}")
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, (f"timeout: health rpc did not complete within "
                               f"{_duration(timeout)}")
            return False, (f"error: health rpc probe failed: rpc error: code = "
                           f"{e.code().name.title().replace('_', '')} desc = {e.details()}")
        status = decode_status(reply)
        if status != SERVING:
            name = STATUS_NAMES.get(status, str(status))
            return False, f"service unhealthy (responded with \"{name}\")"
        return True, "service is serving"
    finally:
        await channel.close()
