"""The DNS server against a real API server: Services and EndpointSlices created through
the API answer over loopback; other names go to a fake upstream on 127.0.0.1."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from pyk8s.client import resources as r
from pyk8s.dns.server import DnsService
from pyk8s.dns.serving import DnsServer

pytestmark = pytest.mark.timeout(120)


class Upstream:
    async def resolve(self, request: DNSRecord) -> DNSRecord:
        reply = request.reply()
        if str(request.q.qname).lower() == "www.example.com." and request.q.qtype == QTYPE.A:
            reply.add_answer(RR("www.example.com.", QTYPE.A, ttl=60, rdata=A("192.0.2.10")))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


async def ask(addr, name: str, qtype: str = "A") -> DNSRecord:
    data = await asyncio.to_thread(DNSRecord.question(name, qtype).send, addr[0], addr[1], False, 2)
    return DNSRecord.parse(data)


def answers(reply: DNSRecord) -> list[str]:
    return [f"{QTYPE[rr.rtype]} {rr.rdata}" for rr in reply.rr]


async def eventually(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)  # polling interval, bounded by the deadline


@pytest.fixture
async def dns(api_client, api_server):
    ns = "dn-" + uuid.uuid4().hex[:6]
    await api_client.create(r.NAMESPACES, {"metadata": {"name": ns}})
    upstream = DnsServer(Upstream())
    up = await upstream.start("127.0.0.1", 0)
    web = await api_client.create(r.SERVICES, {"metadata": {"name": "web"}, "spec": {
        "ports": [{"name": "http", "port": 80}]}}, namespace=ns)
    await api_client.create(r.SERVICES, {"metadata": {"name": "db"}, "spec": {
        "clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}, namespace=ns)
    await api_client.create(r.ENDPOINTSLICES, {
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.42.0.21"], "hostname": "db-0",
                       "conditions": {"ready": True}}]}, namespace=ns)
    await api_client.create(r.SERVICES, {"metadata": {"name": "ext"}, "spec": {
        "type": "ExternalName", "externalName": "www.example.com"}}, namespace=ns)
    service = DnsService(api_client, listen=("127.0.0.1", 0), upstreams=[up],
                         bind_address=False, service_ip="10.43.0.10")
    addr = await service.start()
    yield addr, ns, web["spec"]["clusterIP"]
    await service.stop()
    await upstream.stop()
    await api_client.delete(r.NAMESPACES, ns)


async def test_cluster_records_from_the_api(dns, api_server):
    addr, ns, web_ip = dns
    zone = f"{ns}.svc.cluster.local"
    assert answers(await ask(addr, f"web.{zone}")) == [f"A {web_ip}"]
    assert answers(await ask(addr, f"_http._tcp.web.{zone}", "SRV")) == \
        [f"SRV 0 100 80 web.{zone}."]
    assert answers(await ask(addr, f"db-0.db.{zone}")) == ["A 10.42.0.21"]
    assert answers(await ask(addr, f"_pg._tcp.db.{zone}", "SRV")) == \
        [f"SRV 0 100 5432 db-0.db.{zone}."]
    assert answers(await ask(addr, f"ext.{zone}")) == ["CNAME www.example.com.", "A 192.0.2.10"]
    reverse = ".".join(reversed(web_ip.split("."))) + ".in-addr.arpa"
    assert answers(await ask(addr, reverse, "PTR")) == [f"PTR web.{zone}."]
    assert (await ask(addr, f"nope.{zone}")).header.rcode == RCODE.NXDOMAIN
    # The server registered the kube-dns Service users expect to find.
    out = api_server.kubectl("get", "svc", "kube-dns", "-n", "kube-system",
                             "-o", "jsonpath={.spec.clusterIP}")
    assert out.stdout == "10.43.0.10"


async def test_changes_through_the_api_follow(dns, api_client):
    addr, ns, _ = dns
    name = f"late.{ns}.svc.cluster.local"
    assert (await ask(addr, name)).header.rcode == RCODE.NXDOMAIN
    svc = await api_client.create(r.SERVICES, {"metadata": {"name": "late"}, "spec": {
        "ports": [{"port": 80}]}}, namespace=ns)

    async def resolves():
        return answers(await ask(addr, name)) == [f"A {svc['spec']['clusterIP']}"]
    assert await eventually(resolves)
    await api_client.delete(r.SERVICES, "late", namespace=ns)

    async def gone():
        return (await ask(addr, name)).header.rcode == RCODE.NXDOMAIN
    assert await eventually(gone)
