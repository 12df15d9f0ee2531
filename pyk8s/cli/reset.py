"""`pyk8s reset`: tear a node down (like k3s-killall.sh).

A stopped server leaves its node running on purpose (pods keep serving and are
adopted at the next start). This removes it: every pod sandbox and containerd
(by the PID it recorded), mounts, the pod bridge and cgroups, kube-proxy's nftables
table and service routes, and the DNS address. The cluster's state in the data
dir is kept; delete the folder to forget the cluster too.
"""
from __future__ import annotations

from pathlib import Path


async def reset(data_dir: str) -> list[str]:
    from ..dns.hostnet import HostError as DnsHostError
    from ..dns.hostnet import HostShell, unbind_service_ip
    from ..dns.server import DNS_IP
    from ..kubelet.node import reset_node
    from ..proxy.nft import HostCommands, HostError, remove_service_routes
    from ..proxy.proxier import ProxySettings
    from ..proxy.rules import TABLE
    notes = await reset_node(Path(data_dir))
    host = HostCommands()
    for family in ("ip", "ip6"):
        try:
            await host.delete_table(family, TABLE)
        except HostError as err:
            notes.append(f"nftables {family} {TABLE}: {err}")
    device = ProxySettings().service_route_device
    if device:
        try:
            await remove_service_routes(host, device)
        except HostError as err:
            notes.append(f"service routes: {err}")
    try:
        await unbind_service_ip(HostShell(), DNS_IP)
    except DnsHostError as err:
        notes.append(f"DNS address: {err}")
    return notes
