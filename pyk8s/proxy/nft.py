"""The seam between the proxier and the kernel: ``nft -f`` transactions, ``ip``, sysctls.

Role: ``HostRunner`` is what the proxier calls; ``HostCommands`` runs the real
``nft``/``ip``/``sysctl`` binaries (optionally inside a named network namespace via
``ip netns exec``, which is how tests keep every rule out of the host), ``FakeHost``
is its in-memory twin for unit tests (STYLE item 5). ``ensure_service_routes``
gives host-originated traffic to ClusterIPs a route (see its docstring).

Invariants:
- ``apply`` is all-or-nothing: ``nft -f`` applies a file as one kernel transaction,
  so on ``HostError`` nothing of it is in place.
- Nothing here blocks the event loop: commands run as asyncio subprocesses.
- ``delete_table`` touches only the one named table and succeeds if it is absent.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import platform
import re
import tempfile
from typing import Protocol


class HostError(RuntimeError):
    """A command failed, e.g. ``nft`` refused a transaction (the message is its stderr)."""


class HostRunner(Protocol):
    async def apply(self, text: str) -> None:
        """Run ``text`` as one ``nft -f`` transaction; raise ``HostError`` if refused."""

    async def delete_table(self, family: str, table: str) -> None:
        """Remove ``table`` of ``family`` ("ip", "ip6") and everything in it, if present."""

    async def sysctl(self, name: str, value: str) -> None:
        """Set a sysctl such as ``net.ipv4.conf.all.route_localnet``."""

    async def ip(self, *args: str) -> str:
        """Run ``ip <args>``; its output, or ``HostError`` if it failed."""

    async def conntrack_delete(self, *args: str) -> None:
        """``conntrack -D <args>``; finding no matching entry is not an error."""


class HostCommands:
    """Runs the system's tools; with ``netns`` set, inside that network namespace."""

    def __init__(self, *, netns: str | None = None, nft: str = "nft"):
        self.netns = netns
        self.nft = nft

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    async def _run(self, *args: str, stdin: str | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self._prefix(), *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        except (RuntimeError, ConnectionError) as exc:
            # The pipe to the child broke under us (uvloop reports a closed transport
            # as RuntimeError): the transaction did not go through as written.
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise HostError(f"{' '.join(args[:3])} failed: {exc}") from None
        if proc.returncode != 0:
            raise HostError(f"{' '.join(args[:3])} failed ({proc.returncode}): "
                           f"{(err or out).decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    async def apply(self, text: str) -> None:
        # From a file, not ``-f -``: under uvloop the pipe to a child's stdin was seen
        # closed mid-write (a RuntimeError), losing the transaction.
        path = await asyncio.to_thread(_write_temp, text)
        try:
            await self._run(self.nft, "-f", path)
        finally:
            await asyncio.to_thread(os.unlink, path)

    async def delete_table(self, family: str, table: str) -> None:
        # "add" first so that deleting an absent table is not an error.
        await self.apply(f"add table {family} {table}\ndelete table {family} {table}\n")

    async def sysctl(self, name: str, value: str) -> None:
        await self._run("sysctl", "-q", "-w", f"{name}={value}")

    async def ip(self, *args: str) -> str:
        return await self._run("ip", *args)

    async def conntrack_delete(self, *args: str) -> None:
        try:
            await self._run("conntrack", "-D", *args)
        except HostError as err:
            if "0 flow entries" not in str(err):
                raise


def _write_temp(text: str) -> str:
    fd, path = tempfile.mkstemp(prefix="pyk8s-nft-", suffix=".nft")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class FakeHost:
    """Records transactions instead of running them; can be told to refuse the next ones."""

    def __init__(self) -> None:
        self.transactions: list[str] = []
        self.deleted_tables: list[tuple[str, str]] = []
        self.sysctls: dict[str, str] = {}
        self.ip_commands: list[tuple[str, ...]] = []
        self.conntrack_deletes: list[tuple[str, ...]] = []
        self.fail_next = 0

    async def apply(self, text: str) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise HostError("injected failure")
        self.transactions.append(text)

    async def delete_table(self, family: str, table: str) -> None:
        self.deleted_tables.append((family, table))

    async def sysctl(self, name: str, value: str) -> None:
        self.sysctls[name] = value

    async def ip(self, *args: str) -> str:
        self.ip_commands.append(args)
        return ""

    async def conntrack_delete(self, *args: str) -> None:
        self.conntrack_deletes.append(args)


def split_halves(cidr: str) -> list[str]:
    """``cidr`` as its two halves (one prefix bit longer), or itself if a host route."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.prefixlen == net.max_prefixlen:
        return [str(net)]
    return [str(n) for n in net.subnets(prefixlen_diff=1)]


async def ensure_service_routes(host: HostRunner, cidrs: tuple[str, ...], device: str) -> None:
    """Route the service CIDRs to ``device``, a link that drops what it is given.

    The node's blackhole route for the service range (DESIGN.md) makes ``connect()``
    to a ClusterIP fail with EINVAL before the nat output hook could DNAT it, so
    processes on the node could not reach Services. Two routes for the halves of
    each range, more specific than the blackhole, point at ``device`` instead: the
    output hook DNATs and re-routes service traffic to its endpoint; anything not
    DNATed (unallocated IPs, unknown ports) is dropped by the rules or by the
    device, so it still never leaves the machine. Deleting the device removes the
    routes and the blackhole applies again. The device is a ``dummy`` where the
    kernel has that driver, else a bridge without ports (which drops as well).
    """
    try:
        await host.ip("link", "show", "dev", device)
    except HostError:
        try:
            await host.ip("link", "add", device, "type", "dummy")
        except HostError:
            await host.ip("link", "add", device, "type", "bridge")
    await host.ip("link", "set", device, "up")
    for cidr in cidrs:
        family = "-6" if ":" in cidr else "-4"
        for half in split_halves(cidr):
            await host.ip(family, "route", "replace", half, "dev", device)


async def remove_service_routes(host: HostRunner, device: str) -> None:
    """Delete ``device`` (its routes go with it); a no-op if it is absent."""
    try:
        await host.ip("link", "show", "dev", device)
    except HostError:
        return
    await host.ip("link", "del", "dev", device)


def kernel_releases_chains_at_once(release: str | None = None) -> bool:
    """Whether the kernel frees a chain as soon as no map element points at it.

    Kernels before 6.2 do so only a little later, so deleting the chain in the same
    transaction fails; upstream then flushes stale chains and deletes them later.
    """
    match = re.match(r"(\d+)\.(\d+)", release or platform.release())
    if not match:
        return False
    return (int(match.group(1)), int(match.group(2))) >= (6, 2)
