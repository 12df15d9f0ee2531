"""One real `pyk8s server` with its embedded node for the e2e tests (root only).

Traffic goes only to the pods and Services these tests create (their addresses are
on this machine's pod bridge and redirected locally by kube-proxy's rules) and to
127.0.0.1; the node is reset afterwards.
"""
import os
import shutil
import subprocess
import sys

import pytest

from support.cluster import KUBECTL, free_port, stop_process
from support.waiting import wait_for


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the embedded node needs root (containerd, network)")
    for tool in ("containerd", "nft", KUBECTL):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    data_dir = str(tmp_path_factory.mktemp("quickstart"))
    port = free_port()
    log = open(os.path.join(data_dir, "server.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "server", "--data-dir",
                             data_dir, "--https-port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    env = dict(os.environ, KUBECONFIG=os.path.join(data_dir, "kubeconfig.yaml"),
               HOME=data_dir)

    def kubectl(*args, check=True, timeout=60, input=None):
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stdout}{r.stderr}")
        return r
    try:
        def ready():
            if proc.poll() is not None:
                raise AssertionError("pyk8s server exited; see " + data_dir + "/server.log")
            text = open(os.path.join(data_dir, "server.log"), errors="replace").read()
            return "pyk8s: cluster ready" in text
        wait_for(ready, "the server to report ready", 120)
        wait_for(lambda: " Ready " in kubectl("get", "nodes", check=False).stdout,
                 "the node to be Ready")
        yield kubectl
    finally:
        stop_process(proc, 30)
        subprocess.run([sys.executable, "-m", "pyk8s.cli.main", "reset", "--data-dir",
                        data_dir], capture_output=True, timeout=120)


