"""A real pyk8s API server in a subprocess, driven by real kubectl: the harness every
integration test shares (tests/*/conftest.py build their fixtures on it)."""
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Callable, TypeVar

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


T = TypeVar("T")


def start_on_free_port(start: Callable[[int], T], log_path: str, port: int | None = None,
                       attempts: int = 3) -> T:
    """``start(port)`` with ``port`` or a free one; ``start`` raises RuntimeError when its
    server exits. A port is free when picked but the server binds it only later: if
    another process took it in between (the server's log at ``log_path`` says "address
    already in use"), start again on another free port."""
    for attempt in range(attempts):
        seen = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        try:
            return start(port if port and attempt == 0 else free_port())
        except RuntimeError:
            with open(log_path, "rb") as f:
                f.seek(seen)
                taken = b"address already in use" in f.read()
            if not taken or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Cluster:
    def __init__(self, data_dir: str, port: int):
        self.data_dir = data_dir
        self.port = port
        self.kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
        self.url = f"https://127.0.0.1:{port}"
        self.proc = None

    def start(self, extra=()):
        """Start the API server on ``port``, or on another free one if that was taken
        before the server bound it."""
        def at(port: int) -> None:
            self.port, self.url = port, f"https://127.0.0.1:{port}"
            self._start(extra)
        start_on_free_port(at, os.path.join(self.data_dir, "server.log"), self.port)

    def _start(self, extra=()):
        log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir",
             self.data_dir, "--https-port", str(self.port), *extra],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("API server exited; see " + self.data_dir + "/server.log")
            if os.path.exists(self.kubeconfig):
                r = self.kubectl("get", "--raw", "/readyz", check=False)
                if r.returncode == 0 and r.stdout.strip() == "ok":
                    return
            time.sleep(0.1)
        raise RuntimeError("API server did not become ready in 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc, 10)
        if os.path.exists(self.kubeconfig):
            os.remove(self.kubeconfig)

    def kubectl(self, *args, input=None, check=True, timeout=60):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.data_dir)
        r = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True,
                           env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    async def akubectl(self, *args, input=None, check=True, timeout=60):
        """``kubectl`` off the event loop (for tests whose components run on it)."""
        return await asyncio.to_thread(self.kubectl, *args, input=input, check=check,
                                       timeout=timeout)
