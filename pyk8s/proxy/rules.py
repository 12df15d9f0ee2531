"""The proxy's nftables table, rendered from service ports and endpoints (pure).

Role: upstream's ``pkg/proxy/nftables/proxier.go`` as text. ``render_service`` turns
one Service's ports and endpoints into chains, per-endpoint affinity sets and map
elements; ``RuleSet`` knows what the kernel holds and plans ``nft -f`` transactions:
a full one that atomically replaces the table ``ip pyk8s`` (``ip6 pyk8s``), or a
partial one that rewrites only the chains and elements of changed Services.

The table's structure is upstream's: base chains hook prerouting/input/forward/
output/postrouting; ``services`` dispatches ``daddr . l4proto . dport`` through the
``service-ips`` verdict map and NodePorts through ``service-nodeports``; a
``service-…`` chain spreads connections with ``numgen random mod N vmap`` over
``endpoint-…`` chains that DNAT; ``external-…`` chains handle NodePort,
LoadBalancer and externalIP traffic (masquerade, Local-policy short-circuits);
``local-…`` chains hold node-local endpoints; ``firewall-…`` chains enforce
loadBalancerSourceRanges; ``affinity-…`` sets (dynamic, with timeout) pin clients;
``no-endpoint-services``/``no-endpoint-nodeports`` reject (or drop) traffic for
Services without usable endpoints; ``cluster-ips-check`` rejects unknown ports of
ClusterIPs and drops unallocated ClusterIPs; ``masquerading`` SNATs marked packets.
Beyond upstream's nftables mode, NodePorts also answer on localhost (as the
iptables mode with ``route_localnet``), guarded by a rule dropping new connections
to 127.0.0.0/8 from other sources.

Invariants:
- Nothing here touches the system; the same inputs give the same text.
- A partial plan references only chains and elements of the Services it is given:
  its size is O(changed Services), never O(all Services).
- Every map element that points to a chain is added after the chain exists and
  deleted before the chain is; an affinity set is deleted only after every rule
  naming it was flushed.
- Two Services claiming the same element key (say, one externalIP:port): the
  first claimant's value is in the kernel; when it leaves, the next one's is.
- After a failed transaction the kernel state is unknown: ``invalidate`` makes the
  next plan a full one.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .endpoints import Endpoint, categorize
from .serviceports import IPV4, IPV6, ServicePort, ServicePortName

TABLE = "pyk8s"
CLUSTER_CIDR = "10.42.0.0/16"
SERVICE_CIDR = "10.43.0.0/16"

# Chain, set and map names of the base structure (upstream's names).
SERVICES = "services"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NODEPORT_IPS = "nodeport-ips"
CLUSTER_IPS = "cluster-ips"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHECK = "firewall-check"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"

# (name, type, hook, priority). Filter chains run before DNAT (dstnat - 10) so they
# see the original destination; cluster-ips-check runs after it (dstnat + 10).
BASE_CHAINS = (
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
# (target, from base chain, condition). Reject is only valid from input, forward
# and output hooks on older kernels, hence the endpoint checks are not in prerouting.
JUMPS = (
    (NODEPORT_ENDPOINTS_CHECK, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-forward", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-output", "ct state new"),
    (FIREWALL_CHECK, "filter-prerouting", "ct state new"),
    (FIREWALL_CHECK, "filter-output", "ct state new"),
    (SERVICES, "nat-output", ""),
    (SERVICES, "nat-prerouting", ""),
    (MASQUERADING, "nat-postrouting", ""),
    (CLUSTER_IPS_CHECK, "filter-forward", "ct state new"),
    (CLUSTER_IPS_CHECK, "filter-output-post-dnat", "ct state new"),
)

NAME_LENGTH_MAX = 256
NAME_BASE_LENGTH_MAX = NAME_LENGTH_MAX - 16  # room for the longest prefix


@dataclass(frozen=True)
class NodeConfig:
    """Everything about the node and the proxy's flags that shapes the rules.

    ``nodeport_addresses`` None means NodePorts answer on every local address
    (``fib daddr type local``); otherwise only on those IPs. ``localhost_nodeports``
    (IPv4 only) lets 127.0.0.1:<nodePort> work, which needs ``route_localnet``.
    ``cluster_cidrs`` is the local-traffic detector (traffic from elsewhere to a
    ClusterIP is masqueraded); empty disables it, as upstream's no-op detector.
    """

    node_name: str = ""
    family: str = IPV4
    table: str = TABLE
    node_ips: tuple[str, ...] = ()
    node_labels: tuple[tuple[str, str], ...] = ()
    cluster_cidrs: tuple[str, ...] = (CLUSTER_CIDR,)
    service_cidrs: tuple[str, ...] = (SERVICE_CIDR,)
    nodeport_addresses: tuple[str, ...] | None = None
    localhost_nodeports: bool = True
    masquerade_all: bool = False
    masquerade_bit: int = 14

    @property
    def ip(self) -> str:
        return "ip6" if self.family == IPV6 else "ip"

    @property
    def addr_type(self) -> str:
        return "ipv6_addr" if self.family == IPV6 else "ipv4_addr"

    @property
    def table_ref(self) -> str:
        return f"{self.ip} {self.table}"

    @property
    def masquerade_mark(self) -> str:
        return f"{1 << self.masquerade_bit:#08x}"

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.node_labels)

    @property
    def local_cidrs(self) -> tuple[str, ...]:
        """The cluster CIDRs of this family: the local-traffic detector."""
        return tuple(c for c in self.cluster_cidrs if _family_of(c) == self.family)

    @property
    def localhost_enabled(self) -> bool:
        return self.localhost_nodeports and self.family == IPV4

    @property
    def no_localhost(self) -> str:
        if self.family == IPV6:
            return "ip6 daddr != ::1"
        return "" if self.localhost_enabled else "ip daddr != 127.0.0.0/8"


def _set_expr(values: Iterable[str]) -> str:
    items = list(values)
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _hash_and_truncate(name: str) -> str:
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    name = digest[:8] + "-" + name
    if len(name) > NAME_BASE_LENGTH_MAX:
        name = name[:NAME_BASE_LENGTH_MAX - 3] + "..."
    return name


def port_chain_base(spn: ServicePortName) -> str:
    """``HASH-ns/name/proto/port``; "/" cannot occur in the parts, so it separates them."""
    return _hash_and_truncate(f"{spn.namespace}/{spn.name}/{spn.protocol.lower()}/{spn.port}")


def endpoint_chain_base(spn: ServicePortName, ep: Endpoint) -> str:
    ip = ep.ip.replace(":", ".")  # ":" is not allowed in a chain name
    return _hash_and_truncate(
        f"{spn.namespace}/{spn.name}/{spn.protocol.lower()}/{spn.port}__{ip}/{ep.port}")


def is_service_chain(name: str) -> bool:
    """Chains of Services carry a "/", base chains never do."""
    return "/" in name


@dataclass(frozen=True)
class Element:
    """One element of a set (``value`` "") or verdict map."""

    container: str
    key: str
    value: str = ""
    comment: str = ""

    def text(self) -> str:
        comment = f' comment "{self.comment}"' if self.comment else ""
        value = f" : {self.value}" if self.value else ""
        return f"{{ {self.key}{comment}{value} }}"


@dataclass
class ServiceRules:
    """What one Service contributes to the table."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    affinity_sets: dict[str, int] = field(default_factory=dict)  # name -> timeout s
    elements: dict[tuple[str, str], Element] = field(default_factory=dict)

    def add_element(self, element: Element) -> None:
        self.elements[(element.container, element.key)] = element


EMPTY = ServiceRules()


def render_service(ports: Iterable[ServicePort],
                   endpoints: Mapping[ServicePortName, list[Endpoint]],
                   cfg: NodeConfig) -> ServiceRules:
    """The chains, affinity sets and elements of one Service's ports."""
    out = ServiceRules()
    for svc in ports:
        _render_port(svc, endpoints.get(svc.name, []), cfg, out)
    return out


def _render_port(svc: ServicePort, all_endpoints: list[Endpoint], cfg: NodeConfig,
                 out: ServiceRules) -> None:
    ip, proto, port = cfg.ip, svc.protocol.lower(), svc.port
    name = str(svc.name)
    base = port_chain_base(svc.name)
    cluster_chain, local_chain = "service-" + base, "local-" + base
    external_chain, fw_chain = "external-" + base, "firewall-" + base
    cat = categorize(all_endpoints, svc, cfg.labels)
    chains: dict[str, list[str]] = {}

    def ep_chain(ep: Endpoint) -> str:
        return "endpoint-" + endpoint_chain_base(svc.name, ep)

    def ep_set(ep: Endpoint) -> str:
        return "affinity-" + endpoint_chain_base(svc.name, ep)

    for ep in cat.reachable:
        chains[ep_chain(ep)] = []
    uses_cluster = bool(cat.cluster) and svc.uses_cluster_endpoints
    uses_local = bool(cat.local) and svc.uses_local_endpoints
    if uses_cluster:
        chains[cluster_chain] = []
    if uses_local:
        chains[local_chain] = []

    internal_chain, has_internal = cluster_chain, cat.has_any
    if svc.internal_policy_local:
        internal_chain, has_internal = local_chain, bool(cat.local)
    external_policy_chain, has_external = cluster_chain, cat.has_any
    if svc.external_policy_local:
        external_policy_chain, has_external = local_chain, bool(cat.local)
    uses_external = cat.has_any and svc.externally_accessible
    if uses_external:
        chains[external_chain] = []

    if not cat.has_any:
        # No endpoints at all: reject (ICMP unreachable / TCP RST), as upstream.
        internal_verdict = external_verdict = f"goto {REJECT_CHAIN}"
    else:
        # Local policy without local endpoints: drop, so clients time out instead
        # of being told the Service does not exist.
        internal_verdict = "" if has_internal else "drop"
        external_verdict = "" if has_external else "drop"

    def service_key(address: str) -> str:
        return f"{address} . {proto} . {port}"

    out.add_element(Element(CLUSTER_IPS, svc.cluster_ip))
    if has_internal:
        out.add_element(Element(SERVICE_IPS, service_key(svc.cluster_ip),
                                f"goto {internal_chain}"))
    else:
        out.add_element(Element(NO_ENDPOINT_SERVICES, service_key(svc.cluster_ip),
                                internal_verdict, name))
    for address in svc.external_ips:
        if cat.has_any:
            out.add_element(Element(SERVICE_IPS, service_key(address), f"goto {external_chain}"))
        if not has_external:
            out.add_element(Element(NO_ENDPOINT_SERVICES, service_key(address),
                                    external_verdict, name))
    uses_firewall = bool(svc.load_balancer_vips and svc.load_balancer_source_ranges)
    if uses_firewall:
        chains[fw_chain] = []
    for address in svc.load_balancer_vips:
        if cat.has_any:
            out.add_element(Element(SERVICE_IPS, service_key(address), f"goto {external_chain}"))
        if uses_firewall:
            out.add_element(Element(FIREWALL_IPS, service_key(address), f"goto {fw_chain}",
                                    name))
        if not has_external:
            out.add_element(Element(NO_ENDPOINT_SERVICES, service_key(address),
                                    external_verdict, name))
    if svc.node_port:
        key = f"{proto} . {svc.node_port}"
        if cat.has_any:
            # NodePorts are not subject to loadBalancerSourceRanges (upstream keeps it so).
            out.add_element(Element(SERVICE_NODEPORTS, key, f"goto {external_chain}"))
        if not has_external:
            out.add_element(Element(NO_ENDPOINT_NODEPORTS, key, external_verdict, name))

    if has_internal:
        if cfg.masquerade_all:
            chains[internal_chain].append(
                f"{ip} daddr {svc.cluster_ip} {proto} dport {port} jump {MARK_MASQ}")
        elif cfg.local_cidrs:
            # Off-cluster clients may route the service range to any node, and the
            # chosen endpoint may live elsewhere: masquerade so replies come back here.
            chains[internal_chain].append(
                f"{ip} daddr {svc.cluster_ip} {proto} dport {port} "
                f"{ip} saddr != {_set_expr(cfg.local_cidrs)} jump {MARK_MASQ}")

    if uses_external:
        rules = chains[external_chain]
        if not svc.external_policy_local:
            rules.append(f"jump {MARK_MASQ}")  # the endpoint may be on another node
        else:
            if cfg.local_cidrs:
                rules.append(f"{ip} saddr {_set_expr(cfg.local_cidrs)} goto {cluster_chain}"
                             ' comment "short-circuit pod traffic"')
            rules.append(f"fib saddr type local jump {MARK_MASQ}"
                         ' comment "masquerade local traffic"')
            rules.append(f"fib saddr type local goto {cluster_chain}"
                         ' comment "short-circuit local traffic"')
        if has_external:
            rules.append(f"goto {external_policy_chain}")

    if uses_firewall:
        sources = list(svc.load_balancer_source_ranges)
        if _any_contains(sources, cfg.node_ips):
            # A VIP bound locally loops traffic from the node back with the VIP as source.
            sources += list(svc.load_balancer_vips)
        chains[fw_chain].append(f"{ip} saddr != {{ {', '.join(sources)} }} drop")

    if svc.session_affinity:
        for ep in cat.reachable:
            out.affinity_sets[ep_set(ep)] = svc.affinity_timeout

    for chain, eps in ((cluster_chain, cat.cluster if uses_cluster else ()),
                       (local_chain, cat.local if uses_local else ())):
        if not eps:
            continue
        if svc.session_affinity:
            for ep in eps:
                chains[chain].append(f"{ip} saddr @{ep_set(ep)} goto {ep_chain(ep)}")
        spread = ", ".join(f"{i} : goto {ep_chain(ep)}" for i, ep in enumerate(eps))
        chains[chain].append(f"numgen random mod {len(eps)} vmap {{ {spread} }}")

    for ep in cat.reachable:
        rules = chains[ep_chain(ep)]
        rules.append(f"{ip} saddr {ep.ip} jump {MARK_MASQ}")  # hairpin: a pod to itself
        if svc.session_affinity:
            rules.append(f"update @{ep_set(ep)} {{ {ip} saddr }}")
        rules.append(f"meta l4proto {proto} dnat to {ep}")

    for chain, rules in chains.items():
        out.chains[chain] = tuple(rules)


def _any_contains(cidrs: list[str], addresses: Iterable[str]) -> bool:
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    for address in addresses:
        try:
            a = ipaddress.ip_address(address)
        except ValueError:
            continue
        if any(a.version == n.version and a in n for n in nets):
            return True
    return False


def base_commands(cfg: NodeConfig) -> list[str]:
    """The table's fixed structure, as ``nft -f`` commands (a fresh table assumed)."""
    t, ip, addr = cfg.table_ref, cfg.ip, cfg.addr_type
    mark = cfg.masquerade_mark
    cmds = []
    for name, kind, hook, prio in BASE_CHAINS:
        cmds.append(f"add chain {t} {name} {{ type {kind} hook {hook} priority {prio} ; }}")
    for chain in (NODEPORT_ENDPOINTS_CHECK, SERVICE_ENDPOINTS_CHECK, FIREWALL_CHECK,
                  SERVICES, MASQUERADING, CLUSTER_IPS_CHECK, MARK_MASQ):
        cmds.append(f"add chain {t} {chain}")
    cmds.append(f'add chain {t} {REJECT_CHAIN} {{ comment '
                f'"helper for @{NO_ENDPOINT_SERVICES} / @{NO_ENDPOINT_NODEPORTS}" ; }}')
    for target, source, cond in JUMPS:
        cmds.append(f"add rule {t} {source} {cond + ' ' if cond else ''}jump {target}")
    if cfg.localhost_enabled:
        # route_localnet lets packets to 127/8 be routed; only this host may use it
        # (iptables mode's "block incoming localnet connections").
        cmds.append(f"add rule {t} filter-input ip daddr 127.0.0.0/8 "
                    "ip saddr != 127.0.0.0/8 ct state new drop"
                    ' comment "block incoming localnet connections"')
    cmds += [
        f"add rule {t} {MARK_MASQ} mark set mark or {mark}",
        f"add rule {t} {MASQUERADING} mark and {mark} == 0 return",
        f"add rule {t} {MASQUERADING} mark set mark xor {mark}",
        f"add rule {t} {MASQUERADING} masquerade fully-random",
        f"add rule {t} {REJECT_CHAIN} reject",
        f'add set {t} {CLUSTER_IPS} {{ type {addr} ; comment "Active ClusterIPs" ; }}',
        f"add rule {t} {CLUSTER_IPS_CHECK} {ip} daddr @{CLUSTER_IPS} reject"
        ' comment "Reject traffic to invalid ports of ClusterIPs"',
    ]
    service_cidrs = [c for c in cfg.service_cidrs if _family_of(c) == cfg.family]
    if service_cidrs:
        cmds.append(f"add rule {t} {CLUSTER_IPS_CHECK} {ip} daddr {{ {', '.join(service_cidrs)} }}"
                    ' drop comment "Drop traffic to unallocated ClusterIPs"')
    vmap_key = f"{addr} . inet_proto . inet_service : verdict"
    cmds += [
        f'add map {t} {NO_ENDPOINT_SERVICES} {{ type {vmap_key} ; comment '
        '"vmap to drop or reject packets to services with no endpoints" ; }',
        f'add map {t} {NO_ENDPOINT_NODEPORTS} {{ type inet_proto . inet_service : verdict ; '
        'comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }',
        f'add map {t} {FIREWALL_IPS} {{ type {vmap_key} ; comment '
        '"destinations that are subject to LoadBalancerSourceRanges" ; }',
        f'add map {t} {SERVICE_IPS} {{ type {vmap_key} ; comment '
        '"ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
        f'add map {t} {SERVICE_NODEPORTS} {{ type inet_proto . inet_service : verdict ; '
        'comment "NodePort traffic" ; }',
        f"add rule {t} {SERVICE_ENDPOINTS_CHECK} {ip} daddr . meta l4proto . th dport "
        f"vmap @{NO_ENDPOINT_SERVICES}",
        f"add rule {t} {FIREWALL_CHECK} {ip} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}",
        f"add rule {t} {SERVICES} {ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
    ]
    if cfg.nodeport_addresses is None:
        no_lo = cfg.no_localhost + " " if cfg.no_localhost else ""
        cmds += [
            f"add rule {t} {NODEPORT_ENDPOINTS_CHECK} {no_lo}meta l4proto . th dport "
            f"vmap @{NO_ENDPOINT_NODEPORTS}",
            f"add rule {t} {SERVICES} fib daddr type local {no_lo}meta l4proto . th dport "
            f"vmap @{SERVICE_NODEPORTS}",
        ]
    else:
        cmds.append(f'add set {t} {NODEPORT_IPS} {{ type {addr} ; '
                    'comment "IPs that accept NodePort traffic" ; }')
        for address in _nodeport_ips(cfg):
            cmds.append(f"add element {t} {NODEPORT_IPS} {{ {address} }}")
        cmds += [
            f"add rule {t} {NODEPORT_ENDPOINTS_CHECK} {ip} daddr @{NODEPORT_IPS} "
            f"meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
            f"add rule {t} {SERVICES} {ip} daddr @{NODEPORT_IPS} meta l4proto . th dport "
            f"vmap @{SERVICE_NODEPORTS}",
        ]
    return cmds


def _family_of(address: str) -> str:
    return IPV6 if ":" in address else IPV4


def _nodeport_ips(cfg: NodeConfig) -> list[str]:
    out = []
    for address in cfg.nodeport_addresses or ():
        if _family_of(address) != cfg.family:
            continue
        loopback = address.startswith("127.") or address == "::1"
        if loopback and not cfg.localhost_enabled:
            continue  # localhost NodePorts need route_localnet: IPv4 with the option only
        out.append(address)
    return out


@dataclass
class Plan:
    """One ``nft -f`` transaction and the state it leads to once it succeeded."""

    text: str
    full: bool
    services: dict[tuple[str, str], ServiceRules | None]
    claims: list[tuple[tuple[str, str], tuple[str, str], Element | None]]
    stale_chains: list[str]

    def __bool__(self) -> bool:
        return bool(self.text)


class RuleSet:
    """The proxy's model of its table: which Service put which chain and element there.

    ``plan_full`` and ``plan_partial`` only compute; ``commit`` records a plan that
    the kernel accepted. With ``defer_chain_delete`` (kernels before 6.2 release a
    chain only some time after the last map element pointing at it went away) stale
    chains are flushed at once and deleted by a later ``plan_cleanup``.
    """

    def __init__(self, cfg: NodeConfig, *, defer_chain_delete: bool = False):
        self.cfg = cfg
        self.defer_chain_delete = defer_chain_delete
        self.services: dict[tuple[str, str], ServiceRules] = {}
        # (container, key) -> {owner service: element}; the first owner's is live.
        self._claims: dict[tuple[str, str], dict[tuple[str, str], Element]] = {}
        self.stale_chains: dict[str, float] = {}
        self.valid = False  # whether the kernel is known to hold exactly our model

    def invalidate(self) -> None:
        self.valid = False

    def plan_full(self, services: Mapping[tuple[str, str], ServiceRules]) -> Plan:
        t = self.cfg.table_ref
        lines = [f'add table {t} {{ comment "rules for pyk8s service proxy" ; }}',
                 f"delete table {t}",
                 f'add table {t} {{ comment "rules for pyk8s service proxy" ; }}']
        lines += base_commands(self.cfg)
        ordered = sorted(services.items())
        for _, rules in ordered:
            lines += [f"add chain {t} {c}" for c in rules.chains]
        for _, rules in ordered:
            lines += [self._set_line(name, timeout) for name, timeout in rules.affinity_sets.items()]
        for _, rules in ordered:
            for chain, chain_rules in rules.chains.items():
                lines += [f"add rule {t} {chain} {r}" for r in chain_rules]
        live: dict[tuple[str, str], Element] = {}
        claims = []
        for owner, rules in ordered:
            for k, element in rules.elements.items():
                live.setdefault(k, element)
                claims.append((k, owner, element))
        lines += [f"add element {t} {e.container} {e.text()}" for e in live.values()]
        return Plan("\n".join(lines) + "\n", True, dict(services), claims, [])

    def plan_partial(self, changes: Mapping[tuple[str, str], ServiceRules | None]) -> Plan:
        """Rewrite only what ``changes`` (Service -> new rules or None) alters.

        Needs a valid model (a committed plan since the last ``invalidate``)."""
        if not self.valid:
            raise RuntimeError("partial plan on an unknown table: plan a full one")
        t = self.cfg.table_ref
        add_chains, flush_chains, stale, del_sets, add_sets = [], [], [], [], []
        add_rules: list[str] = []
        claim_changes: list[tuple[tuple[str, str], tuple[str, str], Element | None]] = []
        for owner, new in changes.items():
            old = self.services.get(owner, EMPTY)
            new = new or EMPTY
            recreated = {n for n, s in old.affinity_sets.items()
                         if n in new.affinity_sets and new.affinity_sets[n] != s}
            for chain, rules in new.chains.items():
                if chain not in old.chains:
                    add_chains.append(chain)
                elif old.chains[chain] == rules and not recreated:
                    continue
                else:
                    flush_chains.append(chain)
                add_rules += [f"add rule {t} {chain} {r}" for r in rules]
            for chain in old.chains:
                if chain not in new.chains:
                    flush_chains.append(chain)
                    stale.append(chain)
            for name, timeout in old.affinity_sets.items():
                if name not in new.affinity_sets or name in recreated:
                    del_sets.append(name)
            for name, timeout in new.affinity_sets.items():
                if name not in old.affinity_sets or name in recreated:
                    add_sets.append((name, timeout))
            for k in dict.fromkeys([*old.elements, *new.elements]):
                if old.elements.get(k) != new.elements.get(k):
                    claim_changes.append((k, owner, new.elements.get(k)))
        del_elements, add_elements = self._element_diff(claim_changes)
        lines = [f"add chain {t} {c}" for c in add_chains]
        lines += [f"flush chain {t} {c}" for c in flush_chains]
        lines += [f"delete element {t} {e.container} {{ {e.key} }}" for e in del_elements]
        lines += [f"delete set {t} {n}" for n in del_sets]
        lines += [self._set_line(n, s) for n, s in add_sets]
        lines += add_rules
        lines += [f"add element {t} {e.container} {e.text()}" for e in add_elements]
        if not self.defer_chain_delete:
            lines += [f"delete chain {t} {c}" for c in stale]
        text = "\n".join(lines) + "\n" if lines else ""
        return Plan(text, False, dict(changes), claim_changes,
                    stale if self.defer_chain_delete else [])

    def plan_cleanup(self, now: float, grace: float) -> tuple[str, list[str]]:
        """Delete chains stale for at least ``grace`` seconds (deferred deletion)."""
        due = [c for c, since in self.stale_chains.items() if now - since >= grace]
        text = "".join(f"delete chain {self.cfg.table_ref} {c}\n" for c in due)
        return text, due

    def forget_stale(self, chains: Iterable[str]) -> None:
        for chain in chains:
            self.stale_chains.pop(chain, None)

    def commit(self, plan: Plan, now: float = 0.0) -> None:
        if plan.full:
            self.services = {k: v for k, v in plan.services.items() if v is not None}
            self._claims = {}
            for k, owner, element in plan.claims:
                self._claims.setdefault(k, {})[owner] = element
            self.stale_chains = {}
        else:
            for owner, rules in plan.services.items():
                if rules is None or not (rules.chains or rules.elements):
                    self.services.pop(owner, None)
                else:
                    self.services[owner] = rules
                for chain in rules.chains if rules else ():
                    self.stale_chains.pop(chain, None)
            for k, owner, element in plan.claims:
                _apply_claim(self._claims, k, owner, element)
            for chain in plan.stale_chains:
                self.stale_chains[chain] = now
        self.valid = True

    def _element_diff(self, changes) -> tuple[list[Element], list[Element]]:
        touched: dict[tuple[str, str], dict[tuple[str, str], Element]] = {}
        for k, owner, element in changes:
            claimants = touched.setdefault(k, dict(self._claims.get(k, {})))
            if element is None:
                claimants.pop(owner, None)
            else:
                claimants[owner] = element
        deletes, adds = [], []
        for k, claimants in touched.items():
            before = next(iter(self._claims.get(k, {}).values()), None)
            after = next(iter(claimants.values()), None)
            if before == after:
                continue
            if before is not None:
                deletes.append(before)
            if after is not None:
                adds.append(after)
        return deletes, adds

    def _set_line(self, name: str, timeout: int) -> str:
        return (f"add set {self.cfg.table_ref} {name} {{ type {self.cfg.addr_type} ; "
                f"flags dynamic,timeout ; timeout {timeout}s ; }}")


def _apply_claim(claims, k, owner, element: Element | None) -> None:
    claimants = claims.setdefault(k, {})
    if element is None:
        claimants.pop(owner, None)
    else:
        # Keep the owner's position when it only changes its value.
        claimants[owner] = element
    if not claimants:
        del claims[k]
