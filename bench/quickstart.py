"""Start-up benchmark: `pyk8s server` start to an app answering through its Service,
and the server's idle memory, beside k3s' published figures (root only).

Prints one line per figure; asserts nothing. Traffic goes only to the Service and
pods it creates; the node is reset afterwards.

    sudo .venv/bin/python bench/quickstart.py
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def until(fn, deadline: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if fn():
            return time.monotonic() - start
        time.sleep(0.2)
    raise SystemExit("timed out")


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root: the embedded node runs containerd")
    data_dir = tempfile.mkdtemp(prefix="pyk8s-bench-")
    env = dict(os.environ, KUBECONFIG=os.path.join(data_dir, "kubeconfig.yaml"), HOME=data_dir)
    log = open(os.path.join(data_dir, "server.log"), "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "server", "--data-dir",
                             data_dir, "--https-port", str(free_port())],
                            stdout=log, stderr=subprocess.STDOUT)

    def kubectl(*args):
        return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env)
    try:
        until(lambda: "cluster ready" in open(os.path.join(data_dir, "server.log"),
                                              errors="replace").read(), 120)
        ready = time.monotonic() - t0
        kubectl("create", "deployment", "nginx", "--image=nginx")
        kubectl("expose", "deployment", "nginx", "--port=80")
        ip = ""

        def answers() -> bool:
            nonlocal ip
            ip = ip or kubectl("get", "svc", "nginx", "-o",
                               "jsonpath={.spec.clusterIP}").stdout
            if not ip:
                return False
            r = subprocess.run(["curl", "-s", "-m", "2", f"http://{ip}/"],
                               capture_output=True, text=True)
            return "Welcome to nginx!" in r.stdout
        until(answers, 120)
        to_app = time.monotonic() - t0
        time.sleep(10)  # settle: the figure is idle memory, not a wait for a condition
        memory = rss_mb(proc.pid)
        print(f"server start to 'cluster ready': {ready:.1f} s")
        print(f"server start to nginx answering through its Service: {to_app:.1f} s "
              f"(k3s: about 20 s to an app and DNS)")
        print(f"server idle memory with the embedded node, one app: {memory:.0f} MB RSS "
              f"(k3s server with agent: about 1.4 GB; k0s: about 510 MB)")
    finally:
        proc.terminate()
        proc.wait(60)
        subprocess.run([sys.executable, "-m", "pyk8s.cli.main", "reset", "--data-dir",
                        data_dir], capture_output=True)


if __name__ == "__main__":
    main()
