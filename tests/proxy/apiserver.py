"""A real pyk8s API server on 127.0.0.1 for the integration tests (one per session)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

from support.cluster import stop_process

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
        self.proc: subprocess.Popen | None = None

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.data_dir)
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r

    def start(self) -> "ApiServer":
        log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir", self.data_dir,
             "--https-port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API server exited; see {self.data_dir}/server.log")
            if os.path.exists(self.kubeconfig) and \
                    self.kubectl("get", "--raw", "/readyz", check=False).stdout.strip() == "ok":
                return self
            time.sleep(0.1)  # polling the server's readiness, bounded by the deadline
        raise RuntimeError("API server did not become ready in 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc, 10)
