"""The pod network containerd's CRI plugin sets up, and the routes that fence it in.

A node's pods sit on a Linux bridge with addresses from the node's pod CIDR
(host-local IPAM), plus portmap for hostPort. containerd's CRI plugin brings up each
pod's loopback itself (it runs the `loopback` plugin from the CNI bin dir before the
conflist), so the chain holds no loopback entry.

Network safety (DESIGN.md): `ensure_blackhole_routes` makes a missing route for a
cluster address drop the packet here instead of sending it out of the machine; a
node's own pod /24 on its bridge is more specific and still wins.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path

CLUSTER_CIDR = "10.42.0.0/16"
SERVICE_CIDR = "10.43.0.0/16"
CNI_VERSION = "1.0.0"
CONFLIST_NAME = "10-pyk8s.conflist"


def bridge_conflist(*, subnet: str, bridge: str, name: str = "pyk8s",
                    ipam_dir: Path | None = None, ip_masq: bool = False,
                    mtu: int | None = None) -> dict:
    """A conflist: bridge + host-local on `subnet` (gateway .1 on the bridge) + portmap.

    `ipam_dir` keeps host-local's allocations (default /var/lib/cni/networks); a node
    keeps them under its data dir. `ip_masq` adds an iptables MASQUERADE for traffic
    leaving the subnet (upstream nodes need it for pod egress; tests do not).
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
