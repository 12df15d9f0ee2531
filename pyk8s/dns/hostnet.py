"""Putting the DNS Service's IP on the node, as NodeLocal DNSCache does.

Role: the DNS server answers on the ``kube-dns`` Service IP (10.43.0.10) on every
node. ``bind_service_ip`` adds that IP to a link of its own (``pyk8s-dns``: a dummy
where the kernel has the driver, else a bridge without ports, which never
forwards anything) and installs a table ``ip pyk8s-dns`` that exempts DNS packets to
and from the IP from connection tracking (``notrack``), so the proxy's NAT and
reject rules for the Service never see them — the same trick upstream's
node-local-dns uses. ``unbind_service_ip`` removes both.

Invariants:
- Only the named link and the named table are created or deleted; nothing else on
  the host changes. Both calls are idempotent.
- Commands run through ``HostShell``; with ``netns`` set, inside that network
  namespace (tests never touch the host's own).
"""
from __future__ import annotations

import asyncio
import ipaddress

DEVICE = "pyk8s-dns"
TABLE = "pyk8s-dns"
RAW_PRIORITY = -300


class HostError(RuntimeError):
    """A command failed; the message is its stderr."""


class HostShell:
    """Runs ``ip`` and ``nft``, optionally inside network namespace ``netns``."""

    def __init__(self, *, netns: str | None = None):
        self.netns = netns

    async def run(self, *args: str, stdin: str | None = None) -> str:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        proc = await asyncio.create_subprocess_exec(
            *prefix, *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        if proc.returncode != 0:
            raise HostError(f"{' '.join(args[:3])}: {(err or out).decode(errors='replace').strip()}")
        return out.decode(errors="replace")


def notrack_ruleset(ip: str, port: int = 53, table: str = TABLE) -> str:
    """The ``nft -f`` text replacing ``table`` with the notrack rules for ``ip``:``port``."""
    fam = "ip6" if ipaddress.ip_address(ip).version == 6 else "ip"
    lines = [f"add table {fam} {table}", f"delete table {fam} {table}",
             f'add table {fam} {table} {{ comment "cluster DNS bypasses connection tracking" ; }}',
             f"add chain {fam} {table} prerouting {{ type filter hook prerouting "
             f"priority {RAW_PRIORITY} ; }}",
             f"add chain {fam} {table} output {{ type filter hook output "
             f"priority {RAW_PRIORITY} ; }}"]
    for proto in ("udp", "tcp"):
        lines.append(f"add rule {fam} {table} prerouting {fam} daddr {ip} {proto} dport {port} notrack")
        lines.append(f"add rule {fam} {table} output {fam} daddr {ip} {proto} dport {port} notrack")
        lines.append(f"add rule {fam} {table} output {fam} saddr {ip} {proto} sport {port} notrack")
    return "\n".join(lines) + "\n"


async def bind_service_ip(shell: HostShell, ip: str, *, port: int = 53,
                          device: str = DEVICE, table: str = TABLE) -> None:
    try:
        await shell.run("ip", "link", "show", "dev", device)
    except HostError:
        try:
            await shell.run("ip", "link", "add", device, "type", "dummy")
        except HostError:
            await shell.run("ip", "link", "add", device, "type", "bridge")
    prefix = 128 if ipaddress.ip_address(ip).version == 6 else 32
    await shell.run("ip", "addr", "replace", f"{ip}/{prefix}", "dev", device)
    await shell.run("ip", "link", "set", device, "up")
    await shell.run("nft", "-f", "-", stdin=notrack_ruleset(ip, port, table))


async def unbind_service_ip(shell: HostShell, ip: str, *, device: str = DEVICE,
                            table: str = TABLE) -> None:
    fam = "ip6" if ipaddress.ip_address(ip).version == 6 else "ip"
    await shell.run("nft", "-f", "-", stdin=f"add table {fam} {table}\ndelete table {fam} {table}\n")
    try:
        await shell.run("ip", "link", "show", "dev", device)
    except HostError:
        return
    await shell.run("ip", "link", "del", "dev", device)
