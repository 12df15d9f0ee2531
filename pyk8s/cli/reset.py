"""`pyk8s reset`: tear a node down (like k3s-killall.sh).

A stopped server leaves its node running on purpose (pods keep serving and are
adopted at the next start). This removes it: every pod sandbox and containerd
(by the PID it recorded), mounts, the pod bridge and cgroups, kube-proxy's nftables
table and service routes, and the DNS address. The cluster's state in the data
dir is kept; delete the folder to forget the cluster too.
"""
from __future__ import annotations

import asyncio
from pathlib import Path


async def reset(data_dir: str) -> list[str]:
    from ..dns.hostnet import HostError as DnsHostError
    from ..dns.hostnet import HostShell, unbind_service_ip
    from ..kubelet.node import reset_node
    from .noderecord import read_record
    # only what this data dir's node set up: another node may share the machine
    record = await asyncio.to_thread(read_record, data_dir)
    notes = await reset_node(Path(data_dir), bridge=record.bridge,
                             cgroup_root=record.cgroup_root)
    if record.kube_proxy:
        await _reset_proxy(notes)
    if record.dns:
        try:
            await unbind_service_ip(HostShell(), record.dns_ip)
        except DnsHostError as err:
            notes.append(f"DNS address: {err}")
    return notes


async def _reset_proxy(notes: list[str]) -> None:
    """kube-proxy's nftables tables and service routes."""
    from ..proxy.nft import HostCommands, HostError, remove_service_routes
    from ..proxy.proxier import ProxySettings
    from ..proxy.rules import TABLE
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
