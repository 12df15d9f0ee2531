"""Cluster DNS on the kube-dns Service IP of a node, next to the proxy's rules.

Inside namespaces the test creates: the "node" has the blackhole routes, the proxy's
table (with a kube-dns Service that has no endpoints, so the proxy would reject its
traffic) and the DNS server bound on 10.43.0.10 via ``bind_service_ip``. A pod asks
the server and then reaches the Service it was told about.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import uuid

import pytest
from dnslib import QTYPE, DNSRecord

from pyk8s.dns.hostnet import HostShell, bind_service_ip, unbind_service_ip
from pyk8s.dns.records import ClusterRecords
from pyk8s.dns.serving import DnsServer, Resolver
from pyk8s.proxy.nft import HostCommands
from pyk8s.proxy.proxier import Proxier, ProxySettings
from pyk8s.proxy.rules import NodeConfig

import dnstests_netlab as netlab  # registered by this directory's conftest
from dns_objects import endpoint, endpoint_slice, service

pytestmark = pytest.mark.root

DNS_IP = "10.43.0.10"


async def query_udp(netns: str, name: str) -> DNSRecord:
    sock = netlab.socket_in(netns, socket.SOCK_DGRAM)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, (DNS_IP, 53))
        await loop.sock_sendall(sock, DNSRecord.question(name).pack())
        return DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 4096), 2))
    finally:
        sock.close()


async def query_tcp(netns: str, name: str) -> DNSRecord:
    sock = netlab.socket_in(netns)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (DNS_IP, 53)), 2)
    reader, writer = await asyncio.open_connection(sock=sock)
    packet = DNSRecord.question(name).pack()
    writer.write(struct.pack("!H", len(packet)) + packet)
    size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 2))[0]
    reply = DNSRecord.parse(await reader.readexactly(size))
    writer.close()
    return reply


def bound_sockets(netns: str) -> tuple[socket.socket, socket.socket]:
    def make():
        tcp = socket.create_server((DNS_IP, 53))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((DNS_IP, 53))
        return tcp, udp
    return netlab.in_netns(netns, make)


async def test_pods_resolve_services_and_reach_them(lab):
    pod = lab.add_pod("p1", 11)
    await lab.serve(pod)
    netlab.sh("ip", "-n", lab.node, "route", "add", "blackhole", "10.42.0.0/16")
    netlab.sh("ip", "-n", lab.node, "route", "add", "blackhole", "10.43.0.0/16")
    cfg = NodeConfig(node_name="n1", table="pyk8s-test-" + uuid.uuid4().hex[:6])
    proxier = Proxier(HostCommands(netns=lab.node), cfg, ProxySettings(min_sync_period=0))
    kube_dns = service("kube-dns", DNS_IP, ns="kube-system",
                       ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")))
    web = service("web", "10.43.0.5")
    web_slice = endpoint_slice("web", [endpoint(pod.ip)])
    for obj in (kube_dns, web):
        proxier.on_service_add(obj)
    proxier.on_slice_add(web_slice)
    proxier.set_services_synced()
    proxier.set_slices_synced()
    task = asyncio.create_task(proxier.run())
    shell = HostShell(netns=lab.node)
    records = ClusterRecords()
    records.set_service(web)
    records.set_slice(web_slice)
    server = DnsServer(Resolver(records))
    try:
        await proxier.wait_applied()
        await bind_service_ip(shell, DNS_IP)
        await server.start_on(*bound_sockets(lab.node))
        for ask in (query_udp, query_tcp):
            reply = await ask(pod.netns, "web.ns.svc.cluster.local")
            assert [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A] == ["10.43.0.5"]
        reply = await query_udp(lab.node, "web.ns.svc.cluster.local")  # the node itself
        assert str(reply.rr[0].rdata) == "10.43.0.5"
        assert (await netlab.ask(pod.netns, "10.43.0.5", 80)).startswith("p1 ")
    finally:
        await server.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxier.cleanup()
        await unbind_service_ip(shell, DNS_IP)
    links = netlab.sh("ip", "-n", lab.node, "link", "show").stdout
    tables = netlab.sh("ip", "netns", "exec", lab.node, "nft", "list", "tables").stdout
    assert "pyk8s-dns" not in links and "pyk8s-svc" not in links
    assert tables.strip() == ""
