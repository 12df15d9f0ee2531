"""A real pyk8s API server in a subprocess, driven by real kubectl: the harness every
integration test shares (tests/*/conftest.py build their fixtures on it)."""
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time

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


class Cluster:
    def __init__(self, data_dir: str, port: int):
        self.data_dir = data_dir
        self.port = port
        self.kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
        self.url = f"https://127.0.0.1:{port}"
        self.proc = None

    def start(self, extra=()):
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
