"""One `pyk8s apiserver` per data dir: its SQLite store, certificates and kubeconfigs
are not shared, so a second process on the same dir refuses at once (as `pyk8s
server` and `pyk8s agent` do) and the first keeps serving."""
import os
import subprocess
import sys
import time

import pytest

from support.cluster import KUBECTL, Cluster, free_port


def test_a_second_apiserver_on_the_same_data_dir_refuses(tmp_path):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    c = Cluster(str(tmp_path), free_port())
    c.start()
    try:
        c.kubectl("create", "configmap", "kept", "--from-literal=a=b")
        t0 = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir",
             str(tmp_path), "--https-port", str(free_port())],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"pyk8s: another pyk8s apiserver is using {tmp_path}" in second.stderr
        assert time.monotonic() - t0 < 15
        assert c.kubectl("get", "configmap", "kept", "-o",
                         "jsonpath={.data.a}").stdout == "b"
    finally:
        c.stop()
