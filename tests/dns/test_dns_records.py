"""The cluster zone's records, as the Kubernetes DNS specification and CoreDNS give them."""
from __future__ import annotations

from dnslib import QTYPE, RCODE

from pyk8s.dns.records import ClusterRecords

from dns_objects import endpoint, endpoint_slice, service


def zone() -> ClusterRecords:
    z = ClusterRecords(dns_ips=("10.43.0.10",))
    z.set_service(service("web", "10.43.0.5", ports=(("http", 80, "TCP"), ("", 8443, "TCP"))))
    z.set_slice(endpoint_slice("web", [endpoint("10.42.0.11"), endpoint("10.42.0.12", ready=False)]))
    z.set_service(service("db", "None", ports=(("pg", 5432, "TCP"),)))
    db = endpoint("10.42.0.21", hostname="db-0")
    db2 = endpoint("10.42.0.22", hostname="db-1")
    z.set_slice(endpoint_slice("db", [db, db2, endpoint("10.42.0.23")], ports=(("pg", 5432, "TCP"),)))
    z.set_service(service("empty", "None"))
    z.set_service({"metadata": {"namespace": "ns", "name": "ext"},
                   "spec": {"type": "ExternalName", "externalName": "www.example.com"}})
    return z


def values(answer, rtype=None) -> list[str]:
    return sorted(str(rr.rdata) for rr in answer.answers if rtype is None or rr.rtype == rtype)


def test_cluster_ip_service_a_record_and_nodata_for_aaaa():
    z = zone()
    a = z.lookup("web.ns.svc.cluster.local.", QTYPE.A)
    assert a.rcode == RCODE.NOERROR and values(a) == ["10.43.0.5"]
    assert a.answers[0].ttl == 5
    aaaa = z.lookup("WEB.NS.svc.cluster.local", QTYPE.AAAA)  # case-insensitive
    assert aaaa.rcode == RCODE.NOERROR and aaaa.answers == []
    assert aaaa.authority[0].rtype == QTYPE.SOA  # NODATA carries the SOA


def test_missing_names_are_nxdomain_with_soa_and_empty_non_terminals_exist():
    z = zone()
    for name in ("nope.ns.svc.cluster.local", "a.b.web.ns.svc.cluster.local",
                 "web.ns.cluster.local", "foo.cluster.local"):
        ans = z.lookup(name, QTYPE.A)
        assert ans.rcode == RCODE.NXDOMAIN, name
        soa = ans.authority[0]
        assert soa.rtype == QTYPE.SOA and str(soa.rname) == "cluster.local."
        assert str(soa.rdata.mname) == "ns.dns.cluster.local." and soa.rdata.times[4] == 5
    for name in ("svc.cluster.local", "ns.svc.cluster.local", "ns.pod.cluster.local",
                 "cluster.local"):
        ans = z.lookup(name, QTYPE.A)
        assert ans.rcode == RCODE.NOERROR and ans.answers == [], name


def test_headless_service_answers_ready_endpoints_and_hostnames():
    z = zone()
    assert values(z.lookup("db.ns.svc.cluster.local", QTYPE.A)) == \
        ["10.42.0.21", "10.42.0.22", "10.42.0.23"]
    assert values(z.lookup("db-0.db.ns.svc.cluster.local", QTYPE.A)) == ["10.42.0.21"]
    # Without a hostname, the endpoint is named by its dashed IP (CoreDNS).
    assert values(z.lookup("10-42-0-23.db.ns.svc.cluster.local", QTYPE.A)) == ["10.42.0.23"]
    assert z.lookup("db-9.db.ns.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN
    # A headless Service without ready endpoints does not resolve.
    assert z.lookup("empty.ns.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_srv_records_for_named_ports():
    z = zone()
    srv = z.lookup("_http._tcp.web.ns.svc.cluster.local", QTYPE.SRV)
    assert values(srv) == ["0 100 80 web.ns.svc.cluster.local."]
    assert [str(rr.rdata) for rr in srv.additional] == ["10.43.0.5"]
    assert z.lookup("_http._udp.web.ns.svc.cluster.local", QTYPE.SRV).rcode == RCODE.NXDOMAIN
    headless = z.lookup("_pg._tcp.db.ns.svc.cluster.local", QTYPE.SRV)
    assert values(headless) == ["0 33 5432 10-42-0-23.db.ns.svc.cluster.local.",
                                "0 33 5432 db-0.db.ns.svc.cluster.local.",
                                "0 33 5432 db-1.db.ns.svc.cluster.local."]
    assert len(headless.additional) == 3
    # An existing SRV name asked for A: NODATA.
    a = z.lookup("_http._tcp.web.ns.svc.cluster.local", QTYPE.A)
    assert a.rcode == RCODE.NOERROR and a.answers == []


def test_external_name_is_a_cname_to_be_chased():
    z = zone()
    ans = z.lookup("ext.ns.svc.cluster.local", QTYPE.A)
    assert values(ans) == ["www.example.com."] and ans.answers[0].rtype == QTYPE.CNAME
    assert ans.chase == "www.example.com."
    assert z.lookup("ext.ns.svc.cluster.local", QTYPE.CNAME).chase is None


def test_ptr_for_service_and_endpoint_ips_and_none_for_unknown():
    z = zone()
    assert values(z.lookup("5.0.43.10.in-addr.arpa.", QTYPE.PTR)) == ["web.ns.svc.cluster.local."]
    assert values(z.lookup("21.0.42.10.in-addr.arpa", QTYPE.PTR)) == \
        ["db-0.db.ns.svc.cluster.local."]
    assert values(z.lookup("11.0.42.10.in-addr.arpa", QTYPE.PTR)) == \
        ["10-42-0-11.web.ns.svc.cluster.local."]
    assert z.lookup("12.0.42.10.in-addr.arpa", QTYPE.PTR) is None  # not ready: not ours
    assert z.lookup("example.com", QTYPE.A) is None
    z.delete_service(service("web", "10.43.0.5"))
    assert z.lookup("5.0.43.10.in-addr.arpa", QTYPE.PTR) is None
    assert z.lookup("web.ns.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_ipv6_service_and_reverse_name():
    z = ClusterRecords()
    z.set_service(service("v6", "fd43::5"))
    assert values(z.lookup("v6.ns.svc.cluster.local", QTYPE.AAAA)) == ["fd43::5"]
    nibbles = ".".join(reversed("fd430000000000000000000000000005")) + ".ip6.arpa."
    assert values(z.lookup(nibbles, QTYPE.PTR)) == ["v6.ns.svc.cluster.local."]


def test_pod_names_dns_version_and_apex():
    z = zone()
    assert values(z.lookup("10-42-0-99.ns.pod.cluster.local", QTYPE.A)) == ["10.42.0.99"]
    assert z.lookup("not-an-ip.ns.pod.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert values(z.lookup("dns-version.cluster.local", QTYPE.TXT)) == ['"1.1.0"']
    assert z.lookup("cluster.local", QTYPE.SOA).answers[0].rtype == QTYPE.SOA
    ns = z.lookup("cluster.local", QTYPE.NS)
    assert values(ns) == ["ns.dns.cluster.local."]
    assert [str(rr.rdata) for rr in ns.additional] == ["10.43.0.10"]
    assert values(z.lookup("ns.dns.cluster.local", QTYPE.A)) == ["10.43.0.10"]
