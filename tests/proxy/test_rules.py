"""The nftables ruleset the proxy renders: upstream's structure, rule by rule.

Pure tests read the text; the ``root`` ones hand it to a real ``nft`` inside a
network namespace of their own, so the kernel is the judge of the syntax and of
partial transactions leaving nothing behind.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import uuid

import pytest

from pyk8s.proxy.endpoints import Endpoint, SliceCache
from pyk8s.proxy.rules import (NodeConfig, RuleSet, endpoint_chain_base, port_chain_base,
                               render_service)
from pyk8s.proxy.serviceports import IPV6, ServicePortName, service_ports

from .objects import endpoint, endpoint_slice, service

GOLDEN = pathlib.Path(__file__).parent / "golden"
CFG = NodeConfig(node_name="n1", node_ips=("192.168.1.10",))


def render(svc: dict, slices: list[dict] = (), cfg: NodeConfig = CFG):
    cache = SliceCache(cfg.node_name, cfg.family)
    for s in slices:
        cache.update(s)
    key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
    return render_service(service_ports(svc, cfg.family), cache.endpoints(key), cfg)


def chain(rules, prefix: str) -> tuple[str, tuple[str, ...]]:
    found = [(name, r) for name, r in rules.chains.items() if name.startswith(prefix)]
    assert len(found) == 1, (prefix, list(rules.chains))
    return found[0]


def elements(rules, container: str) -> dict[str, str]:
    return {e.key: e.value for (c, _), e in rules.elements.items() if c == container}


def test_chain_names_hash_as_upstream():
    # The examples in upstream's servicePortChainNameBase / EndpointChainNameBase comments.
    spn = ServicePortName("ns1", "svc1", "p80", "TCP")
    assert port_chain_base(spn) == "ULMVA6XW-ns1/svc1/tcp/p80"
    assert endpoint_chain_base(spn, Endpoint("10.180.0.1", 80)) == \
        "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"


def test_cluster_ip_spreads_evenly_over_ready_endpoints_only():
    rules = render(service("web", "10.43.0.5"), [endpoint_slice("web", [
        endpoint("10.42.0.11"), endpoint("10.42.0.12"), endpoint("10.42.0.13", ready=False)])])
    name, svc_rules = chain(rules, "service-")
    assert svc_rules[-1].startswith("numgen random mod 2 vmap { 0 : goto endpoint-")
    assert "10.42.0.13" not in " ".join(rules.chains)
    assert elements(rules, "service-ips") == {"10.43.0.5 . tcp . 80": f"goto {name}"}
    assert elements(rules, "cluster-ips") == {"10.43.0.5": ""}
    _, ep_rules = chain(rules, "endpoint-" + endpoint_chain_base(
        ServicePortName("ns", "web", "http"), Endpoint("10.42.0.11", 8080)))
    assert ep_rules == ("ip saddr 10.42.0.11 jump mark-for-masquerade",
                        "meta l4proto tcp dnat to 10.42.0.11:8080")
    # Off-cluster clients of the ClusterIP are masqueraded (the local-traffic detector).
    assert svc_rules[0] == ("ip daddr 10.43.0.5 tcp dport 80 ip saddr != 10.42.0.0/16 "
                            "jump mark-for-masquerade")


def test_service_without_endpoints_is_rejected_not_dropped():
    rules = render(service("web", "10.43.0.5", type="NodePort", node_ports={"http": 30080}))
    assert rules.chains == {}
    assert elements(rules, "no-endpoint-services") == {"10.43.0.5 . tcp . 80": "goto reject-chain"}
    assert elements(rules, "no-endpoint-nodeports") == {"tcp . 30080": "goto reject-chain"}
    assert elements(rules, "service-ips") == {}
    # The element carries the service port's name, as upstream's comment.
    assert next(iter(rules.elements.values())).comment in ("", "ns/web:http")


def test_nodeport_goes_through_the_external_chain_which_masquerades():
    rules = render(service("web", "10.43.0.5", type="NodePort", node_ports={"http": 30080}),
                   [endpoint_slice("web", [endpoint("10.42.0.11", node="n2")])])
    ext, ext_rules = chain(rules, "external-")
    svc, _ = chain(rules, "service-")
    assert elements(rules, "service-nodeports") == {"tcp . 30080": f"goto {ext}"}
    assert ext_rules == ("jump mark-for-masquerade", f"goto {svc}")


def test_external_policy_local_keeps_source_and_drops_without_local_endpoints():
    svc = service("web", "10.43.0.5", type="NodePort", node_ports={"http": 30080},
                  externalTrafficPolicy="Local")
    remote_only = render(svc, [endpoint_slice("web", [endpoint("10.42.0.11", node="n2")])])
    ext, ext_rules = chain(remote_only, "external-")
    svc_chain, _ = chain(remote_only, "service-")
    # Pods and the node itself still reach the Service (short-circuit to Cluster
    # endpoints); everyone else is dropped.
    assert ext_rules == (
        f'ip saddr 10.42.0.0/16 goto {svc_chain} comment "short-circuit pod traffic"',
        'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'fib saddr type local goto {svc_chain} comment "short-circuit local traffic"')
    assert elements(remote_only, "no-endpoint-nodeports") == {"tcp . 30080": "drop"}
    assert elements(remote_only, "service-nodeports") == {"tcp . 30080": f"goto {ext}"}

    mixed = render(svc, [endpoint_slice("web", [endpoint("10.42.0.11", node="n2"),
                                                endpoint("10.42.0.12", node="n1")])])
    local, local_rules = chain(mixed, "local-")
    _, ext_rules = chain(mixed, "external-")
    assert ext_rules[-1] == f"goto {local}"
    assert "jump mark-for-masquerade" not in ext_rules  # the client's address is kept
    assert local_rules == (f"numgen random mod 1 vmap {{ 0 : goto endpoint-"
                           f"{endpoint_chain_base(ServicePortName('ns', 'web', 'http'), Endpoint('10.42.0.12', 8080))} }}",)
    assert elements(mixed, "no-endpoint-nodeports") == {}


def test_internal_policy_local_without_local_endpoints_drops_cluster_ip_traffic():
    rules = render(service("web", "10.43.0.5", internalTrafficPolicy="Local"),
                   [endpoint_slice("web", [endpoint("10.42.0.11", node="n2")])])
    assert elements(rules, "no-endpoint-services") == {"10.43.0.5 . tcp . 80": "drop"}
    assert rules.chains == {}


def test_load_balancer_ingress_and_source_ranges():
    svc = service("lb", "10.43.0.7", type="LoadBalancer", node_ports={"http": 30081},
                  loadBalancerSourceRanges=["192.168.1.0/24"],
                  status={"loadBalancer": {"ingress": [{"ip": "192.168.1.10"},
                                                       {"ip": "203.0.113.9", "ipMode": "Proxy"}]}})
    rules = render(svc, [endpoint_slice("lb", [endpoint("10.42.0.11")])])
    ext, _ = chain(rules, "external-")
    fw, fw_rules = chain(rules, "firewall-")
    assert elements(rules, "service-ips") == {
        "10.43.0.7 . tcp . 80": f"goto {chain(rules, 'service-')[0]}",
        "192.168.1.10 . tcp . 80": f"goto {ext}"}  # the Proxy-mode ingress is not captured
    assert elements(rules, "firewall-ips") == {"192.168.1.10 . tcp . 80": f"goto {fw}"}
    # The node's own address is in the allowed range, so the VIP itself is allowed too.
    assert fw_rules == ("ip saddr != { 192.168.1.0/24, 192.168.1.10 } drop",)


def test_external_ips_are_captured_like_load_balancer_ips():
    rules = render(service("web", "10.43.0.5", externalIPs=["192.168.1.50", "fd00::1"]),
                   [endpoint_slice("web", [endpoint("10.42.0.11")])])
    ext, ext_rules = chain(rules, "external-")
    assert elements(rules, "service-ips")["192.168.1.50 . tcp . 80"] == f"goto {ext}"
    assert not any("fd00" in k for k in elements(rules, "service-ips"))  # other family


def test_session_affinity_uses_per_endpoint_sets_with_the_timeout():
    svc = service("web", "10.43.0.5", sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}})
    rules = render(svc, [endpoint_slice("web", [endpoint("10.42.0.11"), endpoint("10.42.0.12")])])
    assert sorted(rules.affinity_sets.values()) == [30, 30]
    _, svc_rules = chain(rules, "service-")
    sets = [r for r in svc_rules if r.startswith("ip saddr @affinity-")]
    assert len(sets) == 2 and all(" goto endpoint-" in r for r in sets)
    assert svc_rules[-1].startswith("numgen random mod 2")
    for name, ep_rules in rules.chains.items():
        if name.startswith("endpoint-"):
            assert ep_rules[1] == f"update @affinity-{name[len('endpoint-'):]} {{ ip saddr }}"


def test_terminating_endpoints_only_when_nothing_is_ready():
    ready_and_terminating = [endpoint("10.42.0.11"),
                             endpoint("10.42.0.12", ready=False, serving=True, terminating=True)]
    rules = render(service("web", "10.43.0.5"), [endpoint_slice("web", ready_and_terminating)])
    assert "10.42.0.12" not in " ".join(rules.chains)
    only_terminating = [endpoint("10.42.0.12", ready=False, serving=True, terminating=True),
                        endpoint("10.42.0.13", ready=False, serving=False, terminating=True)]
    rules = render(service("web", "10.43.0.5"), [endpoint_slice("web", only_terminating)])
    assert "10.42.0.12" in " ".join(rules.chains)
    assert "10.42.0.13" not in " ".join(rules.chains)


def test_topology_hints_keep_traffic_in_the_node_zone():
    cfg = NodeConfig(node_name="n1", node_labels=(("topology.kubernetes.io/zone", "a"),))
    eps = [endpoint("10.42.0.11", zones=("a",)), endpoint("10.42.0.12", zones=("b",))]
    rules = render(service("web", "10.43.0.5"), [endpoint_slice("web", eps)], cfg)
    assert "10.42.0.12" not in " ".join(rules.chains)
    # One ready endpoint without hints: hints are ignored for the whole Service.
    eps.append(endpoint("10.42.0.13"))
    rules = render(service("web", "10.43.0.5"), [endpoint_slice("web", eps)], cfg)
    assert "10.42.0.12" in " ".join(rules.chains)


def test_headless_and_external_name_services_get_no_rules():
    assert render(service("h", "None"), [endpoint_slice("h", [endpoint("10.42.0.11")])]).chains == {}
    ext = service("e", "", type="ExternalName", externalName="example.com")
    assert service_ports(ext) == []


def test_ipv6_family_uses_ip6_and_bracketed_dnat():
    cfg = NodeConfig(node_name="n1", family=IPV6, cluster_cidrs=("fd42::/56",),
                     service_cidrs=("fd43::/112",))
    rules = render(service("web", "fd43::5"),
                   [endpoint_slice("web", [endpoint("fd42::11")], address_type="IPv6")], cfg)
    _, ep_rules = chain(rules, "endpoint-")
    assert ep_rules[-1] == "meta l4proto tcp dnat to [fd42::11]:8080"
    assert "__fd42..11/8080" in chain(rules, "endpoint-")[0]


def golden_services() -> dict:
    """A cluster's worth of Service kinds, for the golden ruleset and the kernel check."""
    objs = [
        (service("web", "10.43.0.5", sessionAffinity="ClientIP",
                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}}),
         [endpoint_slice("web", [endpoint("10.42.0.11"), endpoint("10.42.0.12", node="n2"),
                                 endpoint("10.42.0.13", ready=False)])]),
        (service("np", "10.43.0.6", type="NodePort", node_ports={"http": 30080},
                 externalTrafficPolicy="Local"),
         [endpoint_slice("np", [endpoint("10.42.0.21"), endpoint("10.42.0.22", node="n2")])]),
        (service("lb", "10.43.0.7", type="LoadBalancer", node_ports={"http": 30081},
                 loadBalancerSourceRanges=["192.168.0.0/16"],
                 status={"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}),
         [endpoint_slice("lb", [endpoint("10.42.0.31")])]),
        (service("dns", "10.43.0.10", ns="kube-system",
                 ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"))), []),
        (service("ext", "10.43.0.8", externalIPs=["192.168.1.50"],
                 internalTrafficPolicy="Local"),
         [endpoint_slice("ext", [endpoint("10.42.0.41", node="n2")])]),
    ]
    out = {}
    for svc, slices in objs:
        out[(svc["metadata"]["namespace"], svc["metadata"]["name"])] = render(svc, slices)
    return out


def test_full_ruleset_matches_golden():
    text = RuleSet(CFG).plan_full(golden_services()).text
    path = GOLDEN / "ruleset.nft"
    if os.environ.get("PYK8S_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def many_services(n: int) -> dict:
    out = {}
    for i in range(n):
        ip = f"10.43.{i // 250}.{i % 250 + 1}"
        svc = service(f"s{i}", ip)
        out[("ns", f"s{i}")] = render(svc, [endpoint_slice(f"s{i}", [endpoint(f"10.42.{i // 250}.{i % 250 + 1}")])])
    return out


def test_partial_plan_touches_only_the_changed_service():
    services = many_services(1000)
    rs = RuleSet(CFG)
    rs.commit(rs.plan_full(services))
    changed = render(service("s7", "10.43.0.8"), [endpoint_slice("s7", [
        endpoint("10.42.0.8"), endpoint("10.42.9.9")])])
    plan = rs.plan_partial({("ns", "s7"): changed})
    assert not plan.full
    lines = plan.text.splitlines()
    assert all("ns/s7/" in line for line in lines), lines
    # The existing endpoint chain is unchanged and not rewritten; the new one is added.
    assert sum(line.startswith("add chain") for line in lines) == 1
    assert sum(line.startswith("flush chain") for line in lines) == 1  # the service chain
    assert len(lines) < 10


def test_deleting_a_service_removes_its_chains_sets_and_elements():
    svc = service("web", "10.43.0.5", type="NodePort", node_ports={"http": 30080},
                  sessionAffinity="ClientIP")
    rs = RuleSet(CFG)
    rs.commit(rs.plan_full({("ns", "web"): render(svc, [endpoint_slice("web", [endpoint("10.42.0.11")])])}))
    text = rs.plan_partial({("ns", "web"): None}).text
    assert sorted(re.findall(r"^delete element ip pyk8s (\S+)", text, re.M)) == \
        ["cluster-ips", "service-ips", "service-nodeports"]
    assert len(re.findall(r"^delete chain ", text, re.M)) == 3  # service, external, endpoint
    assert len(re.findall(r"^delete set ip pyk8s affinity-", text, re.M)) == 1
    # Elements go before the chains they point at; rules before the sets they name.
    assert text.index("delete element") < text.index("delete chain")
    assert text.index("flush chain") < text.index("delete set")


def test_deferred_chain_deletion_for_older_kernels():
    rs = RuleSet(CFG, defer_chain_delete=True)
    rs.commit(rs.plan_full({("ns", "web"): render(service("web", "10.43.0.5"), [
        endpoint_slice("web", [endpoint("10.42.0.11")])])}))
    plan = rs.plan_partial({("ns", "web"): None})
    assert "delete chain" not in plan.text and "flush chain" in plan.text
    rs.commit(plan, now=100.0)
    assert rs.plan_cleanup(100.5, 1.0) == ("", [])
    text, due = rs.plan_cleanup(101.0, 1.0)
    assert len(due) == 2 and text.count("delete chain") == 2


def test_a_shared_element_passes_to_the_next_claimant():
    a = render(service("a", "10.43.0.5", externalIPs=["192.168.1.50"]),
               [endpoint_slice("a", [endpoint("10.42.0.11")])])
    b = render(service("b", "10.43.0.6", externalIPs=["192.168.1.50"]),
               [endpoint_slice("b", [endpoint("10.42.0.12")])])
    rs = RuleSet(CFG)
    full = rs.plan_full({("ns", "a"): a, ("ns", "b"): b})
    assert full.text.count("192.168.1.50 . tcp . 80") == 1  # only the first claimant's
    rs.commit(full)
    text = rs.plan_partial({("ns", "a"): None}).text
    ext_b = chain(b, "external-")[0]
    assert f"add element ip pyk8s service-ips {{ 192.168.1.50 . tcp . 80 : goto {ext_b} }}" in text


# --- the kernel's verdict -------------------------------------------------------------

@pytest.fixture
def netns():
    name = "pyk8s-t" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def nft(netns: str, *args: str, stdin: str | None = None) -> str:
    r = subprocess.run(["ip", "netns", "exec", netns, "nft", *args], input=stdin,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def kernel_chains(netns: str, table: str) -> set[str]:
    out = nft(netns, "list", "chains", "ip")
    names, current = set(), None
    for line in out.splitlines():
        m = re.match(r"\s*table ip (\S+) \{", line)
        if m:
            current = m.group(1)
        m = re.match(r"\s*chain (\S+) \{", line)
        if m and current == table:
            names.add(m.group(1))
    return names


@pytest.mark.root
def test_kernel_accepts_full_and_partial_transactions_without_leaks(netns):
    table = "pyk8s-test-" + uuid.uuid4().hex[:6]
    cfg = NodeConfig(node_name="n1", node_ips=("192.168.1.10",), table=table)
    services = {k: v for k, v in golden_services().items()}
    rs = RuleSet(cfg)
    plan = rs.plan_full(services)
    nft(netns, "-f", "-", stdin=plan.text)
    rs.commit(plan)
    steps = [
        {("ns", "web"): render(service("web", "10.43.0.5"), [endpoint_slice("web", [
            endpoint("10.42.0.12"), endpoint("10.42.0.14")])], cfg)},  # affinity off, ep swap
        {("ns", "np"): None, ("ns", "lb"): None},  # deleted
        {("kube-system", "dns"): render(service("dns", "10.43.0.10", ns="kube-system",
                                                ports=(("dns", 53, "UDP"),)),
                                        [endpoint_slice("dns", [endpoint("10.42.0.2")], ns="kube-system",
                                                        ports=(("dns", 53, "UDP"),))], cfg)},
        {("ns", "web"): render(service("web", "10.43.0.5", sessionAffinity="ClientIP",
                                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
                               [endpoint_slice("web", [endpoint("10.42.0.12")])], cfg)},
        {("ns", "web"): render(service("web", "10.43.0.5", sessionAffinity="ClientIP",
                                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": 90}}),
                               [endpoint_slice("web", [endpoint("10.42.0.12")])], cfg)},
    ]
    for change in steps:
        plan = rs.plan_partial(change)
        nft(netns, "-f", "-", stdin=plan.text)
        rs.commit(plan)
    wanted = {c for rules in rs.services.values() for c in rules.chains}
    assert {c for c in kernel_chains(netns, table) if "/" in c} == wanted
    listing = nft(netns, "list", "table", "ip", table)
    assert "timeout 1m30s" in listing  # the affinity set was recreated with the new timeout
    assert "10.43.0.6" not in listing and "10.43.0.7" not in listing
    nft(netns, "delete", "table", "ip", table)


@pytest.mark.root
def test_kernel_accepts_ipv6_and_explicit_nodeport_addresses(netns):
    table = "pyk8s-test-" + uuid.uuid4().hex[:6]
    cfg = NodeConfig(node_name="n1", family=IPV6, table=table, cluster_cidrs=("fd42::/56",),
                     service_cidrs=("fd43::/112",), nodeport_addresses=("fd00::10",))
    rules = render(service("web", "fd43::5", type="NodePort", node_ports={"http": 30080},
                           sessionAffinity="ClientIP"),
                   [endpoint_slice("web", [endpoint("fd42::11")], address_type="IPv6")], cfg)
    nft(netns, "-f", "-", stdin=RuleSet(cfg).plan_full({("ns", "web"): rules}).text)
    listing = nft(netns, "list", "table", "ip6", table)
    assert "dnat to [fd42::11]:8080" in listing and "fd00::10" in listing
    nft(netns, "delete", "table", "ip6", table)
