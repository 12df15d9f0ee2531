"""The pod network containerd's CRI plugin sets up, and the routes that fence it in.

A node's pods sit on a Linux bridge with addresses from the node's pod CIDR
(host-local IPAM), plus portmap for hostPort. containerd's CRI plugin brings up each
pod's loopback itself (it runs the `loopback` plugin from the CNI bin dir before the
conflist), so the chain holds no loopback entry.

Network safety (DESIGN.md): `ensure_blackhole_routes` makes a missing route for a
cluster address drop the packet here instead of sending it out of the machine; a
node's own pod /24 on its bridge is more specific and still wins.

Pod egress: as k3s's flannel (`--ip-masq`, which leaves the bridge plugin's
`ipMasq` off), a node-level nftables table masquerades traffic from the node's pods
to anything outside the cluster and service ranges (`apply_masquerade`). The
bridge plugin's own `ipMasq` would not do: it SNATs everything leaving the node's
/24, so pod-to-pod traffic between nodes would lose its source address, and it
writes per-pod iptables chains. Traffic to pods and Services keeps the pod's
address (kube-proxy masquerades hairpin traffic itself); multicast is left alone.
One table per bridge (`pyk8s-masq-<bridge>`), replaced atomically, so nodes with
different bridges on one machine coexist; `remove_masquerade` deletes it.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
from pathlib import Path

CLUSTER_CIDR = "10.42.0.0/16"
SERVICE_CIDR = "10.43.0.0/16"


def cluster_dns_ip(service_cidr: str = SERVICE_CIDR) -> str:
    """The cluster DNS address k3s derives from the Service range: its tenth address
    (10.43.0.10 for the default range)."""
    return str(ipaddress.ip_network(service_cidr).network_address + 10)


def first_pod_cidr(cluster_cidr: str = CLUSTER_CIDR) -> str:
    """The first /24 of the cluster range (the first node's pod network)."""
    net = ipaddress.ip_network(cluster_cidr)
    return str(next(net.subnets(new_prefix=24)) if net.prefixlen < 24 else net)
CNI_VERSION = "1.0.0"
CONFLIST_NAME = "10-pyk8s.conflist"
MASQ_TABLE_PREFIX = "pyk8s-masq-"
MULTICAST = "224.0.0.0/4"


def bridge_conflist(*, subnet: str, bridge: str, name: str = "pyk8s",
                    ipam_dir: Path | None = None, ip_masq: bool = False,
                    mtu: int | None = None) -> dict:
    """A conflist: bridge + host-local on `subnet` (gateway .1 on the bridge) + portmap.

    `ipam_dir` keeps host-local's allocations (default /var/lib/cni/networks); a node
    keeps them under its data dir. `ip_masq` is the bridge plugin's own iptables
    MASQUERADE for traffic leaving the subnet; nodes leave it off and masquerade
    with `apply_masquerade` instead (see the module docstring).
    """
    net = ipaddress.ip_network(subnet)
    if len(bridge) > 15:
        raise ValueError(f"bridge name {bridge!r} longer than 15 characters")
    ipam: dict = {
        "type": "host-local",
        "ranges": [[{"subnet": str(net), "gateway": str(net.network_address + 1)}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    if ipam_dir is not None:
        ipam["dataDir"] = str(ipam_dir)
    bridge_plugin: dict = {
        "type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": ip_masq,
        "hairpinMode": True, "ipam": ipam,
    }
    if mtu is not None:
        bridge_plugin["mtu"] = mtu
    return {
        "cniVersion": CNI_VERSION,
        "name": name,
        "plugins": [bridge_plugin, {"type": "portmap", "capabilities": {"portMappings": True}}],
    }


def write_conflist(conf_dir: Path, conflist: dict) -> Path:
    """Write `conflist` as the only network in `conf_dir` (atomically)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / CONFLIST_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(conflist, indent=2) + "\n")
    tmp.replace(path)
    return path


async def _ip(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out.decode()


async def ensure_blackhole_routes(cidrs: tuple[str, ...] = (CLUSTER_CIDR, SERVICE_CIDR)
                                  ) -> list[str]:
    """Install `blackhole <cidr>` in the main table where no such route exists.

    Returns the CIDRs it added. Needs CAP_NET_ADMIN; raises RuntimeError otherwise.
    """
    added = []
    for cidr in cidrs:
        code, out = await _ip("-4", "route", "show", "exact", cidr)
        if code == 0 and out.strip().startswith("blackhole"):
            continue
        code, out = await _ip("route", "replace", "blackhole", cidr)
        if code != 0:
            raise RuntimeError(f"ip route replace blackhole {cidr}: {out.strip()}")
        added.append(cidr)
    return added


async def delete_link(name: str) -> bool:
    """Delete a network interface (a node's bridge) if present; True if it was."""
    code, _ = await _ip("link", "show", "dev", name)
    if code != 0:
        return False
    code, out = await _ip("link", "delete", "dev", name)
    if code != 0:
        raise RuntimeError(f"ip link delete {name}: {out.strip()}")
    return True


def masquerade_table(bridge: str) -> str:
    return MASQ_TABLE_PREFIX + bridge


def masquerade_rules(*, bridge: str, pod_cidr: str, cluster_cidr: str = CLUSTER_CIDR,
                     service_cidr: str = SERVICE_CIDR) -> str:
    """The `nft -f` text that (re)creates the pod egress masquerade of one node.

    Traffic from `pod_cidr` to `cluster_cidr`, `service_cidr` or multicast keeps
    its source; everything else from `pod_cidr` is masqueraded to the address of
    the interface it leaves by. A `pod_cidr` outside `cluster_cidr` (a cluster
    configured with another range) counts as the cluster range itself.
    """
    pods = ipaddress.ip_network(pod_cidr)
    cluster = ipaddress.ip_network(cluster_cidr)
    if pods.version != 4 or cluster.version != 4:
        raise ValueError("pod egress masquerade is IPv4 only")
    if not pods.subnet_of(cluster):
        cluster = pods
    inside = ", ".join(dict.fromkeys([str(cluster), str(ipaddress.ip_network(service_cidr))]))
    t = f"ip {masquerade_table(bridge)}"
    comment = f'comment "pyk8s pod egress masquerade for bridge {bridge}"'
    return "\n".join([
        f"add table {t} {{ {comment} ; }}",
        f"delete table {t}",
        f"add table {t} {{ {comment} ; }}",
        f"add chain {t} postrouting {{ type nat hook postrouting priority 100 ; }}",
        f"add rule {t} postrouting ip saddr {pods} ip daddr {{ {inside} }} return"
        ' comment "to pods and Services: keep the pod address"',
        f"add rule {t} postrouting ip saddr {pods} ip daddr {MULTICAST} return",
        f"add rule {t} postrouting ip saddr {pods} masquerade fully-random"
        ' comment "leaving the cluster range"',
    ]) + "\n"


def _nft(text: str) -> None:
    try:
        r = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True,
                           timeout=30)
    except FileNotFoundError:
        raise RuntimeError("nft is not installed: pod egress cannot be masqueraded") from None
    if r.returncode != 0:
        raise RuntimeError(f"nft: {(r.stderr or r.stdout).strip()}")


def apply_masquerade(*, bridge: str, pod_cidr: str, cluster_cidr: str = CLUSTER_CIDR,
                     service_cidr: str = SERVICE_CIDR) -> None:
    """Install (or replace) the node's egress masquerade table. Blocking: call it
    from a thread. Raises RuntimeError if nft refuses."""
    _nft(masquerade_rules(bridge=bridge, pod_cidr=pod_cidr, cluster_cidr=cluster_cidr,
                          service_cidr=service_cidr))


def remove_masquerade(bridge: str) -> None:
    """Delete the node's egress masquerade table if present. Blocking, as above."""
    t = f"ip {masquerade_table(bridge)}"
    _nft(f"add table {t}\ndelete table {t}\n")
