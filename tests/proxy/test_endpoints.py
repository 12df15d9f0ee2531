"""EndpointSlices merged per service port, as upstream's EndpointSliceCache."""
from __future__ import annotations

from pyk8s.proxy.endpoints import SliceCache
from pyk8s.proxy.serviceports import ServicePortName, service_ports

from .objects import endpoint, endpoint_slice, service

WEB = ("ns", "web")
HTTP = ServicePortName("ns", "web", "http", "TCP")


def test_endpoints_merge_across_slices_sorted_and_deduplicated():
    cache = SliceCache("n1")
    assert cache.update(endpoint_slice("web", [endpoint("10.42.0.12"), endpoint("10.42.0.9")],
                                       name="web-a")) == WEB
    cache.update(endpoint_slice("web", [endpoint("10.42.0.12", node="n2"), endpoint("10.42.0.3")],
                                name="web-b"))
    eps = cache.endpoints(WEB)[HTTP]
    assert [str(e) for e in eps] == ["10.42.0.12:8080", "10.42.0.3:8080", "10.42.0.9:8080"]
    assert next(e for e in eps if e.ip == "10.42.0.12").is_local  # the local copy wins


def test_an_unchanged_slice_is_not_a_change_and_removal_is():
    cache = SliceCache("n1")
    s = endpoint_slice("web", [endpoint("10.42.0.12")])
    assert cache.update(s) == WEB
    assert cache.update(s) is None
    s2 = dict(s, metadata=dict(s["metadata"], resourceVersion="7", annotations={"x": "y"}))
    assert cache.update(s2) is None  # nothing the proxy uses changed
    assert cache.update(s, removed=True) == WEB
    assert cache.endpoints(WEB) == {}
    assert cache.update(s, removed=True) is None


def test_conditions_default_to_ready_and_serving():
    cache = SliceCache("n1")
    cache.update(endpoint_slice("web", [endpoint("10.42.0.12", ready=None),
                                        endpoint("10.42.0.13", ready=False, terminating=True)]))
    a, b = cache.endpoints(WEB)[HTTP]
    assert (a.ready, a.serving, a.terminating) == (True, True, False)
    assert (b.ready, b.serving, b.terminating) == (False, True, True)


def test_other_families_fqdn_and_unlabelled_slices_are_ignored():
    cache = SliceCache("n1")
    # Not of this proxier's family: nothing to program, so not even a change.
    assert cache.update(endpoint_slice("web", [endpoint("fd00::1")], address_type="IPv6")) is None
    assert cache.endpoints(WEB) == {}
    assert cache.update(endpoint_slice("web", [endpoint("a.example")], name="f",
                                       address_type="FQDN")) is None
    assert cache.endpoints(WEB) == {}
    orphan = endpoint_slice("web", [endpoint("10.42.0.1")])
    del orphan["metadata"]["labels"]
    assert cache.update(orphan) is None


def test_service_ports_follow_upstream_service_info():
    svc = service("web", "10.43.0.5", type="LoadBalancer", node_ports={"http": 30080},
                  externalTrafficPolicy="Local", healthCheckNodePort=31000,
                  sessionAffinity="ClientIP", externalIPs=["192.168.1.5"],
                  loadBalancerSourceRanges=[" 10.0.0.0/8 "],
                  status={"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}})
    (port,) = service_ports(svc)
    assert port.name == HTTP and str(port.name) == "ns/web:http"
    assert (port.cluster_ip, port.port, port.node_port) == ("10.43.0.5", 80, 30080)
    assert port.affinity_timeout == 10800  # v1.DefaultClientIPServiceAffinitySeconds
    assert port.external_policy_local and port.health_check_node_port == 31000
    assert port.load_balancer_source_ranges == ("10.0.0.0/8",)  # whitespace trimmed
    assert port.uses_cluster_endpoints and port.uses_local_endpoints
    # externalTrafficPolicy only matters for externally reachable Services.
    plain = service("p", "10.43.0.6", externalTrafficPolicy="Local")
    assert not service_ports(plain)[0].external_policy_local
    # A Service owned by another proxy implementation is left alone.
    other = service("o", "10.43.0.7")
    other["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "cilium"}
    assert service_ports(other) == []
