"""The cluster zone: DNS records computed from Services and EndpointSlices (pure).

Role: the Kubernetes DNS specification (kubernetes/dns ``docs/specification.md``) as
CoreDNS's ``kubernetes`` plugin answers it. ``ClusterRecords`` indexes Services and
EndpointSlices as informers deliver them; ``lookup(qname, qtype)`` answers names in
the cluster domain and reverse names of known IPs, or returns None for names that
are not ours (the server forwards those).

Records (``<zone>`` is ``cluster.local``, TTL 5 s as CoreDNS's ``ttl 5``):
- ``<svc>.<ns>.svc.<zone>``: A/AAAA of a ClusterIP Service's ClusterIPs; of the
  ready endpoints of a headless one (NXDOMAIN when it has none); a CNAME to the
  ``externalName`` of an ExternalName Service.
- ``<hostname>.<svc>.<ns>.svc.<zone>``: the ready endpoints whose ``hostname`` (or,
  lacking one, dashed IP) is ``<hostname>`` (StatefulSet pods under a headless
  Service).
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: SRV per named port, targeting the
  Service name (ClusterIP) or each endpoint's hostname (headless), with the
  targets' addresses in the additional section.
- ``<a>-<b>-<c>-<d>.<ns>.pod.<zone>``: A of that IP (CoreDNS ``pods insecure``).
- PTR for ClusterIPs and for ready endpoint IPs; ``dns-version.<zone>`` TXT;
  SOA and NS at the apex, ``ns.dns.<zone>`` A of the DNS Service's IPs.

Invariants:
- Matching is case-insensitive; answers carry the name as asked.
- A name that exists but has no record of the asked type answers NOERROR with no
  answer (NODATA); a name that does not exist answers NXDOMAIN; both carry the
  zone's SOA in the authority section, as RFC 2308 and CoreDNS do.
- Empty non-terminals (``svc.<zone>``, ``<ns>.svc.<zone>``, ``<ns>.pod.<zone>``)
  exist: NODATA, never NXDOMAIN.
- Only ready endpoints are published (the EndpointSlice controller already marks
  endpoints ready for Services with ``publishNotReadyAddresses``).
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A

DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 5
SCHEMA_VERSION = "1.1.0"  # CoreDNS's DNSSchemaVersion
LABEL_SERVICE_NAME = "kubernetes.io/service-name"


@dataclass
class Answer:
    """A DNS answer in parts; ``rcode`` is a dnslib ``RCODE`` value."""

    rcode: int = RCODE.NOERROR
    answers: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    # An ExternalName CNAME whose target the server still has to resolve.
    chase: str | None = None


@dataclass(frozen=True)
class _Service:
    kind: str  # "ClusterIP" (any type with a ClusterIP), "Headless", "ExternalName"
    ips: tuple[str, ...]
    external_name: str
    ports: tuple[tuple[str, int, str], ...]  # (name, port, protocol)


@dataclass(frozen=True)
class _Endpoint:
    ip: str
    hostname: str  # the endpoint's hostname, else its IP with dashes (CoreDNS)
    ports: tuple[tuple[str, int, str], ...]


def _dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _reverse_to_ip(labels: list[str]) -> str | None:
    """``['4','3','2','1','in-addr','arpa']`` -> ``1.2.3.4`` (and nibble IPv6), else None."""
    try:
        if labels[-2:] == ["in-addr", "arpa"] and len(labels) == 6:
            return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
        if labels[-2:] == ["ip6", "arpa"] and len(labels) == 34:
            nibbles = "".join(reversed(labels[:32]))
            return str(ipaddress.IPv6Address(int(nibbles, 16)))
    except ValueError:
        return None
    return None


class ClusterRecords:
    """Services and EndpointSlices by name and by IP, answering the cluster zone."""

    def __init__(self, zone: str = DEFAULT_ZONE, *, ttl: int = DEFAULT_TTL,
                 dns_ips: tuple[str, ...] = ("10.43.0.10",)):
        self.zone = zone.strip(".").lower()
        self.ttl = ttl
        self.dns_ips = dns_ips
        self._services: dict[tuple[str, str], _Service] = {}
        self._slices: dict[tuple[str, str], dict[str, tuple[_Endpoint, ...]]] = {}
        self._ptr: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {}  # ip -> owner -> names
        self._owned_ips: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
        self.serial = int(time.time())

    # --- index maintenance ----------------------------------------------------------

    def set_service(self, service: dict) -> None:
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        ports = tuple((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP")
                      for p in spec.get("ports") or [])
        if spec.get("type") == "ExternalName":
            svc = _Service("ExternalName", (), (spec.get("externalName") or "").rstrip("."), ports)
        elif spec.get("clusterIP") in ("None", "", None):
            svc = _Service("Headless", (), "", ports)
        else:
            ips = tuple(ip for ip in (spec.get("clusterIPs") or [spec["clusterIP"]]) if ip != "None")
            svc = _Service("ClusterIP", ips, "", ports)
        self._services[key] = svc
        self._reindex(key)

    def delete_service(self, service: dict) -> None:
        meta = service.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        self._services.pop(key, None)
        self._reindex(key)

    def set_slice(self, slice_: dict, *, removed: bool = False) -> None:
        meta = slice_.get("metadata") or {}
        svc_name = (meta.get("labels") or {}).get(LABEL_SERVICE_NAME)
        if not svc_name:
            return
        key = (meta.get("namespace") or "default", svc_name)
        slices = self._slices.setdefault(key, {})
        if removed or slice_.get("addressType") not in ("IPv4", "IPv6"):
            slices.pop(meta.get("name") or "", None)
        else:
            ports = tuple((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP")
                          for p in slice_.get("ports") or [])
            eps = []
            for ep in slice_.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                for ip in (ep.get("addresses") or [])[:1]:
                    eps.append(_Endpoint(ip, (ep.get("hostname") or _dashed(ip)).lower(), ports))
            slices[meta.get("name") or ""] = tuple(eps)
        if not slices:
            del self._slices[key]
        self._reindex(key)

    def delete_slice(self, slice_: dict) -> None:
        self.set_slice(slice_, removed=True)

    def _endpoints(self, key: tuple[str, str]) -> list[_Endpoint]:
        seen: dict[tuple[str, str], _Endpoint] = {}
        for name in sorted(self._slices.get(key, {})):
            for ep in self._slices[key][name]:
                seen.setdefault((ep.ip, ep.hostname), ep)
        return list(seen.values())

    def _reindex(self, key: tuple[str, str]) -> None:
        """Recompute the PTR names ``key`` contributes (its ClusterIPs and endpoints)."""
        self.serial = max(self.serial + 1, int(time.time()))
        for ip in self._owned_ips.pop(key, {}):
            owners = self._ptr.get(ip, {})
            owners.pop(key, None)
            if not owners:
                self._ptr.pop(ip, None)
        svc = self._services.get(key)
        if svc is None:
            return
        base = f"{key[1]}.{key[0]}.svc.{self.zone}"
        owned: dict[str, list[str]] = {}
        for ip in svc.ips:
            owned.setdefault(ip, []).append(base)
        if svc.kind != "ExternalName":
            for ep in self._endpoints(key):
                owned.setdefault(ep.ip, []).append(f"{ep.hostname}.{base}")
        frozen = {ip: tuple(names) for ip, names in owned.items()}
        self._owned_ips[key] = frozen
        for ip, names in frozen.items():
            self._ptr.setdefault(_canonical(ip), {})[key] = names

    # --- answering ------------------------------------------------------------------

    def is_ours(self, qname: str) -> bool:
        name = qname.rstrip(".").lower()
        return name == self.zone or name.endswith("." + self.zone)

    def lookup(self, qname: str, qtype: int) -> Answer | None:
        """The answer for ``qname``/``qtype``, or None when another server must answer."""
        name = qname.rstrip(".").lower()
        labels = name.split(".") if name else []
        if not self.is_ours(name):
            if qtype in (QTYPE.PTR, QTYPE.ANY):
                ip = _reverse_to_ip(labels)
                owners = self._ptr.get(_canonical(ip)) if ip else None
                if owners:
                    names = sorted({n for ns in owners.values() for n in ns})
                    return Answer(answers=[RR(qname, QTYPE.PTR, ttl=self.ttl, rdata=PTR(n + "."))
                                           for n in names])
            return None
        rel = labels[:len(labels) - len(self.zone.split("."))]
        return self._lookup_zone(qname, qtype, rel)

    def _soa(self) -> RR:
        return RR(self.zone + ".", QTYPE.SOA, ttl=self.ttl, rdata=SOA(
            f"ns.dns.{self.zone}.", f"hostmaster.{self.zone}.",
            (self.serial, 7200, 1800, 86400, self.ttl)))

    def _nxdomain(self) -> Answer:
        return Answer(RCODE.NXDOMAIN, authority=[self._soa()])

    def _nodata(self) -> Answer:
        return Answer(authority=[self._soa()])

    def _addresses(self, qname: str, qtype: int, ips) -> Answer:
        want = {QTYPE.A: 4, QTYPE.AAAA: 6}
        rrs = []
        for ip in dict.fromkeys(ips):
            version = ipaddress.ip_address(ip).version
            if qtype == QTYPE.ANY or want.get(qtype) == version:
                rrs.append(RR(qname, QTYPE.A if version == 4 else QTYPE.AAAA, ttl=self.ttl,
                              rdata=A(ip) if version == 4 else AAAA(ip)))
        return Answer(answers=rrs) if rrs else self._nodata()

    def _lookup_zone(self, qname: str, qtype: int, rel: list[str]) -> Answer:
        if not rel:
            if qtype == QTYPE.SOA:
                return Answer(answers=[self._soa()])
            if qtype == QTYPE.NS:
                ns = f"ns.dns.{self.zone}."
                return Answer(answers=[RR(qname, QTYPE.NS, ttl=self.ttl, rdata=NS(ns))],
                              additional=self._addresses(ns, QTYPE.ANY, self.dns_ips).answers)
            return self._nodata()
        if rel == ["dns-version"]:
            if qtype in (QTYPE.TXT, QTYPE.ANY):
                return Answer(answers=[RR(qname, QTYPE.TXT, ttl=self.ttl,
                                          rdata=TXT(SCHEMA_VERSION))])
            return self._nodata()
        if rel == ["ns", "dns"]:
            return self._addresses(qname, qtype, self.dns_ips)
        if rel == ["dns"]:
            return self._nodata()  # an empty non-terminal above ns.dns
        if rel[-1] == "pod":
            return self._lookup_pod(qname, qtype, rel[:-1])
        if rel[-1] == "svc":
            return self._lookup_svc(qname, qtype, rel[:-1])
        return self._nxdomain()

    def _lookup_pod(self, qname: str, qtype: int, rel: list[str]) -> Answer:
        if len(rel) <= 1:
            return self._nodata()  # pod.<zone> and <ns>.pod.<zone>
        if len(rel) != 2:
            return self._nxdomain()
        podname = rel[0]
        text = podname.replace("-", ".") if podname.count("-") == 3 and "--" not in podname \
            else podname.replace("-", ":")
        try:
            ip = str(ipaddress.ip_address(text))
        except ValueError:
            return self._nxdomain()
        return self._addresses(qname, qtype, [ip])

    def _lookup_svc(self, qname: str, qtype: int, rel: list[str]) -> Answer:
        if len(rel) <= 1:
            return self._nodata()  # svc.<zone> and <ns>.svc.<zone>
        if len(rel) == 4 and rel[0].startswith("_") and rel[1].startswith("_"):
            return self._lookup_srv(qname, qtype, rel[0][1:], rel[1][1:], (rel[3], rel[2]))
        key = (rel[-1], rel[-2])
        svc = self._services.get(key)
        if svc is None or len(rel) > 3:
            return self._nxdomain()
        if len(rel) == 3:
            hostname = rel[0]
            if svc.kind == "ExternalName":
                return self._nxdomain()
            ips = [ep.ip for ep in self._endpoints(key) if ep.hostname == hostname]
            return self._addresses(qname, qtype, ips) if ips else self._nxdomain()
        if svc.kind == "ExternalName":
            if not svc.external_name or _is_ip(svc.external_name):
                return self._nxdomain()
            target = svc.external_name + "."
            cname = RR(qname, QTYPE.CNAME, ttl=self.ttl, rdata=CNAME(target))
            return Answer(answers=[cname], chase=None if qtype == QTYPE.CNAME else target)
        if qtype == QTYPE.SRV:
            return self._lookup_srv(qname, qtype, "", "", key)
        if svc.kind == "Headless":
            eps = self._endpoints(key)
            if not eps:
                return self._nxdomain()
            return self._addresses(qname, qtype, [ep.ip for ep in eps])
        return self._addresses(qname, qtype, svc.ips)

    def _lookup_srv(self, qname: str, qtype: int, port: str, proto: str,
                    key: tuple[str, str]) -> Answer:
        svc = self._services.get(key)
        if svc is None or svc.kind == "ExternalName":
            return self._nxdomain()
        base = f"{key[1]}.{key[0]}.svc.{self.zone}."

        def matches(p: tuple[str, int, str]) -> bool:
            if not port:  # the bare Service name: every port
                return True
            return bool(p[0]) and p[0].lower() == port and p[2].lower() == proto

        targets: list[tuple[str, int, list[str]]] = []
        if svc.kind == "Headless":
            for ep in self._endpoints(key):
                for p in ep.ports:
                    if matches(p):
                        targets.append((f"{ep.hostname}.{base}", p[1], [ep.ip]))
        else:
            targets = [(base, p[1], list(svc.ips)) for p in svc.ports if matches(p)]
        if not targets:
            return self._nxdomain() if port else self._nodata()
        if qtype not in (QTYPE.SRV, QTYPE.ANY):
            return self._nodata()
        weight = max(1, 100 // len(targets))
        answer = Answer()
        glued: set[str] = set()
        for target, number, ips in targets:
            answer.answers.append(RR(qname, QTYPE.SRV, ttl=self.ttl,
                                     rdata=SRV(0, weight, number, target)))
            if target not in glued:
                glued.add(target)
                answer.additional += self._addresses(target, QTYPE.ANY, ips).answers
        return answer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _canonical(ip: str | None) -> str:
    if not ip:
        return ""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip
