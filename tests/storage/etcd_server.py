"""Real etcd processes for tests: one member or a small cluster on loopback ports.

Role: start Debian's ``etcd`` (3.4) the way a test needs it and hand out its client
endpoint (``"127.0.0.1:<port>"``), then stop it and remove its data.

Invariants:
- every URL (client and peer, listen and advertise) is on 127.0.0.1, on ports the
  kernel handed out as free;
- data lives in a fresh temporary directory, removed by ``close()``; fsync stays on
  (no ``--unsafe-no-fsync``), so a killed member keeps what it acknowledged;
- ``start()`` returns only once the member answers ``/health`` with a leader, polling
  with a deadline (the pause between polls is a wait on the process itself, so an
  early exit is noticed at once and reported with the tail of its log);
- only the processes started here are ever signalled, by their own PIDs;
- tests that need etcd are skipped (not failed) only when the binary is missing.

The sync API suits session-scoped fixtures; ``async with`` runs the same blocking
steps in a thread so a test's event loop is never blocked.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ETCD_BINARY = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)

START_TIMEOUT = 30.0  # seconds until a member must report healthy
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
POLL_INTERVAL = 0.05  # seconds the readiness poll waits on the process between tries
_PORT_RETRIES = 3  # a single member retries with new ports if one was taken meanwhile

# Loopback must never go through a proxy from the environment.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_etcd() -> str:
    """The etcd binary's path, or skip the calling test."""
    if ETCD_BINARY is None:
        pytest.skip("the etcd binary is not installed (Debian package etcd-server)")
    return ETCD_BINARY


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """One etcd member; ``endpoint`` is what ``EtcdStore`` takes."""

    def __init__(self, *, name: str = "etcd0", base_dir: str | None = None,
                 client_port: int | None = None, peer_port: int | None = None,
                 initial_cluster: str | None = None):
        self.binary = require_etcd()
        self.name = name
        self._own_dir = base_dir is None
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="pyk8s-etcd-")
        self._fixed_ports = client_port is not None or initial_cluster is not None
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.initial_cluster = initial_cluster
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, f"{self.name}.etcd")

    @property
    def log_path(self) -> str:
        return os.path.join(self.base_dir, f"{self.name}.log")

    def command(self) -> list[str]:
        client_url = f"http://{self.endpoint}"
        return [
            self.binary, "--name", self.name, "--data-dir", self.data_dir,
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", "new", "--initial-cluster-token", "pyk8s-test",
            "--logger", "zap", "--log-level", "warn",
        ]

    # -- lifecycle (blocking) ------------------------------------------------------

    def spawn(self) -> None:
        """Start the process without waiting (cluster members must start together)."""
        if self.running:
            raise RuntimeError(f"etcd {self.name} is already running")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start (or restart on the same ports and data) and wait until healthy."""
        for attempt in range(_PORT_RETRIES):
            self.spawn()
            try:
                self.wait_ready(timeout=timeout)
                return
            except _EarlyExit as exit_:
                # A port handed out as free may be taken before etcd binds it.
                if self._fixed_ports or "address already in use" not in exit_.log:
                    raise RuntimeError(str(exit_)) from None
                if attempt == _PORT_RETRIES - 1:
                    raise RuntimeError(str(exit_)) from None
                self.client_port, self.peer_port = free_port(), free_port()
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def wait_ready(self, *, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.healthy():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd {self.name} not healthy after {timeout}s:\n"
                                   f"{self.log_tail()}")
            try:
                self.proc.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                continue
            raise _EarlyExit(f"etcd {self.name} exited with {self.proc.returncode}:\n"
                             f"{self.log_tail()}", self.log_tail())

    def healthy(self) -> bool:
        try:
            with _HTTP.open(f"http://{self.endpoint}/health", timeout=2) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the data directory stays."""
        if not self.running:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL at once, like a crash; the data directory stays for a restart."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        """Stop the member and remove everything it wrote."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.log_path)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""

    # -- context managers ----------------------------------------------------------

    def __enter__(self) -> EtcdServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> EtcdServer:
        try:
            await asyncio.to_thread(self.start)
        except BaseException:
            await asyncio.to_thread(self.close)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.close)


class _EarlyExit(Exception):
    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.log = log


class EtcdCluster:
    """``size`` members forming one cluster; ``endpoints`` lists their client URLs."""

    def __init__(self, size: int = 3):
        require_etcd()
        self.base_dir = tempfile.mkdtemp(prefix="pyk8s-etcd-cluster-")
        names = [f"etcd{i}" for i in range(size)]
        peers = {name: free_port() for name in names}
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in peers.items())
        self.members = [EtcdServer(name=n, base_dir=self.base_dir, client_port=free_port(),
                                   peer_port=peers[n], initial_cluster=initial)
                        for n in names]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        for m in self.members:
            m.spawn()
        try:
            for m in self.members:
                m.wait_ready(timeout=timeout)
        except _EarlyExit as exit_:
            raise RuntimeError(str(exit_)) from None

    def close(self) -> None:
        for m in self.members:
            m.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    async def __aenter__(self) -> EtcdCluster:
        try:
            await asyncio.to_thread(self.start)
        except BaseException:
            await asyncio.to_thread(self.close)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.close)


@pytest.fixture(scope="session")
def etcd_server():
    """One etcd member shared by the session; tests isolate themselves by key prefix."""
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="session")
def etcd_endpoint(etcd_server) -> str:
    """``"127.0.0.1:<port>"`` of the session's etcd."""
    return etcd_server.endpoint
