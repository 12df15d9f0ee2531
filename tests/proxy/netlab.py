"""A tiny network lab in namespaces the test creates: a "node", pods on its bridge, and
an off-cluster client, so proxy rules can be exercised with real packets.

Safety (DESIGN.md): every namespace here is connected only to the others through
veth pairs; none has a link to the host's namespace, so no packet can leave the
machine. Namespaces, and the nftables table the test applies in the node namespace,
are removed on exit.

Sockets are created inside a namespace by a short-lived thread that ``setns``-es
into it (a thread's network namespace is its own); the socket keeps that namespace
and is then used from the test's event loop like any other.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def in_netns(netns: str, fn, *args):
    """Run ``fn(*args)`` in a fresh thread inside ``netns``; return its result."""
    result: dict = {}

    def target():
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            result["value"] = fn(*args)
        except BaseException as err:  # handed to the caller
            result["error"] = err

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def socket_in(netns: str, kind=socket.SOCK_STREAM, family=socket.AF_INET) -> socket.socket:
    sock = in_netns(netns, socket.socket, family, kind)
    sock.setblocking(False)
    return sock


@dataclass
class Pod:
    name: str
    netns: str
    ip: str
    server: asyncio.base_events.Server | None = None
    udp: asyncio.DatagramTransport | None = None


@dataclass
class Lab:
    """node: bridge br0 10.42.7.1/24 with pods .11, .12, ...; client 198.51.100.2 on a
    veth to the node's 198.51.100.1. The node forwards; the client routes everything
    to the node (it has no other link)."""

    prefix: str = field(default_factory=lambda: "pyk8s-t" + uuid.uuid4().hex[:6])
    node_ip: str = "198.51.100.1"
    client_ip: str = "198.51.100.2"
    bridge_ip: str = "10.42.7.1"
    namespaces: list[str] = field(default_factory=list)
    pods: dict[str, Pod] = field(default_factory=dict)

    @property
    def node(self) -> str:
        return self.prefix + "-node"

    @property
    def client(self) -> str:
        return self.prefix + "-client"

    def _add_ns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def setup(self) -> "Lab":
        self._add_ns(self.node)
        self._add_ns(self.client)
        n = self.node
        sh("ip", "netns", "exec", n, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        sh("ip", "-n", n, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", n, "addr", "add", f"{self.bridge_ip}/24", "dev", "br0")
        sh("ip", "-n", n, "link", "set", "br0", "up")
        sh("ip", "-n", n, "link", "add", "to-client", "type", "veth", "peer", "name", "eth0",
           "netns", self.client)
        sh("ip", "-n", n, "addr", "add", f"{self.node_ip}/24", "dev", "to-client")
        sh("ip", "-n", n, "link", "set", "to-client", "up")
        sh("ip", "-n", self.client, "addr", "add", f"{self.client_ip}/24", "dev", "eth0")
        sh("ip", "-n", self.client, "link", "set", "eth0", "up")
        sh("ip", "-n", self.client, "route", "add", "default", "via", self.node_ip)
        return self

    def add_pod(self, name: str, index: int) -> Pod:
        netns = f"{self.prefix}-{name}"
        self._add_ns(netns)
        ip = f"10.42.7.{index}"
        veth = f"v{index}"
        sh("ip", "-n", self.node, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
           "netns", netns)
        sh("ip", "-n", self.node, "link", "set", veth, "master", "br0")
        sh("ip", "-n", self.node, "link", "set", veth, "up")
        # Hairpin lets a pod reach itself through the bridge (the CNI bridge sets it too).
        sh("ip", "-n", self.node, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        sh("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        sh("ip", "-n", netns, "route", "add", "default", "via", self.bridge_ip)
        pod = Pod(name, netns, ip)
        self.pods[name] = pod
        return pod

    async def serve(self, pod: Pod, port: int = 8080) -> None:
        """A TCP server answering "<pod name> <peer ip>\\n", and a UDP one the same."""
        sock = in_netns(pod.netns, socket.create_server, ("0.0.0.0", port))
        sock.setblocking(False)

        async def handle(reader, writer):
            peer = writer.get_extra_info("peername")[0]
            writer.write(f"{pod.name} {peer}\n".encode())
            await writer.drain()
            writer.close()

        pod.server = await asyncio.start_server(handle, sock=sock)
        usock = in_netns(pod.netns, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
        usock.bind(("0.0.0.0", port))
        usock.setblocking(False)

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(f"{pod.name} {addr[0]}\n".encode(), addr)

        pod.udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, sock=usock)

    def close(self) -> None:
        for pod in self.pods.values():
            if pod.server is not None:
                pod.server.close()
            if pod.udp is not None:
                pod.udp.close()
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


async def ask(netns: str, host: str, port: int, *, timeout: float = 2.0,
              source: str | None = None) -> str:
    """Connect from ``netns`` to host:port; the server's line, or "refused"/"timeout"."""
    sock = socket_in(netns)
    if source:
        sock.bind((source, 0))
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        reader, writer = await asyncio.open_connection(sock=sock)
        line = await asyncio.wait_for(reader.readline(), timeout)
        writer.close()
        return line.decode().strip()
    except ConnectionRefusedError:
        sock.close()
        return "refused"
    except (asyncio.TimeoutError, OSError) as err:
        sock.close()
        return "timeout" if isinstance(err, asyncio.TimeoutError) else f"error {err}"


async def ask_udp(netns: str, host: str, port: int, *, timeout: float = 2.0,
                  source_port: int = 0) -> str:
    sock = socket_in(netns, socket.SOCK_DGRAM)
    if source_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", source_port))  # the same flow each time, for conntrack
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, b"hi")
        data = await asyncio.wait_for(loop.sock_recv(sock, 512), timeout)
        return data.decode().strip()
    except asyncio.TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    finally:
        sock.close()
